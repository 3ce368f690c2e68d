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
    """The facts about one model call read off a span. ``None`` means "not reported", never zero.

    Defaults live on the class so that building one is cheap (one per span): only what the span reports is
    stored on the instance.
    """

    provider: str | None = None
    model: str | None = None
    request_model: str | None = None
    response_id: str | None = None
    operation: str | None = None
    service_tier: str | None = None
    region: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None  # short TTL only (after the TTL split)
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None
    input_audio_tokens: int | None = None
    output_audio_tokens: int | None = None
    web_search_calls: int | None = None
    provided_cost: float | None = None
    streaming = False
    detail = 0  # how many usage details the span reports; the more detailed duplicate wins
    bad: list[str] = []  # replaced per instance before anything is appended

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


_TEXT_LIMITS = {"operation": 256, "provider": 256, "request_model": 256, "response_model": 256,
                "response_id": 512, "service_tier": 32, "region": 32}
# attribute name -> (quantity, precedence rank); built once so that reading a span looks only at the
# attributes it has (a few) instead of every alias we know (dozens).
_INDEX: dict[str, tuple[str, int]] = {}
for _q, _names in READ.items():
    if _q == "streaming":
        continue
    for _rank, _name in enumerate(_names):
        _INDEX.setdefault(_name, (_q, _rank))
for _rank, _name in enumerate(PROVIDED_COST):
    _INDEX.setdefault(_name, ("provided_cost", _rank))
_KNOWN = frozenset(_INDEX)
_STREAM_KEYS = READ["streaming"]


def _valid_count(v: Any) -> int | None:
    t = type(v)
    if t is int:
        return v if 0 <= v <= _MAX_TOKENS else None
    if t is float:
        return int(v) if math.isfinite(v) and v >= 0 and v.is_integer() and v <= _MAX_TOKENS else None
    if t is str:
        s = v.strip()
        return int(s) if s.isascii() and s.isdigit() and len(s) <= 13 else None
    return None


def _valid_cost(v: Any) -> float | None:
    t = type(v)
    if t is int or t is float:
        return float(v) if math.isfinite(v) and v >= 0 else None
    if t is str:
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) and f >= 0 else None
    return None


# quantity -> Call attribute name (they differ only for the response model)
_FIELD = {q: q for q in READ} | {"response_model": "model", "cache_write_tokens": "_total_write",
                                  "cache_write_5m_tokens": "_w5", "cache_write_1h_tokens": "_w1"}
_INDEX2 = {name: (q, rank, _TEXT_LIMITS.get(q), _FIELD.get(q, q)) for name, (q, rank) in _INDEX.items()}


def read_call(attrs: Mapping[str, Any]) -> Call:
    """Read one span's attributes into a :class:`Call`. Never raises."""
    c = Call()
    present = _KNOWN.intersection(attrs)
    if not present:
        return c
    bad: list[str] = []
    c.bad = bad
    ranks: dict[str, int] = {}
    d = c.__dict__
    for name in present:
        q, rank, limit, field = _INDEX2[name]
        prior = ranks.get(q)
        if prior is not None and prior < rank:
            continue
        v = attrs[name]
        if limit is not None:
            ok: Any = v.strip() if type(v) is str and len(v) <= limit and v.strip() else None
        elif q == "provided_cost":
            ok = _valid_cost(v)
        else:
            ok = _valid_count(v)
        if ok is None:
            bad.append(name)
        else:
            ranks[q] = rank
            d[field] = ok
    if c.model is None:
        c.model = c.request_model
    detail = (c.input_tokens is not None) + (c.output_tokens is not None)
    total_write = d.pop("_total_write", None)
    w5 = d.pop("_w5", None)
    w1 = d.pop("_w1", None)
    if w5 is not None or w1 is not None:
        # The TTL split is the more detailed truth; the total is only used to fill a missing half.
        w1 = w1 or 0
        w5 = w5 if w5 is not None else max((total_write or 0) - w1, 0)
        c.cache_write_tokens, c.cache_write_1h_tokens = w5, w1
        detail += 2
    elif total_write is not None:
        c.cache_write_tokens = total_write
    for v in (c.cache_read_tokens, total_write, c.reasoning_tokens, c.input_audio_tokens, c.output_audio_tokens):
        if v is not None:
            detail += 1
    c.detail = detail
    for name in _STREAM_KEYS:
        if attrs.get(name) is True:
            c.streaming = True
            break
    return c

