"""The fake vendor under the real SDKs and real instrumentations.

Two kinds of tests:

* Wire tests check the fake itself through the real ``openai``/``anthropic`` SDKs (no spans).
* Span tests record, per emitter, exactly which ``gen_ai.usage.*`` (and related) attributes the
  instrumentation puts on its span for each kind of call. The expected dicts are the observed
  behaviour of the pinned versions (see docs/fake-vendor.md); a failure here means an emitter
  changed, which a cost processor must learn about.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import anthropic
import openai
import pytest
from opentelemetry import baggage, context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_costattr.testing import (
    DEFAULT_USAGE,
    FakeReply,
    FakeRequest,
    FakeVendorServer,
    Usage,
    fake_headers,
)

if TYPE_CHECKING:
    from conftest import Telemetry

OPENAI_MODEL = "gpt-4o-mini"
OPENAI_MODEL_DATED = "gpt-4o-mini-2024-07-18"
ANTHROPIC_MODEL = "claude-haiku-4-5"
ANTHROPIC_MODEL_DATED = "claude-haiku-4-5-20251001"
MESSAGES = [{"role": "user", "content": "Say hello"}]

# OpenAI-native usage: prompt_tokens (input) already includes the 1024 cached tokens.
OPENAI_USAGE = Usage(input=1200, cache_read=1024, cache_write=100, output=300, reasoning=256)
# Anthropic-native usage: input_tokens (50) is the uncached part; cache_write = 1500 + 500.
ANTHROPIC_USAGE = Usage(input=50, cache_read=1000, cache_write_5m=1500, cache_write_1h=500, output=300)

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
RESPONSES_TOOLS = [{"type": "function", **OPENAI_TOOLS[0]["function"]}]
ANTHROPIC_TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def usage_attrs(span: ReadableSpan) -> dict[str, Any]:
    """The span's token-usage attributes (OTel ``gen_ai.usage.*`` and vendor ``*.usage.*``)."""
    return {key: value for key, value in (span.attributes or {}).items() if ".usage." in key}


def openai_headers(**extra: Any) -> dict[str, str]:
    # A fresh dict per call: Traceloop's OpenAI instrumentation writes traceparent into it.
    return fake_headers(usage=OPENAI_USAGE, **extra)


def anthropic_headers(**extra: Any) -> dict[str, str]:
    return fake_headers(usage=ANTHROPIC_USAGE, **extra)


# ---------------------------------------------------------------------------------------------
# Expected span usage per emitter, for OPENAI_USAGE / ANTHROPIC_USAGE.

TL_OPENAI = {
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.total_tokens": 1500,
    "gen_ai.usage.cache_read.input_tokens": 1024,
    "gen_ai.usage.reasoning_tokens": 256,
}  # no cache write at all: prompt_tokens_details.cache_write_tokens is ignored
GENAI_OPENAI = {
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1024,
    "gen_ai.usage.cache_write.input_tokens": 100,
    "gen_ai.usage.reasoning.output_tokens": 256,
}
SDK_ANTHROPIC = {
    "gen_ai.usage.input_tokens": 3050,  # normalised: 50 uncached + 1000 read + 2000 written
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_write.input_tokens": 2000,
    "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 1500,
    "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 500,
}
TL_ANTHROPIC = {
    "gen_ai.usage.input_tokens": 3050,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.total_tokens": 3350,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_creation.input_tokens": 2000,
}
GENAI_ANTHROPIC = {
    "gen_ai.usage.input_tokens": 3050,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_write.input_tokens": 2000,
}
OPENAI_EXPECTED = {"traceloop-openai": TL_OPENAI, "genai-openai": GENAI_OPENAI}
ANTHROPIC_EXPECTED = {
    "traceloop-anthropic": TL_ANTHROPIC,
    "genai-anthropic": GENAI_ANTHROPIC,
    "anthropic-sdk": SDK_ANTHROPIC,
}
OPENAI_EMITTERS = sorted(OPENAI_EXPECTED)
ANTHROPIC_EMITTERS = sorted(ANTHROPIC_EXPECTED)


def anthropic_client(telemetry: Telemetry, emitter: str, **kwargs: Any) -> anthropic.Anthropic:
    """A client whose only span source is ``emitter``."""
    if emitter == "anthropic-sdk":
        return telemetry.anthropic(sdk_tracing=True, **kwargs)
    telemetry.instrument(emitter)
    return telemetry.anthropic(sdk_tracing=False, **kwargs)


# =============================================================================================
# Wire tests: the fake through the real SDKs, no instrumentation.


def test_lifecycle_and_base_urls() -> None:
    server = FakeVendorServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        assert server.running and server.port > 0
        assert server.openai_base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.anthropic_base_url == f"http://127.0.0.1:{server.port}"
    assert not server.running
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.start()


def test_usage_parse_and_resolve() -> None:
    usage = Usage.parse(" input=1200, cache_read=1024 ,cache_write_5m=1500,cache_write_1h=500, output=3")
    assert usage == Usage(input=1200, cache_read=1024, cache_write_5m=1500, cache_write_1h=500, output=3)
    assert Usage.parse(usage.to_header()) == usage
    resolved = usage.resolved()
    assert (resolved.cache_write, resolved.cache_write_5m, resolved.cache_write_1h) == (2000, 1500, 500)
    assert resolved.total == 1203 and resolved.reasoning == 0
    # A lone cache_write goes to the default TTL of each vendor.
    only_total = Usage(cache_write=100).resolved()
    assert (only_total.cache_write_5m, only_total.cache_write_1h) == (100, 0)
    assert (only_total.cache_write_30m, only_total.cache_write_12h) == (100, 0)
    # Keys are never reconciled: inconsistent usage is sent as given.
    odd = Usage(cache_write=100, cache_write_5m=1500, cache_write_1h=500).resolved()
    assert (odd.cache_write, odd.cache_write_5m, odd.cache_write_1h) == (100, 1500, 500)
    assert DEFAULT_USAGE.overlay(Usage(output=7)) == Usage(input=DEFAULT_USAGE.input, output=7)
    for bad in ("inptu=1", "input=-1", "input=1,input=2", "input", "output=1.5"):
        with pytest.raises(ValueError):
            Usage.parse(bad)
    with pytest.raises(ValueError):
        Usage(input=True)
    assert fake_headers() == {}
    assert fake_headers(scenario=["flaky", "no-usage"], request_key="k") == {
        "x-fake-scenario": "flaky,no-usage",
        "x-fake-request-key": "k",
    }


