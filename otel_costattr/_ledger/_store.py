"""The ledger: every span of every trace, with exact decimal cost (DESIGN D11), in a directory of immutable
Parquet segments that any number of processes write at once and reports read while they write.

One row per span (not only LLM spans: retry chains and the call tree need the parents). Money is stored as
``decimal128(38, 18)`` and summed exactly by DuckDB. Writes are batched (one segment per batch, not row by row)
and durable: :meth:`Ledger.write_records` returns only after the batch's segment is fsynced and renamed into
place, so a span whose export returned success survives a crash, and a crash mid-batch leaves no partial batch
behind. Re-loading the same spans (``replace=True``) stores them once. The directory format, compaction and
the reader's rules are in :mod:`._segments`; ``ledger compact / migrate`` in :mod:`._maintain`.

Prompt and completion content captured by instrumentations is *not* stored unless ``store_content=True``.

Concurrency: no process locks anything to write. Each process writes its own stream of segments (a new one
after ``fork``); inside a process a lock serialises writes of one :class:`Ledger` (normally only the batch
processor's worker thread writes).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from opentelemetry import metrics
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import attributes as A
from .._capture._enrich import plain_attributes
from .._capture._usage import read_call
from .._errors import ConfigurationError
from .._version import __version__
from . import _duck
from ._segments import LedgerStorageError, SegmentDir, ledger_kind, storage_message

__all__ = ["CONTENT_KEYS", "Ledger", "LedgerExporter", "LedgerSpanProcessor", "SpanRecord", "open_ledger"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Attributes that carry prompt/completion content. Kept out of the ledger unless asked for.
CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.prompt",
    "gen_ai.completion", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.tool.definitions",
    "llm.prompts", "llm.input_messages", "llm.output_messages", "input.value", "output.value",
    "gen_ai.request.messages", "gen_ai.response.messages", "traceloop.entity.input", "traceloop.entity.output",
})
_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages.")

# Columns: (name, SQL type). Attribution keys get their own columns; everything else stays in `attributes`.
_BASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "VARCHAR NOT NULL"), ("span_id", "VARCHAR NOT NULL"), ("parent_span_id", "VARCHAR"),
    ("name", "VARCHAR"), ("kind", "VARCHAR"), ("service_name", "VARCHAR"), ("scope_name", "VARCHAR"),
    ("start_ns", "BIGINT"), ("end_ns", "BIGINT"), ("status_code", "VARCHAR"), ("error_type", "VARCHAR"),
    ("is_llm", "BOOLEAN"), ("operation", "VARCHAR"), ("provider", "VARCHAR"), ("request_model", "VARCHAR"),
    ("response_model", "VARCHAR"), ("response_id", "VARCHAR"),
    ("input_tokens", "BIGINT"), ("output_tokens", "BIGINT"), ("cache_read_tokens", "BIGINT"),
    ("cache_write_tokens", "BIGINT"), ("cache_write_1h_tokens", "BIGINT"), ("reasoning_tokens", "BIGINT"),
    ("usage_detail", "INTEGER"),
    ("cost_status", "VARCHAR"), ("cost_total", "DECIMAL(38,18)"), ("cost_input", "DECIMAL(38,18)"),
    ("cost_output", "DECIMAL(38,18)"), ("cost_cache_read", "DECIMAL(38,18)"), ("cost_cache_write", "DECIMAL(38,18)"),
    ("cost_reasoning", "DECIMAL(38,18)"), ("cost_tool", "DECIMAL(38,18)"), ("pricing_model", "VARCHAR"),
    # duplicate_of: on a duplicate, the span that carries its call; on a counted span, the span of the same call it
    # un-counts (its less detailed pair, or a twin without usage that ended first: gen_ai.cost.supersedes).
    ("pricing_version", "VARCHAR"), ("duplicate_of", "VARCHAR"), ("cost_flags", "VARCHAR"),
    ("resend_count", "INTEGER"),
    # True for the one span of each billed call that the rollups count (duplicates of a call are False).
    ("counted", "BOOLEAN"),
    # Who bills the call, from the price table (an OpenAI-compatible endpoint reports provider "openai" for a
    # DeepSeek model; the pricing entry knows better).
    ("pricing_provider", "VARCHAR"),
    # Four token layers (DESIGN D15), computed at enrichment time from explicit counts or captured content.
    ("layer_prompt_tokens", "BIGINT"), ("layer_tool_tokens", "BIGINT"), ("layer_memory_tokens", "BIGINT"),
    ("layer_source", "VARCHAR"), ("cost_layer_prompt", "DECIMAL(38,18)"), ("cost_layer_tool", "DECIMAL(38,18)"),
    ("cost_layer_memory", "DECIMAL(38,18)"),
)
ATTRIBUTION_COLUMNS: tuple[str, ...] = A.DEFAULT_ATTRIBUTION_KEYS
COLUMNS: tuple[tuple[str, str], ...] = _BASE_COLUMNS + tuple((k, "VARCHAR") for k in ATTRIBUTION_COLUMNS) + (
    ("attributes", "JSON"),)
_NAMES = [c for c, _ in COLUMNS]
_COLUMN_LIST = ", ".join(_NAMES)
_DUP_OF, _COUNTED = _NAMES.index("duplicate_of"), _NAMES.index("counted")


def _arrow_schema(money: str = "decimal") -> Any:
    """The segment schema (``money="float"``: the row struct the writer builds first, money still as float64)."""
    import pyarrow as pa
    kinds = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(), "BOOLEAN": pa.bool_(),
             "JSON": pa.string(),
             "DECIMAL(38,18)": pa.float64() if money == "float" else pa.decimal128(38, 18)}
    return pa.schema([pa.field(n, kinds[t.replace(" NOT NULL", "")], nullable="NOT NULL" not in t)
                      for n, t in COLUMNS])


_SCHEMA_CACHE: list[Any] = []  # (row struct type, segment schema), built by the first Ledger
_MONEY = [i for i, (_, t) in enumerate(COLUMNS) if t.startswith("DECIMAL")]
_SPAN_ID, _TRACE_ID, _IS_LLM = _NAMES.index("span_id"), _NAMES.index("trace_id"), _NAMES.index("is_llm")


def _to_decimal(col: Any) -> Any:
    """float64 costs -> exact ``decimal128(38, 18)`` through each float's shortest text form (Python's repr).

    The text has at most 17 significant digits but can have more than 18 decimals (3.0000000000000004e-05):
    parsed at scale 40, then rounded half-up to 18 places, exactly what DuckDB's ``CAST(CAST(x AS VARCHAR) AS
    DECIMAL(38,18))`` did in the single-file ledger (a test holds the two equal).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    dec = pa.decimal128(38, 18)
    if col.null_count == len(col):
        return pa.nulls(len(col), dec)
    # Below 1e-20 a cost rounds to 0 at 18 places, and its text could need more than 40 decimals (1e-300).
    col = pc.if_else(pc.less(col, 1e-20), 0.0, col)
    wide = col.cast(pa.string()).cast(pa.decimal256(76, 40))
    return pc.round(wide, ndigits=18, round_mode="half_up").cast(dec)


def _prepare(rows: Sequence[tuple[Any, ...]], replace: bool = False) -> tuple[Any, int, bool]:
    """Rows -> (Arrow table in the segment schema, row count, whether a more detailed duplicate shadows a span
    that is not in these rows). Needs the GIL.

    A counted row that names another span in ``duplicate_of`` (the more detailed duplicate of a pair, or the span
    with usage that supersedes a twin recorded earlier as ``no_usage``, D16) un-counts that span here when both
    are in the batch; otherwise the segment is flagged and readers apply it.
    """
    import pyarrow as pa

    if not _SCHEMA_CACHE:
        _SCHEMA_CACHE.append((pa.struct(list(_arrow_schema("float"))), _arrow_schema()))
    struct, schema = _SCHEMA_CACHE[0]
    if replace:  # the last copy of a span in the batch wins
        last = {(r[_TRACE_ID], r[_SPAN_ID]): r for r in rows}
        if len(last) != len(rows):
            rows = list(last.values())
    shadowed = {row[_DUP_OF] for row in rows if row[_COUNTED] and row[_DUP_OF]}
    unresolved = False
    if shadowed:
        here = {row[_SPAN_ID] for row in rows}
        unresolved = not shadowed <= here
        rows = [row[:_COUNTED] + (False,) + row[_COUNTED + 1:] if row[_SPAN_ID] in shadowed and row[_IS_LLM]
                else row for row in rows]
    # One struct array, then columns: Arrow transposes in C++, about twice as fast as zip(*rows) plus one
    # pa.array per column.
    batch = pa.RecordBatch.from_struct_array(pa.array(rows, type=struct))
    cols = batch.columns
    cols = [_to_decimal(c) if i in _MONEY_SET else c for i, c in enumerate(cols)]
    return pa.Table.from_arrays(cols, schema=schema), len(rows), unresolved


