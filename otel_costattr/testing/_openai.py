"""OpenAI wire format: Chat Completions, Responses and Embeddings bodies and SSE streams.

Every builder takes a :class:`~._common.Plan` and returns a :class:`~._common.FakeReply`. The
shapes follow what the ``openai`` SDK parses (``openai.types``); fields the SDK treats as optional
are still sent when the real API sends them, so instrumentations see realistic objects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
from collections.abc import Mapping
from typing import Any

from ._common import REPLY_TEXT, FakeReply, Plan, arg_chunks, example_arguments, malformed_arguments, text_chunks
from ._usage import ResolvedUsage

__all__ = ["chat_completion", "embeddings", "error_reply", "responses_create"]

_DEFAULT_TOOL = ("get_weather", {"location": "Paris"})
_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMENSIONS = 1536

_ERROR_KINDS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (fake vendor)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (fake vendor)."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden (fake vendor)."),
    404: ("invalid_request_error", None, "Not found (fake vendor)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (fake vendor)."),
    500: ("server_error", None, "The server had an error while processing your request (fake vendor)."),
    503: ("server_error", "service_unavailable", "The server is overloaded (fake vendor)."),
}


def error_reply(status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> FakeReply:
    """An OpenAI-format error body (``{"error": {message, type, param, code}}``) with ``status``."""
    kind, code, default_message = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status} (fake vendor).")
    )
    body = {"error": {"message": message or default_message, "type": kind, "param": None, "code": code}}
    return FakeReply(status=status, body=body, headers=dict(headers or {}))


def _service_tier(plan: Plan) -> str:
    if plan.service_tier is not None:
        return plan.service_tier
    requested = plan.body.get("service_tier")
    # "auto" (the API default) is answered with the tier that served the call.
    return requested if requested in ("default", "flex", "priority", "scale") else "default"


def _pick_chat_tool(plan: Plan) -> tuple[str, dict[str, Any]] | None:
    """The (name, arguments) of the function the fake "model" calls, or ``None`` for a text answer.

    A model answers in text once it has a tool result, so a trailing ``tool`` message means text.
    """
    body = plan.body
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)]
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    last_role = messages[-1].get("role") if messages and isinstance(messages[-1], Mapping) else None
    if not plan.malformed_tool and (not tools or choice == "none" or last_role == "tool"):
        return None
    if not tools:
        return _DEFAULT_TOOL
    chosen = tools[0]["function"]
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        wanted = choice["function"].get("name")
        chosen = next((t["function"] for t in tools if t["function"].get("name") == wanted), chosen)
    return str(chosen.get("name", "tool")), example_arguments(chosen.get("parameters"))


def _chat_usage(usage: ResolvedUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.total,
        "prompt_tokens_details": {
            "cached_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(plan: Plan) -> FakeReply:
    """``POST /v1/chat/completions``: a ``chat.completion`` object, or its SSE chunk stream.

    Streams end with ``data: [DONE]``; the usage-only chunk (``choices: []``) is sent only when the
    request asked for it with ``stream_options.include_usage`` and usage is not suppressed.
    """
    body, ids = plan.body, plan.ids
    tool = _pick_chat_tool(plan)
    call: dict[str, Any] | None = None
    if tool is not None:
        name, args = tool
        arguments = malformed_arguments(args) if plan.malformed_tool else json.dumps(args)
        call = {"id": "call_" + ids.token(24), "type": "function", "function": {"name": name, "arguments": arguments}}
    requested_n = body.get("n")
    n = requested_n if isinstance(requested_n, int) and 1 <= requested_n <= 16 else 1
    finish = "tool_calls" if call else "stop"
    head = {
        "id": "chatcmpl-" + ids.token(29),
        "created": plan.created,
        "model": plan.model,
        "service_tier": _service_tier(plan),
        "system_fingerprint": "fp_" + ids.hex(10),
    }
    if not body.get("stream"):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if call else REPLY_TEXT,
            "refusal": None,
            "annotations": [],
        }
        if call:
            message["tool_calls"] = [call]
        result = {
            **head,
            "object": "chat.completion",
            "choices": [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)],
        }
        if plan.usage is not None:
            result["usage"] = _chat_usage(plan.usage)
        return FakeReply(body=result)

    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, Mapping) and bool(stream_options.get("include_usage"))
    chunk_head = {**head, "object": "chat.completion.chunk"}
    if include_usage:
        # The real API puts "usage": null on every chunk but the last when usage was requested.
        chunk_head["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> tuple[None, dict[str, Any]]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return None, {**chunk_head, "choices": [choice]}

    events: list[tuple[str | None, Any]] = []
    for i in range(n):
        if call:
            opening = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(chunk(i, {"role": "assistant", "content": None, "tool_calls": [opening]}))
            for fragment in arg_chunks(call["function"]["arguments"]):
                events.append(chunk(i, {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}))
        else:
            events.append(chunk(i, {"role": "assistant", "content": "", "refusal": None}))
            events.extend(chunk(i, {"content": piece}) for piece in text_chunks())
        events.append(chunk(i, {}, finish))
    if include_usage and plan.usage is not None:
        events.append((None, {**chunk_head, "choices": [], "usage": _chat_usage(plan.usage)}))
    events.append((None, "[DONE]"))
    return FakeReply(events=events)


def _pick_responses_tool(plan: Plan) -> tuple[str, dict[str, Any]] | None:
    body = plan.body
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items and isinstance(items[-1], Mapping) else {}
    answered = last.get("type") == "function_call_output"
    if not plan.malformed_tool and (not tools or choice == "none" or answered):
        return None
    if not tools:
        return _DEFAULT_TOOL
    chosen = tools[0]
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        chosen = next((t for t in tools if t.get("name") == choice.get("name")), chosen)
    return str(chosen.get("name", "tool")), example_arguments(chosen.get("parameters"))


def _responses_usage(usage: ResolvedUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write,
            "cache_write_tokens_details": {
                "ttl_30m_tokens": usage.cache_write_30m,
                "ttl_12h_tokens": usage.cache_write_12h,
            },
        },
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.total,
    }


def responses_create(plan: Plan) -> tuple[FakeReply, dict[str, Any]]:
    """``POST /v1/responses``: the reply, plus the completed ``response`` object to store for retrieval.

    Output items: a ``reasoning`` item when reasoning tokens are reported, then either a
    ``function_call`` or an assistant ``message``. Streams emit ``response.created``,
    ``response.in_progress``, per-item added/delta/done events and ``response.completed`` (which
    carries the usage), each with a ``sequence_number``.
    """
    body, ids = plan.body, plan.ids
    output: list[dict[str, Any]] = []
    if plan.usage is not None and plan.usage.reasoning > 0:
        output.append({"id": "rs_" + ids.hex(50), "type": "reasoning", "summary": []})
    tool = _pick_responses_tool(plan)
    if tool is not None:
        name, args = tool
        output.append(
            {
                "id": "fc_" + ids.hex(50),
                "type": "function_call",
                "status": "completed",
                "call_id": "call_" + ids.token(24),
                "name": name,
                "arguments": malformed_arguments(args) if plan.malformed_tool else json.dumps(args),
            }
        )
    else:
        output.append(
            {
                "id": "msg_" + ids.hex(50),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": REPLY_TEXT, "annotations": [], "logprobs": []}],
            }
        )
    requested_reasoning = body.get("reasoning")
    reasoning: Mapping[str, Any] = requested_reasoning if isinstance(requested_reasoning, Mapping) else {}
    response: dict[str, Any] = {
        "id": "resp_" + ids.hex(50),
        "object": "response",
        "created_at": plan.created,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": plan.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": _service_tier(plan),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": _responses_usage(plan.usage) if plan.usage is not None else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    if not body.get("stream"):
        return FakeReply(body=response), response
    return FakeReply(events=_responses_events(response)), response


def _responses_events(response: dict[str, Any]) -> list[tuple[str | None, Any]]:
    events: list[tuple[str | None, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **fields}))

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=pending)
    emit("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        item_id = item["id"]
        if item["type"] == "message":
            text = item["content"][0]["text"]
            emit(
                "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("response.content_part.added", item_id=item_id, output_index=index, content_index=0, part=part)
            for piece in text_chunks(text):
                emit(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
            emit(
                "response.output_text.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            emit(
                "response.content_part.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=item["content"][0],
            )
        elif item["type"] == "function_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for fragment in arg_chunks(item["arguments"]):
                emit("response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=fragment)
            emit(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


def embeddings(plan: Plan) -> FakeReply:
    """``POST /v1/embeddings``: one unit vector per input, deterministic in the input's content.

    Honours ``dimensions`` and ``encoding_format="base64"`` (little-endian float32, as the real
    API). Usage reports ``prompt_tokens`` and ``total_tokens``, both equal to the usage ``input``.
    """
    body = plan.body
    raw = body.get("input")
    # A list of ints is one pre-tokenised input; a list of anything else is a batch.
    if isinstance(raw, list) and raw and not all(isinstance(x, int) for x in raw):
        items = raw
    else:
        items = [raw]
    dims = body.get("dimensions")
    if not isinstance(dims, int) or dims <= 0:
        dims = _EMBEDDING_DIMENSIONS.get(str(body.get("model")), _DEFAULT_EMBEDDING_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector = _unit_vector(json.dumps(item, sort_keys=True), dims)
        encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    result: dict[str, Any] = {"object": "list", "data": data, "model": plan.model}
    if plan.usage is not None:
        result["usage"] = {"prompt_tokens": plan.usage.input, "total_tokens": plan.usage.input}
    return FakeReply(body=result)


def _unit_vector(text: str, dims: int) -> list[float]:
    # Seeded by content, so equal inputs embed equally across calls and runs.
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [round(x / norm, 8) for x in vector]