def test_bad_control_headers_are_http_400(telemetry: Telemetry) -> None:
    client = telemetry.openai()
    with pytest.raises(openai.BadRequestError, match="unknown or malformed entry 'inptu=1'"):
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, extra_headers={"x-fake-usage": "inptu=1"})
    with pytest.raises(anthropic.BadRequestError, match="unknown scenario 'explode'"):
        telemetry.anthropic().messages.create(
            model=ANTHROPIC_MODEL, max_tokens=10, messages=MESSAGES, extra_headers={"x-fake-scenario": "explode"}
        )


def test_openai_wire_usage_model_and_ids(vendor: FakeVendorServer, telemetry: Telemetry) -> None:
    client = telemetry.openai()
    first = client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, extra_headers=openai_headers())
    second = client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.model == OPENAI_MODEL_DATED and first.object == "chat.completion"
    assert first.system_fingerprint and first.system_fingerprint.startswith("fp_")
    assert first.service_tier == "default" and first.created > 0
    assert first.usage is not None and first.usage.prompt_tokens == 1200 and first.usage.total_tokens == 1500
    assert first.usage.prompt_tokens_details.cached_tokens == 1024
    assert first.usage.prompt_tokens_details.cache_write_tokens == 100
    assert first.usage.completion_tokens_details.reasoning_tokens == 256
    assert second.usage is not None and second.usage.prompt_tokens == DEFAULT_USAGE.input
    overridden = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=MESSAGES,
        extra_headers=fake_headers(model="ft:gpt-4o-mini:acme::x1", service_tier="flex"),
    )
    assert overridden.model == "ft:gpt-4o-mini:acme::x1" and overridden.service_tier == "flex"
    assert client.chat.completions.create(model="my-own-model", messages=MESSAGES).model == "my-own-model"


def test_anthropic_wire_usage_model_and_ids(telemetry: Telemetry) -> None:
    client = telemetry.anthropic()
    message = client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, extra_headers=anthropic_headers()
    )
    assert message.id.startswith("msg_01") and message.model == ANTHROPIC_MODEL_DATED
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (50, 1000, 2000)
    assert usage.cache_creation is not None
    assert (usage.cache_creation.ephemeral_5m_input_tokens, usage.cache_creation.ephemeral_1h_input_tokens) == (
        1500,
        500,
    )
    assert usage.output_tokens == 300 and usage.service_tier == "standard"
    with client.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, extra_headers=anthropic_headers()
    ) as stream:
        final = stream.get_final_message()
    assert final.id != message.id and final.usage.output_tokens == 300 and final.usage.input_tokens == 50


def test_anthropic_stream_events(telemetry: Telemetry) -> None:
    events = list(
        telemetry.anthropic().messages.create(
            model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, stream=True, extra_headers=anthropic_headers()
        )
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)
    start, delta = events[0], events[-2]
    assert start.message.usage.output_tokens == 1 and start.message.usage.input_tokens == 50
    assert start.message.usage.cache_creation.ephemeral_1h_input_tokens == 500
    assert delta.usage.output_tokens == 300 and delta.usage.input_tokens == 50  # cumulative, like the live API


def test_anthropic_delta_usage_can_omit_cumulative_counts() -> None:
    with FakeVendorServer(anthropic_cumulative_delta_usage=False) as server:
        with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", open_telemetry=False) as client:
            events = list(client.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=MESSAGES, stream=True))
    delta = events[-2]
    assert delta.type == "message_delta" and delta.usage.input_tokens is None and delta.usage.output_tokens == 40


def test_openai_chat_stream_usage_chunk_only_when_requested(telemetry: Telemetry) -> None:
    client = telemetry.openai()
    with_usage = list(
        client.chat.completions.create(
            model=OPENAI_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    without = list(client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True))
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == DEFAULT_USAGE.output
    assert all(chunk.usage is None for chunk in without) and without[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in without if chunk.choices)
    assert text.startswith("This is a canned reply")
    no_usage = list(
        client.chat.completions.create(
            model=OPENAI_MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=fake_headers(scenario="no-usage"),
        )
    )
    assert all(chunk.usage is None for chunk in no_usage)


def test_responses_create_stream_retrieve(vendor: FakeVendorServer, telemetry: Telemetry) -> None:
    client = telemetry.openai()
    created = client.responses.create(
        model="gpt-5", input="hi", reasoning={"effort": "low"}, extra_headers=openai_headers()
    )
    assert created.id.startswith("resp_") and created.model == "gpt-5-2025-08-07" and created.status == "completed"
    assert [item.type for item in created.output] == ["reasoning", "message"]
    assert created.output_text.startswith("This is a canned reply")
    assert created.usage is not None and created.usage.input_tokens_details.cached_tokens == 1024
    assert created.usage.output_tokens_details.reasoning_tokens == 256
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.usage == created.usage
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")
    streamed = list(client.responses.create(model="gpt-5", input="hi", stream=True, extra_headers=openai_headers()))
    kinds = [event.type for event in streamed]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert [event.sequence_number for event in streamed] == list(range(len(streamed)))
    assert streamed[-1].response.usage.total_tokens == 1500
    assert client.responses.retrieve(streamed[-1].response.id).usage.total_tokens == 1500
    with client.responses.stream(model="gpt-5", input="hi") as helper:
        final = helper.get_final_response()
    assert final.usage is not None and final.usage.input_tokens == DEFAULT_USAGE.input


def test_embeddings_float_and_base64(telemetry: Telemetry) -> None:
    client = telemetry.openai()
    result = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b", "a"], extra_headers=fake_headers(usage={"input": 16})
    )
    assert [item.index for item in result.data] == [0, 1, 2] and len(result.data[0].embedding) == 1536
    assert result.data[0].embedding == result.data[2].embedding != result.data[1].embedding
    assert abs(sum(x * x for x in result.data[0].embedding) - 1.0) < 1e-6
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (16, 16)
    packed = client.embeddings.create(model="text-embedding-3-large", input="a", encoding_format="base64", dimensions=4)
    assert len(struct.unpack("<4f", base64.b64decode(packed.data[0].embedding))) == 4