_MONEY_SET = frozenset(_MONEY)


@dataclass(slots=True)
class SpanRecord:
    """A span as plain data, whatever it came from (SDK span, OTLP JSON, OTLP protobuf)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: str
    attributes: Mapping[str, Any]
    service_name: str | None = None
    scope_name: str | None = None

    @classmethod
    def from_readable(cls, span: ReadableSpan) -> "SpanRecord":
        ctx = span.context
        parent = span.parent
        res = span.resource.attributes if span.resource is not None else {}
        scope = span.instrumentation_scope
        return cls(trace_id=format(ctx.trace_id, "032x"), span_id=format(ctx.span_id, "016x"),
                   parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
                   name=span.name, kind=span.kind.name, start_ns=span.start_time or 0, end_ns=span.end_time or 0,
                   status_code=span.status.status_code.name, attributes=plain_attributes(span),
                   service_name=res.get("service.name") if res else None,
                   scope_name=scope.name if scope is not None else None)


class Priced(NamedTuple):
    """A call the enricher priced with exactly the five standard components, no flags and no cost attributes on
    the span (``Enricher.compute_attributes(..., render=False)`` gave ``UNRENDERED``), handed to
    :func:`record_to_row` as its ``call``: the row's cost columns are taken from ``figures``
    (``Enricher.standard_figures(cost)``, the values the attributes would carry; the total below
    :data:`MONEY_LIMIT`) rather than from attributes written into the span and read back (``ingest``)."""

    call: Any
    status: str
    cost: Any
    figures: tuple[Any, ...]


# What the columns can hold. DECIMAL(38,18) keeps 20 integer digits; one value beyond its column's range
# used to fail the Arrow conversion or DuckDB's CAST for the whole batch (up to 2,048 spans).
MONEY_LIMIT = 1e20
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_NONE3 = (None, None, None)


#: Column -> original value, for the values of one row that did not fit their column (a plain dict: one is made
#: per row).
_OutOfRange = dict


def _dec(value: Any, column: str | None = None, bad: _OutOfRange | None = None) -> float | None:
    """A cost attribute as a float, or None if unusable (negative, NaN, not a number) or out of range.

    Cost crosses the span boundary as a float. The writer turns it into DECIMAL(38,18) in SQL through its
    shortest round-trip text form (``CAST(CAST(x AS VARCHAR) AS DECIMAL)``, the same digits as Python's
    ``repr``), which is the exact cost whenever it has <= 15 significant digits: always, for token counts
    times published rates. A value of 1e20 or more does not fit the column: it becomes None and, when ``bad``
    is given, is recorded there under ``column``.
    """
    t = type(value)
    if t is float:
        if not (value >= 0 and value != math.inf):  # also NaN
            return None
    elif t is int:
        if value < 0:
            return None
        if value >= MONEY_LIMIT:  # compared as int: float() of a huge int would raise
            if bad is not None:
                bad[column or "?"] = value
            return None
        value = float(value)
    else:
        return None
    if value >= MONEY_LIMIT:
        if bad is not None:
            bad[column or "?"] = value
        return None
    return value


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return [_json_safe(x) for x in v]
    return v


def _is_content(key: str) -> bool:
    return key in CONTENT_KEYS or key.startswith(_CONTENT_PREFIXES)


# Attribute keys fully represented by columns: not repeated in the `attributes` JSON.
_MAPPED = frozenset({n for names in A.READ.values() for n in names} | {
    A.COST_STATUS, A.COST_TOTAL, A.COST_INPUT, A.COST_OUTPUT, A.COST_CACHE_READ, A.COST_CACHE_WRITE,
    A.COST_CACHE_WRITE_1H, A.COST_REASONING, A.COST_TOOL_USAGE, A.COST_MODEL, A.COST_PRICING_VERSION,
    A.COST_DUPLICATE_OF, A.COST_SUPERSEDES, A.COST_FLAGS, A.COST_UNCACHED_INPUT, A.COST_TEXT_OUTPUT, A.COST_CURRENCY,
    A.COST_PROVIDER, A.LANGFUSE_COST_DETAILS, "http.request.resend_count", "error.type",
    A.COST_LAYER_PROMPT_TOKENS, A.COST_LAYER_TOOL_TOKENS, A.COST_LAYER_MEMORY_TOKENS, A.COST_LAYER_SOURCE,
    A.COST_LAYER_PROMPT, A.COST_LAYER_TOOL, A.COST_LAYER_MEMORY,
    *ATTRIBUTION_COLUMNS})
_PRICED = frozenset({"priced", "partial", "provided"})
_LAYER_ATTRS = frozenset({A.COST_LAYER_PROMPT_TOKENS, A.COST_LAYER_TOOL_TOKENS, A.COST_LAYER_MEMORY_TOKENS,
                          A.COST_LAYER_PROMPT, A.COST_LAYER_TOOL, A.COST_LAYER_MEMORY})
_COST_TEXT = frozenset({A.COST_MODEL, A.COST_PRICING_VERSION, A.COST_DUPLICATE_OF, A.COST_SUPERSEDES,
                        A.COST_PROVIDER, A.COST_LAYER_SOURCE})
_COST_MONEY = frozenset({A.COST_TOTAL, A.COST_INPUT, A.COST_OUTPUT, A.COST_CACHE_READ, A.COST_REASONING,
                         A.COST_CACHE_WRITE, A.COST_CACHE_WRITE_1H, A.COST_TOOL_USAGE})
# Any of these on a span sends its row through the general path of record_to_row.
_RARE = _COST_MONEY | _LAYER_ATTRS | _COST_TEXT | {A.COST_STATUS, A.COST_FLAGS, "http.request.resend_count",
                                                    "error.type"}


def _int_or_none(v: Any, column: str | None = None, bad: _OutOfRange | None = None) -> int | None:
    """A non-negative int that fits BIGINT, else None (recorded in ``bad`` when too big)."""
    if type(v) is not int or v < 0:
        return None
    if v > _INT64[1]:
        if bad is not None:
            bad[column or "?"] = v
        return None
    return v


def _in_range(v: Any, bounds: tuple[int, int], column: str, bad: _OutOfRange) -> int | None:
    if v is None or bounds[0] <= v <= bounds[1]:
        return v
    bad[column] = v
    return None


def _str_or_none(v: Any, limit: int = 256) -> str | None:
    if v is None:
        return None
    return v[:limit] if type(v) is str else str(v)[:limit]


def _unmapped(a: Mapping[str, Any], store_content: bool) -> dict[str, Any]:
    """The attributes no column holds (content only when ``store_content``), JSON-safe, in span order."""
    if a.keys() <= _MAPPED:  # set operations in C: most spans have nothing left over
        return {}
    keep = {}
    for k, v in a.items():
        if k in _MAPPED or (not store_content and _is_content(k)):
            continue
        t = type(v)
        keep[k] = v if t is str or t is int or t is bool else _json_safe(v)
    return keep


def _attribution_values(a: Mapping[str, Any]) -> tuple[Any, ...]:
    """The attribution columns' values: as text, cut by :func:`~otel_costattr.attributes.cut_value`."""
    values = tuple(map(a.get, ATTRIBUTION_COLUMNS))
    for v in values:
        if v is not None and (type(v) is not str or len(v) > A.MAX_VALUE_LENGTH):
            # some value needs converting or cutting; a cut keeps a hash, so long values stay distinct
            return tuple(None if v is None else A.cut_value(v if type(v) is str else str(v)) for v in values)
    return values  # all short strings or absent: the common case


