"""Capture end to end: the real SDKs, under real instrumentations, priced by CostSpanProcessor.

Every expected figure is worked out by hand from the vendors' price pages (comments show the arithmetic):
gpt-4o-mini $0.15 in / $0.075 cached / $0.60 out; text-embedding-3-small $0.02 in; claude-haiku-4-5 $1 in /
$1.25 5m write / $2 1h write / $0.10 read / $5 out (per million tokens).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import otel_costattr as oc
from otel_costattr.testing import FakeVendorServer, Usage, fake_headers

from tests.integration.conftest import CostTelemetry

MESSAGES = [{"role": "user", "content": "Say hello"}]
OPENAI_USAGE = Usage(input=1200, cache_read=1024, cache_write=100, output=300, reasoning=256)
ANTHROPIC_USAGE = Usage(input=50, cache_read=1000, cache_write_5m=1500, cache_write_1h=500, output=300)

# 176 x 0.15 + 1,024 x 0.075 + 300 x 0.60 = 26.4 + 76.8 + 180 = 283.2 micro-dollars (reasoning bills as output;
# genai-openai's 100 cache-write tokens have no separate write rate on gpt-4o-mini and bill as input, same sum)
GPT4O_MINI = Decimal("0.0002832")
# 50 x 1 + 1,000 x 0.10 + 1,500 x 1.25 + 500 x 2 + 300 x 5 = 50 + 100 + 1,875 + 1,000 + 1,500 = 4,525
HAIKU_SPLIT = Decimal("0.004525")
# without the TTL split every write is priced as a 5-minute write: 50 + 100 + 2,000 x 1.25 + 1,500 = 4,150
HAIKU_NO_SPLIT = Decimal("0.00415")


def total(span: Any) -> Decimal:
    return Decimal(repr(span.attributes["gen_ai.cost.total_cost"]))


def status(span: Any) -> str | None:
    return span.attributes.get("gen_ai.cost.status")


def llm_spans(t: CostTelemetry) -> list[Any]:
    return [s for s in t.spans() if "gen_ai.cost.status" in s.attributes]


# ------------------------------------------------------------------------------------------ OpenAI


@pytest.mark.parametrize("emitter", ["traceloop-openai", "genai-openai"])
def test_openai_chat_priced_exactly(priced: CostTelemetry, emitter: str) -> None:
    priced.instrument(emitter)
    priced.openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                            extra_headers=fake_headers(usage=OPENAI_USAGE))
    (span,) = llm_spans(priced)
    assert status(span) == "priced" and total(span) == GPT4O_MINI
    assert span.attributes["gen_ai.cost.model"] == "gpt-4o-mini"
    assert span.attributes["langfuse.observation.cost_details"].count("total") == 1


@pytest.mark.parametrize("emitter", ["traceloop-openai", "genai-openai"])
@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_streaming(priced: CostTelemetry, emitter: str, include_usage: bool) -> None:
    priced.instrument(emitter)
    kwargs: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = priced.openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                     extra_headers=fake_headers(usage=OPENAI_USAGE), **kwargs)
    for _ in stream:
        pass
    (span,) = llm_spans(priced)
    if include_usage:
        assert status(span) == "priced" and total(span) == GPT4O_MINI
    else:  # no emitter estimates tokens: the call is counted as no_usage, never as $0
        assert status(span) == "no_usage" and "gen_ai.cost.total_cost" not in span.attributes


@pytest.mark.parametrize("emitter", ["traceloop-openai", "genai-openai"])
def test_responses_api_and_retrieve_priced_once(priced: CostTelemetry, emitter: str) -> None:
    priced.instrument(emitter)
    client = priced.openai()
    resp = client.responses.create(model="gpt-4o-mini", input="hello", extra_headers=fake_headers(usage=OPENAI_USAGE))
    client.responses.retrieve(resp.id)
    statuses = sorted(status(s) for s in llm_spans(priced))
    assert statuses.count("priced") == 1
    assert sum(total(s) for s in llm_spans(priced) if status(s) == "priced") == GPT4O_MINI
    if emitter == "traceloop-openai":  # Traceloop re-emits the usage on retrieve: a duplicate, not a 2nd charge
        assert statuses == ["duplicate", "priced"]


@pytest.mark.parametrize("emitter", ["traceloop-openai", "genai-openai"])
def test_embeddings(priced: CostTelemetry, emitter: str) -> None:
    priced.instrument(emitter)
    priced.openai().embeddings.create(model="text-embedding-3-small", input=["a", "b"],
                                      extra_headers=fake_headers(usage=Usage(input=16)))
    (span,) = llm_spans(priced)
    assert status(span) == "priced" and total(span) == Decimal("0.00000032")  # 16 x $0.02/M


@pytest.mark.parametrize("emitter", ["traceloop-openai", "genai-openai"])
def test_tool_call_then_answer(priced: CostTelemetry, emitter: str) -> None:
    priced.instrument(emitter)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    client = priced.openai()
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=tools,
                                           extra_headers=fake_headers(usage=OPENAI_USAGE))
    call = first.choices[0].message.tool_calls[0]
    client.chat.completions.create(model="gpt-4o-mini", tools=tools, extra_headers=fake_headers(usage=OPENAI_USAGE),
                                   messages=[*MESSAGES, first.choices[0].message.model_dump(exclude_none=True),
                                             {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    spans = llm_spans(priced)
    assert [status(s) for s in spans] == ["priced", "priced"]
    assert sum(total(s) for s in spans) == 2 * GPT4O_MINI


@pytest.mark.parametrize("emitter", ["traceloop-openai", "genai-openai"])
def test_errors_and_sdk_retries(priced: CostTelemetry, emitter: str) -> None:
    priced.instrument(emitter)
    client = priced.openai()
    with pytest.raises(Exception):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                       extra_headers=fake_headers(usage=OPENAI_USAGE, scenario="error-500"))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                   extra_headers=fake_headers(usage=OPENAI_USAGE, scenario="flaky", request_key="flaky-1"))
    err, ok = llm_spans(priced)
    assert status(err) == "no_usage" and status(ok) == "priced" and total(ok) == GPT4O_MINI
    assert priced.cost.stats.snapshot() == {"no_usage": 1, "priced": 1}


def test_two_openai_instrumentors_price_each_call_once(priced: CostTelemetry) -> None:
    priced.instrument("traceloop-openai", "genai-openai")
    priced.openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                            extra_headers=fake_headers(usage=OPENAI_USAGE))
    spans = llm_spans(priced)
    assert sorted(status(s) for s in spans) == ["duplicate", "priced"]
    assert sum(total(s) for s in spans if status(s) == "priced") == GPT4O_MINI


# --------------------------------------------------------------------------------------- Anthropic


def anthropic_client(t: CostTelemetry, emitter: str) -> Any:
    if emitter == "anthropic-sdk":
        return t.anthropic(sdk_tracing=True)
    t.instrument(emitter)
    return t.anthropic(sdk_tracing=False)


@pytest.mark.parametrize("emitter,expected", [
    ("anthropic-sdk", HAIKU_SPLIT), ("traceloop-anthropic", HAIKU_NO_SPLIT), ("genai-anthropic", HAIKU_NO_SPLIT)])
def test_anthropic_cache_reads_and_ttl_writes(priced: CostTelemetry, emitter: str, expected: Decimal) -> None:
    client = anthropic_client(priced, emitter)
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES,
                           extra_headers=fake_headers(usage=ANTHROPIC_USAGE))
    (span,) = llm_spans(priced)
    assert status(span) == "priced" and total(span) == expected
    if emitter == "anthropic-sdk":
        assert span.attributes["gen_ai.cost.cache_write_1h_cost"] == 0.001  # 500 x $2/M


@pytest.mark.parametrize("emitter,expected", [
    ("anthropic-sdk", HAIKU_SPLIT),
    ("traceloop-anthropic", HAIKU_NO_SPLIT + Decimal("0.000005")),  # Traceloop counts 301 output tokens
    ("genai-anthropic", HAIKU_NO_SPLIT)])
def test_anthropic_streaming(priced: CostTelemetry, emitter: str, expected: Decimal) -> None:
    client = anthropic_client(priced, emitter)
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES,
                                extra_headers=fake_headers(usage=ANTHROPIC_USAGE)) as stream:
        for _ in stream:
            pass
    (span,) = llm_spans(priced)
    assert status(span) == "priced" and total(span) == expected


def test_anthropic_reasoning_bills_at_output_rate(priced: CostTelemetry) -> None:
    client = anthropic_client(priced, "anthropic-sdk")
    client.messages.create(model="claude-haiku-4-5", max_tokens=2000, messages=MESSAGES,
                           thinking={"type": "enabled", "budget_tokens": 1024},
                           extra_headers=fake_headers(usage=Usage(input=100, output=900, reasoning=600)))
    (span,) = llm_spans(priced)
    # 100 x $1 + 300 x $5 + 600 x $5 (thinking is output), per million
    assert total(span) == Decimal("0.0046")


@pytest.mark.parametrize("instrumentor", ["traceloop-anthropic", "genai-anthropic"])
def test_anthropic_sdk_plus_instrumentor_priced_once_and_detailed_wins(priced: CostTelemetry,
                                                                       instrumentor: str) -> None:
    priced.instrument(instrumentor)
    client = priced.anthropic(sdk_tracing=True)
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES,
                           extra_headers=fake_headers(usage=ANTHROPIC_USAGE))
    spans = llm_spans(priced)
    by_status = {status(s): s for s in spans}
    assert sorted(by_status) == ["duplicate", "priced"]
    # the SDK's own span (5m/1h split) ends first in both set-ups and carries the cost
    assert by_status["priced"].name == "anthropic.messages.create"
    assert total(by_status["priced"]) == HAIKU_SPLIT
    assert by_status["duplicate"].attributes["gen_ai.cost.duplicate_of"] == format(
        by_status["priced"].context.span_id, "016x")


def test_anthropic_error_and_flaky_retry(vendor: FakeVendorServer, priced: CostTelemetry) -> None:
    client = anthropic_client(priced, "anthropic-sdk")
    with pytest.raises(Exception):
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
                               extra_headers=fake_headers(usage=ANTHROPIC_USAGE, scenario="error-429"))
    client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
                           extra_headers=fake_headers(usage=ANTHROPIC_USAGE, scenario="flaky", request_key="flaky-1"))
    err, ok = llm_spans(priced)
    assert status(err) == "no_usage"
    assert status(ok) == "priced" and total(ok) == HAIKU_SPLIT and ok.attributes["http.request.resend_count"] == 1


# ---------------------------------------------------------------------------- attribution + trust


def test_attribution_reaches_llm_spans_but_not_the_vendor(vendor: FakeVendorServer, priced: CostTelemetry) -> None:
    from opentelemetry import propagate

    before = propagate.get_global_textmap()
    try:
        client = priced.anthropic(sdk_tracing=True)  # the SDK injects the global propagator's headers
        with oc.attribution(customer_id="acme-retail", task_id="refund-42", agent_id="support-bot"):
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
                                   extra_headers=fake_headers(usage=ANTHROPIC_USAGE))
    finally:
        propagate.set_global_textmap(before)
    (span,) = llm_spans(priced)
    assert span.attributes["customer_id"] == "acme-retail" and span.attributes["task_id"] == "refund-42"
    sent = [r.headers for r in vendor.requests if r.path.endswith("/messages")]
    assert sent and all("traceparent" in h for h in sent)  # tracing still propagates
    assert all("acme-retail" not in h.get("baggage", "") for h in sent)
    assert all("customer_id" not in h.get("baggage", "") for h in sent)


@pytest.mark.parametrize("instrumentor", ["traceloop-anthropic", "genai-anthropic"])
def test_a_failed_call_traced_twice_is_one_call(priced: CostTelemetry, instrumentor: str) -> None:
    # no response id to pair the two spans by: they are recognised by scope, provider, model and time
    priced.instrument(instrumentor)
    client = priced.anthropic(sdk_tracing=True)
    # (inside an agent step, as in real applications: Traceloop's span is not made current, so without a
    # parent the SDK's span would start a trace of its own)
    with priced.tracer.start_as_current_span("agent step"), pytest.raises(Exception):
        client.with_options(max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
            extra_headers=fake_headers(usage=ANTHROPIC_USAGE, scenario="error-500"))
    assert sorted(status(s) for s in llm_spans(priced)) == ["duplicate", "no_usage"]


def test_parallel_failed_calls_from_one_instrumentation_stay_separate(priced: CostTelemetry) -> None:
    import threading

    priced.instrument("traceloop-openai")
    client = priced.openai()
    barrier = threading.Barrier(2)
    from opentelemetry import context as otel_context

    with priced.tracer.start_as_current_span("fan out"):
        ctx = otel_context.get_current()

        def call() -> None:
            token = otel_context.attach(ctx)
            try:
                barrier.wait(timeout=10)
                with pytest.raises(Exception):
                    client.with_options(max_retries=0).chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES,
                        extra_headers=fake_headers(usage=OPENAI_USAGE, scenario="error-500"))
            finally:
                otel_context.detach(token)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [status(s) for s in llm_spans(priced)] == ["no_usage", "no_usage"]
