"""One API call, one cost, under the instrumentations users run, alone and in pairs (DESIGN D16).

Real SDKs (openai, anthropic, boto3, openai-agents) under real instrumentations (OpenInference OpenAI, Anthropic,
Bedrock and agents bridge, OpenLLMetry, opentelemetry-instrumentation-botocore, the Anthropic SDK's own tracing)
against the local fake vendor, with ``baggage_processor()`` and ``CostSpanProcessor`` on the provider. Every call
must be charged exactly once, at the figure worked out by hand from the published rates in ``pricing/`` (comments
show the arithmetic), with the attribution keys on the span that carries the cost.

Rates (per million tokens): gpt-4o-mini $0.15 in / $0.075 cached / $0.60 out; claude-haiku-4-5 $1 in / $0.10 read /
$1.25 5m write / $2 1h write / $5 out, the same on Bedrock at the global rate, and 10% more through a geographic
(``us.``) inference profile.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanProcessor

import otel_costattr as oc
from otel_costattr import attributes as A
from otel_costattr._cli import main as cli_main
from otel_costattr._ledger._store import Ledger, LedgerSpanProcessor
from otel_costattr.testing import Usage, fake_headers

from tests.integration.conftest import CostTelemetry, Telemetry

MESSAGES = [{"role": "user", "content": "Say hello"}]
CARRIES = ("priced", "partial", "provided")
TAGS = {"customer_id": "acme-retail", "task_id": "refund-42"}

OPENAI_USAGE = Usage(input=1200, cache_read=1024, output=300)
# 176 x 0.15 + 1,024 x 0.075 + 300 x 0.60 = 26.4 + 76.8 + 180 = 283.2 micro-dollars
GPT4O_MINI = Decimal("0.0002832")
ANTHROPIC_USAGE = Usage(input=50, cache_read=1000, cache_write_5m=1500, cache_write_1h=500, output=300)
# 50 x 1 + 1,000 x 0.10 + 1,500 x 1.25 + 500 x 2 + 300 x 5 = 50 + 100 + 1,875 + 1,000 + 1,500 = 4,525
HAIKU_SPLIT = Decimal("0.004525")
# without the TTL split (OpenInference reports one cache-write count) every write is a 5-minute write:
# 50 + 100 + 2,000 x 1.25 + 1,500 = 4,150
HAIKU_NO_SPLIT = Decimal("0.00415")
# Bedrock: inputTokens is the uncached part; 50 uncached, 1,000 read, 2,000 written, 300 out
BEDROCK_USAGE = Usage(input=50, cache_read=1000, cache_write=2000, output=300)
BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
# (50 x 1 + 1,000 x 0.10 + 2,000 x 1.25 + 300 x 5) x 1.1 (us. profile) = 4,150 x 1.1 = 4,565
BEDROCK_US = Decimal("0.004565")
BEDROCK_PLAIN_USAGE = Usage(input=500, output=300)
# (500 x 1 + 300 x 5) x 1.1 = 2,200; at the global rate (no geo prefix on the span) 2,000
BEDROCK_PLAIN_US = Decimal("0.0022")
BEDROCK_PLAIN_GLOBAL = Decimal("0.002")


def total(span: Any) -> Decimal:
    return Decimal(repr(span.attributes[A.COST_TOTAL]))


def status(span: Any) -> str | None:
    return span.attributes.get(A.COST_STATUS)


def llm_spans(t: CostTelemetry) -> list[Any]:
    return [s for s in t.spans() if A.COST_STATUS in s.attributes]


def charged_once(t: CostTelemetry) -> Any:
    """The one span that carries the call; every other LLM span is its duplicate (or, a span without usage that
    ended first, no_usage). The attribution keys are on the carrier."""
    spans = llm_spans(t)
    carriers = [s for s in spans if status(s) in CARRIES]
    assert len(carriers) == 1, [(s.name, s.instrumentation_scope.name, status(s)) for s in spans]
    (carrier,) = carriers
    carrier_id = format(carrier.context.span_id, "016x")
    for s in spans:
        if s is not carrier:
            assert status(s) == "duplicate" and s.attributes[A.COST_DUPLICATE_OF] == carrier_id \
                or status(s) == "no_usage", (s.name, status(s))
            assert A.COST_TOTAL not in s.attributes or status(s) == "duplicate"
    for key, value in TAGS.items():
        assert carrier.attributes.get(key) == value, (carrier.name, key)
    return carrier


# --------------------------------------------------------------------------------------------------- OpenAI


@pytest.mark.parametrize("emitters", [("openinference-openai",), ("openinference-openai", "traceloop-openai"),
                                      ("traceloop-openai", "openinference-openai"),
                                      ("openinference-openai", "genai-openai")])
@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat(priced: CostTelemetry, emitters: tuple[str, ...], stream: bool) -> None:
    priced.instrument(*emitters)
    client = priced.openai()
    with oc.attribution(**TAGS):
        if stream:
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                    stream_options={"include_usage": True},
                                                    extra_headers=fake_headers(usage=OPENAI_USAGE)):
                pass
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                           extra_headers=fake_headers(usage=OPENAI_USAGE))
    assert total(charged_once(priced)) == GPT4O_MINI
    assert len(llm_spans(priced)) == len(emitters)


def test_openai_no_usage_twin_is_not_a_second_call(priced: CostTelemetry) -> None:
    """A stream without include_usage under two instrumentations: two spans with no usage, one call (no_usage +
    duplicate), never charged."""
    priced.instrument("openinference-openai", "traceloop-openai")
    for _ in priced.openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                     extra_headers=fake_headers(usage=OPENAI_USAGE)):
        pass
    assert sorted(status(s) for s in llm_spans(priced)) == ["duplicate", "no_usage"]


# ------------------------------------------------------------------------------------------------ Anthropic


def haiku_call(client: Any, stream: bool) -> None:
    """One claude-haiku-4-5 call of ANTHROPIC_USAGE under attribution, streamed or not."""
    with oc.attribution(**TAGS):
        if stream:
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES,
                                        extra_headers=fake_headers(usage=ANTHROPIC_USAGE)) as s:
                for _ in s:
                    pass
        else:
            client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES,
                                   extra_headers=fake_headers(usage=ANTHROPIC_USAGE))


@pytest.mark.parametrize("stream", [False, True])
def test_openinference_anthropic_alone(priced: CostTelemetry, stream: bool) -> None:
    priced.instrument("openinference-anthropic")
    client = priced.anthropic(sdk_tracing=False)
    haiku_call(client, stream)
    assert total(charged_once(priced)) == HAIKU_NO_SPLIT


@pytest.mark.parametrize("stream", [False, True])
def test_openinference_anthropic_with_the_sdks_own_tracing(priced: CostTelemetry, stream: bool) -> None:
    """OpenInference has no response id, the SDK's span has one; streamed, the two spans are even in different
    traces (each a root). Charged once; when the SDK's span (with the 5m/1h split) ends first it carries the
    exact split figure, otherwise OpenInference's span carries its own and the SDK's is flagged more_detailed (the
    ledger re-prices from it)."""
    priced.instrument("openinference-anthropic")
    client = priced.anthropic(sdk_tracing=True)
    haiku_call(client, stream)
    carrier = charged_once(priced)
    if carrier.instrumentation_scope.name == "com.anthropic.sdk.python":
        assert total(carrier) == HAIKU_SPLIT
    else:
        assert total(carrier) == HAIKU_NO_SPLIT
        (sdk,) = [s for s in llm_spans(priced) if s is not carrier]
        assert sdk.attributes[A.COST_FLAGS] == ("more_detailed",)
    assert len(llm_spans(priced)) == 2


# -------------------------------------------------------------------------------------------------- Bedrock


def converse(client: Any, api: str) -> None:
    messages = [{"role": "user", "content": [{"text": "Say hello"}]}]
    if api == "converse":
        client.converse(modelId=BEDROCK_MODEL, messages=messages)
    elif api == "converse_stream":
        for _ in client.converse_stream(modelId=BEDROCK_MODEL, messages=messages)["stream"]:
            pass
    else:
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": MESSAGES}
        json.loads(client.invoke_model(modelId=BEDROCK_MODEL, body=json.dumps(body))["body"].read())


@pytest.mark.parametrize("emitters", [("botocore",), ("openinference-bedrock",),
                                      ("botocore", "openinference-bedrock"), ("openinference-bedrock", "botocore")])
@pytest.mark.parametrize("api", ["converse", "converse_stream"])
def test_bedrock_converse_with_cache(priced: CostTelemetry, emitters: tuple[str, ...], api: str) -> None:
    """botocore reports Bedrock's raw inputTokens (the uncached part) as gen_ai.usage.input_tokens: read per emitter,
    the cached call is charged in full, once, with the us. profile's premium from the model id on the span."""
    priced.instrument(*emitters)
    client = priced.bedrock(fake_headers(usage=BEDROCK_USAGE))
    with oc.attribution(**TAGS):
        converse(client, api)
    carrier = charged_once(priced)
    assert total(carrier) == BEDROCK_US
    assert carrier.attributes[A.COST_MODEL] == "anthropic.claude-haiku-4-5"
    assert carrier.attributes[A.COST_PROVIDER] == "bedrock"
    assert len(llm_spans(priced)) == len(emitters)


