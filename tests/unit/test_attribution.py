"""attribution(): baggage in, attributes out, bounded, allow-listed, never overwriting; trust boundary."""

from __future__ import annotations

import asyncio
import http.server
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import baggage, context, propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from otel_costattr._capture import _attribution, _spanattrs


@pytest.fixture
def traced():
    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(SimpleSpanProcessor(exp))
    return tp.get_tracer("t"), exp


def test_keys_reach_nested_spans(traced) -> None:
    tracer, exp = traced
    with oc.attribution(customer_id="acme", task_id="t-1", agent_run_id=42):
        with tracer.start_as_current_span("outer"):
            with tracer.start_as_current_span("inner"):
                pass
    for s in exp.get_finished_spans():
        assert s.attributes["customer_id"] == "acme" and s.attributes["task_id"] == "t-1"
        assert s.attributes["agent_run_id"] == "42"
    assert baggage.get_all() == {}  # the block leaves nothing behind


def test_never_overwrites_bounds_values_and_filters_keys(traced) -> None:
    tracer, exp = traced
    ctx = baggage.set_baggage("secret.token", "s3cr3t", oc.attribution(customer_id="x" * 5000).context())
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("s", attributes={"customer_id": "set-by-app"}):
            pass
        with tracer.start_as_current_span("t"):
            pass
    finally:
        context.detach(token)
    s, t = exp.get_finished_spans()
    assert s.attributes["customer_id"] == "set-by-app"
    cut = t.attributes["customer_id"]
    assert len(cut) == _attribution.MAX_VALUE_LENGTH and cut == oc.attributes.cut_value("x" * 5000)
    assert cut.startswith("x" * 200) and cut != "x" * _attribution.MAX_VALUE_LENGTH  # it keeps a hash of the whole
    assert "secret.token" not in s.attributes and "secret.token" not in t.attributes


def test_unknown_keys_fail_fast_with_the_fix() -> None:
    with pytest.raises(oc.ConfigurationError, match="set_attribution_keys"):
        oc.attribution(custmer_id="typo")


def test_custom_keys_can_be_added(traced) -> None:
    tracer, exp = traced
    oc.set_attribution_keys(["cost_center"])
    with oc.attribution(cost_center="cc-42"):
        with tracer.start_as_current_span("s"):
            pass
    assert exp.get_finished_spans()[0].attributes["cost_center"] == "cc-42"


def test_decorator_sync_and_async(traced) -> None:
    tracer, exp = traced

    @oc.attribution(skill_id="search")
    def sync_step() -> None:
        with tracer.start_as_current_span("sync"):
            pass

    @oc.attribution(skill_id="summarise")
    async def async_step() -> None:
        with tracer.start_as_current_span("async"):
            await asyncio.sleep(0)

    sync_step()
    asyncio.run(async_step())
    assert [s.attributes["skill_id"] for s in exp.get_finished_spans()] == ["search", "summarise"]


def test_threads_and_tasks_started_inside_the_block() -> None:
    """baggage_processor() turns thread context propagation on by itself: the README's three lines reach spans
    started on threads (LiteLLM's logging thread, thread pools) as well as asyncio tasks."""
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    inst = ThreadingInstrumentor()
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    try:
        exp = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(oc.baggage_processor(propagate_threads=False))
        assert not inst.is_instrumented_by_opentelemetry  # opted out: nothing process-wide changed
        tp.add_span_processor(oc.baggage_processor())
        assert inst.is_instrumented_by_opentelemetry
        tp.add_span_processor(SimpleSpanProcessor(exp))
        tracer = tp.get_tracer("t")

        def work(name: str) -> None:
            with tracer.start_as_current_span(name):
                pass

        async def main() -> None:
            with oc.attribution(customer_id="tenant-7"):
                await asyncio.gather(*(asyncio.create_task(asyncio.to_thread(work, f"task{i}")) for i in range(2)))
                t = threading.Thread(target=work, args=("thread",))
                t.start()
                t.join()
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(work, ["pool0", "pool1"]))
        asyncio.run(main())
    finally:
        inst.uninstrument()
    spans = exp.get_finished_spans()
    assert len(spans) == 5
    assert {s.attributes.get("customer_id") for s in spans} == {"tenant-7"}


