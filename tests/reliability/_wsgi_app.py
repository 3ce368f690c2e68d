"""A tiny WSGI application instrumented with otel-costattr, for the gunicorn tests (``gunicorn _wsgi_app:app``).

Importing it calls ``configure(ledger=$LEDGER_PATH)`` as an application's module would: in gunicorn's master
with ``--preload`` (the workers are forked after), in each worker without. Each request ``GET /?seq=K`` ends
one priced LLM span carrying ``test.seq = K`` and answers with the worker's pid.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as W  # noqa: E402

import otel_costattr as oc  # noqa: E402

pipeline = oc.configure(ledger=os.environ["LEDGER_PATH"], service_name="wsgi", env={}, langfuse=False,
                        instrument_threading=False)
tracer = pipeline.tracer_provider.get_tracer("wsgi")


def app(environ, start_response):
    k = int(parse_qs(environ.get("QUERY_STRING", "")).get("seq", ["0"])[0])
    c = W.call(0, k, k % 7)
    with oc.attribution(customer_id=W.customer(0, k)):
        with tracer.start_as_current_span("chat", attributes={**c.start, "test.seq": k, "test.worker": 0}) as span:
            span.set_attributes(c.end)
    # A request takes a little while, as a real one would (I/O): with concurrent clients, one sync worker cannot
    # take them all, so the test sees its requests spread over several forked workers even on a loaded machine.
    time.sleep(0.02)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