@pytest.mark.parametrize("emitters,figure", [(("botocore",), BEDROCK_PLAIN_US),
                                             (("openinference-bedrock",), BEDROCK_PLAIN_GLOBAL),
                                             (("botocore", "openinference-bedrock"), BEDROCK_PLAIN_US)])
def test_bedrock_invoke_model(priced: CostTelemetry, emitters: tuple[str, ...], figure: Decimal) -> None:
    """InvokeModel with an Anthropic body. OpenInference names the model as the reply does (no geo prefix: global
    rate); botocore keeps the requested inference profile (us.: +10%). Together, botocore's inner span ends first
    and carries the call with the prefix honoured."""
    priced.instrument(*emitters)
    client = priced.bedrock(fake_headers(usage=BEDROCK_PLAIN_USAGE))
    with oc.attribution(**TAGS):
        converse(client, "invoke_model")
    assert total(charged_once(priced)) == figure


def test_bedrock_invoke_model_cached_seen_by_botocore_says_what_it_cannot_know(priced: CostTelemetry) -> None:
    """botocore records no cache counts for InvokeModel, and its input count leaves them out: the call is still
    charged once, the carrier is flagged input_may_exclude_cache, and OpenInference's complete span is its
    duplicate flagged more_detailed, so the ledger prices the call from it."""
    priced.instrument("botocore", "openinference-bedrock")
    client = priced.bedrock(fake_headers(usage=BEDROCK_USAGE))
    with oc.attribution(**TAGS):
        converse(client, "invoke_model")
    carrier = charged_once(priced)
    assert "input_may_exclude_cache" in carrier.attributes[A.COST_FLAGS]
    (other,) = [s for s in llm_spans(priced) if s is not carrier]
    assert other.attributes[A.COST_FLAGS] == ("more_detailed",)


