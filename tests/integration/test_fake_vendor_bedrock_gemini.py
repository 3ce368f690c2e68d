"""The fake vendor's Bedrock Runtime and Gemini wire formats, through the real ``boto3`` and ``google-genai`` SDKs.

Bedrock: Converse, ConverseStream (``vnd.amazon.eventstream`` framing, parsed by botocore's own parser),
InvokeModel with an Anthropic body and its response stream; errors in Bedrock's format with ``x-amzn-ErrorType``.
Gemini: generateContent and streamGenerateContent (SSE). Usage arrives in each vendor's native fields.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from otel_costattr.testing import FakeVendorServer, Usage, fake_headers
from otel_costattr.testing._common import REPLY_TEXT

boto3 = pytest.importorskip("boto3")
MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Say hello"}]}]
USAGE = Usage(input=50, cache_read=1000, cache_write=2000, output=300)


def bedrock(vendor: FakeVendorServer, **headers_kw: Any) -> Any:
    client = boto3.client("bedrock-runtime", endpoint_url=vendor.bedrock_endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=boto3.session.Config(retries={"max_attempts": 3, "mode": "standard"}))
    headers = fake_headers(**headers_kw)

    def add(request: Any, **_: Any) -> None:
        for k, v in headers.items():
            request.headers[k] = v
    client.meta.events.register("before-sign.bedrock-runtime.*", add)
    return client


def test_converse_reports_bedrock_native_usage(vendor: FakeVendorServer) -> None:
    reply = bedrock(vendor, usage=USAGE).converse(modelId=MODEL, messages=MESSAGES)
    assert reply["output"]["message"] == {"role": "assistant", "content": [{"text": REPLY_TEXT}]}
    assert reply["stopReason"] == "end_turn"
    # inputTokens is the uncached part; the total adds every counter
    assert reply["usage"] == {"inputTokens": 50, "outputTokens": 300, "totalTokens": 3350,
                              "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 2000}
    (req,) = vendor.requests
    assert req.endpoint == "bedrock.converse" and req.path == "/model/" + MODEL.replace(":", "%3A") + "/converse"


def test_converse_stream_is_a_real_event_stream(vendor: FakeVendorServer) -> None:
    events = list(bedrock(vendor, usage=USAGE).converse_stream(modelId=MODEL, messages=MESSAGES)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == REPLY_TEXT
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 50
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_converse_tool_use(vendor: FakeVendorServer, stream: bool) -> None:
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]}
    client = bedrock(vendor)
    if not stream:
        reply = client.converse(modelId=MODEL, messages=MESSAGES, toolConfig=tools)
        (block,) = reply["output"]["message"]["content"]
        assert reply["stopReason"] == "tool_use" and block["toolUse"]["name"] == "get_weather"
        assert block["toolUse"]["input"] == {"city": "example"}
    else:
        events = list(client.converse_stream(modelId=MODEL, messages=MESSAGES, toolConfig=tools)["stream"])
        start = next(e for e in events if "contentBlockStart" in e)
        assert start["contentBlockStart"]["start"]["toolUse"]["name"] == "get_weather"
        delta = next(e for e in events if "contentBlockDelta" in e)
        assert json.loads(delta["contentBlockDelta"]["delta"]["toolUse"]["input"]) == {"city": "example"}


def test_invoke_model_anthropic_body_and_stream(vendor: FakeVendorServer) -> None:
    client = bedrock(vendor, usage=USAGE)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                       "messages": [{"role": "user", "content": "Say hello"}]})
    reply = json.loads(client.invoke_model(modelId=MODEL, body=body)["body"].read())
    assert reply["model"] == "claude-haiku-4-5-20251001" and reply["content"][0]["text"] == REPLY_TEXT
    assert reply["usage"]["input_tokens"] == 50 and reply["usage"]["cache_read_input_tokens"] == 1000
    chunks = [json.loads(e["chunk"]["bytes"]) for e in client.invoke_model_with_response_stream(
        modelId=MODEL, body=body)["body"]]
    assert chunks[0]["type"] == "message_start" and chunks[-1]["type"] == "message_stop"
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 300


def test_no_usage_errors_and_retries_in_bedrock_format(vendor: FakeVendorServer) -> None:
    from botocore.exceptions import ClientError

    assert "usage" not in bedrock(vendor, scenario="no-usage").converse(modelId=MODEL, messages=MESSAGES)
    with pytest.raises(ClientError) as err:
        bedrock(vendor, scenario="error-400").converse(modelId=MODEL, messages=MESSAGES)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:
        bedrock(vendor, scenario="error-429").converse(modelId=MODEL, messages=MESSAGES)
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    vendor.clear_requests()
    bedrock(vendor, scenario="flaky", request_key="b-1").converse(modelId=MODEL, messages=MESSAGES)
    assert [r.status for r in vendor.requests] == [500, 200]  # botocore retried the InternalServerException


# ------------------------------------------------------------------------------------------------------ Gemini


def gemini(vendor: FakeVendorServer, **headers_kw: Any) -> Any:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    return genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=vendor.gemini_base_url, headers=fake_headers(**headers_kw)))


GEMINI_USAGE = Usage(input=1200, cache_read=1000, output=300, reasoning=200)


def test_gemini_generate_content(vendor: FakeVendorServer) -> None:
    client = gemini(vendor, usage=GEMINI_USAGE)  # held: the client closes its connection pool when collected
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert reply.text == REPLY_TEXT and reply.model_version == "gemini-2.5-flash" and reply.response_id
    u = reply.usage_metadata
    # prompt includes the cached tokens; candidates exclude the thoughts; the total adds prompt, candidates, thoughts
    assert (u.prompt_token_count, u.cached_content_token_count, u.candidates_token_count, u.thoughts_token_count,
            u.total_token_count) == (1200, 1000, 300, 200, 1700)
    (req,) = vendor.requests
    # google-genai 2.x calls /v1beta, 3.x the stable /v1; the fake answers both
    assert req.endpoint == "gemini.generate_content"
    assert req.path in ("/v1beta/models/gemini-2.5-flash:generateContent", "/v1/models/gemini-2.5-flash:generateContent")


def test_gemini_stream_and_function_call(vendor: FakeVendorServer) -> None:
    from google.genai import types

    client = gemini(vendor, usage=GEMINI_USAGE)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello"))
    assert "".join(c.text for c in chunks) == REPLY_TEXT
    assert chunks[-1].usage_metadata.candidates_token_count == 300
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}},
                                        "required": ["city"]})])
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="Weather?",
                                           config=types.GenerateContentConfig(tools=[tool]))
    (call,) = reply.function_calls
    assert call.name == "get_weather" and call.args == {"city": "example"}


def test_gemini_errors(vendor: FakeVendorServer) -> None:
    from google.genai import errors

    client = gemini(vendor, scenario="error-429")
    with pytest.raises(errors.ClientError) as err:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                       config={"http_options": {"retry_options": {"attempts": 1}}})
    assert err.value.code == 429 and err.value.status == "RESOURCE_EXHAUSTED"