def record_to_row(rec: SpanRecord, *, store_content: bool = False, book: Any = None,
                  out_of_range: list[str] | None = None, call: Any = None) -> tuple[Any, ...]:
    """One ledger row (in ``COLUMNS`` order). Never raises on odd attribute values.

    Every value fits its column, so one span can never fail the write of its batch. A value that does not fit
    (a cost of 1e20 or more for ``DECIMAL(38,18)``, ``http.request.resend_count`` outside INTEGER, a token
    count or time outside BIGINT) is stored as NULL instead; the row says so in ``cost_flags``
    (``out_of_range:<column>``) and keeps the original value in ``attributes`` (key
    ``otel_costattr.out_of_range.<column>``). When the call's total cost is the value that did not fit, its
    ``cost_status`` becomes ``unpriced``: an unknown cost is counted as unknown, never summed as zero. The
    names of the affected columns are appended to ``out_of_range`` when given (the ledger counts them).

    ``call``: what :func:`~otel_costattr._capture._usage.read_call` gives for the span's attributes (with its
    scope), when the caller has it already, or a :class:`Priced` call (the cost columns from its figures).
    Attributes the enricher added afterwards (``gen_ai.cost.*``) may differ from it only in ``provided_cost``,
    which the row reads only for a ``provided`` status, where both give the same figure.
    """
    # This runs once per span on every ledger write, so the common path stays inline (no call per column);
    # only the cold parts are helpers: re-pricing a duplicate, layer figures, marking out-of-range values.
    a = rec.attributes
    priced = None
    if call is None:
        call = read_call(a, rec.scope_name)  # the scope selects the emitter's usage convention (D16)
    elif type(call) is Priced:
        priced = call
        call = priced.call
    is_llm = call.is_llm_call
    bad: _OutOfRange = {}
    get = a.get
    repriced_provider = None
    if priced is not None:  # the span carries no cost attribute: the figures are what they would have said
        status = priced.status
        cost_total, c_in, c_out, _, c_cr, c_cw, _, c_rs, _ = priced.figures
        c_tool = dup_of = source = None
        entry = priced.cost._entry  # noqa: SLF001 - same package
        model, version, provider = _str_or_none(entry.id), _str_or_none(entry.version), _str_or_none(entry.provider)
    if _RARE.isdisjoint(a):
        # No cost, flag, layer, resend or error attribute (most spans, and every call ingest priced itself): one
        # test in C in place of a dozen look-ups.
        flags = resend = error_type = None
        layer_tokens = layer_costs = _NONE3
        if priced is None:
            status = cost_total = c_in = c_out = c_cr = c_rs = c_cw = c_tool = None
            model = version = provider = dup_of = source = None
    else:
        if priced is None:
            status = get(A.COST_STATUS)
            if type(status) is not str:
                status = None
            if _COST_MONEY.isdisjoint(a):  # no money on the span: skip eight look-ups and checks
                cost_total = c_in = c_out = c_cr = c_rs = c_cw = c_tool = None
            else:
                cost_total = _dec(get(A.COST_TOTAL), "cost_total", bad) if status in _PRICED else None
                c_in, c_out = _dec(get(A.COST_INPUT), "cost_input", bad), _dec(get(A.COST_OUTPUT), "cost_output", bad)
                c_cr = _dec(get(A.COST_CACHE_READ), "cost_cache_read", bad)
                c_rs = _dec(get(A.COST_REASONING), "cost_reasoning", bad)
                c_cw = _sum_dec(get(A.COST_CACHE_WRITE), get(A.COST_CACHE_WRITE_1H), bad) \
                    if A.COST_CACHE_WRITE in a else None
                c_tool = _dec(get(A.COST_TOOL_USAGE), "cost_tool", bad) if A.COST_TOOL_USAGE in a else None
            if cost_total is None and status == "provided" and "cost_total" not in bad:
                # an upstream cost may arrive as a numeric string (OTLP from other languages); the usage reader
                # took it
                cost_total = _dec(call.provided_cost, "cost_total", bad)
            if status == "duplicate" and book is not None and call.has_usage and call.model:
                repriced = _reprice_duplicate(call, rec.start_ns, book, bad)
                if repriced is not None:
                    repriced_provider, cost_total, c_in, c_out, c_cr, c_cw, c_rs = repriced
            if _COST_TEXT.isdisjoint(a):
                model = version = dup_of = provider = source = None
            else:
                model, version = _str_or_none(get(A.COST_MODEL)), _str_or_none(get(A.COST_PRICING_VERSION))
                dup_of, provider = _str_or_none(get(A.COST_DUPLICATE_OF)), _str_or_none(get(A.COST_PROVIDER))
                if dup_of is None and status != "duplicate":
                    # the span carries its call and supersedes a twin without usage recorded earlier (D16): the
                    # column names it, so that this counted row un-counts it (see _prepare)
                    dup_of = _str_or_none(get(A.COST_SUPERSEDES))
                source = _str_or_none(get(A.COST_LAYER_SOURCE))
        flags = get(A.COST_FLAGS)
        if isinstance(flags, (tuple, list)):
            flags = ",".join(str(f) for f in flags)
        elif type(flags) is not str:
            flags = None
        resend = get("http.request.resend_count")
        resend = _in_range(resend, _INT32, "resend_count", bad) if type(resend) is int else None
        if _LAYER_ATTRS.isdisjoint(a):  # most spans carry no layers
            layer_tokens = layer_costs = _NONE3
        else:
            layer_tokens, layer_costs = _layer_values(a, bad)
        error_type = get("error.type")
        if error_type is not None:
            error_type = _str_or_none(error_type)
    start_ns, end_ns = rec.start_ns, rec.end_ns
    if not (type(start_ns) is int and 0 <= start_ns <= _INT64[1]):  # the common case costs one test
        start_ns = _in_range(start_ns, _INT64, "start_ns", bad) if type(start_ns) is int else None
    if not (type(end_ns) is int and 0 <= end_ns <= _INT64[1]):
        end_ns = _in_range(end_ns, _INT64, "end_ns", bad) if type(end_ns) is int else None
    response_model = get("gen_ai.response.model")
    keep = _unmapped(a, store_content)
    if bad:
        flags, total_unknown = _mark_out_of_range(bad, flags, keep, out_of_range)
        if total_unknown and status in _PRICED:
            status = "unpriced"
            c_in = c_out = c_cr = c_cw = c_rs = c_tool = None  # parts of a total that is not known
    return (
        rec.trace_id, rec.span_id, rec.parent_span_id or None, rec.name, rec.kind, rec.service_name, rec.scope_name,
        start_ns, end_ns, rec.status_code, error_type,
        is_llm, call.operation, call.provider, call.request_model,
        response_model if type(response_model) is str else None, call.response_id,
        call.input_tokens, call.output_tokens, call.cache_read_tokens, call.cache_write_tokens,
        call.cache_write_1h_tokens, call.reasoning_tokens, call.detail if is_llm else None,
        status if is_llm else None, cost_total, c_in, c_out, c_cr, c_cw, c_rs, c_tool,
        model, version, dup_of, flags, resend,
        # A duplicate is counted instead of the first span only when it is the more detailed of the pair (the
        # writer then un-counts the other one, see Ledger.write_rows).
        is_llm and (status != "duplicate" or (flags is not None and "more_detailed" in flags
                                               and cost_total is not None)),
        repriced_provider or provider,
        *layer_tokens, source, *layer_costs,
        *_attribution_values(a),
        json.dumps(keep, default=str) if keep else "{}",
    )


