"""Amazon Bedrock Runtime wire format: Converse, ConverseStream, InvokeModel (Anthropic body), and the
``application/vnd.amazon.eventstream`` framing ``botocore`` parses for streams.

Usage follows the real API: Converse ``usage.inputTokens`` is the **uncached** input only; cache reads and
writes are the separate ``cacheReadInputTokens`` / ``cacheWriteInputTokens``, and ``totalTokens`` adds all four
counters. InvokeModel with an Anthropic model returns the Anthropic Messages body (same usage convention as the
Anthropic API). Request signing (SigV4) is accepted and not checked.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from . import _anthropic
from ._common import REPLY_TEXT, FakeReply, Plan, example_arguments, text_chunks
from ._usage import ResolvedUsage

__all__ = ["EVENTSTREAM", "converse", "encode_event", "error_reply", "invoke_model"]

#: The content type of Bedrock's streamed replies.
EVENTSTREAM = "application/vnd.amazon.eventstream"

_ERRORS: Mapping[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error_reply(status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> FakeReply:
    """A Bedrock-format error: ``{"message": ...}`` with the error type in ``x-amzn-ErrorType``."""
    kind = _ERRORS.get(status, "InternalServerException" if status >= 500 else "ValidationException")
    return FakeReply(status=status, body={"message": message or f"{kind} (fake vendor, HTTP {status})"},
                     headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                              **(headers or {})})


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # name length (1 byte), name, value type 7 (string), value length (2 bytes), value
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def encode_event(event_type: str, payload: Mapping[str, Any], message_type: str = "event") -> bytes:
    """One ``vnd.amazon.eventstream`` message: prelude (total and header lengths, CRC32), string headers
    ``:event-type``, ``:content-type``, ``:message-type``, the JSON payload, and the message CRC32."""
    headers = (_header(":event-type" if message_type == "event" else ":exception-type", event_type)
               + _header(":content-type", "application/json") + _header(":message-type", message_type))
    body = json.dumps(payload, separators=(",", ":")).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack("!I", zlib.crc32(message))


def _converse_usage(usage: ResolvedUsage) -> dict[str, Any]:
    result: dict[str, Any] = {"inputTokens": usage.input, "outputTokens": usage.output,
                              "totalTokens": usage.input + usage.cache_read + usage.cache_write + usage.output}
    if usage.cache_read or usage.cache_write:
        result["cacheReadInputTokens"] = usage.cache_read
        result["cacheWriteInputTokens"] = usage.cache_write
    return result


def _pick_tool(plan: Plan) -> tuple[str, dict[str, Any]] | None:
    config = plan.body.get("toolConfig")
    tools = config.get("tools") if isinstance(config, Mapping) else None
    specs = [t["toolSpec"] for t in tools or () if isinstance(t, Mapping) and isinstance(t.get("toolSpec"), Mapping)]
    messages = plan.body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
    content = last.get("content") if isinstance(last, Mapping) else None
    answered = isinstance(content, list) and any(isinstance(b, Mapping) and "toolResult" in b for b in content)
    if not specs or answered:
        return None
    schema = specs[0].get("inputSchema")
    schema = schema.get("json") if isinstance(schema, Mapping) else None
    return str(specs[0].get("name", "tool")), example_arguments(schema)


def converse(plan: Plan, *, stream: bool) -> FakeReply:
    """``POST /model/{modelId}/converse`` (JSON) or ``/converse-stream`` (event stream).

    A tool call (``stopReason="tool_use"``) when ``toolConfig`` has tools and the last message carries no
    ``toolResult``; text otherwise. Streams send ``messageStart``, ``contentBlockStart`` (tools only),
    ``contentBlockDelta`` per word (or the tool input), ``contentBlockStop``, ``messageStop`` and ``metadata``
    (usage and metrics; usage left out under ``no-usage``).
    """
    tool = _pick_tool(plan)
    if tool is not None:
        name, args = tool
        block: dict[str, Any] = {"toolUse": {"toolUseId": "tooluse_" + plan.ids.token(22), "name": name,
                                             "input": args}}
        stop = "tool_use"
    else:
        block = {"text": REPLY_TEXT}
        stop = "end_turn"
    metrics = {"latencyMs": 42}
    if not stream:
        body: dict[str, Any] = {"output": {"message": {"role": "assistant", "content": [block]}},
                                "stopReason": stop, "metrics": metrics}
        if plan.usage is not None:
            body["usage"] = _converse_usage(plan.usage)
        return FakeReply(body=body)
    events: list[bytes] = [encode_event("messageStart", {"role": "assistant"})]
    if tool is not None:
        use = block["toolUse"]
        events.append(encode_event("contentBlockStart", {"contentBlockIndex": 0, "start": {
            "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
        events.append(encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {
            "toolUse": {"input": json.dumps(use["input"])}}}))
    else:
        events.extend(encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
                      for piece in text_chunks())
    events.append(encode_event("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(encode_event("messageStop", {"stopReason": stop}))
    metadata: dict[str, Any] = {"metrics": metrics}
    if plan.usage is not None:
        metadata["usage"] = _converse_usage(plan.usage)
    events.append(encode_event("metadata", metadata))
    return FakeReply(body=b"".join(events), headers={"content-type": EVENTSTREAM})


def invoke_model(plan: Plan, *, stream: bool) -> FakeReply:
    """``POST /model/{modelId}/invoke`` with an Anthropic body (``anthropic_version: bedrock-2023-05-31``):
    the Anthropic Messages reply, as Bedrock returns it. ``/invoke-with-response-stream``: each Anthropic
    stream event in a ``chunk`` event (``{"bytes": base64(event JSON)}``), the last one with Bedrock's
    ``amazon-bedrock-invocationMetrics``.
    """
    import base64

    body = dict(plan.body)
    body.pop("stream", None)
    inner = _anthropic.messages_create(Plan(body={**body, "stream": stream}, model=plan.model, usage=plan.usage,
                                            malformed_tool=plan.malformed_tool, service_tier=plan.service_tier,
                                            ids=plan.ids, created=plan.created), cumulative_delta_usage=False)
    if not stream:
        return FakeReply(body=inner.body, headers={
            "x-amzn-bedrock-input-token-count": str(plan.usage.input if plan.usage else 0),
            "x-amzn-bedrock-output-token-count": str(plan.usage.output if plan.usage else 0)})
    chunks: list[bytes] = []
    events: Sequence[tuple[str | None, Any]] = inner.events or ()
    for index, (_, data) in enumerate(events):
        payload = dict(data)
        if index == len(events) - 1 and plan.usage is not None:
            payload["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": plan.usage.input, "outputTokenCount": plan.usage.output,
                "invocationLatency": 42, "firstByteLatency": 10,
                "cacheReadInputTokenCount": plan.usage.cache_read,
                "cacheWriteInputTokenCount": plan.usage.cache_write}
        raw = json.dumps(payload, separators=(",", ":")).encode()
        chunks.append(encode_event("chunk", {"bytes": base64.b64encode(raw).decode()}))
    return FakeReply(body=b"".join(chunks), headers={"content-type": EVENTSTREAM})