def test_keys_cross_an_http_hop_to_another_service(traced) -> None:
    tracer, exp = traced
    prop = oc.propagator()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            ctx = prop.extract({k.lower(): v for k, v in self.headers.items()})
            with tracer.start_as_current_span("service-b", context=ctx):
                pass
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with oc.attribution(customer_id="acme", process_id="billing"):
            with tracer.start_as_current_span("service-a"):
                headers: dict[str, str] = {}
                prop.inject(headers)
                with urllib.request.urlopen(urllib.request.Request(
                        f"http://127.0.0.1:{server.server_port}/", headers=headers), timeout=5) as resp:
                    resp.read()
    finally:
        server.shutdown()
        server.server_close()
    b = next(s for s in exp.get_finished_spans() if s.name == "service-b")
    assert b.attributes["customer_id"] == "acme" and b.attributes["process_id"] == "billing"


def test_untrusted_inbound_baggage_is_dropped() -> None:
    carrier = {"baggage": "customer_id=victim,other=kept"}
    trusted = oc.propagator().extract(carrier)
    assert baggage.get_all(trusted) == {"customer_id": "victim", "other": "kept"}
    edge = oc.propagator(trust_inbound=False).extract(carrier)
    assert baggage.get_all(edge) == {"other": "kept"}
    assert baggage.get_all(oc.strip_attribution(trusted)) == {"other": "kept"}


def test_attribution_is_not_injected_towards_llm_vendors(traced) -> None:
    tracer, _ = traced
    prop = oc.propagator()
    with oc.attribution(customer_id="acme"):
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat",
                                                              "gen_ai.provider.name": "anthropic"}):
            to_vendor: dict[str, str] = {}
            prop.inject(to_vendor)
        with tracer.start_as_current_span("call own service"):
            to_service: dict[str, str] = {}
            prop.inject(to_service)
    assert "customer_id" not in to_vendor.get("baggage", "") and "traceparent" in to_vendor
    assert "customer_id=acme" in to_service["baggage"]


def test_first_attribution_guards_the_global_propagator(traced) -> None:
    tracer, _ = traced
    before = propagate.get_global_textmap()
    try:
        with oc.attribution(customer_id="acme"):
            with tracer.start_as_current_span("anthropic.messages.create",
                                              attributes={"gen_ai.system": "anthropic"}):
                headers: dict[str, str] = {}
                propagate.inject(headers)
        assert "customer_id" not in headers.get("baggage", "")
    finally:
        propagate.set_global_textmap(before)


@pytest.mark.parametrize("limits", [dict(max_span_attribute_length=4), dict(max_span_attributes=3),
                                    dict(max_span_attributes=128)])
def test_copied_baggage_obeys_span_limits_exactly_like_set_attributes(limits) -> None:
    # The processor writes baggage into the span's attribute dict directly (set_attributes is slow); it must
    # give exactly what the SDK's own set_attributes gives under every span limit.
    from opentelemetry.sdk.trace import SpanLimits

    def run(processor_factory):
        exp = InMemorySpanExporter()
        tp = TracerProvider(span_limits=SpanLimits(**limits))
        tp.add_span_processor(processor_factory())
        tp.add_span_processor(SimpleSpanProcessor(exp))
        with oc.attribution(customer_id="acme-retail", task_id="refund-42", agent_id="support-bot"):
            with tp.get_tracer("t").start_as_current_span("s", attributes={"a": 1, "b": "two"}) as span:
                span.set_attribute("c", 3.0)
        (s,) = exp.get_finished_spans()
        return dict(s.attributes), s.dropped_attributes

    class ViaSetAttributes(_attribution.AttributionBaggageProcessor):
        def on_start(self, span, parent_context=None):  # noqa: ANN001
            original = _spanattrs.STORE
            _spanattrs.STORE = type("NoStore", (), {})  # no span's store is of this type: the public API path
            try:
                super().on_start(span, parent_context)
            finally:
                _spanattrs.STORE = original

    assert run(oc.baggage_processor) == run(ViaSetAttributes)
    attrs, _ = run(oc.baggage_processor)
    if limits.get("max_span_attribute_length") == 4:
        assert attrs["customer_id"] == "acme"
    if limits.get("max_span_attributes") == 128:
        assert attrs["agent_id"] == "support-bot" and attrs["a"] == 1
