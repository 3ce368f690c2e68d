"""Read what a span says about one model call: usage under every alias, identity, tier (DESIGN D2, D3).

Contract: :func:`read_call` never raises, whatever the attribute values are (strings, negatives, NaN, huge
ints, lists). Values it cannot use are ignored and their attribute names returned in ``Call.bad`` so that the
caller can count them. Counts are normalised to the OpenTelemetry GenAI convention: ``input_tokens``
includes cache reads and writes, ``output_tokens`` includes reasoning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .attributes import LLM_OPERATIONS, NON_LLM_OPERATIONS, PROVIDED_COST, READ

__all__ = ["Call", "read_call"]

_MAX_TOKENS = 10**12  # far above any real request; a bigger value is garbage, not usage


class Call:
    """The facts about one model call read off a span. ``None`` means "not reported", never zero."""

    __slots__ = ("provider", "model", "request_model", "response_id", "operation", "service_tier", "region",
                 "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens", "reasoning_tokens", "input_audio_tokens", "output_audio_tokens",
                 "web_search_calls", "provided_cost", "streaming", "bad", "detail")

    def __init__(self) -> None:
        self.provider: str | None = None
        self.model: str | None = None
        self.request_model: str | None = None
        self.response_id: str | None = None
        self.operation: str | None = None
        self.service_tier: str | None = None
        self.region: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None  # short TTL only (after the split below)
        self.cache_write_1h_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.input_audio_tokens: int | None = None
        self.output_audio_tokens: int | None = None
        self.web_search_calls: int | None = None
        self.provided_cost: float | None = None
        self.streaming = False
        self.bad: list[str] = []
        self.detail = 0  # how many usage details the span reports; the more detailed duplicate wins

    @property
    def has_usage(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None

    @property
    def is_llm_call(self) -> bool:
        """True for spans that are one billed model call (not agents, tools or response fetches)."""
        op = self.operation
        if op is not None:
            if op in LLM_OPERATIONS:
                return True
            if op in NON_LLM_OPERATIONS:
                return False
        return self.model is not None and (self.has_usage or self.response_id is not None
                                           or self.provider is not None)


def _count(attrs: Mapping[str, Any], names: tuple[str, ...], bad: list[str]) -> int | None:
    for name in names:
        v = attrs.get(name)
        if v is None:
            continue
        t = type(v)
        if t is int:
            if 0 <= v <= _MAX_TOKENS:
                return v
        elif t is float:
            if math.isfinite(v) and v >= 0 and v.is_integer() and v <= _MAX_TOKENS:
                return int(v)
        elif t is str:
            s = v.strip()
            if s.isdigit() and len(s) <= 13:
                return int(s)
        bad.append(name)
    return None


def _text(attrs: Mapping[str, Any], names: tuple[str, ...], bad: list[str], limit: int = 256) -> str | None:
    for name in names:
        v = attrs.get(name)
        if v is None:
            continue
        if type(v) is str and v.strip() and len(v) <= limit:
            return v.strip()
        bad.append(name)
    return None


_R = READ


def read_call(attrs: Mapping[str, Any]) -> Call:
    """Read one span's attributes into a :class:`Call`. Never raises."""
    c = Call()
    bad = c.bad
    c.operation = _text(attrs, _R["operation"], bad)
    c.provider = _text(attrs, _R["provider"], bad)
    c.request_model = _text(attrs, _R["request_model"], bad)
    c.model = _text(attrs, _R["response_model"], bad) or c.request_model
    c.response_id = _text(attrs, _R["response_id"], bad, limit=512)
    c.input_tokens = _count(attrs, _R["input_tokens"], bad)
    c.output_tokens = _count(attrs, _R["output_tokens"], bad)
    if c.input_tokens is None and c.output_tokens is None and not attrs.keys() & _ANY_USAGE:
        # Fast exit for spans that carry no usage at all (most spans of a trace).
        for name in PROVIDED_COST:
            if name in attrs:
                break
        else:
            return c
    detail = (c.input_tokens is not None) + (c.output_tokens is not None)
    c.cache_read_tokens = _count(attrs, _R["cache_read_tokens"], bad)
    total_write = _count(attrs, _R["cache_write_tokens"], bad)
    w5 = _count(attrs, _R["cache_write_5m_tokens"], bad)
    w1 = _count(attrs, _R["cache_write_1h_tokens"], bad)
    if w5 is not None or w1 is not None:
        # The TTL split is the more detailed truth; the total is only used to fill a missing half.
        w1 = w1 or 0
        w5 = w5 if w5 is not None else max((total_write or 0) - w1, 0)
        c.cache_write_tokens, c.cache_write_1h_tokens = w5, w1
        detail += 2
    else:
        c.cache_write_tokens = total_write
    c.reasoning_tokens = _count(attrs, _R["reasoning_tokens"], bad)
    c.input_audio_tokens = _count(attrs, _R["input_audio_tokens"], bad)
    c.output_audio_tokens = _count(attrs, _R["output_audio_tokens"], bad)
    c.web_search_calls = _count(attrs, _R["web_search_calls"], bad)
    for v in (c.cache_read_tokens, total_write, c.reasoning_tokens, c.input_audio_tokens, c.output_audio_tokens):
        if v is not None:
            detail += 1
    c.detail = detail
    c.service_tier = _text(attrs, _R["service_tier"], bad, limit=32)
    c.region = _text(attrs, _R["region"], bad, limit=32)
    for name in _R["streaming"]:
        if attrs.get(name) is True:
            c.streaming = True
            break
    for name in PROVIDED_COST:
        v = attrs.get(name)
        if v is None:
            continue
        if type(v) in (int, float) and math.isfinite(v) and v >= 0:
            c.provided_cost = float(v)
            break
        if type(v) is str:
            try:
                f = float(v)
            except ValueError:
                f = -1.0
            if math.isfinite(f) and f >= 0:
                c.provided_cost = f
                break
        bad.append(name)
    return c


_ANY_USAGE = frozenset(n for k in ("cache_read_tokens", "cache_write_tokens", "cache_write_5m_tokens",
                                   "cache_write_1h_tokens", "reasoning_tokens") for n in READ[k])
