"""Google Gemini API wire format: ``models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE).

Usage follows the real API (``usageMetadata``): ``promptTokenCount`` **includes** the cached tokens
(``cachedContentTokenCount``), while ``candidatesTokenCount`` **excludes** the thinking tokens, which are the
separate ``thoughtsTokenCount``; ``totalTokenCount`` adds prompt, candidates and thoughts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._common import REPLY_TEXT, FakeReply, Plan, example_arguments, text_chunks
from ._usage import ResolvedUsage

__all__ = ["error_reply", "generate_content"]

_STATUS: Mapping[int, str] = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                              429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_reply(status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> FakeReply:
    """A Google-format error body: ``{"error": {code, message, status}}``."""
    kind = _STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    return FakeReply(status=status, headers=dict(headers or {}), body={"error": {
        "code": status, "message": message or f"{kind} (fake vendor, HTTP {status})", "status": kind}})


def _usage(usage: ResolvedUsage) -> dict[str, Any]:
    result: dict[str, Any] = {
        "promptTokenCount": usage.input, "candidatesTokenCount": usage.output,
        "totalTokenCount": usage.input + usage.output + usage.reasoning,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.input}],
    }
    if usage.cache_read:
        result["cachedContentTokenCount"] = usage.cache_read
    if usage.reasoning:
        result["thoughtsTokenCount"] = usage.reasoning
    return result


def _pick_tool(plan: Plan) -> tuple[str, dict[str, Any]] | None:
    declarations = [d for t in plan.body.get("tools") or () if isinstance(t, Mapping)
                    for d in t.get("functionDeclarations") or t.get("function_declarations") or ()
                    if isinstance(d, Mapping)]
    contents = plan.body.get("contents") or []
    last = contents[-1] if contents and isinstance(contents[-1], Mapping) else {}
    parts = last.get("parts") if isinstance(last, Mapping) else None
    answered = isinstance(parts, list) and any(isinstance(p, Mapping) and "functionResponse" in p for p in parts)
    if not declarations or answered:
        return None
    return str(declarations[0].get("name", "tool")), example_arguments(declarations[0].get("parameters"))


def generate_content(plan: Plan, *, stream: bool) -> FakeReply:
    """``POST /v1beta/models/{model}:generateContent``, or ``:streamGenerateContent?alt=sse``: one
    ``GenerateContentResponse`` per word (the last with ``finishReason`` and ``usageMetadata``).

    A ``functionCall`` part when the request declares functions and the last turn has no ``functionResponse``.
    ``modelVersion`` is the response model; ``responseId`` a fresh id.
    """
    tool = _pick_tool(plan)
    response_id = plan.ids.token(22)
    head: dict[str, Any] = {"modelVersion": plan.model, "responseId": response_id}
    if tool is not None:
        pieces: list[dict[str, Any]] = [{"functionCall": {"name": tool[0], "args": tool[1]}}]
    else:
        pieces = [{"text": t} for t in (text_chunks() if stream else [REPLY_TEXT])]
    if not stream:
        body: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": pieces},
                                                "finishReason": "STOP", "index": 0}], **head}
        if plan.usage is not None:
            body["usageMetadata"] = _usage(plan.usage)
        return FakeReply(body=body)
    events: list[tuple[str | None, Any]] = []
    for i, part in enumerate(pieces):
        chunk: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}], **head}
        if i == len(pieces) - 1:
            chunk["candidates"][0]["finishReason"] = "STOP"
            if plan.usage is not None:
                chunk["usageMetadata"] = _usage(plan.usage)
        events.append((None, chunk))
    return FakeReply(events=events)