# ---------------------------------------------------------------------------------------- openai-agents


def run_agents(t: CostTelemetry, streamed: bool) -> None:
    """One openai-agents run with a pinned model, under attribution: its one Responses call."""
    import openai
    from agents import Agent, OpenAIResponsesModel, Runner

    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=t.vendor.openai_base_url, api_key="test-key", max_retries=0,
                                    default_headers=fake_headers(usage=OPENAI_USAGE))
        try:
            agent = Agent(name="helper", instructions="Be brief.",
                          model=OpenAIResponsesModel(model="gpt-4o-mini-2024-07-18", openai_client=client))
            with oc.attribution(**TAGS):
                if streamed:
                    result = Runner.run_streamed(agent, "Say hello")
                    async for _ in result.stream_events():
                        pass
                else:
                    await Runner.run(agent, "Say hello")
        finally:
            await client.close()

    asyncio.run(run())


# openinference-instrumentation-openai 0.1.66 calls AsyncAPIResponse.parse() without awaiting it on streamed async
# Responses calls (that is why its span has no usage); the coroutine's warning is that bug, not ours.
def agents_warnings(test: Any) -> Any:
    test = pytest.mark.filterwarnings(
        "ignore:coroutine 'AsyncAPIResponse.parse' was never awaited:RuntimeWarning")(test)
    return pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")(test)


@agents_warnings
@pytest.mark.parametrize("streamed", [False, True])
def test_openai_agents_bridge_with_openinference_openai(priced: CostTelemetry, streamed: bool) -> None:
    """openai-agents under OpenInference's agents bridge and OpenInference OpenAI, with a pinned model: the
    bridge's ``response`` span has the usage; the OpenAI span inside it, streamed, has none and ends first. The
    span with usage carries the call, and names the span it supersedes."""
    priced.instrument("openinference-agents", "openinference-openai")
    run_agents(priced, streamed)
    carrier = charged_once(priced)
    assert total(carrier) == GPT4O_MINI
    assert carrier.instrumentation_scope.name == "openinference.instrumentation.openai_agents" or not streamed
    if streamed:
        (first,) = [s for s in llm_spans(priced) if s is not carrier]
        assert status(first) == "no_usage" and first.end_time <= carrier.end_time
        assert carrier.attributes[A.COST_SUPERSEDES] == format(first.context.span_id, "016x")


# ------------------------------------------------------------------------------------------------ pydantic-ai


