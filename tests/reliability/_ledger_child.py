"""An application process writing priced LLM spans into a shared ledger, for the multi-process ledger tests.

    python _ledger_child.py LEDGER WORKER N MODE [PROGRESS_FILE]

It calls ``otel_costattr.configure(ledger=LEDGER)`` exactly as an application would (so the SIGTERM/SIGINT flush
handler is the real one) and ends ``N`` priced LLM spans, span ``k`` carrying ``test.seq = k`` and the usage of
``_workload.call(WORKER, k, k % 7)`` (calls 0..6 are priced; the expected cost is computed without the library).

Modes:

* ``exit``: end the spans, then return from the script (the SDK's atexit shutdown flushes).
* ``wait``: end the spans, print ``ended N``, then sleep until a signal arrives (never calls shutdown).
* ``stream``: end spans one after another for ever (a little work between them), writing the number ended so
  far into PROGRESS_FILE (8 bytes, little-endian) after each one; stopped by a signal.
* ``twins``: as ``exit``, but each call is traced by two instrumentations, as openai-agents under OpenInference
  is: the outer span (scope ``...openai_agents``) carries the usage, the inner one (scope ``...openai``) has none
  and ends first, so the outer one supersedes it (DESIGN D16) and the ledger must count one call.
* ``fork3``: configure, then ``os.fork()`` three children; child ``c`` ends ``N`` spans as worker
  ``WORKER + 1 + c`` and leaves through ``sys.exit(0)``; the parent ends none and waits for them.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as W  # noqa: E402

import otel_costattr as oc  # noqa: E402


def span_of(tracer, worker: int, k: int) -> None:
    c = W.call(worker, k, k % 7)
    with oc.attribution(customer_id=W.customer(worker, k)):
        with tracer.start_as_current_span("chat", attributes={**c.start, "test.seq": k, "test.worker": worker}) as s:
            s.set_attributes(c.end)


def twins_of(outer, inner, worker: int, k: int) -> None:
    c = W.call(worker, k, k % 7)
    with oc.attribution(customer_id=W.customer(worker, k)):
        with outer.start_as_current_span("response", attributes={**c.start, "test.seq": k,
                                                                  "test.worker": worker}) as s:
            with inner.start_as_current_span("chat", attributes=c.start):
                pass  # no usage: ends first
            s.set_attributes(c.end)


def main() -> int:
    ledger, worker, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    pipeline = oc.configure(ledger=ledger, service_name=f"worker-{worker}", env={}, langfuse=False,
                            instrument_threading=False)
    tracer = pipeline.tracer_provider.get_tracer("child")
    if mode == "fork3":
        kids = []
        for c in range(3):
            pid = os.fork()
            if pid == 0:
                for k in range(n):
                    span_of(tracer, worker + 1 + c, k)
                sys.exit(0)  # a normal exit: atexit (inherited from the parent) runs the SDK's shutdown
            kids.append(pid)
        codes = [os.waitpid(p, 0)[1] for p in kids]
        return 0 if all(c == 0 for c in codes) else 1
    if mode == "stream":
        fd = os.open(sys.argv[5], os.O_RDWR | os.O_CREAT, 0o644)
        k = 0
        while True:
            span_of(tracer, worker, k)
            k += 1
            os.pwrite(fd, struct.pack("<q", k), 0)
            time.sleep(0.0005)
    if mode == "twins":
        outer = pipeline.tracer_provider.get_tracer("openinference.instrumentation.openai_agents")
        inner = pipeline.tracer_provider.get_tracer("openinference.instrumentation.openai")
        for k in range(n):
            twins_of(outer, inner, worker, k)
            time.sleep(0.005)  # a few seconds of writing, over several batches, for reports to run during
        return 0
    for k in range(n):
        span_of(tracer, worker, k)
    if mode == "wait":
        print(f"ended {n}", flush=True)
        while True:
            time.sleep(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
