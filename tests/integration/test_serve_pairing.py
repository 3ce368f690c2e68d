"""``otel-costattr serve`` charges one API call once under two instrumentations (DESIGN D16).

Real SDKs under real instrumentations against the local fake vendor export their spans, unpriced, over real
OTLP/HTTP (the SDK's ``OTLPSpanExporter``) to ``serve`` running as a process of its own, which forwards them to a
real receiver and writes its ledger. The spans of one call share no response id, so serve pairs them on trace,
parent, scope, provider, model and token counts, as the in-process processor does: exactly one forwarded span
carries the cost, and ``report`` over serve's ledger counts one call.
"""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from otel_costattr import attributes as A
from otel_costattr.testing import fake_headers
from otel_costattr.testing._otlp_receiver import OTLPReceiver
from tests.integration.conftest import Telemetry, serve_process
from tests.integration.test_capture_emitters import (
    CARRIES, GPT4O_MINI, MESSAGES, OPENAI_USAGE, agents_warnings, assert_one_call, report, run_agents)


def openai_chat(t: Telemetry) -> None:
    t.openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                       extra_headers=fake_headers(usage=OPENAI_USAGE))


SETUPS = {
    # two OpenAI instrumentations, nested, both with usage, OpenInference without a response id
    "openinference + openllmetry": (("openinference-openai", "traceloop-openai"), openai_chat),
    # the OpenAI span (no usage) ends before the agents bridge's span with usage
    "openai-agents streamed": (("openinference-agents", "openinference-openai"),
                               lambda t: run_agents(t, streamed=True)),
}


@agents_warnings
@pytest.mark.parametrize("export", ["span by span", "one batch"])
@pytest.mark.parametrize("setup", list(SETUPS))
def test_serve_charges_a_call_once_under_two_instrumentations(
        telemetry: Telemetry, receiver: OTLPReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        setup: str, export: str) -> None:
    emitters, call = SETUPS[setup]
    ledger = tmp_path / "costs"
    with serve_process("--forward", receiver.endpoint, "--ledger", str(ledger)) as (proc, url):
        exporter = OTLPSpanExporter(endpoint=url + "/v1/traces")
        telemetry.provider.add_span_processor(
            SimpleSpanProcessor(exporter) if export == "span by span" else BatchSpanProcessor(exporter))
        telemetry.instrument(*emitters)
        call(telemetry)
        telemetry.provider.force_flush()
        n = len(telemetry.spans())
        spans = receiver.wait_for_spans(n, timeout=20)
        proc.send_signal(signal.SIGTERM)  # drains: the ledger has every accepted span once it exits
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    llm = [s for s in spans if A.COST_STATUS in s.attributes]
    carriers = [s for s in llm if s.attributes[A.COST_STATUS] in CARRIES]
    assert len(carriers) == 1, [(s.name, s.attributes[A.COST_STATUS]) for s in llm]
    assert Decimal(repr(carriers[0].attributes[A.COST_TOTAL])) == GPT4O_MINI
    assert len(llm) == 2
    assert_one_call(report(ledger, capsys), GPT4O_MINI)
