"""Read what a span says about one model call: usage under every alias, identity, tier (DESIGN D2, D3, D16).

Contract: :func:`read_call` never raises, whatever the attribute values are (strings, negatives, NaN, huge
ints, lists). Values it cannot use are ignored and their attribute names returned in ``Call.bad`` so that the
caller can count them. Counts are normalised to the OpenTelemetry GenAI convention: ``input_tokens``
includes cache reads and writes, ``output_tokens`` includes reasoning; given the span's instrumentation scope,
emitters that depart from it (``attributes.EMITTER_CONVENTIONS``) are brought to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..attributes import (EMITTER_CONVENTIONS, INPUT_EXCLUDES_CACHE, LLM_OPERATIONS, NON_LLM_OPERATIONS,
                          OUTPUT_EXCLUDES_REASONING, PROVIDED_COST, READ)

__all__ = ["Call", "bad_counts", "normalise", "read_call", "shape_reader"]

# Any count an OTLP int attribute can carry is read: the pricer flags counts above the model's limits
# (implausible:<count>), so a huge count is priced visibly instead of vanishing into "partial".
_MAX_TOKENS = 2**63 - 1


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
    flags: tuple[str, ...] = ()  # what the emitter's convention leaves unknown (cost flags)
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
        return int(s) if s.isascii() and s.isdigit() and len(s) <= 19 and int(s) <= _MAX_TOKENS else None
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
# Quantities whose presence makes a span "more detailed" (the more detailed duplicate wins, D5); the TTL split
# counts twice and is added after the split is resolved.
_DETAIL = frozenset({"input_tokens", "output_tokens", "cache_read_tokens", "_total_write", "reasoning_tokens",
                     "input_audio_tokens", "output_audio_tokens"})


def _compile_reader(present: frozenset[str]) -> Any:
    """A reader specialised to spans carrying exactly the known attribute names ``present``.

    Per quantity, the names present are tried in precedence order and the first valid value wins; the reader
    is straight-line code generated from that plan (like ``dataclasses`` generates ``__init__``), because a
    generic loop over the plan costs several times more per span. Only our own attribute-name constants are
    ever put into the generated source, as ``repr`` literals; span values are only ever read at run time.
    """
    by_q: dict[str, list[tuple[int, str]]] = {}
    for name in present:
        q, rank = _INDEX[name]
        by_q.setdefault(q, []).append((rank, name))
    out = ["def read(attrs):", " c = _new(Call)", " detail = 0", " tw = w5 = w1 = None"]
    local = {"_total_write": "tw", "_w5": "w5", "_w1": "w1"}

    def emit(q: str, names: list[str], depth: int) -> None:
        pad = " " * depth
        name = names[0]
        field = _FIELD.get(q, q)
        target = local.get(field, "c." + field)
        count = " detail += 1;" if field in _DETAIL else ""
        out.append(f"{pad}v = attrs[{name!r}]")
        if q in _TEXT_LIMITS:
            out.append(f"{pad}ok = v.strip() if type(v) is str and len(v) <= {_TEXT_LIMITS[q]} else None")
        elif q == "provided_cost":
            out.append(f"{pad}ok = _valid_cost(v)")
        else:
            out.append(f"{pad}ok = v if type(v) is int and 0 <= v <= {_MAX_TOKENS} else _valid_count(v)")
        out.append(f"{pad}if ok:" if q in _TEXT_LIMITS else f"{pad}if ok is not None:")
        out.append(f"{pad} {target} = ok;{count}")
        out.append(f"{pad}else:")
        out.append(f"{pad} _bad(c, {name!r})")
        if len(names) > 1:
            emit(q, names[1:], depth + 1)

    for q in sorted(by_q):
        emit(q, [n for _, n in sorted(by_q[q])], 1)
    fields = {_FIELD.get(q, q) for q in by_q}
    out.append(" if c.model is None:\n  c.model = c.request_model")
    if "_w5" in fields or "_w1" in fields:
        # The TTL split is the more detailed truth; the total is only used to fill a missing half.
        out.append(" if w5 is not None or w1 is not None:")
        out.append("  w1 = w1 or 0")
        out.append("  c.cache_write_tokens = w5 if w5 is not None else max((tw or 0) - w1, 0)")
        out.append("  c.cache_write_1h_tokens = w1")
        out.append("  detail += 2")
        out.append(" elif tw is not None:\n  c.cache_write_tokens = tw")
    elif "_total_write" in fields:
        out.append(" if tw is not None:\n  c.cache_write_tokens = tw")
    out.append(" c.detail = detail")
    # Streaming flags are not part of the shape (they are not usage); look each one up.
    out.append(" get = attrs.get")
    out.append(" if " + " or ".join(f"get({n!r}) is True" for n in _STREAM_KEYS) + ":\n  c.streaming = True")
    out.append(" return c")
    namespace = {"_new": object.__new__, "Call": Call, "_valid_count": _valid_count, "_valid_cost": _valid_cost,
                 "_bad": _bad}
    exec(compile("\n".join(out), "<otel_costattr read_call>", "exec"), namespace)  # noqa: S102 - see docstring
    return namespace["read"]


_COUNT_QUANTITIES = frozenset({"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                               "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens",
                               "input_audio_tokens", "output_audio_tokens", "web_search_calls"})


def bad_counts(call: Call) -> tuple[str, ...]:
    """The token or call counts the span reported with a value no count can have (NaN, inf, negative, a
    fraction, text), by quantity name (``input_tokens``), once each, in a stable order."""
    if not call.bad:
        return ()
    found = {_INDEX[n][0] for n in call.bad if n in _INDEX}
    return tuple(sorted(found & _COUNT_QUANTITIES))


def _bad(c: Call, name: str) -> None:
    if "bad" not in c.__dict__:
        c.bad = []
    c.bad.append(name)


_READERS: dict[frozenset[str], Any] = {}
_READERS_MAX = 1024
# Spans whose shape arrives after the cap is reached are read by the interpreted reader; counted here.
reader_cache_stats = {"size": 0, "uncached": 0}


def shape_reader(attrs: Mapping[str, Any]) -> Any:
    """The compiled reader :func:`read_call` uses for spans with the known attribute names ``attrs`` has (a
    callable ``reader(attrs) -> Call``, before the emitter's convention is applied), or ``None`` when ``attrs``
    has none or the reader cache is full. For a caller that keeps its own map from a cheaper key to readers."""
    present = _KNOWN.intersection(attrs)
    return _READERS.get(frozenset(present)) if present else None


def read_call(attrs: Mapping[str, Any], scope: str | None = None) -> Call:
    """Read one span's attributes into a :class:`Call`. Never raises.

    ``scope`` (the span's instrumentation scope name) applies that emitter's usage convention, if it departs from
    the GenAI one (:func:`normalise`).
    """
    present = _KNOWN.intersection(attrs)
    if not present:
        return Call()
    key = frozenset(present)
    reader = _READERS.get(key)
    if reader is None:
        if len(_READERS) >= _READERS_MAX:
            # Compiling costs ~100x a read: past the cap, interpret instead (and count it).
            reader_cache_stats["uncached"] += 1
            c = _read_generic(attrs, present)
            if scope and scope in EMITTER_CONVENTIONS:
                normalise(c, EMITTER_CONVENTIONS[scope])
            return c
        reader = _compile_reader(key)
        _READERS[key] = reader
        reader_cache_stats["size"] = len(_READERS)
    call = reader(attrs)
    if scope and scope in EMITTER_CONVENTIONS:
        normalise(call, EMITTER_CONVENTIONS[scope])
    return call


def normalise(call: Call, conventions: frozenset[str]) -> None:
    """Bring an emitter's usage to the GenAI convention (DESIGN D2, D16; ``attributes.EMITTER_CONVENTIONS``), in
    place. ``call.flags`` says what stays unknown: ``input_may_exclude_cache`` when an emitter whose input count
    excludes cache tokens reported none (botocore's InvokeModel spans never do, so a cached call seen only by
    botocore is under-counted, and says so)."""
    if INPUT_EXCLUDES_CACHE in conventions and call.input_tokens is not None:
        if call.cache_read_tokens is None and call.cache_write_tokens is None and call.cache_write_1h_tokens is None:
            call.flags = ("input_may_exclude_cache",)
        else:
            call.input_tokens += (call.cache_read_tokens or 0) + (call.cache_write_tokens or 0) \
                + (call.cache_write_1h_tokens or 0)
    if OUTPUT_EXCLUDES_REASONING in conventions and call.output_tokens is not None:
        call.output_tokens += call.reasoning_tokens or 0


def _read_generic(attrs: Mapping[str, Any], present: set[str]) -> Call:
    """What a compiled reader does, interpreted (for shapes beyond the reader cache's cap)."""
    c = Call()
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

