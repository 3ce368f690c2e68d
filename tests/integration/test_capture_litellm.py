"""LiteLLM's ``callbacks=["otel"]`` alone and beside OpenInference OpenAI: each call charged once, with the
attribution keys on the span that carries it, in a real child process (LiteLLM traces through the global provider,
which can be set once per process) with the README's three-line set-up.

LiteLLM writes its own cost (``gen_ai.cost.total_cost``, status ``provided``) and a response id; OpenInference
writes usage and no id. Streamed, LiteLLM starts its span on a logging thread after the stream ends: thread
context propagation, which ``baggage_processor()`` turns on, carries the attribution (and the trace) there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from otel_costattr.testing import FakeVendorServer

pytest.importorskip("litellm")
ROOT = Path(__file__).resolve().parents[2]
# 176 x 0.15 + 1,024 x 0.075 + 300 x 0.60 = 283.2 micro-dollars (LiteLLM's own figure is the same call's price in
# its map, as a float)
GPT4O_MINI = Decimal("0.0002832")


SCENARIOS = ["plain", "stream", "openinference", "openinference-stream", "openinference-step",
             "openinference-stream-step"]


@pytest.fixture(scope="module")
def litellm_spans() -> dict[str, list[dict]]:
    """Every scenario's priced spans, from one child process (importing LiteLLM is slow)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    with FakeVendorServer(seed=19) as vendor:
        done = subprocess.run([sys.executable, "-m", "tests.integration._litellm_child", vendor.url, *SCENARIOS],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, list[dict]] = {s: [] for s in SCENARIOS}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            span = json.loads(line)
            out[span["scenario"]].append(span)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_litellm_callback_charged_once_with_attribution(litellm_spans: dict[str, list[dict]], scenario: str) -> None:
    spans = litellm_spans[scenario]
    carriers = [s for s in spans if s["status"] in ("priced", "provided", "partial")]
    assert len(carriers) == 1, spans
    (carrier,) = carriers
    # exact for our price; LiteLLM's provided float is its own computation of the same figure
    assert Decimal(carrier["total"]).quantize(Decimal("1e-12")) == GPT4O_MINI
    assert carrier["customer_id"] == "acme-retail" and carrier["task_id"] == "refund-42", spans
    others = [s for s in spans if s is not carrier]
    # Alone, LiteLLM's span is the only one. Beside OpenInference, LiteLLM's cost lands on its own span or, inside
    # an app span, on that span (LiteLLM writes onto the current span; streamed, after the step may have ended,
    # when LiteLLM's attributes are lost and OpenInference's span alone carries the call).
    assert len(others) <= ("openinference" in scenario), spans
    for s in others:
        assert s["status"] == "duplicate" and s["duplicate_of"] == carrier["span_id"], spans
