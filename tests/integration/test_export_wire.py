"""Real export: priced spans leave the process over OTLP/HTTP protobuf and arrive intact.

The receiver decodes with ``opentelemetry-proto`` (see otel_costattr.testing's OTLPReceiver). ``configure()``
builds the pipeline from a Langfuse environment, so this also checks the Langfuse route (path and Basic
auth) exactly as a user would set it up.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import otel_costattr as oc
from otel_costattr.testing import FakeVendorServer, Usage, fake_headers
from otel_costattr.testing import OTLPReceiver

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_configure_exports_priced_spans_to_langfuse_over_otlp(vendor: FakeVendorServer) -> None:
    import anthropic

    with OTLPReceiver() as receiver:
        env = {"LANGFUSE_HOST": receiver.endpoint, "LANGFUSE_PUBLIC_KEY": "pk-lf-test",
               "LANGFUSE_SECRET_KEY": "sk-lf-secret"}
        tp = TracerProvider(resource=Resource.create({"service.name": "wire-test"}))
        pipeline = oc.configure(env=env, tracer_provider=tp, set_global=False, instrument_threading=False,
                                book=oc.PriceBook.load(env=False))
        client = anthropic.Anthropic(base_url=vendor.anthropic_base_url, api_key="k", max_retries=0,
                                     open_telemetry={"tracer_provider": tp, "propagation": False})
        try:
            with oc.attribution(customer_id="globex-bank", task_id="kyc"):
                client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
                                       extra_headers=fake_headers(usage=Usage(input=50, cache_read=1000,
                                                                              cache_write_5m=1500,
                                                                              cache_write_1h=500, output=300)))
            assert pipeline.force_flush(10_000)
        finally:
            client.close()
            pipeline.shutdown()
        (span,) = receiver.wait_for_spans(1, timeout=10)
        paths = {r.path for r in receiver.requests()}
        headers = receiver.headers()
    assert paths == {"/api/public/otel/v1/traces"}
    expected_auth = "Basic " + base64.b64encode(b"pk-lf-test:sk-lf-secret").decode()
    assert all(h["authorization"] == expected_auth for h in headers)
    assert all(h["content-type"] == "application/x-protobuf" for h in headers)
    a = span.attributes
    assert a["gen_ai.cost.status"] == "priced" and a["gen_ai.cost.currency"] == "USD"
    # 50 x $1 + 1,000 x $0.10 + 1,500 x $1.25 + 500 x $2 + 300 x $5, per million
    assert Decimal(repr(a["gen_ai.cost.total_cost"])) == Decimal("0.004525")
    assert json.loads(a["langfuse.observation.cost_details"])["total"] == 0.004525
    assert a["customer_id"] == "globex-bank" and a["task_id"] == "kyc"
    assert not any(k.startswith("gen_ai.usage.") and "cost" in k for k in a)


def test_phoenix_keeps_our_cost_attributes(priced, tmp_path) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from phoenix_support import phoenix_version, start_phoenix

    if phoenix_version() is None:
        import pytest
        pytest.skip("arize-phoenix is not installed")
    server = start_phoenix(tmp_path)
    try:
        # The instrumented SDK comes from the `priced` fixture (which also undoes the instrumentation); its
        # provider gets a second cost-enriching pipeline that exports to Phoenix.
        to_phoenix = oc.CostSpanProcessor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.otlp_traces_url,
                                                                              timeout=10)), book=priced.book)
        priced.provider.add_span_processor(to_phoenix)
        priced.instrument("traceloop-openai")
        client = priced.openai()
        with oc.attribution(customer_id="acme-retail"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES,
                extra_headers=fake_headers(usage=Usage(input=1200, cache_read=1024, output=300)))
        assert to_phoenix.force_flush(10_000)
        (span,) = [s for s in server.wait_for_spans("costattr-e2e", 1) if s["name"] == "openai.chat"]
    finally:
        server.stop()
    got = span["attributes"]
    # 176 x $0.15 + 1,024 x $0.075 + 300 x $0.60, per million
    assert got["gen_ai.cost.total_cost"] == 0.0002832
    assert got["gen_ai.cost.status"] == "priced" and got["customer_id"] == "acme-retail"
    assert json.loads(got["langfuse.observation.cost_details"])["total"] == 0.0002832