def _reprice_duplicate(call: Any, start_ns: Any, book: Any, bad: _OutOfRange) -> tuple[Any, ...] | None:
    """Re-price the second span of a call (a ``duplicate``) with ``book``, so that the more detailed of the pair
    can be the one counted: ``(provider, total, input, output, cache_read, cache_write, reasoning)`` (amounts as
    the columns hold them; a value that does not fit is recorded in ``bad``), or None when the call cannot be
    priced. Never raises: a failure is logged at debug level and the row keeps the span's own figures."""
    try:
        provider = A.PROVIDER_NAMES.get(call.provider.strip().lower(), call.provider) if call.provider else None
        cost = book.price(call.model, provider=provider, input_tokens=call.input_tokens or 0,
                          output_tokens=call.output_tokens or 0, cache_read_tokens=call.cache_read_tokens or 0,
                          cache_write_tokens=call.cache_write_tokens or 0,
                          cache_write_1h_tokens=call.cache_write_1h_tokens or 0,
                          reasoning_tokens=call.reasoning_tokens or 0, at=start_ns or None)
        if not cost.priced:
            return None
        w = ("cache_write", "cache_write_1h")
        return (cost.provider, _dec(cost.total_float(), "cost_total", bad),
                _dec(cost.sum_float(("input", "cache_read") + w), "cost_input", bad),
                _dec(cost.sum_float(("output", "reasoning")), "cost_output", bad),
                _dec(cost.sum_float(("cache_read",)), "cost_cache_read", bad),
                _dec(cost.sum_float(w), "cost_cache_write", bad),
                _dec(cost.sum_float(("reasoning",)), "cost_reasoning", bad))
    except Exception:  # noqa: BLE001 - a row is still written, without the re-priced figure
        logger.debug("could not re-price duplicate span", exc_info=True)
        return None