def test_tool_calls_and_answer_after_tool_result(telemetry: Telemetry) -> None:
    oai = telemetry.openai()
    first = oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, tools=OPENAI_TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "example"}
    follow_up = [
        *MESSAGES,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = oai.chat.completions.create(model=OPENAI_MODEL, messages=follow_up, tools=OPENAI_TOOLS)
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    streamed = list(oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, tools=OPENAI_TOOLS, stream=True))
    arguments = "".join(
        chunk.choices[0].delta.tool_calls[0].function.arguments or ""
        for chunk in streamed
        if chunk.choices and chunk.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "example"} and streamed[-1].choices[0].finish_reason == "tool_calls"
    assert oai.responses.create(model=OPENAI_MODEL, input="hi", tools=RESPONSES_TOOLS).output[0].type == "function_call"

    ant = telemetry.anthropic()
    message = ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, tools=ANTHROPIC_TOOLS)
    block = message.content[0]
    assert message.stop_reason == "tool_use" and block.type == "tool_use" and block.id.startswith("toolu_01")
    assert block.input == {"city": "example"}
    answer = ant.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=100,
        tools=ANTHROPIC_TOOLS,
        messages=[
            *MESSAGES,
            {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]},
        ],
    )
    assert answer.stop_reason == "end_turn"
    with ant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, tools=ANTHROPIC_TOOLS) as stream:
        assert stream.get_final_message().content[0].input == {"city": "example"}


def test_malformed_tool_arguments(telemetry: Telemetry) -> None:
    headers = fake_headers(scenario="malformed-tool")
    oai = telemetry.openai()
    call = oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, tools=OPENAI_TOOLS, extra_headers=headers)
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.choices[0].message.tool_calls[0].function.arguments)
    item = oai.responses.create(model=OPENAI_MODEL, input="hi", extra_headers=fake_headers(scenario="malformed-tool"))
    assert item.output[0].type == "function_call" and item.output[0].name == "get_weather"  # no tools: a default one
    with pytest.raises(json.JSONDecodeError):
        json.loads(item.output[0].arguments)

    ant = telemetry.anthropic()
    message = ant.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=10,
        messages=MESSAGES,
        tools=ANTHROPIC_TOOLS,
        extra_headers=fake_headers(scenario="malformed-tool"),
    )
    assert message.stop_reason == "tool_use" and isinstance(message.content[0].input, str)
    # The SDK's stream accumulator parses input_json_delta and rejects the invalid JSON.
    with pytest.raises(ValueError, match="Unable to parse tool parameter JSON"):
        with ant.messages.stream(
            model=ANTHROPIC_MODEL,
            max_tokens=10,
            messages=MESSAGES,
            extra_headers=fake_headers(scenario="malformed-tool"),
        ) as stream:
            stream.get_final_message()


def test_retries_are_fast_and_flaky_keys(vendor: FakeVendorServer, telemetry: Telemetry) -> None:
    client = telemetry.openai()
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model=OPENAI_MODEL, messages=MESSAGES, extra_headers=fake_headers(scenario="error-429")
        )
    assert time.monotonic() - started < 1.0, "retry-after-ms should make SDK retries near-instant"
    assert [(r.status, r.attempt) for r in vendor.requests] == [(429, 1), (429, 2), (429, 3)]
    vendor.clear_requests()

    # Without a request key, the body hash names the logical request: SDK retries resend the same body.
    ok = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": "flaky by body"}],
        extra_headers=fake_headers(scenario="flaky"),
    )
    assert ok.choices[0].message.content and [r.status for r in vendor.requests] == [500, 200]
    vendor.clear_requests()
    client.chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, extra_headers=fake_headers(scenario="flaky-2", request_key="twice")
    )
    assert [r.status for r in vendor.requests] == [500, 500, 200]
    assert vendor.requests[0].headers["x-stainless-retry-count"] == "0"
    assert vendor.requests[2].headers["x-stainless-retry-count"] == "2"


def test_requests_are_recorded_and_bounded() -> None:
    with FakeVendorServer(max_recorded=3) as server:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0) as client:
            for index in range(5):
                client.chat.completions.create(
                    model=OPENAI_MODEL,
                    messages=[{"role": "user", "content": str(index)}],
                    extra_headers={"X-Fake-Model": "m"},
                )
        recorded = server.requests
        assert len(recorded) == 3 and server.dropped_requests == 2
        last = recorded[-1]
        assert (last.method, last.path, last.endpoint, last.status) == (
            "POST",
            "/v1/chat/completions",
            "chat.completions",
            200,
        )
        assert last.headers["x-fake-model"] == "m" and last.headers["authorization"] == "Bearer k"
        assert last.body["messages"][0]["content"] == "4"
        server.clear_requests()
        assert server.requests == [] and server.dropped_requests == 0


