"""Anthropic wire format: the Messages API body and its SSE event stream.

Shapes follow what the ``anthropic`` SDK parses (``anthropic.types.Message`` and the raw stream
events). Usage follows the real API: ``input_tokens`` is the *uncached* input, cache reads and
writes are separate counters, and cache writes are split by TTL under ``cache_creation``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._common import REPLY_TEXT, FakeReply, Plan, arg_chunks, example_arguments, malformed_arguments, text_chunks
from ._usage import ResolvedUsage

__all__ = ["error_reply", "messages_create"]

_DEFAULT_TOOL = ("get_weather", {"location": "Paris"})
_THINKING_TEXT = "The user wants an answer; a short canned reply will do."

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_reply(
    status: int, request_id: str, message: str | None = None, headers: Mapping[str, str] | None = None
) -> FakeReply:
    """An Anthropic-format error body (``{"type": "error", "error": {type, message}, "request_id"}``)."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or f"{kind} (fake vendor, HTTP {status})"},
        "request_id": request_id,
    }
    return FakeReply(status=status, body=body, headers=dict(headers or {}))


def _pick_tool(plan: Plan) -> tuple[str, dict[str, Any]] | None:
    """The (name, input) of the client tool the fake "model" uses, or ``None`` for a text answer.

    Server tools (``web_search_…`` and friends, which have a versioned ``type``) are never picked,
    and a trailing user turn that carries a ``tool_result`` gets a text answer.
    """
    body = plan.body
    tools = [
        t
        for t in body.get("tools") or []
        if isinstance(t, Mapping) and "name" in t and t.get("type") in (None, "custom")
    ]
    requested_choice = body.get("tool_choice")
    choice: Mapping[str, Any] = requested_choice if isinstance(requested_choice, Mapping) else {}
    messages = body.get("messages") or []
    last: Mapping[str, Any] = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
    content = last.get("content")
    answered = isinstance(content, list) and any(
        isinstance(block, Mapping) and block.get("type") == "tool_result" for block in content
    )
    if not plan.malformed_tool and (not tools or choice.get("type") == "none" or answered):
        return None
    if not tools:
        return _DEFAULT_TOOL
    chosen = tools[0]
    if choice.get("type") == "tool":
        chosen = next((t for t in tools if t.get("name") == choice.get("name")), chosen)
    return str(chosen["name"]), example_arguments(chosen.get("input_schema"))


def _service_tier(plan: Plan) -> str:
    # "auto" and "standard_only" are both served by the standard tier without a priority commitment.
    return plan.service_tier if plan.service_tier is not None else "standard"


def _usage(usage: ResolvedUsage, tier: str, output_tokens: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "input_tokens": usage.input,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_5m,
            "ephemeral_1h_input_tokens": usage.cache_write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": tier,
    }
    if usage.reasoning:
        result["output_tokens_details"] = {"thinking_tokens": usage.reasoning}
    return result


def messages_create(plan: Plan, *, cumulative_delta_usage: bool = True) -> FakeReply:
    """``POST /v1/messages``: a ``message`` object, or its SSE event stream.

    Content: a ``thinking`` block when the request enables thinking and reasoning tokens are
    reported, then a ``tool_use`` block (``stop_reason="tool_use"``) or a ``text`` block
    (``"end_turn"``). Under ``malformed-tool`` the tool input is invalid JSON text: a string in
    place of the ``input`` object, or ``input_json_delta`` fragments that do not parse, when
    streaming. Streams send ``message_start`` (input and cache usage, ``output_tokens`` = 1),
    ``ping``, the content blocks, ``message_delta`` (the final ``output_tokens``, and with
    ``cumulative_delta_usage`` the input and cache counts again, as the current API does) and
    ``message_stop``.
    """
    message = _message(plan)
    if not plan.body.get("stream"):
        return FakeReply(body=message)
    return FakeReply(events=_stream_events(plan, message, cumulative_delta_usage))


def _message(plan: Plan) -> dict[str, Any]:
    """The complete ``message`` object: thinking, then a tool call or text, and the final usage."""
    body, ids = plan.body, plan.ids
    blocks: list[dict[str, Any]] = []
    thinking = body.get("thinking")
    if (
        plan.usage is not None
        and plan.usage.reasoning > 0
        and isinstance(thinking, Mapping)
        and thinking.get("type") in ("enabled", "adaptive")
    ):
        blocks.append({"type": "thinking", "thinking": _THINKING_TEXT, "signature": ids.token(88)})
    tool = _pick_tool(plan)
    if tool is not None:
        name, args = tool
        tool_input: Any = malformed_arguments(args) if plan.malformed_tool else args
        blocks.append({"type": "tool_use", "id": "toolu_01" + ids.token(22), "name": name, "input": tool_input})
    else:
        blocks.append({"type": "text", "text": REPLY_TEXT, "citations": None})
    message: dict[str, Any] = {
        "id": "msg_01" + ids.token(22),
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": blocks,
        "stop_reason": "tool_use" if tool is not None else "end_turn",
        "stop_sequence": None,
    }
    if plan.usage is not None:
        message["usage"] = _usage(plan.usage, _service_tier(plan), plan.usage.output)
    return message


def _stream_events(plan: Plan, message: dict[str, Any], cumulative_delta_usage: bool) -> list[tuple[str | None, Any]]:
    """The SSE events that stream ``message``, in the order the real API sends them."""
    events: list[tuple[str | None, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields}))

    start = {**message, "content": [], "stop_reason": None}
    if plan.usage is not None:
        # The real API reports a small placeholder output count at the start of a stream.
        start["usage"] = _usage(plan.usage, _service_tier(plan), min(1, plan.usage.output))
    emit("message_start", message=start)
    emit("ping")
    for index, block in enumerate(message["content"]):
        _emit_block(emit, index, block)
    delta_fields: dict[str, Any] = {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None}}
    if plan.usage is not None:
        delta_fields["usage"] = _delta_usage(plan.usage, cumulative_delta_usage)
    emit("message_delta", **delta_fields)
    emit("message_stop")
    return events


def _emit_block(emit: Any, index: int, block: dict[str, Any]) -> None:
    """One content block as ``content_block_start``, its deltas, and ``content_block_stop``."""
    if block["type"] == "thinking":
        emit("content_block_start", index=index, content_block={"type": "thinking", "thinking": "", "signature": ""})
        emit("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": block["thinking"]})
        emit("content_block_delta", index=index, delta={"type": "signature_delta", "signature": block["signature"]})
    elif block["type"] == "tool_use":
        opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        emit("content_block_start", index=index, content_block=opening)
        text = block["input"] if isinstance(block["input"], str) else json.dumps(block["input"])
        for fragment in ["", *arg_chunks(text)]:
            emit("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": fragment})
    else:
        emit("content_block_start", index=index, content_block={"type": "text", "text": ""})
        for piece in text_chunks(block["text"]):
            emit("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
    emit("content_block_stop", index=index)


def _delta_usage(usage: ResolvedUsage, cumulative: bool) -> dict[str, Any]:
    """``message_delta``'s usage: the final output count, and (as the current API does) the input counts again."""
    delta_usage: dict[str, Any] = {"output_tokens": usage.output}
    if cumulative:
        delta_usage = {
            "input_tokens": usage.input,
            "cache_creation_input_tokens": usage.cache_write,
            "cache_read_input_tokens": usage.cache_read,
            **delta_usage,
        }
    if usage.reasoning:
        delta_usage["output_tokens_details"] = {"thinking_tokens": usage.reasoning}
    return delta_usage
