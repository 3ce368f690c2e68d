"""Pieces shared by the OpenAI and Anthropic wire formats of the fake vendor."""

from __future__ import annotations

import json
import random
import re
import string
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._usage import ResolvedUsage

__all__ = ["FakeReply", "IdFactory", "Plan", "REPLY_TEXT", "example_arguments", "malformed_arguments"]

REPLY_TEXT = "This is a canned reply from the otel-costattr fake vendor."
"""The assistant text of every non-tool answer; streamed word by word."""

# Request model -> dated model the vendor reports back, as real APIs do for aliases.
# Ids that are already dated, and unknown ids, are echoed unchanged.
DEFAULT_MODEL_MAP: Mapping[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "o1": "o1-2024-12-17",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-0": "claude-opus-4-20250514",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}

_ALNUM = string.ascii_letters + string.digits
_WORDS = re.compile(r"\S+\s*")


class IdFactory:
    """Vendor-shaped random ids: unique per call, and a reproducible sequence when seeded.

    Thread-safe. With a seed, the n-th id drawn is the same on every run, so a test that makes
    its calls one after the other gets the same ids each time.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def token(self, length: int, alphabet: str = _ALNUM) -> str:
        """``length`` characters drawn from ``alphabet``."""
        with self._lock:
            return "".join(self._rng.choices(alphabet, k=length))

    def hex(self, length: int) -> str:
        """``length`` lower-case hex digits."""
        return self.token(length, "0123456789abcdef")


@dataclass(frozen=True)
class FakeReply:
    """A response the server sends verbatim; what an :meth:`FakeVendorServer.on_request` hook returns.

    With ``events`` set, the reply is a ``text/event-stream``: each ``(event, data)`` pair becomes
    an SSE message, where ``event`` may be ``None`` (no ``event:`` line) and ``data`` is JSON-encoded
    unless it is a ``str`` (sent as is, e.g. ``"[DONE]"``). Otherwise ``body`` is JSON-encoded
    (``None`` sends an empty body), or sent verbatim when it is ``bytes`` (Bedrock's event stream). ``headers`` are added to the defaults (content type and length).
    """

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    events: Sequence[tuple[str | None, Any]] | None = None


@dataclass(frozen=True)
class Plan:
    """Everything a wire-format builder needs to answer one request."""

    body: Mapping[str, Any]
    model: str
    usage: ResolvedUsage | None
    """``None`` under the ``no-usage`` scenario."""
    malformed_tool: bool
    service_tier: str | None
    """The ``x-fake-service-tier`` override, else ``None`` for the builder's default."""
    ids: IdFactory
    created: int = field(default_factory=lambda: int(time.time()))


def text_chunks(text: str = REPLY_TEXT) -> list[str]:
    """``text`` split into word-sized stream deltas that concatenate back to ``text``."""
    return _WORDS.findall(text) or [text]


def arg_chunks(arguments: str) -> list[str]:
    """Tool-argument text split into a few fragments, as vendors stream them."""
    size = max(len(arguments) // 3, 1)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def example_arguments(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Placeholder arguments that satisfy the required properties of a JSON schema.

    Only the common cases are covered (first ``enum`` value, or a fixed value per ``type``); the
    fake never needs to satisfy a real tool, only to look like a model that called it.
    """
    if not isinstance(schema, Mapping):
        return {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    names = required if isinstance(required, list) else list(properties)
    args: dict[str, Any] = {}
    for name in names:
        prop = properties.get(name)
        prop = prop if isinstance(prop, Mapping) else {}
        enum = prop.get("enum")
        if isinstance(enum, list) and enum:
            args[name] = enum[0]
            continue
        placeholders: dict[str, Any] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
        args[name] = placeholders.get(str(prop.get("type")), "example")
    return args


def malformed_arguments(args: Mapping[str, Any]) -> str:
    """Tool-argument text that is invalid JSON, even for a lenient partial-JSON parser.

    It is the valid encoding of ``args`` with an unquoted string value appended, the kind of slip a
    model makes, so ``json.loads`` and the Anthropic SDK's stream accumulator both reject it.
    """
    valid = json.dumps(dict(args))
    separator = ", " if args else ""
    return valid[:-1] + separator + '"unit": celsius}'