@pytest.mark.parametrize("with_openinference", [False, True])
def test_pydantic_ai(priced: CostTelemetry, with_openinference: bool) -> None:
    """pydantic-ai's ``chat`` span carries its own price (``operation.cost``, from genai-prices) and a response id:
    read as an upstream (``provided``) cost. Beside OpenInference OpenAI (its child, no id), charged once."""
    pydantic_ai = pytest.importorskip("pydantic_ai")
    import openai
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    if with_openinference:
        priced.instrument("openinference-openai")

    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=priced.vendor.openai_base_url, api_key="test-key", max_retries=0,
                                    default_headers=fake_headers(usage=OPENAI_USAGE))
        try:
            agent = pydantic_ai.Agent(OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client)))
            agent.instrument_all(InstrumentationSettings(tracer_provider=priced.provider))
            try:
                with oc.attribution(**TAGS):
                    await agent.run("Say hello")
            finally:
                agent.instrument_all(False)
        finally:
            await client.close()

    asyncio.run(run())
    carrier = charged_once(priced)
    # pydantic-ai's own float, or ours exactly
    assert total(carrier).quantize(Decimal("1e-12")) == GPT4O_MINI
    assert len(llm_spans(priced)) == 1 + with_openinference


# ------------------------------------------------------------------------------------------------ in the ledger


class _FlushEach(SpanProcessor):
    """After the ledger's processor: commits every span as a segment of its own, as a busy process whose batch
    ends between two spans of one call would (the span that supersedes its twin lands in a later segment)."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    def on_end(self, span: Any) -> None:
        assert self.ledger.force_flush(10_000)


def report(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """``otel-costattr report --format json`` over the ledger at ``path``, as a user runs it."""
    capsys.readouterr()
    assert cli_main(["report", "--db", str(path), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_one_call(r: dict[str, Any], figure: Decimal) -> None:
    assert (r["calls"], r["no_usage_calls"], r["unpriced_calls"]) == (1, 0, 0), r
    assert Decimal(r["total"]) == figure


@agents_warnings
@pytest.mark.parametrize("segments", ["one batch", "a segment per span"])
def test_ledger_counts_a_call_whose_twin_without_usage_ended_first(
        priced: CostTelemetry, tmp_path: Path, capsys: pytest.CaptureFixture[str], segments: str) -> None:
    """openai-agents streamed under OpenInference: the OpenAI span (no usage) ends before the bridge's span with
    usage. The ledger counts one call, with no "no usage" call beside it, in the same batch or when the two spans
    land in different segments (read live, as a report beside the app reads it), and after ``ledger compact``."""
    path = tmp_path / "costs"
    ledger = LedgerSpanProcessor(path, book=priced.book)
    priced.provider.add_span_processor(ledger)
    if segments == "a segment per span":
        priced.provider.add_span_processor(_FlushEach(ledger))
    priced.instrument("openinference-agents", "openinference-openai")
    run_agents(priced, streamed=True)
    assert ledger.force_flush(10_000)
    assert sorted(status(s) for s in llm_spans(priced)) == ["no_usage", "priced"]
    if segments == "a segment per span":  # the carrier's segment is flagged: readers un-count its twin
        assert any("s" in seg.flags for seg in Ledger(path, read_only=True).segments())
    assert_one_call(report(path, capsys), GPT4O_MINI)  # live: the app's processor is still open
    ledger.shutdown()
    assert_one_call(report(path, capsys), GPT4O_MINI)
    assert cli_main(["ledger", "compact", "--db", str(path)]) == 0
    assert_one_call(report(path, capsys), GPT4O_MINI)


@agents_warnings
@pytest.mark.parametrize("order", ["end order", "grouped by scope"])
def test_ingest_counts_a_call_whose_twin_without_usage_comes_first(
        telemetry: Telemetry, tmp_path: Path, capsys: pytest.CaptureFixture[str], order: str) -> None:
    """The same run traced without otel-costattr, written as OTLP protobuf (the file exporter's length-prefixed
    messages, one per span in end order, or one request grouped by scope as an SDK exporter sends it) and loaded
    with ``ingest``: priced on the way in, one call, no "no usage" call."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    telemetry.instrument("openinference-agents", "openinference-openai")
    run_agents(telemetry, streamed=True)  # type: ignore[arg-type]
    spans = [s for s in telemetry.spans() if s.instrumentation_scope.name.startswith("openinference")]
    assert len(spans) >= 2
    messages = [encode_spans([s]) for s in spans] if order == "end order" else [encode_spans(spans)]
    data = b"".join(len(m.SerializeToString()).to_bytes(4, "big") + m.SerializeToString() for m in messages)
    (tmp_path / "traces.pb").write_bytes(data)
    path = tmp_path / "costs"
    assert cli_main(["ingest", "--db", str(path), "--no-progress", str(tmp_path / "traces.pb")]) == 0
    assert_one_call(report(path, capsys), GPT4O_MINI)