def _layer_values(a: Mapping[str, Any], bad: _OutOfRange) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The context-layer columns of a span that has some: ``(prompt, tool, memory)`` tokens and costs, each
    triple all None when the span has none of its three attributes; values that do not fit go to ``bad``."""
    get = a.get
    lp, lt, lm = get(A.COST_LAYER_PROMPT_TOKENS), get(A.COST_LAYER_TOOL_TOKENS), get(A.COST_LAYER_MEMORY_TOKENS)
    layer_tokens = _NONE3 if lp is None and lt is None and lm is None else (
        _int_or_none(lp, "layer_prompt_tokens", bad), _int_or_none(lt, "layer_tool_tokens", bad),
        _int_or_none(lm, "layer_memory_tokens", bad))
    lp, lt, lm = get(A.COST_LAYER_PROMPT), get(A.COST_LAYER_TOOL), get(A.COST_LAYER_MEMORY)
    layer_costs = _NONE3 if lp is None and lt is None and lm is None else (
        _dec(lp, "cost_layer_prompt", bad), _dec(lt, "cost_layer_tool", bad),
        _dec(lm, "cost_layer_memory", bad))
    return layer_tokens, layer_costs


def _mark_out_of_range(bad: _OutOfRange, flags: str | None, keep: dict[str, Any],
                       out_of_range: list[str] | None) -> tuple[str, bool]:
    """Record the values that did not fit their columns (see :func:`record_to_row`): add
    ``otel_costattr.out_of_range.<column>`` to ``keep`` (the row's ``attributes``) and the column names to
    ``out_of_range`` when given; return the row's flags with ``out_of_range:<column>`` marks appended, and
    whether the call's total cost is what did not fit (then the cost is unknown)."""
    marks = ",".join(f"out_of_range:{c}" for c in bad)
    for c, v in bad.items():
        keep[f"otel_costattr.out_of_range.{c}"] = repr(v)[:64]
    if out_of_range is not None:
        out_of_range.extend(bad)
    return (f"{flags},{marks}" if flags else marks), "cost_total" in bad


def _sum_dec(a: Any, b: Any, bad: _OutOfRange | None = None) -> float | None:
    da, db = _dec(a, "cost_cache_write", bad), _dec(b, "cost_cache_write", bad)
    if da is None or db is None:
        return da if db is None else db
    # Exact decimal sum, then the nearest float: both halves are short decimals.
    return _dec(float(Decimal(repr(da)) + Decimal(repr(db))), "cost_cache_write", bad)


class Ledger:
    """The ledger: a directory of immutable Parquet segments (see :mod:`otel_costattr._ledger._segments`), written by any
    number of processes at once and read while they write. Also a rollup :class:`~otel_costattr._analysis._source.Source`:
    :meth:`query` runs SQL (DuckDB) over two relations, ``spans`` (every span) and ``calls`` (one row per billed
    call).

    ``Ledger(path)`` opens the ledger directory at ``path``, creating it if missing (the name is the user's:
    ``costs.duckdb`` stays a valid name, it is a directory now). ``read_only=True`` never creates or writes.
    A single-file DuckDB ledger written by earlier versions is still read (``read_only=True``); writing it needs
    ``otel-costattr ledger migrate PATH`` first (one command, nothing lost).

    Writes (:meth:`write_records`, :meth:`write_rows`, :meth:`write_stream`) return only once their segment is
    durable (fsynced and renamed into place): a span whose write returned survives a crash, and a crash mid-write
    leaves nothing half-written. Reads see every segment committed before the query started.

    Raises:
        ConfigurationError: the path cannot be a ledger (missing folder, a file that is not a ledger, a newer
            format); the message names the fix.
        LedgerStorageError: a write was refused by the storage (disk full, read-only); the message says what is
            already safe.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, store_content: bool = False,
                 book: Any = None) -> None:
        # Imported here, never on a first write: the first batch is durable within about a second of the first
        # span (DESIGN D11), and a SIGTERM soon after start-up does not wait for imports.
        import duckdb  # noqa: F401
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        self.dialect = "duckdb"
        self.path = Path(path)
        self.store_content = store_content
        self.book = book
        self.read_only = read_only
        self._lock = threading.Lock()
        self.out_of_range_values = 0  # values stored as NULL because they did not fit their column
        self.committed = 0  # spans this object wrote durably
        self._warned_range = False
        self._con: Any = None
        self._seen: tuple[str, ...] | None = None
        self._small_bytes: int | None = None  # SMALL_CACHE_BYTES unless set (tests)
        self._legacy = ledger_kind(self.path) == "duckdb"
        if self._legacy:
            if not read_only:
                raise ConfigurationError(
                    f"{self.path} is a single-file ledger written by an earlier otel-costattr, which only one process "
                    f"can write. Convert it once (nothing is lost; the old file is kept as {self.path}.v1): "
                    f"otel-costattr ledger migrate {self.path}")
            self._dir = None
            self._open_legacy()
            return
        self._dir = SegmentDir(self.path, create=not read_only)
        if not read_only and hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def _child() -> None:
                me = ref()
                if me is not None:
                    me._after_fork()

            os.register_at_fork(after_in_child=_child)

    def _open_legacy(self) -> None:
        import duckdb
        try:
            self._con = _duck.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            raise ConfigurationError(f"cannot open the single-file ledger {self.path}: {exc}. If an earlier "
                                     "otel-costattr is writing it, stop that process, then run `otel-costattr ledger "
                                     f"migrate {self.path}`") from None

    def _after_fork(self) -> None:
        # The child writes a stream of its own; the parent's reader connection (and its threads) stays the
        # parent's: the child opens its own when it first reads.
        self._lock = threading.Lock()
        if self._con is not None:
            # Never closed or freed here: the parent's DuckDB threads did not survive the fork, and a lock one of
            # them held would hang the child's close. Kept alive (a small leak, once per fork) instead.
            _PARENT_CONNECTIONS.append(self._con)
        self._con = None
        self._seen = None
        if self._dir is not None:
            self._dir.after_fork()

    # ------------------------------------------------------------------------------------------- writing

    def write_records(self, records: Iterable[SpanRecord], *, replace: bool = False) -> int:
        """Store records as one segment (``replace=True``: they replace earlier copies). Returns the count.

        Values that do not fit their column are stored as NULL and marked (see :func:`record_to_row`);
        they are counted in ``out_of_range_values`` and the first one is logged.
        """
        return self.write_rows(self.rows(records), replace=replace)

    def rows(self, records: Iterable[SpanRecord], calls: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """The ledger rows of ``records`` (see :func:`record_to_row`; ``calls``: each record's ``Call``,
        :class:`Priced` or None, when the caller read them already), counting and logging values that did not fit
        their column."""
        bad: list[str] = []
        content, book = self.store_content, self.book
        if calls is None:
            rows = [record_to_row(r, store_content=content, book=book, out_of_range=bad) for r in records]
        else:
            rows = [record_to_row(r, store_content=content, book=book, out_of_range=bad, call=c)
                    for r, c in zip(records, calls)]
        if bad:
            self.out_of_range_values += len(bad)
            if not self._warned_range:
                self._warned_range = True
                logger.warning("ledger: %d value(s) did not fit their column (first: %s) and were stored as NULL, "
                               "marked out_of_range:<column> in cost_flags; further ones are only counted "
                               "(Ledger.out_of_range_values)", len(bad), bad[0])
        return rows

    def write_spans(self, spans: Iterable[ReadableSpan]) -> int:
        return self.write_records(SpanRecord.from_readable(s) for s in spans)

    def write_rows(self, rows: Sequence[tuple[Any, ...]], *, replace: bool = False) -> int:
        """Store rows (``COLUMNS`` order) as one durable segment.

        With ``replace=True`` (re-ingestion) the rows replace earlier rows with the same ``(trace_id, span_id)``
        (the last copy wins, inside the batch too), so loading the same spans twice stores them once. The
        exporter path writes each span once and skips that.
        """
        if not rows:
            return 0
        return self._write_prepared(_prepare(rows, replace), replace)

    def write_stream(self, records: Iterable[SpanRecord], *, replace: bool = False,
                     batch_size: int = 65536, progress: Any = None) -> int:
        """Store many records, ``batch_size`` per segment; returns the count. For bulk loads.

        Records are converted on the calling thread while a second thread writes the previous batch (Parquet
        encoding and compression release the GIL). Memory holds at most three batches (one filling, one queued,
        one writing). ``progress(n)`` is called on the writer thread after each committed batch of ``n`` spans.

        Each batch commits on its own, in order: if a write fails, the batches before it are stored, the rest
        are not, and the error is raised here. ``replace`` is as for :meth:`write_rows`.
        """
        return self._stream(records, self.rows, replace, batch_size, progress)

    def write_read_stream(self, items: Iterable[tuple[SpanRecord, Any]], *, replace: bool = False,
                          batch_size: int = 65536, progress: Any = None) -> int:
        """:meth:`write_stream` of ``(record, Call, Priced or None)`` pairs: each record with what ``read_call``
        gave for it, when the caller read it already (``ingest``: the enricher did), or a :class:`Priced` call;
        same segments, same batches. Rows are made at each batch's end, just before they are converted (measured
        faster than holding made rows)."""
        def to_rows(pairs: list[tuple[SpanRecord, Any]]) -> list[tuple[Any, ...]]:
            return self.rows([r for r, _ in pairs], [c for _, c in pairs])

        return self._stream(items, to_rows, replace, batch_size, progress)

    def _stream(self, items: Iterable[Any], to_rows: Any, replace: bool, batch_size: int, progress: Any) -> int:
        import queue

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        todo: queue.Queue[Any] = queue.Queue(maxsize=1)
        failed: list[BaseException] = []
        written = [0]

        def _writer() -> None:
            while True:
                item = todo.get()
                if item is None:
                    return
                if failed:
                    continue  # keep draining so the producer never blocks on a dead writer
                try:
                    n = self._write_prepared(item, replace)
                    written[0] += n
                    if progress is not None:
                        progress(n)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                    failed.append(exc)

        writer = threading.Thread(target=_writer, name="otel-costattr-ledger-stream", daemon=True)
        writer.start()
        try:
            pending: list[Any] = []
            for item in items:
                pending.append(item)
                if len(pending) >= batch_size:
                    if failed:
                        break
                    todo.put(_prepare(to_rows(pending), replace))
                    pending = []
            if pending and not failed:
                todo.put(_prepare(to_rows(pending), replace))
        finally:
            todo.put(None)
            writer.join()
        if failed:
            raise failed[0]
        return written[0]

    def _write_prepared(self, prepared: tuple[Any, int, bool], replace: bool) -> int:
        if self._dir is None or self.read_only:
            raise ConfigurationError(f"ledger {self.path} was opened read-only")
        table, n, unresolved = prepared
        flags = ("r" if replace else "") + ("s" if unresolved else "")
        with self._lock:
            try:
                self._dir.write(table, flags=flags, schema=SCHEMA_VERSION)
            except OSError as exc:
                if not exc.filename:
                    exc.filename = str(self._dir.seg_dir)
                again = " Loading the same spans again replaces them; it does not double them." if replace else ""
                raise LedgerStorageError(storage_message(
                    exc, f"could not write {n} span(s) to the ledger {self.path}",
                    f"The {self.committed} span(s) this process stored before are safe (each batch is "
                    f"committed on its own).{again}")) from None
            self.committed += n
            try:
                self._dir.merge_own()
            except Exception as exc:  # noqa: BLE001 - the batch is stored; merging is retried with the next one
                logger.debug("merging this writer's segments failed (%s); retried later", exc, exc_info=True)
        return n

    # ------------------------------------------------------------------------------------------- reading

    def _connect(self) -> Any:
        if self._con is None:
            # Segments are immutable: their Parquet footers can be cached across queries (a report runs a few
            # dozen queries over the same files; while writers write, most files stay the same).
            self._con = _duck.connect()
            self._con.execute("SET parquet_metadata_cache = true")
            cols = ", ".join(f"{n} {t.replace(' NOT NULL', '').replace('JSON', 'VARCHAR')}" for n, t in COLUMNS)
            self._con.execute(f"CREATE TABLE _empty ({cols})")
            # small segments held in memory (see _refresh): their rows, and name -> file size
            self._con.execute(f"CREATE TABLE _small ({cols}, _seg VARCHAR)")
            self._small: dict[str, int] = {}
            self._views: tuple[str, str] | None = None  # the SQL of the spans and calls views now
        return self._con

    def _refresh(self) -> None:
        """Point the ``spans`` and ``calls`` views at the segments present now (only when they changed).

        Small plain segments (what live writers commit every half second, before their own merges fold them)
        are read once into the in-memory table ``_small`` and queried there: each Parquet file a query opens costs
        about 0.7 ms, so a report's 30 queries over 30 such files took 2.5x the CPU of the same report over one
        file (``bench_ledger``). Segments are immutable, so a copy stays right until the segment leaves the
        live list (merged or compacted), when it is dropped. Bounded: files under :data:`SMALL_SEGMENT_BYTES`,
        at most :data:`SMALL_CACHE_BYTES` of them (file sizes); the rest are read as files.
        """
        import duckdb

        assert self._dir is not None
        segs = self._dir.live()
        names = tuple(s.name for s in segs)
        con = self._connect()
        if names == self._seen:
            return
        small = self._small
        keep: dict[str, int] = {}
        budget = SMALL_CACHE_BYTES if self._small_bytes is None else self._small_bytes
        for seg in segs:
            if seg.flags:
                continue  # re-loads and shadowing duplicates are settled by the views over their files
            size = small.get(seg.name)
            if size is None:
                size = seg.path.stat().st_size  # FileNotFoundError (merged away meanwhile): query() lists again
            if size < SMALL_SEGMENT_BYTES and size <= budget:
                keep[seg.name] = size
                budget -= size
        gone = [n for n in small if n not in keep]
        if gone:
            con.execute("DELETE FROM _small WHERE _seg = ANY(?)", [gone])
            for name in gone:
                del small[name]
        for seg in segs:
            if seg.name in keep and seg.name not in small:
                literal = str(seg.path).replace("'", "''")
                try:  # a segment merged away since the listing fails here (IOException): query() lists again
                    con.execute(f"INSERT INTO _small SELECT {_COLUMN_LIST}, ? FROM read_parquet('{literal}')",
                                [seg.name])
                except (duckdb.BinderException, duckdb.ConversionException):
                    continue  # not in this version's columns: read as a file, as before
                small[seg.name] = keep[seg.name]
        files = [s for s in segs if s.name not in small]
        views = (_spans_sql(files, cached=bool(small)), _calls_sql(segs))
        if views != self._views:  # a new small segment alone changes _small, not the views
            con.execute(f"CREATE OR REPLACE VIEW spans AS {views[0]}")
            con.execute(f"CREATE OR REPLACE VIEW calls AS {views[1]}")
            self._views = views
        self._seen = names

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` over ``spans`` and ``calls`` as of now. A segment compacted away between listing and
        reading makes DuckDB fail to open it: the listing is taken again (up to five times)."""
        import duckdb

        with self._lock:
            if self._dir is None:
                return self._con.execute(sql, params or []).fetchall()
            for attempt in range(5):
                try:
                    self._refresh()
                    return self._con.execute(sql, params or []).fetchall()
                except (duckdb.IOException, FileNotFoundError) as exc:
                    if attempt == 4:
                        raise _unreadable(self.path, exc) from None
                    self._seen = None
                    time.sleep(0.01 * (attempt + 1))
                except duckdb.InvalidInputException as exc:
                    if "parquet" not in str(exc).lower():
                        raise
                    raise _unreadable(self.path, exc) from None
            raise AssertionError("unreachable")  # pragma: no cover

    def count(self) -> int:
        return self.query("SELECT count(*) FROM spans")[0][0]

    def load_counts(self, before: set[str]) -> tuple[int, int, int]:
        """For a load this object just wrote (its stream's segments not in ``before``): (distinct spans stored,
        how many of them replaced a copy other segments already held, how many of its billed calls (response
        id + provider) also appear in another span, of this load or of the ledger)."""
        assert self._dir is not None
        import duckdb
        for attempt in range(5):
            segs = self._dir.live()
            mine = [s for s in segs if s.name not in before and s.stream == self._dir.stream]
            others = [s for s in segs if not (s.name not in before and s.stream == self._dir.stream)]
            if not mine:
                return 0, 0, 0
            keys = f"SELECT DISTINCT trace_id, span_id FROM {_parquet_list(mine)}"
            calls = ("SELECT response_id, coalesce(lower(provider), '') AS p FROM {} "
                     "WHERE is_llm AND response_id IS NOT NULL")
            mine_calls = calls.format(_parquet_list(mine))
            sql = (f"SELECT (SELECT count(*) FROM ({keys})), " + (
                f"(SELECT count(*) FROM ({keys}) m SEMI JOIN (SELECT trace_id, span_id FROM {_parquet_list(others)}) "
                "o USING (trace_id, span_id))" if others else "0") +
                f", (SELECT count(*) FROM (SELECT response_id, p FROM ({mine_calls}) GROUP BY ALL HAVING count(*) > 1"
                + (f" UNION SELECT m.response_id, m.p FROM ({mine_calls}) m SEMI JOIN ("
                   f"{calls.format(_parquet_list(others))}) o USING (response_id, p)" if others else "") + "))")
            try:
                with self._lock:
                    got = self._connect().execute(sql).fetchone()
                return got[0], got[1], got[2]
            except (duckdb.IOException, FileNotFoundError):
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def settle_load(self, before: set[str]) -> None:
        """A load that replaced nothing and paired with nothing needs no settling at read time: drop the ``r``
        flag of its segments (a rename each, under the compaction lock), so reports read them as plain ones."""
        assert self._dir is not None
        self._dir.drop_flag("r", lambda s: s.name not in before and s.stream == self._dir.stream)

    def segments(self) -> list[Any]:
        """The segments a reader reads now (empty for a single-file ledger)."""
        return [] if self._dir is None else self._dir.live()

    def close(self) -> None:
        """Close the reader connection; a writer also merges its stream's remaining small segments into one (its
        stream ends here: a process that is gone should leave one file, not several per merge level)."""
        with self._lock:
            con, self._con = self._con, None
            self._seen = None
            if con is not None:
                con.close()
            if self._dir is not None and not self.read_only and self._dir.pid == os.getpid():
                try:
                    self._dir.seal()
                except Exception as exc:  # noqa: BLE001 - everything is stored; only the file count stays higher
                    logger.debug("sealing this writer's segments failed (%s)", exc, exc_info=True)