def test_ids_are_deterministic_with_a_seed() -> None:
    def ids(seed: int | None) -> list[str]:
        with FakeVendorServer(seed=seed) as server:
            with (
                openai.OpenAI(base_url=server.openai_base_url, api_key="k") as oai,
                anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", open_telemetry=False) as ant,
            ):
                return [
                    oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES).id,
                    oai.responses.create(model=OPENAI_MODEL, input="x").id,
                    ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MESSAGES).id,
                ]

    assert ids(7) == ids(7)
    assert ids(7) != ids(8)
    assert len(set(ids(None) + ids(None))) == 6


def test_on_request_hook(vendor: FakeVendorServer, telemetry: Telemetry) -> None:
    seen: list[FakeRequest] = []

    @vendor.on_request
    def hook(request: FakeRequest) -> FakeReply | Usage | None:
        seen.append(request)
        content = request.body["messages"][0]["content"] if request.endpoint == "chat.completions" else ""
        if content == "usage":
            return Usage(input=1, output=2)
        if content == "teapot":
            return FakeReply(status=418, body={"error": {"message": "short and stout", "type": "teapot"}})
        if content == "boom":
            raise RuntimeError("hook bug")
        return None

    client = telemetry.openai(max_retries=0)
    small = client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "usage"}])
    assert small.usage is not None and (small.usage.prompt_tokens, small.usage.completion_tokens) == (1, 2)
    assert seen[0].endpoint == "chat.completions" and seen[0].vendor == "openai" and seen[0].attempt == 1
    assert seen[0].model == OPENAI_MODEL_DATED and seen[0].usage == DEFAULT_USAGE
    with pytest.raises(openai.APIStatusError, match="short and stout") as teapot:
        client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "teapot"}])
    assert teapot.value.status_code == 418
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "boom"}])
    assert client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES).usage.prompt_tokens == 120


def test_unknown_path_is_vendor_404(telemetry: Telemetry) -> None:
    with pytest.raises(openai.NotFoundError):
        telemetry.openai().models.list()


def test_throughput_and_concurrency(vendor: FakeVendorServer, telemetry: Telemetry) -> None:
    oai, ant = telemetry.openai(), telemetry.anthropic()
    started = time.monotonic()
    for _ in range(150):
        oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
        ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MESSAGES)
    sequential = time.monotonic() - started
    assert sequential < 5.0, f"300 calls took {sequential:.2f}s"

    def burst(_: int) -> list[str]:
        return [oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES).id for _ in range(25)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [i for batch in pool.map(burst, range(8)) for i in batch]
    assert len(set(ids)) == 200 and len(vendor.requests) == 500


def test_async_clients(vendor: FakeVendorServer) -> None:
    async def run() -> tuple[int, int]:
        async with (
            openai.AsyncOpenAI(base_url=vendor.openai_base_url, api_key="k") as oai,
            anthropic.AsyncAnthropic(base_url=vendor.anthropic_base_url, api_key="k", open_telemetry=False) as ant,
        ):
            chunks = [
                c
                async for c in await oai.chat.completions.create(
                    model=OPENAI_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                )
            ]
            async with ant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=5, messages=MESSAGES) as stream:
                message = await stream.get_final_message()
            return chunks[-1].usage.total_tokens, message.usage.output_tokens

    assert asyncio.run(run()) == (160, 40)