_PARENT_CONNECTIONS: list[Any] = []  # reader connections a forked child inherited (see Ledger._after_fork)
#: A reader holds plain segment files smaller than this in memory (see Ledger._refresh): a live writer's
#: half-second batch is a few tens of kB, its first merges a few hundred.
SMALL_SEGMENT_BYTES = 1 << 20
#: ... and at most this many bytes of such files (their rows take a few times that in memory).
SMALL_CACHE_BYTES = 8 << 20


def _unreadable(path: Path, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"cannot read the ledger {path}: {str(exc).splitlines()[0]}. Nothing was changed. A segment file named "
        f"there is damaged or unreadable: move it out of {path / 'segments'} (the rest stays readable), or restore it")


def _parquet_list(segs: Sequence[Any], extra: str = "") -> str:
    paths = ", ".join("'" + str(s.path).replace("'", "''") + "'" for s in segs)
    return f"read_parquet([{paths}]{extra})"


def _spans_sql(segs: Sequence[Any], cached: bool = False) -> str:
    """Every span of ``segs`` (and, with ``cached``, of the plain segments held in ``_small``)."""
    base = [s for s in segs if "r" not in s.flags]
    rep = [s for s in segs if "r" in s.flags]
    if cached:
        cols = _COLUMN_LIST  # named, in a plain UNION ALL: queries read only the columns they need from the files
        files = f"SELECT {cols} FROM {_parquet_list(base)} UNION ALL " if base else ""
        plain = f"({files}SELECT {cols} FROM _small)"
    elif not segs:
        return "SELECT * FROM _empty"
    else:
        plain = _parquet_list(base) if base else ""
    if not rep:
        return f"SELECT * FROM {plain}"
    # Re-loaded rows win over earlier copies of the same span; among re-loads, the newest segment wins.
    newest = (f"SELECT * EXCLUDE (filename) FROM {_parquet_list(rep, ', filename = true')} "
              "QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY filename DESC) = 1")
    if not plain:
        return newest
    return (f"SELECT * FROM {plain} ANTI JOIN (SELECT trace_id, span_id FROM {_parquet_list(rep)}) "
            f"USING (trace_id, span_id) UNION ALL BY NAME {newest}")


def _calls_sql(segs: Sequence[Any], spans: str = "spans") -> str:
    shadow = [s for s in segs if "s" in s.flags]
    rep = [s for s in segs if "r" in s.flags]
    where = "is_llm AND counted"
    if shadow:
        # A counted span written in a later batch than the span it names in duplicate_of un-counts it (a more
        # detailed duplicate, or the carrier of a call whose twin without usage ended first).
        where += (f" AND span_id NOT IN (SELECT duplicate_of FROM {_parquet_list(shadow)} WHERE counted AND "
                  "duplicate_of IS NOT NULL)")
    if not rep:
        return f"SELECT * FROM {spans} WHERE {where}"
    # Re-loaded files can repeat a call that another file (or a live writer) stored under another span: for the
    # calls the re-loads touch, which span counts is decided again over every copy (see _RANK_SQL).
    return f"""WITH _keys AS (
    SELECT DISTINCT response_id, coalesce(lower(provider), '') AS p FROM {_parquet_list(rep)}
    WHERE is_llm AND response_id IS NOT NULL),
  _rank AS (
    SELECT s.trace_id, s.span_id, row_number() OVER (
        PARTITION BY s.response_id, coalesce(lower(s.provider), '')
        ORDER BY (s.cost_total IS NOT NULL) DESC, coalesce(s.usage_detail, 0) DESC, s.end_ns, s.span_id) AS _rn
    FROM {spans} s JOIN _keys k ON s.response_id = k.response_id AND coalesce(lower(s.provider), '') = k.p
    WHERE s.is_llm)
SELECT s.* FROM {spans} s LEFT JOIN _rank r ON s.trace_id = r.trace_id AND s.span_id = r.span_id
WHERE CASE WHEN r._rn IS NULL THEN {where.replace("span_id", "s.span_id")} ELSE s.is_llm AND r._rn = 1 END"""