# =============================================================================================
# Span tests: OpenAI emitters.


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
def test_openai_chat_span_usage(telemetry: Telemetry, emitter: str) -> None:
    telemetry.instrument(emitter)
    telemetry.openai().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, extra_headers=openai_headers())
    span = telemetry.only_span()
    assert usage_attrs(span) == OPENAI_EXPECTED[emitter]
    assert span.attributes["gen_ai.request.model"] == OPENAI_MODEL
    assert span.attributes["gen_ai.response.model"] == OPENAI_MODEL_DATED
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert span.attributes["openai.response.service_tier"] == "default"
    assert span.name == {"traceloop-openai": "openai.chat", "genai-openai": f"chat {OPENAI_MODEL}"}[emitter]


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_chat_stream_span_usage(telemetry: Telemetry, emitter: str, include_usage: bool) -> None:
    telemetry.instrument(emitter)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    for _ in telemetry.openai().chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, stream=True, extra_headers=openai_headers(), **options
    ):
        pass
    span = telemetry.only_span()
    if not include_usage:
        expected: dict[str, Any] = {}  # no emitter injects include_usage or estimates tokens
    elif emitter == "traceloop-openai":
        expected = {
            k: v for k, v in TL_OPENAI.items() if k != "gen_ai.usage.reasoning_tokens"
        }  # dropped when streaming
    else:
        expected = GENAI_OPENAI
    assert usage_attrs(span) == expected
    assert span.status.status_code == (StatusCode.OK if emitter == "traceloop-openai" else StatusCode.UNSET)


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
def test_openai_responses_spans(telemetry: Telemetry, emitter: str) -> None:
    telemetry.instrument(emitter)
    client = telemetry.openai()
    created = client.responses.create(model=OPENAI_MODEL, input="hi", extra_headers=openai_headers())
    span = telemetry.only_span()
    assert usage_attrs(span) == OPENAI_EXPECTED[emitter] and span.attributes["gen_ai.response.id"] == created.id
    telemetry.clear()

    for _ in client.responses.create(model=OPENAI_MODEL, input="hi", stream=True, extra_headers=openai_headers()):
        pass
    assert usage_attrs(telemetry.only_span()) == OPENAI_EXPECTED[emitter]  # reasoning kept, unlike streamed chat
    telemetry.clear()

    client.responses.retrieve(created.id)
    retrieved = telemetry.only_span()
    assert retrieved.attributes["gen_ai.response.id"] == created.id
    assert "gen_ai.request.model" not in retrieved.attributes
    if emitter == "traceloop-openai":
        # A second span with the same usage: summing spans double-counts this call.
        assert retrieved.name == "openai.response" and usage_attrs(retrieved) == TL_OPENAI
    else:
        assert retrieved.name == "fetch_response" and usage_attrs(retrieved) == {}
        assert retrieved.attributes["gen_ai.operation.name"] == "fetch_response"


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
def test_openai_embeddings_span(telemetry: Telemetry, emitter: str) -> None:
    telemetry.instrument(emitter)
    telemetry.openai().embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], extra_headers=fake_headers(usage={"input": 16})
    )
    span = telemetry.only_span()
    expected = {
        "traceloop-openai": {
            "gen_ai.usage.input_tokens": 16,
            "gen_ai.usage.total_tokens": 16,
            "gen_ai.usage.cache_read.input_tokens": 0,
        },
        "genai-openai": {"gen_ai.usage.input_tokens": 16},
    }[emitter]
    assert usage_attrs(span) == expected and span.attributes["gen_ai.operation.name"] == "embeddings"
    if emitter == "genai-openai":
        assert span.attributes["gen_ai.embeddings.dimension.count"] == 1536


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
def test_openai_tool_call_span(telemetry: Telemetry, emitter: str) -> None:
    telemetry.instrument(emitter)
    telemetry.openai().chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, tools=OPENAI_TOOLS, extra_headers=openai_headers()
    )
    span = telemetry.only_span()
    assert usage_attrs(span) == OPENAI_EXPECTED[emitter]
    finish = {"traceloop-openai": ("tool_call",), "genai-openai": ("tool_calls",)}[emitter]
    assert span.attributes["gen_ai.response.finish_reasons"] == finish


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
def test_openai_retry_after_malformed_tool_call(telemetry: Telemetry, emitter: str) -> None:
    """The app rejects invalid tool arguments, reports the error and asks again: two priced calls."""
    telemetry.instrument(emitter)
    client = telemetry.openai()
    first = client.chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, tools=OPENAI_TOOLS, extra_headers=fake_headers(scenario="malformed-tool")
    )
    call = first.choices[0].message.tool_calls[0]
    with pytest.raises(json.JSONDecodeError) as rejected:
        json.loads(call.function.arguments)
    retry = [
        *MESSAGES,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": f"invalid arguments: {rejected.value}"},
    ]
    second = client.chat.completions.create(model=OPENAI_MODEL, messages=retry, tools=OPENAI_TOOLS)
    assert second.choices[0].finish_reason == "stop"
    spans = telemetry.spans()
    assert len(spans) == 2 and all(s.attributes["gen_ai.usage.input_tokens"] == 120 for s in spans)


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
@pytest.mark.parametrize("scenario", ["error-500", "error-429"])
def test_openai_error_span(vendor: FakeVendorServer, telemetry: Telemetry, emitter: str, scenario: str) -> None:
    telemetry.instrument(emitter)
    error = openai.InternalServerError if scenario == "error-500" else openai.RateLimitError
    with pytest.raises(error):
        telemetry.openai().chat.completions.create(
            model=OPENAI_MODEL, messages=MESSAGES, extra_headers=openai_headers(scenario=scenario)
        )
    span = telemetry.only_span()  # one span for three HTTP attempts
    assert len(vendor.requests) == 3
    assert span.status.status_code == StatusCode.ERROR and usage_attrs(span) == {}
    assert "gen_ai.response.model" not in span.attributes
    prefix = "openai." if emitter == "genai-openai" else ""
    assert span.attributes["error.type"] == prefix + error.__name__


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
def test_openai_flaky_then_ok_span(vendor: FakeVendorServer, telemetry: Telemetry, emitter: str) -> None:
    telemetry.instrument(emitter)
    telemetry.openai().chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, extra_headers=openai_headers(scenario="flaky", request_key=emitter)
    )
    span = telemetry.only_span()
    assert [r.status for r in vendor.requests] == [500, 200]
    assert span.status.status_code != StatusCode.ERROR and usage_attrs(span) == OPENAI_EXPECTED[emitter]
    assert not any("resend" in key for key in span.attributes)  # OpenAI emitters do not expose retries


@pytest.mark.parametrize("emitter", OPENAI_EMITTERS)
def test_openai_no_usage_span(telemetry: Telemetry, emitter: str) -> None:
    telemetry.instrument(emitter)
    telemetry.openai().chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, extra_headers=fake_headers(scenario="no-usage")
    )
    span = telemetry.only_span()
    assert usage_attrs(span) == {} and span.status.status_code != StatusCode.ERROR


# =============================================================================================
# Span tests: Anthropic emitters (Traceloop, genai-anthropic, the SDK's built-in tracing).


@pytest.mark.parametrize("emitter", ANTHROPIC_EMITTERS)
def test_anthropic_messages_span_usage(telemetry: Telemetry, emitter: str) -> None:
    client = anthropic_client(telemetry, emitter)
    message = client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, extra_headers=anthropic_headers()
    )
    span = telemetry.only_span()
    assert usage_attrs(span) == ANTHROPIC_EXPECTED[emitter]
    assert span.attributes["gen_ai.response.id"] == message.id
    assert span.attributes["gen_ai.response.model"] == ANTHROPIC_MODEL_DATED
    assert span.attributes["gen_ai.request.model"] == ANTHROPIC_MODEL
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    if emitter == "anthropic-sdk":
        assert span.name == "anthropic.messages.create"
        assert span.attributes["anthropic.response.service_tier"] == "standard"
        assert span.attributes["anthropic.request.id"].startswith("req_")


@pytest.mark.parametrize("emitter", ANTHROPIC_EMITTERS)
@pytest.mark.parametrize("style", ["create-stream", "stream-helper"])
def test_anthropic_stream_span_usage(telemetry: Telemetry, emitter: str, style: str) -> None:
    client = anthropic_client(telemetry, emitter)
    request: dict[str, Any] = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 100,
        "messages": MESSAGES,
        "extra_headers": anthropic_headers(),
    }
    if style == "create-stream":
        for _ in client.messages.create(stream=True, **request):
            pass
    else:
        with client.messages.stream(**request) as stream:
            stream.get_final_message()
    expected = dict(ANTHROPIC_EXPECTED[emitter])
    if emitter == "traceloop-anthropic":
        # Traceloop adds message_start's placeholder output_tokens (1) to message_delta's total.
        expected.update({"gen_ai.usage.output_tokens": 301, "gen_ai.usage.total_tokens": 3351})
    span = telemetry.only_span()
    assert usage_attrs(span) == expected
    attributes = set(span.attributes or {})
    if emitter == "traceloop-anthropic":
        # Traceloop marks only create(stream=True) as streaming, not the messages.stream() helper.
        assert ("gen_ai.is_streaming" in attributes) == (style == "create-stream")
    else:
        assert span.attributes["gen_ai.request.stream"] is True
        has_ttft = "gen_ai.response.time_to_first_chunk" in attributes
        assert has_ttft == (emitter == "anthropic-sdk" or style == "create-stream")


@pytest.mark.parametrize("emitter", ANTHROPIC_EMITTERS)
def test_anthropic_tool_use_span(telemetry: Telemetry, emitter: str) -> None:
    client = anthropic_client(telemetry, emitter)
    client.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=100,
        messages=MESSAGES,
        tools=ANTHROPIC_TOOLS,
        extra_headers=anthropic_headers(),
    )
    span = telemetry.only_span()
    assert usage_attrs(span) == ANTHROPIC_EXPECTED[emitter]
    if emitter == "anthropic-sdk":
        assert span.attributes["anthropic.message.stop_reason"] == "tool_use"
    else:
        assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)


@pytest.mark.parametrize("emitter", ANTHROPIC_EMITTERS)
def test_anthropic_thinking_span_reasoning(telemetry: Telemetry, emitter: str) -> None:
    client = anthropic_client(telemetry, emitter)
    message = client.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=2000,
        messages=MESSAGES,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_headers=fake_headers(usage={"input": 10, "output": 300, "reasoning": 256}),
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    expected = {
        "anthropic-sdk": {
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.reasoning.output_tokens": 256,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.cache_write.input_tokens": 0,
            "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 0,
            "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 0,
        },
        "genai-anthropic": {
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.reasoning.output_tokens": 256,
        },
        # Traceloop has no reasoning attribute for Anthropic, and reports zero cache counts.
        "traceloop-anthropic": {
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.total_tokens": 310,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.cache_creation.input_tokens": 0,
        },
    }[emitter]
    assert usage_attrs(telemetry.only_span()) == expected


@pytest.mark.parametrize("emitter", ANTHROPIC_EMITTERS)
@pytest.mark.parametrize("scenario", ["error-500", "error-429"])
def test_anthropic_error_span(vendor: FakeVendorServer, telemetry: Telemetry, emitter: str, scenario: str) -> None:
    client = anthropic_client(telemetry, emitter)
    error = anthropic.InternalServerError if scenario == "error-500" else anthropic.RateLimitError
    with pytest.raises(error):
        client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, extra_headers=anthropic_headers(scenario=scenario)
        )
    span = telemetry.only_span()
    assert len(vendor.requests) == 3
    assert span.status.status_code == StatusCode.ERROR and usage_attrs(span) == {}
    if emitter == "anthropic-sdk":
        assert span.attributes["error.type"] == ("api_error" if scenario == "error-500" else "rate_limit_error")
        assert span.attributes["http.request.resend_count"] == 2
        assert span.attributes["http.response.status_code"] == int(scenario[-3:])
    else:
        prefix = "anthropic." if emitter == "genai-anthropic" else ""
        assert span.attributes["error.type"] == prefix + error.__name__


@pytest.mark.parametrize("emitter", ANTHROPIC_EMITTERS)
def test_anthropic_flaky_then_ok_span(vendor: FakeVendorServer, telemetry: Telemetry, emitter: str) -> None:
    client = anthropic_client(telemetry, emitter)
    client.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=100,
        messages=MESSAGES,
        extra_headers=anthropic_headers(scenario="flaky", request_key=emitter),
    )
    span = telemetry.only_span()
    assert [r.status for r in vendor.requests] == [500, 200]
    assert span.status.status_code != StatusCode.ERROR and usage_attrs(span) == ANTHROPIC_EXPECTED[emitter]
    if emitter == "anthropic-sdk":
        assert span.attributes["http.request.resend_count"] == 1
    else:
        assert "http.request.resend_count" not in span.attributes


@pytest.mark.parametrize("emitter", ANTHROPIC_EMITTERS)
def test_anthropic_no_usage_span(telemetry: Telemetry, emitter: str) -> None:
    client = anthropic_client(telemetry, emitter)
    client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, extra_headers=fake_headers(scenario="no-usage")
    )
    expected = {}
    if emitter == "traceloop-anthropic":
        # Missing usage becomes explicit zeros: indistinguishable from a free call.
        expected = {
            "gen_ai.usage.input_tokens": 0,
            "gen_ai.usage.output_tokens": 0,
            "gen_ai.usage.total_tokens": 0,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.cache_creation.input_tokens": 0,
        }
    assert usage_attrs(telemetry.only_span()) == expected


# Span identity per emitter: name, scope, status and the non-usage attributes a cost processor reads.