class LedgerSet:
    """Several ledgers read as one rollup source: its ``spans`` and ``calls`` are the union of theirs, each ledger
    read live as :class:`Ledger` reads it (ledger directories) or attached read-only (single files of earlier
    versions). A call stored in two of them counts twice: pass ledgers that hold different spans.

    Raises:
        ConfigurationError: a path is missing or not a ledger (see :class:`Ledger`).
    """

    dialect = "duckdb"

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        import duckdb

        self.ledgers = [Ledger(p, read_only=True) for p in paths]  # each validated, with its own message
        for led in self.ledgers:
            if led._con is not None:  # a single file: attached below instead
                led._con.close()
                led._con = None
        self._lock = threading.Lock()
        self._seen: tuple[Any, ...] | None = None
        self.con = _duck.connect()
        self.con.execute("SET parquet_metadata_cache = true")
        cols = ", ".join(f"{n} {t.replace(' NOT NULL', '').replace('JSON', 'VARCHAR')}" for n, t in COLUMNS)
        self.con.execute(f"CREATE TABLE _empty ({cols})")
        for i, led in enumerate(self.ledgers):
            if led._dir is None:
                literal = str(led.path).replace("'", "''")
                try:
                    self.con.execute(f"ATTACH '{literal}' AS l{i} (READ_ONLY)")
                except duckdb.Error as exc:
                    raise ConfigurationError(f"cannot open ledger {led.path}: {exc}") from None
                for view in ("spans", "calls"):
                    self.con.execute(f"CREATE VIEW {view}_{i} AS SELECT * FROM l{i}.{view}")
        self.path = self.ledgers[0].path if self.ledgers else None
        self._refresh()  # the per-ledger views exist before the union names them
        for view in ("spans", "calls"):
            union = " UNION ALL BY NAME ".join(f"SELECT * FROM {view}_{i}" for i in range(len(self.ledgers)))
            self.con.execute(f"CREATE VIEW {view} AS {union}")

    def _refresh(self) -> None:
        listing = [(i, led._dir.live()) for i, led in enumerate(self.ledgers) if led._dir is not None]
        names = tuple(tuple(s.name for s in segs) for _, segs in listing)
        if names == self._seen:
            return
        for i, segs in listing:
            self.con.execute(f"CREATE OR REPLACE VIEW spans_{i} AS {_spans_sql(segs)}")
            self.con.execute(f"CREATE OR REPLACE VIEW calls_{i} AS {_calls_sql(segs, spans=f'spans_{i}')}")
        self._seen = names

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        import duckdb

        with self._lock:
            for attempt in range(5):
                try:
                    self._refresh()
                    return self.con.execute(sql, params or []).fetchall()
                except (duckdb.IOException, FileNotFoundError) as exc:
                    if attempt == 4:
                        raise _unreadable(Path(str(self.path)), exc) from None
                    self._seen = None
                    time.sleep(0.01 * (attempt + 1))
            raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            self.con.close()
            for led in self.ledgers:
                led.close()


def open_ledger(path: str | os.PathLike[str], **kwargs: Any) -> Ledger:
    return Ledger(path, **kwargs)