IDENTITY: dict[str, dict[str, Any]] = {
    "traceloop-openai": {
        "name": "openai.chat",
        "scope": "opentelemetry.instrumentation.openai.v1",
        "status": StatusCode.UNSET,
        "attributes": {
            "gen_ai.is_streaming",
            "gen_ai.openai.api_base",
            "gen_ai.openai.response.system_fingerprint",
            "openai.response.service_tier",
        },
    },
    "genai-openai": {
        "name": f"chat {OPENAI_MODEL}",
        "scope": "opentelemetry.instrumentation.genai.openai",
        "status": StatusCode.UNSET,
        "attributes": {
            "openai.response.system_fingerprint",
            "openai.response.service_tier",
            "server.address",
            "server.port",
        },
    },
    "traceloop-anthropic": {
        "name": "anthropic.chat",
        "scope": "opentelemetry.instrumentation.anthropic",
        "status": StatusCode.OK,
        "attributes": {"gen_ai.request.max_tokens", "gen_ai.response.finish_reasons"},
    },
    "genai-anthropic": {
        "name": f"chat {ANTHROPIC_MODEL}",
        "scope": "opentelemetry.instrumentation.genai.anthropic",
        "status": StatusCode.UNSET,
        "attributes": {"gen_ai.request.max_tokens", "gen_ai.response.finish_reasons", "server.address"},
    },
    "anthropic-sdk": {
        "name": "anthropic.messages.create",
        "scope": "com.anthropic.sdk.python",
        "status": StatusCode.OK,
        "attributes": {
            "anthropic.request.id",
            "anthropic.response.service_tier",
            "anthropic.message.stop_reason",
            "http.response.status_code",
            "url.full",
            "server.address",
        },
    },
}


@pytest.mark.parametrize("emitter", sorted(IDENTITY))
def test_span_identity(telemetry: Telemetry, emitter: str) -> None:
    if emitter in OPENAI_EXPECTED:
        telemetry.instrument(emitter)
        telemetry.openai().chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    else:
        anthropic_client(telemetry, emitter).messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MESSAGES)
    span, identity = telemetry.only_span(), IDENTITY[emitter]
    assert (span.name, span.instrumentation_scope.name, span.status.status_code) == (
        identity["name"],
        identity["scope"],
        identity["status"],
    )
    assert span.kind.name == "CLIENT" and span.attributes["gen_ai.operation.name"] == "chat"
    common = {"gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.response.id"}
    assert common | identity["attributes"] <= set(span.attributes)


# =============================================================================================
# Duplicate emitters for one API call (research/semconv.md §7).


def test_duplicate_traceloop_anthropic_and_sdk_are_siblings(telemetry: Telemetry) -> None:
    telemetry.instrument("traceloop-anthropic")
    client = telemetry.anthropic(sdk_tracing=True)
    client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, extra_headers=anthropic_headers())
    by_name = {span.name: span for span in telemetry.spans()}
    assert sorted(by_name) == ["anthropic.chat", "anthropic.messages.create"]
    chat, sdk = by_name["anthropic.chat"], by_name["anthropic.messages.create"]
    assert chat.parent is None and sdk.parent is None  # siblings: Traceloop does not make its span current
    assert chat.attributes["gen_ai.response.id"] == sdk.attributes["gen_ai.response.id"]
    assert usage_attrs(chat) == TL_ANTHROPIC and usage_attrs(sdk) == SDK_ANTHROPIC


def test_duplicate_genai_anthropic_and_sdk_nest(telemetry: Telemetry) -> None:
    telemetry.instrument("genai-anthropic")
    client = telemetry.anthropic(sdk_tracing=True)
    client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, extra_headers=anthropic_headers())
    by_name = {span.name: span for span in telemetry.spans()}
    outer, inner = by_name[f"chat {ANTHROPIC_MODEL}"], by_name["anthropic.messages.create"]
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert outer.attributes["gen_ai.response.id"] == inner.attributes["gen_ai.response.id"]
    assert usage_attrs(outer) == GENAI_ANTHROPIC and usage_attrs(inner) == SDK_ANTHROPIC


@pytest.mark.parametrize("order", [("genai-openai", "traceloop-openai"), ("traceloop-openai", "genai-openai")])
def test_duplicate_openai_instrumentors(telemetry: Telemetry, order: tuple[str, str]) -> None:
    """Both OpenAI instrumentors at once; which span is the parent depends on instrumentation order."""
    telemetry.instrument(*order)
    client = telemetry.openai()
    client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, extra_headers=openai_headers())
    spans = {span.instrumentation_scope.name: span for span in telemetry.spans()}
    tl, genai = spans["opentelemetry.instrumentation.openai.v1"], spans["opentelemetry.instrumentation.genai.openai"]
    assert usage_attrs(tl) == TL_OPENAI and usage_attrs(genai) == GENAI_OPENAI
    assert tl.attributes["gen_ai.response.id"] == genai.attributes["gen_ai.response.id"]
    # The instrumentor applied last wraps outermost, so its span is the parent.
    outer, inner = (tl, genai) if order[-1] == "traceloop-openai" else (genai, tl)
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id and outer.parent is None
    telemetry.clear()

    client.responses.create(model=OPENAI_MODEL, input="hi", extra_headers=openai_headers())
    spans = {span.instrumentation_scope.name: span for span in telemetry.spans()}
    tl, genai = spans["opentelemetry.instrumentation.openai.v1"], spans["opentelemetry.instrumentation.genai.openai"]
    assert usage_attrs(tl) == TL_OPENAI and usage_attrs(genai) == GENAI_OPENAI
    if order[-1] == "traceloop-openai":
        # Traceloop creates its Responses span after the call returns, outside genai's span: siblings.
        assert tl.parent is None and genai.parent is None
    else:
        assert tl.parent is not None and tl.parent.span_id == genai.context.span_id