class LedgerExporter(SpanExporter):
    """Writes span batches to a :class:`Ledger`. Never raises; a failed batch returns ``FAILURE``."""

    def __init__(self, ledger: Ledger | str | os.PathLike[str], **kwargs: Any) -> None:
        self.ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger, **kwargs)
        self.failed_batches = 0
        self.written = 0
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.written += self.ledger.write_spans(spans)
            return SpanExportResult.SUCCESS
        except Exception as exc:  # noqa: BLE001 - exporters report failure, they do not raise
            self.failed_batches += 1
            if not self._warned:
                self._warned = True
                logger.warning("ledger write failed (%s: %s); the batch of %d span(s) was not stored. Further "
                               "failures are only counted.", type(exc).__name__, exc, len(spans))
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.ledger.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class LedgerSpanProcessor(SpanProcessor):
    """Writes every ended span to the ledger in batches, on its own thread, without losing spans to a full queue.

    It stores *unsampled* spans too: spans recorded but not sampled (``CostAwareSampler`` keeps LLM calls that
    the head sampler dropped) are not exported to backends, but the ledger must see every priced call to stay
    exact.

    Contract:

    * ``on_end`` never raises. It appends the span to a bounded queue (``max_queue_size``) that a worker
      thread writes in batches of up to ``max_export_batch_size`` (at once when a batch is full, else every
      ``schedule_delay_millis``, default 0.5 s, so the first batch is durable within about a second of the first
      span). A batch is acknowledged only after its segment is durable (see :class:`Ledger`).
    * Backpressure instead of loss: when the queue is full (the writer is behind: slow disk, long checkpoint,
      a burst bigger than the queue), the thread ending the span waits for space, at most
      ``max_block_millis`` (default 5 s). So under sustained overload the application runs at the speed of
      the ledger instead of losing spend. The wait blocks the calling thread, which in asyncio code is the
      event loop; a wait ends as soon as the writer takes the next batch.
    * Bounded wait, then counted loss: if no space frees up within ``max_block_millis`` the writer is taken to
      be stalled, that span is dropped, and so is every span that finds the queue full until the writer takes
      a batch again (so a stalled disk costs the application one bounded wait, not one per span). Spans ended
      after :meth:`shutdown` are dropped too. Every drop is counted, by reason and by whether the span carried a cost, in :meth:`stats` and the
      ``otel_costattr.ledger.spans.dropped`` counter (attributes ``reason``, ``gen_ai.cost.status``), and
      logged once per reason. All spans are treated alike (no priority for priced ones): non-LLM spans are
      the parents that retry chains and the call tree need.
    * Memory is bounded: at most ``max_queue_size`` queued spans (plus one per producer thread racing past the
      check) and one batch being written.
    * A batch the ledger refuses (disk full, read-only file) is counted in ``exporter.failed_batches`` and
      logged once; the spans of a failed batch are not retried.

    * Fork-safe: in a child made by ``os.fork`` (gunicorn ``--preload``, multiprocessing, Celery prefork) the
      processor starts a worker of its own when the child ends its first span, and writes a segment stream of
      its own; spans the parent had queued stay the parent's to write. Nothing is dropped for being forked.

    ``force_flush`` writes everything queued before the call and waits for it (up to ``timeout_millis``); it
    takes no lock the application's threads hold, so a signal handler may call it (``configure()`` does, on
    SIGTERM/SIGINT). ``shutdown`` stops accepting spans, writes what is queued (up to 30 s), then closes the
    ledger.
    """

    def __init__(self, ledger: Ledger | str | os.PathLike[str], *, max_queue_size: int = 8192,
                 schedule_delay_millis: float = 500, max_export_batch_size: int = 2048,
                 max_block_millis: float = 5000, meter_provider: Any = None, **kwargs: Any) -> None:
        if max_queue_size < 1 or max_export_batch_size < 1 or max_export_batch_size > max_queue_size:
            raise ValueError("need 1 <= max_export_batch_size <= max_queue_size")
        if schedule_delay_millis < 0 or max_block_millis < 0:
            raise ValueError("schedule_delay_millis and max_block_millis must be >= 0")
        self.exporter = LedgerExporter(ledger, **kwargs)
        self._max_queue = max_queue_size
        self._batch = max_export_batch_size
        self._delay = schedule_delay_millis / 1000
        self._max_block = max_block_millis / 1000
        # Producers append on the right without a lock (deque appends are atomic); the worker takes from the
        # left. The lock-free check lets a few racing producers pass the bound by one span each, no more.
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()  # set by producers when a batch is ready, by flush and shutdown
        self._space = threading.Condition(threading.Lock())  # producers waiting for room; guards the fields below
        self._stalled = False  # a producer gave up waiting: drop without waiting until the writer moves again
        # Flush requests: appended without a lock (a signal handler may flush), taken by the worker.
        self._flush_requests: deque[threading.Event] = deque()
        self._closed = False
        self._forked = False
        self._counts: dict[str, int] = {}
        self._logged: set[str] = set()
        self._waits = 0
        self._wait_s = 0.0
        self._longest_wait_s = 0.0
        meter = (meter_provider.get_meter("otel_costattr", __version__) if meter_provider is not None
                 else metrics.get_meter("otel_costattr", __version__))
        self._dropped_metric = meter.create_counter(
            "otel_costattr.ledger.spans.dropped", unit="{span}",
            description="Spans the ledger did not store because its writer stalled or it was shut down")
        self._worker = threading.Thread(target=self._work, name="otel-costattr-ledger", daemon=True)
        self._worker.start()
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def _in_child() -> None:
                me = ref()
                if me is not None:
                    me._after_fork()

            os.register_at_fork(after_in_child=_in_child)

    def _after_fork(self) -> None:
        # Only the forking thread survives: the worker is gone, and a lock it (or any other thread) held stays
        # held forever. Fresh ones; the worker is started again by the first span the child ends (starting a
        # thread inside a fork handler is not safe everywhere). The parent's queued spans are the parent's.
        self._forked = True
        self._queue = deque()
        self._wake = threading.Event()
        self._space = threading.Condition(threading.Lock())
        self._flush_requests = deque()
        self._stalled = False
        # The child's counters describe the child.
        self._counts = {}
        self._waits, self._wait_s, self._longest_wait_s = 0, 0.0, 0.0
        self.exporter.written = self.exporter.failed_batches = 0

    def _restart_worker(self) -> None:
        """In a forked child: start the child's own worker (once)."""
        with self._space:
            if not self._forked:
                return
            self._worker = threading.Thread(target=self._work, name="otel-costattr-ledger", daemon=True)
            self._worker.start()
            self._forked = False

    @property
    def ledger(self) -> Ledger:
        return self.exporter.ledger

    # ------------------------------------------------------------------------------------ hot path

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        """Queue ``span`` for the ledger; waits (bounded) when the queue is full. Never raises."""
        q = self._queue
        if len(q) < self._max_queue and not self._closed and not self._forked:
            q.append(span)
            if len(q) >= self._batch and not self._wake.is_set():
                self._wake.set()
            return
        try:
            self._on_end_slow(span)
        except Exception:  # noqa: BLE001 - a processor never raises into the application
            logger.debug("ledger on_end failed", exc_info=True)

    def _on_end_slow(self, span: ReadableSpan) -> None:
        if self._forked and not self._closed:
            self._restart_worker()
        if self._closed:
            self._drop(span, "shutdown", "a span ended after the ledger processor was shut down")
            return
        if threading.current_thread() is self._worker:  # waiting for ourselves would only time out
            self._drop(span, "queue_full", "the ledger queue is full")
            return
        q = self._queue
        with self._space:
            if len(q) >= self._max_queue and not self._stalled:
                self._wake.set()
                t0 = time.monotonic()
                deadline = t0 + self._max_block
                while len(q) >= self._max_queue and not self._closed and not self._stalled:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._stalled = True
                        break
                    self._space.wait(left)
                waited = time.monotonic() - t0
                self._waits += 1
                self._wait_s += waited
                self._longest_wait_s = max(self._longest_wait_s, waited)
            if len(q) < self._max_queue and not self._closed:
                q.append(span)
                if len(q) >= self._batch:
                    self._wake.set()
                return
            reason = "shutdown" if self._closed else "queue_full"
        self._drop(span, reason, "a span ended after the ledger processor was shut down" if self._closed else
                   f"the ledger writer took no batch for {self._max_block:g} s (max_block_millis) while its "
                   f"queue was full ({self._max_queue} spans)")

    def _drop(self, span: ReadableSpan, reason: str, why: str) -> None:
        status = None
        try:
            status = span.attributes.get(A.COST_STATUS) if span.attributes else None
        except Exception:  # noqa: BLE001
            pass
        priced = status in _PRICED
        with self._space:
            self._counts[reason] = self._counts.get(reason, 0) + 1
            if priced:
                self._counts["priced"] = self._counts.get("priced", 0) + 1
            first = reason not in self._logged
            self._logged.add(reason)
        try:
            self._dropped_metric.add(1, {"reason": reason, A.COST_STATUS: status if type(status) is str else "none"})
        except Exception:  # noqa: BLE001 - a broken meter must not break tracing
            pass
        if first:
            logger.warning("otel-costattr ledger: dropping spans: %s. Spend in the ledger is incomplete; drops are "
                           "counted in LedgerSpanProcessor.stats() and the otel_costattr.ledger.spans.dropped "
                           "metric (logged once per reason).", why)

    # ------------------------------------------------------------------------------------ worker

    def _take(self, limit: int) -> list[ReadableSpan]:
        q = self._queue
        batch = []
        try:
            for _ in range(min(limit, len(q))):
                batch.append(q.popleft())
        except IndexError:  # pragma: no cover - only the worker takes
            pass
        if batch:
            with self._space:  # room again: waiting producers go on, and a stall is over
                self._stalled = False
                self._space.notify_all()
        return batch

    def _export(self, batch: list[ReadableSpan]) -> None:
        try:
            self.exporter.export(batch)
        except Exception as exc:  # noqa: BLE001 - LedgerExporter does not raise; a replaced exporter might
            self.exporter.failed_batches += 1
            logger.warning("ledger export raised %s: %s; the batch of %d span(s) was not stored",
                           type(exc).__name__, exc, len(batch))

    def _work(self) -> None:
        # Nothing the ledger does while writing may create spans of its own (an instrumented driver would).
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        delay = max(self._delay, 0.001)  # a zero delay would spin on an empty queue
        while True:
            woken = self._wake.wait(delay)
            self._wake.clear()
            flushes = []
            while self._flush_requests:
                flushes.append(self._flush_requests.popleft())
            with self._space:
                closing = self._closed
            if flushes or closing:
                n = len(self._queue)  # everything queued before the request; later spans wait their turn
                while n > 0:
                    batch = self._take(min(n, self._batch))
                    if not batch:
                        break
                    n -= len(batch)
                    self._export(batch)
                for done in flushes:
                    done.set()
                if closing:
                    return
                continue
            # Full batches while there are any; when the delay ran out, also the partial one.
            while len(self._queue) >= self._batch:
                self._export(self._take(self._batch))
            if not woken and self._queue:
                self._export(self._take(self._batch))

    # ------------------------------------------------------------------------------------ lifecycle

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write everything queued before this call; True once written (or refused and counted) in time.

        Takes no lock that producers hold (the request goes on a lock-free queue), so it is safe to call from a
        signal handler or while other threads are ending spans.
        """
        if self._forked:
            if not self._queue:
                return True  # a forked child that has ended no span yet: nothing to write
            self._restart_worker()
        if self._closed or not self._worker.is_alive() or threading.current_thread() is self._worker:
            return False
        done = threading.Event()
        self._flush_requests.append(done)
        self._wake.set()
        return done.wait(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Stop accepting spans, write what is queued (up to ``timeout_millis``), close the ledger."""
        with self._space:
            if self._closed:
                return
            self._closed = True
            self._space.notify_all()  # producers waiting for room stop waiting (and drop, counted)
        if self._forked:  # a forked child that never ended a span: no worker, nothing queued
            self.exporter.shutdown()
            return
        self._wake.set()
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout_millis / 1000)
        left = len(self._queue)
        if left:
            with self._space:
                self._counts["shutdown"] = self._counts.get("shutdown", 0) + left
            logger.warning("otel-costattr ledger: %d span(s) still queued when shutdown timed out were not stored",
                           left)
        self.exporter.shutdown()  # Ledger.close waits for a write still in progress (its lock)

    def stats(self) -> dict[str, Any]:
        """Counters: ``queued``, ``written``, ``failed_batches``, ``dropped`` (total) and
        ``dropped_priced`` (spans that carried a cost), ``dropped_queue_full`` / ``dropped_shutdown`` (and
        ``dropped_forked``, always 0 since forked children write their own stream), and the backpressure waits (``waits``, ``wait_s``, ``longest_wait_s``)."""
        with self._space:
            counts = dict(self._counts)
            waits, wait_s, longest = self._waits, self._wait_s, self._longest_wait_s
        by_reason = {f"dropped_{r}": counts.get(r, 0) for r in ("queue_full", "shutdown", "forked")}
        return {"queued": len(self._queue), "written": self.exporter.written,
                "failed_batches": self.exporter.failed_batches, "dropped": sum(by_reason.values()),
                "dropped_priced": counts.get("priced", 0), **by_reason, "waits": waits,
                "wait_s": round(wait_s, 3), "longest_wait_s": round(longest, 3)}