# =============================================================================================
# Header propagation to the vendor, and instrumentation side effects.


def test_baggage_reaches_vendor_only_with_sdk_propagation(vendor: FakeVendorServer, telemetry: Telemetry) -> None:
    # This pins the SDK's own behaviour under the standard propagators, whatever an earlier test (or
    # otel_costattr's outbound guard) installed globally; the autouse fixture puts the global back.
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    token = context.attach(baggage.set_baggage("customer_id", "acme"))
    try:
        for propagation in (True, False):
            telemetry.anthropic(sdk_tracing=True, propagation=propagation).messages.create(
                model=ANTHROPIC_MODEL, max_tokens=5, messages=MESSAGES
            )
        telemetry.anthropic(sdk_tracing=False).messages.create(model=ANTHROPIC_MODEL, max_tokens=5, messages=MESSAGES)
    finally:
        context.detach(token)
    with_propagation, without, untraced = vendor.requests
    assert with_propagation.headers["baggage"] == "customer_id=acme" and "traceparent" in with_propagation.headers
    assert "baggage" not in without.headers and "traceparent" not in without.headers
    assert "baggage" not in untraced.headers


def test_traceloop_openai_injects_traceparent_into_callers_headers(
    vendor: FakeVendorServer, telemetry: Telemetry
) -> None:
    """Traceloop writes traceparent into the caller's own extra_headers dict (and never sends baggage)."""
    telemetry.instrument("traceloop-openai")
    client = telemetry.openai()
    token = context.attach(baggage.set_baggage("customer_id", "acme"))
    try:
        headers = fake_headers(model="m")
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, extra_headers=headers)
        after_first = dict(headers)
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, extra_headers=headers)
    finally:
        context.detach(token)
    first, second = telemetry.spans()
    first_id, second_id = f"{first.context.span_id:016x}", f"{second.context.span_id:016x}"
    assert (
        after_first["traceparent"] == vendor.requests[0].headers["traceparent"]
        and first_id in after_first["traceparent"]
    )
    assert second_id in vendor.requests[1].headers["traceparent"]  # overwritten on the next instrumented call...
    assert first_id in second.attributes["gen_ai.headers"]  # ...but the next span records the stale value
    assert all("baggage" not in r.headers for r in vendor.requests)


@pytest.mark.parametrize("scenario", ["malformed-tool", "no-usage"])
def test_genai_anthropic_unparseable_stream_disables_usage_for_later_streams(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    """One stream its accumulator cannot handle switches accumulation off for the whole process."""
    from opentelemetry.instrumentation.genai.anthropic import wrappers

    # Start from, and return to, a healthy process: the flag is module-global and never reset.
    monkeypatch.setattr(wrappers, "_accumulation_disabled", False)
    telemetry.instrument("genai-anthropic")
    client = telemetry.anthropic(sdk_tracing=True)
    for _ in client.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=10,
        messages=MESSAGES,
        stream=True,
        extra_headers=fake_headers(scenario=scenario),
    ):
        pass
    assert wrappers._accumulation_disabled is True
    broken = next(s for s in telemetry.spans() if s.instrumentation_scope.name.endswith("genai.anthropic"))
    # The unparseable stream keeps only what message_start said: the placeholder output count.
    expected_broken = (
        {} if scenario == "no-usage" else {"gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 1}
    )
    assert usage_attrs(broken) == expected_broken
    telemetry.clear()
    for _ in client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=10, messages=MESSAGES, stream=True, extra_headers=anthropic_headers()
    ):
        pass
    by_scope = {span.instrumentation_scope.name: span for span in telemetry.spans()}
    assert usage_attrs(by_scope["opentelemetry.instrumentation.genai.anthropic"]) == {}  # a healthy stream, no usage
    assert usage_attrs(by_scope["com.anthropic.sdk.python"]) == SDK_ANTHROPIC  # the SDK span is unaffected


@pytest.mark.xfail(
    strict=True,
    reason="opentelemetry-instrumentation-openai 0.62.4: uninstrument() passes 'Class.method' as the attribute "
    "to opentelemetry.instrumentation.utils.unwrap, which finds nothing, so every wrapper stays installed "
    "and keeps emitting spans to the old TracerProvider",
)
def test_traceloop_openai_uninstrument_removes_its_wrappers(telemetry: Telemetry) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    telemetry.instrument("traceloop-openai")
    client = telemetry.openai()
    OpenAIInstrumentor().uninstrument()  # the singleton the fixture instrumented
    client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert telemetry.spans() == []


def test_anthropic_no_usage_stream_breaks_the_sdk_helper(telemetry: Telemetry) -> None:
    """The live API always sends usage; without it the raw stream parses but the SDK's accumulator fails."""
    client = telemetry.anthropic()
    request: dict[str, Any] = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 10,
        "messages": MESSAGES,
        "extra_headers": fake_headers(scenario="no-usage"),
    }
    events = list(client.messages.create(stream=True, **request))
    assert events[0].message.usage is None and events[-2].usage is None
    with pytest.raises(AttributeError):
        with client.messages.stream(**request) as stream:
            stream.get_final_message()


def test_stream_delay_spaces_events() -> None:
    with FakeVendorServer(stream_delay=0.01) as server:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k") as client:
            started = time.monotonic()
            chunks = list(client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True))
            elapsed = time.monotonic() - started
    assert elapsed >= 0.01 * (len(chunks) - 1)


def test_server_threads_do_not_leak() -> None:
    before = {thread.name for thread in threading.enumerate()}
    with FakeVendorServer() as server:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k") as client:
            client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
        name = f"fake-vendor:{server.port}"
        assert name in {thread.name for thread in threading.enumerate()}
    assert name not in {thread.name for thread in threading.enumerate()} - before
