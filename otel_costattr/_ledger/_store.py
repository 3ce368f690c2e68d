"""The ledger: every span of every trace in a DuckDB file, with exact decimal cost (DESIGN D11).

One row per span (not only LLM spans: retry chains and the call tree need the parents). Money is stored as
``DECIMAL(38, 18)`` and summed exactly by DuckDB. Writes are batched (one ``INSERT ... SELECT unnest(...)``
per batch, not row by row), idempotent (``INSERT OR REPLACE`` on ``(trace_id, span_id)``) and transactional:
:meth:`Ledger.write` returns only after DuckDB committed the batch to its write-ahead log, so a span whose
export returned success survives a crash, and a crash mid-batch leaves no partial batch behind.

Prompt and completion content captured by instrumentations is *not* stored unless ``store_content=True``.

Concurrency: one process opens the file for writing (DuckDB's rule). Inside it, a lock serialises writers
(normally only the batch processor's worker thread writes).
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
from typing import Any

from opentelemetry import metrics
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import attributes as A
from .._errors import ConfigurationError
from .._capture._enrich import plain_attributes
from .._capture._usage import read_call
from .._version import __version__

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
_COLS_SQL = ", ".join(_NAMES)
_DUP_OF, _COUNTED, _STATUS = _NAMES.index("duplicate_of"), _NAMES.index("counted"), _NAMES.index("cost_status")
# Money arrives as float64 and becomes an exact decimal through its shortest text form (see _dec).
_SELECT_SQL = ", ".join(f"CAST(CAST({n} AS VARCHAR) AS DECIMAL(38,18)) AS {n}" if t.startswith("DECIMAL") else n
                        for n, t in COLUMNS)


def _arrow_schema() -> Any:
    import pyarrow as pa
    kinds = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(), "BOOLEAN": pa.bool_(),
             "JSON": pa.string(), "DECIMAL(38,18)": pa.float64()}
    return pa.schema([(n, kinds[t.replace(" NOT NULL", "")]) for n, t in COLUMNS])


_SCHEMA_CACHE: list[Any] = []  # the row struct type, built on first write: importing the ledger leaves pyarrow out


def _prepare(rows: Sequence[tuple[Any, ...]]) -> tuple[Any, int, list[Any]]:
    """Rows -> (Arrow table, row count, span ids a more detailed duplicate takes over). Needs the GIL."""
    import pyarrow as pa

    if not _SCHEMA_CACHE:
        _SCHEMA_CACHE.append(pa.struct(list(_arrow_schema())))
    # One struct array, then columns: Arrow transposes in C++, about twice as fast as zip(*rows) plus one
    # pa.array per column.
    table = pa.Table.from_batches([pa.RecordBatch.from_struct_array(pa.array(rows, type=_SCHEMA_CACHE[0]))])
    shadowed = [row[_DUP_OF] for row in rows if row[_COUNTED] and row[_STATUS] == "duplicate"]
    return table, len(rows), shadowed


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


# What the columns can hold. DECIMAL(38,18) keeps 20 integer digits; one value beyond its column's range
# used to fail the Arrow conversion or DuckDB's CAST for the whole batch (up to 2,048 spans).
_MONEY_LIMIT = 1e20
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_NONE3 = (None, None, None)


class _OutOfRange(dict):
    """Column -> original value, for the values of one row that did not fit their column."""


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
        if value >= _MONEY_LIMIT:  # compared as int: float() of a huge int would raise
            if bad is not None:
                bad[column or "?"] = value
            return None
        value = float(value)
    else:
        return None
    if value >= _MONEY_LIMIT:
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
    A.COST_DUPLICATE_OF, A.COST_FLAGS, A.COST_UNCACHED_INPUT, A.COST_TEXT_OUTPUT, A.COST_CURRENCY,
    A.COST_PROVIDER, A.LANGFUSE_COST_DETAILS, "http.request.resend_count", "error.type",
    A.COST_LAYER_PROMPT_TOKENS, A.COST_LAYER_TOOL_TOKENS, A.COST_LAYER_MEMORY_TOKENS, A.COST_LAYER_SOURCE,
    A.COST_LAYER_PROMPT, A.COST_LAYER_TOOL, A.COST_LAYER_MEMORY,
    *ATTRIBUTION_COLUMNS})
_PRICED = frozenset({"priced", "partial", "provided"})
_LAYER_ATTRS = frozenset({A.COST_LAYER_PROMPT_TOKENS, A.COST_LAYER_TOOL_TOKENS, A.COST_LAYER_MEMORY_TOKENS,
                          A.COST_LAYER_PROMPT, A.COST_LAYER_TOOL, A.COST_LAYER_MEMORY})
_COST_TEXT = frozenset({A.COST_MODEL, A.COST_PRICING_VERSION, A.COST_DUPLICATE_OF, A.COST_PROVIDER,
                        A.COST_LAYER_SOURCE})
_COST_MONEY = frozenset({A.COST_TOTAL, A.COST_INPUT, A.COST_OUTPUT, A.COST_CACHE_READ, A.COST_REASONING,
                         A.COST_CACHE_WRITE, A.COST_CACHE_WRITE_1H, A.COST_TOOL_USAGE})


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
    """The attribution columns' values: strings cut to 256 characters, other values as their text."""
    values = tuple(map(a.get, ATTRIBUTION_COLUMNS))
    for v in values:
        if v is not None and (type(v) is not str or len(v) > 256):
            return tuple(map(_str_or_none, values))  # some value needs converting or cutting
    return values  # all short strings or absent: the common case


def record_to_row(rec: SpanRecord, *, store_content: bool = False, book: Any = None,
                  out_of_range: list[str] | None = None) -> tuple[Any, ...]:
    """One ledger row (in ``COLUMNS`` order). Never raises on odd attribute values.

    Every value fits its column, so one span can never fail the write of its batch. A value that does not fit
    (a cost of 1e20 or more for ``DECIMAL(38,18)``, ``http.request.resend_count`` outside INTEGER, a token
    count or time outside BIGINT) is stored as NULL instead; the row says so in ``cost_flags``
    (``out_of_range:<column>``) and keeps the original value in ``attributes`` (key
    ``otel_costattr.out_of_range.<column>``). When the call's total cost is the value that did not fit, its
    ``cost_status`` becomes ``unpriced``: an unknown cost is counted as unknown, never summed as zero. The
    names of the affected columns are appended to ``out_of_range`` when given (the ledger counts them).
    """
    a = rec.attributes
    call = read_call(a)
    is_llm = call.is_llm_call
    status = a.get(A.COST_STATUS)
    if type(status) is not str:
        status = None
    bad = _OutOfRange()
    if _COST_MONEY.isdisjoint(a):  # no money on the span (most spans): skip eight look-ups and checks
        cost_total = c_in = c_out = c_cr = c_rs = c_cw = c_tool = None
    else:
        cost_total = _dec(a.get(A.COST_TOTAL), "cost_total", bad) if status in _PRICED else None
        c_in, c_out = _dec(a.get(A.COST_INPUT), "cost_input", bad), _dec(a.get(A.COST_OUTPUT), "cost_output", bad)
        c_cr = _dec(a.get(A.COST_CACHE_READ), "cost_cache_read", bad)
        c_rs = _dec(a.get(A.COST_REASONING), "cost_reasoning", bad)
        c_cw = _sum_dec(a.get(A.COST_CACHE_WRITE), a.get(A.COST_CACHE_WRITE_1H), bad) \
            if A.COST_CACHE_WRITE in a else None
        c_tool = _dec(a.get(A.COST_TOOL_USAGE), "cost_tool", bad) if A.COST_TOOL_USAGE in a else None
    if cost_total is None and status == "provided" and "cost_total" not in bad:
        # an upstream cost may arrive as a numeric string (OTLP from other languages); the usage reader took it
        cost_total = _dec(call.provided_cost, "cost_total", bad)
    repriced_provider = None
    if status == "duplicate" and book is not None and call.has_usage and call.model:
        # Re-price the second span of a call so that the more detailed of the pair can be the one counted.
        try:
            cost = book.price(call.model, provider=call.provider, input_tokens=call.input_tokens or 0,
                              output_tokens=call.output_tokens or 0, cache_read_tokens=call.cache_read_tokens or 0,
                              cache_write_tokens=call.cache_write_tokens or 0,
                              cache_write_1h_tokens=call.cache_write_1h_tokens or 0,
                              reasoning_tokens=call.reasoning_tokens or 0, at=rec.start_ns or None)
            if cost.priced:
                repriced_provider = cost.provider
                w = ("cache_write", "cache_write_1h")
                cost_total = _dec(cost.total_float(), "cost_total", bad)
                c_in = _dec(cost.sum_float(("input", "cache_read") + w), "cost_input", bad)
                c_out = _dec(cost.sum_float(("output", "reasoning")), "cost_output", bad)
                c_cr = _dec(cost.sum_float(("cache_read",)), "cost_cache_read", bad)
                c_cw = _dec(cost.sum_float(w), "cost_cache_write", bad)
                c_rs = _dec(cost.sum_float(("reasoning",)), "cost_reasoning", bad)
        except Exception:  # noqa: BLE001 - a row is still written, without the re-priced figure
            logger.debug("could not re-price duplicate span", exc_info=True)
    flags = a.get(A.COST_FLAGS)
    if isinstance(flags, (tuple, list)):
        flags = ",".join(str(f) for f in flags)
    elif type(flags) is not str:
        flags = None
    resend = a.get("http.request.resend_count")
    resend = _in_range(resend, _INT32, "resend_count", bad) if type(resend) is int else None
    start_ns, end_ns = rec.start_ns, rec.end_ns
    if not (type(start_ns) is int and 0 <= start_ns <= _INT64[1]):  # the common case costs one test
        start_ns = _in_range(start_ns, _INT64, "start_ns", bad) if type(start_ns) is int else None
    if not (type(end_ns) is int and 0 <= end_ns <= _INT64[1]):
        end_ns = _in_range(end_ns, _INT64, "end_ns", bad) if type(end_ns) is int else None
    get = a.get
    if _LAYER_ATTRS.isdisjoint(a):  # most spans carry no layers
        layer_tokens = layer_costs = _NONE3
    else:
        lp, lt, lm = get(A.COST_LAYER_PROMPT_TOKENS), get(A.COST_LAYER_TOOL_TOKENS), get(A.COST_LAYER_MEMORY_TOKENS)
        layer_tokens = _NONE3 if lp is None and lt is None and lm is None else (
            _int_or_none(lp, "layer_prompt_tokens", bad), _int_or_none(lt, "layer_tool_tokens", bad),
            _int_or_none(lm, "layer_memory_tokens", bad))
        lp, lt, lm = get(A.COST_LAYER_PROMPT), get(A.COST_LAYER_TOOL), get(A.COST_LAYER_MEMORY)
        layer_costs = _NONE3 if lp is None and lt is None and lm is None else (
            _dec(lp, "cost_layer_prompt", bad), _dec(lt, "cost_layer_tool", bad),
            _dec(lm, "cost_layer_memory", bad))
    if _COST_TEXT.isdisjoint(a):
        model = version = dup_of = provider = source = None
    else:
        model, version = _str_or_none(get(A.COST_MODEL)), _str_or_none(get(A.COST_PRICING_VERSION))
        dup_of, provider = _str_or_none(get(A.COST_DUPLICATE_OF)), _str_or_none(get(A.COST_PROVIDER))
        source = _str_or_none(get(A.COST_LAYER_SOURCE))
    response_model = get("gen_ai.response.model")
    error_type = get("error.type")
    keep = _unmapped(a, store_content)
    if bad:
        marks = ",".join(f"out_of_range:{c}" for c in bad)
        flags = f"{flags},{marks}" if flags else marks
        for c, v in bad.items():
            keep[f"otel_costattr.out_of_range.{c}"] = repr(v)[:64]
        if "cost_total" in bad and status in _PRICED:
            status = "unpriced"
            c_in = c_out = c_cr = c_cw = c_rs = c_tool = None  # parts of a total that is not known
        if out_of_range is not None:
            out_of_range.extend(bad)
    return (
        rec.trace_id, rec.span_id, rec.parent_span_id or None, rec.name, rec.kind, rec.service_name, rec.scope_name,
        start_ns, end_ns, rec.status_code, None if error_type is None else _str_or_none(error_type),
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


def _sum_dec(a: Any, b: Any, bad: _OutOfRange | None = None) -> float | None:
    da, db = _dec(a, "cost_cache_write", bad), _dec(b, "cost_cache_write", bad)
    if da is None or db is None:
        return da if db is None else db
    # Exact decimal sum, then the nearest float: both halves are short decimals.
    return _dec(float(Decimal(repr(da)) + Decimal(repr(db))), "cost_cache_write", bad)


class Ledger:
    """A DuckDB ledger file (also a rollup :class:`~otel_costattr._analysis._rollup.Source`). Create with :func:`open_ledger` or ``Ledger(path)``.

    Raises:
        ConfigurationError: the file cannot be opened (missing folder, no permission, locked by another
            process, not a DuckDB file); the message names the fix.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, store_content: bool = False,
                 book: Any = None) -> None:
        import duckdb

        self.dialect = "duckdb"
        self.path = Path(path)
        self.store_content = store_content
        self.book = book
        self._lock = threading.Lock()
        self.out_of_range_values = 0  # values stored as NULL because they did not fit their column
        self._warned_range = False
        if not read_only and not self.path.parent.exists():
            raise ConfigurationError(f"ledger folder {self.path.parent} does not exist; create it or choose another "
                                     "path")
        if read_only and not self.path.exists():
            raise ConfigurationError(f"ledger {self.path} does not exist; run `otel-costattr demo` or pass the path "
                                     "your application writes (configure(ledger=...))")
        try:
            # 64 MB instead of DuckDB's 16 MB of WAL before a checkpoint: with the default, 8192-span batches
            # checkpointed every few batches and ingest slowed to half speed as the file grew (24 vs 11-12 us
            # per span at 2M spans, single batches stalling 2 s; measured, cause inside DuckDB not traced).
            # 64 MB holds steady and still bounds the WAL and DuckDB's memory (~75 MB measured).
            config = {} if read_only else {"checkpoint_threshold": "64MB"}
            self.con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            raise ConfigurationError(f"cannot open ledger {self.path}: {exc}. If another process is writing it, "
                                     "stop that process or read a copy of the file") from None
        if not read_only:
            self._migrate()
        self.read_only = read_only

    def _migrate(self) -> None:
        cols = ",\n  ".join(f"{n} {t}" for n, t in COLUMNS)
        self.con.execute("CREATE TABLE IF NOT EXISTS ledger_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        # No primary key: an ART index on two strings made every insert 3x slower and holds the whole key set
        # in memory. Uniqueness of (trace_id, span_id) is kept by the writers instead (see write_rows).
        self.con.execute(f"CREATE TABLE IF NOT EXISTS spans (\n  {cols})")
        have = {r[1] for r in self.con.execute("PRAGMA table_info('spans')").fetchall()}
        for name, kind in COLUMNS:  # a ledger written by an older version: add what is missing
            if name not in have:
                self.con.execute(f"ALTER TABLE spans ADD COLUMN {name} {kind.replace(' NOT NULL', '')}")
                if name == "counted":
                    self.con.execute("UPDATE spans SET counted = is_llm AND coalesce(cost_status, '') <> 'duplicate'")
                if name == "pricing_provider":
                    self.con.execute("UPDATE spans SET pricing_provider = json_extract_string(attributes, "
                                     "'$.\"gen_ai.cost.provider\"') WHERE is_llm")
        self.con.execute("INSERT OR REPLACE INTO ledger_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        self.con.execute(_CALLS_VIEW)

    # ------------------------------------------------------------------------------------------- writing

    def write_records(self, records: Iterable[SpanRecord], *, replace: bool = False) -> int:
        """Insert records in one transaction (``replace=True``: replacing earlier copies). Returns the count.

        Values that do not fit their column are stored as NULL and marked (see :func:`record_to_row`);
        they are counted in ``out_of_range_values`` and the first one is logged.
        """
        return self.write_rows(self._rows(records), replace=replace)

    def _rows(self, records: Iterable[SpanRecord]) -> list[tuple[Any, ...]]:
        bad: list[str] = []
        rows = [record_to_row(r, store_content=self.store_content, book=self.book, out_of_range=bad)
                for r in records]
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
        """Insert rows in one transaction (one Arrow batch, not row by row).

        With ``replace=True`` (re-ingestion) rows with the same ``(trace_id, span_id)`` are replaced, so loading
        the same spans twice stores them once. The exporter path writes each span once and skips that join.
        """
        if not rows:
            return 0
        return self._write_prepared(_prepare(rows), replace)

    def write_stream(self, records: Iterable[SpanRecord], *, replace: bool = False,
                     batch_size: int = 65536) -> int:
        """Insert many records, ``batch_size`` per transaction; returns the count. For bulk loads.

        Records are converted on the calling thread while a second thread writes the previous batch: DuckDB
        releases the GIL while it writes, so on two cores conversion and writing overlap (1.7x the rate of
        :meth:`write_records` in a loop, ``benchmarks/bench_ledger.py``). Large batches matter here: each return
        from DuckDB waits for the GIL, up to the interpreter's switch interval (5 ms), and fewer transactions
        mean fewer waits. Memory holds at most three batches (one filling, one queued, one writing).

        Each batch commits on its own, in order: if a write fails, the batches before it are stored, the rest
        are not, and the error is raised here. ``replace`` is as for :meth:`write_records`.
        """
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
                    written[0] += self._write_prepared(item, replace)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                    failed.append(exc)

        writer = threading.Thread(target=_writer, name="otel-costattr-ledger-stream", daemon=True)
        writer.start()
        try:
            pending: list[SpanRecord] = []
            for rec in records:
                pending.append(rec)
                if len(pending) >= batch_size:
                    if failed:
                        break
                    todo.put(_prepare(self._rows(pending)))
                    pending = []
            if pending and not failed:
                todo.put(_prepare(self._rows(pending)))
        finally:
            todo.put(None)
            writer.join()
        if failed:
            raise failed[0]
        return written[0]

    def _write_prepared(self, prepared: tuple[Any, int, list[Any]], replace: bool) -> int:
        table, n, shadowed = prepared
        with self._lock:
            con = self.con
            con.register("_batch", table)
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    if replace:
                        # Last one wins inside the batch too.
                        con.execute(f"CREATE OR REPLACE TEMP TABLE _incoming AS SELECT {_SELECT_SQL} FROM _batch "
                                    "QUALIFY row_number() OVER (PARTITION BY trace_id, span_id) = 1")
                        con.execute("DELETE FROM spans WHERE (trace_id, span_id) IN "
                                    "(SELECT trace_id, span_id FROM _incoming)")
                        con.execute(f"INSERT INTO spans ({_COLS_SQL}) SELECT {_COLS_SQL} FROM _incoming")
                        # Files can repeat a call that another file (or the live exporter) already stored:
                        # re-decide which span of each affected call counts.
                        con.execute(_RANK_SQL.format(src="_incoming"))
                        con.execute(_APPLY_RANK_SQL)
                        con.execute("DROP TABLE _incoming")
                        con.execute("DROP TABLE _rank")
                    else:
                        con.execute(f"INSERT INTO spans ({_COLS_SQL}) SELECT {_SELECT_SQL} FROM _batch")
                        if shadowed:
                            # A more detailed duplicate took over: the span it duplicates stops counting.
                            con.execute("UPDATE spans SET counted = false WHERE is_llm AND span_id IN "
                                        "(SELECT unnest($1))", [shadowed])
                    con.execute("COMMIT")
                except BaseException:
                    try:
                        con.execute("ROLLBACK")
                    except Exception:  # noqa: BLE001 - a failed COMMIT has already ended the transaction
                        # DuckDB answers "no transaction is active"; raising that would hide the real cause
                        # (disk full, read-only file) from the caller and the exporter's one warning.
                        logger.debug("ROLLBACK after a failed ledger write also failed", exc_info=True)
                    raise
            finally:
                con.unregister("_batch")
        return n

    # ------------------------------------------------------------------------------------------- reading

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.con.execute(sql, params or []).fetchall()

    def count(self) -> int:
        return self.query("SELECT count(*) FROM spans")[0][0]

    def close(self) -> None:
        with self._lock:
            try:
                self.con.execute("CHECKPOINT") if not self.read_only else None
            except Exception:  # noqa: BLE001
                pass
            self.con.close()


# One row per billed call: LLM spans, with duplicates of the same (provider, response id) collapsed to the most
# detailed span of the pair (then the one that carries a cost, then the earliest to end).
# One row per billed call. Which span of a duplicated call counts is decided when rows are written (the
# `counted` column), because de-duplicating at query time costs a window over every LLM span (14 s over 10M
# calls here, against 0.2 s for the rollup itself).
_CALLS_VIEW = "CREATE OR REPLACE VIEW calls AS SELECT * FROM spans WHERE is_llm AND counted"

# Rank every span sharing a (response id, provider) key with the incoming rows: a span with a cost beats one
# without (a duplicate that could not be re-priced must not erase the call's cost), then the most detailed
# usage wins, then the earliest to end.
_RANK_SQL = """
CREATE OR REPLACE TEMP TABLE _rank AS
SELECT s.trace_id, s.span_id, row_number() OVER (
    PARTITION BY s.response_id, coalesce(lower(s.provider), '')
    ORDER BY (s.cost_total IS NOT NULL) DESC, coalesce(s.usage_detail, 0) DESC, s.end_ns, s.span_id) AS rn
FROM spans s
JOIN (SELECT DISTINCT response_id, coalesce(lower(provider), '') AS p FROM {src}
      WHERE is_llm AND response_id IS NOT NULL) k
  ON s.response_id = k.response_id AND coalesce(lower(s.provider), '') = k.p
WHERE s.is_llm
"""
_APPLY_RANK_SQL = """
UPDATE spans SET counted = (r.rn = 1) FROM _rank r
WHERE spans.trace_id = r.trace_id AND spans.span_id = r.span_id AND spans.counted <> (r.rn = 1)
"""


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
      ``schedule_delay_millis``). A batch is acknowledged only after DuckDB committed it (see :class:`Ledger`).
    * Backpressure instead of loss: when the queue is full (the writer is behind: slow disk, long checkpoint,
      a burst bigger than the queue), the thread ending the span waits for space, at most
      ``max_block_millis`` (default 5 s). So under sustained overload the application runs at the speed of
      the ledger instead of losing spend. The wait blocks the calling thread, which in asyncio code is the
      event loop; a wait ends as soon as the writer takes the next batch.
    * Bounded wait, then counted loss: if no space frees up within ``max_block_millis`` the writer is taken to
      be stalled, that span is dropped, and so is every span that finds the queue full until the writer takes
      a batch again (so a stalled disk costs the application one bounded wait, not one per span). Spans ended
      after :meth:`shutdown`, or in a forked child process (DuckDB allows one writing process), are dropped
      too. Every drop is counted, by reason and by whether the span carried a cost, in :meth:`stats` and the
      ``otel_costattr.ledger.spans.dropped`` counter (attributes ``reason``, ``gen_ai.cost.status``), and
      logged once per reason. All spans are treated alike (no priority for priced ones): non-LLM spans are
      the parents that retry chains and the call tree need.
    * Memory is bounded: at most ``max_queue_size`` queued spans (plus one per producer thread racing past the
      check) and one batch being written.
    * A batch the ledger refuses (disk full, read-only file) is counted in ``exporter.failed_batches`` and
      logged once; the spans of a failed batch are not retried.

    ``force_flush`` writes everything queued before the call and waits for it (up to ``timeout_millis``).
    ``shutdown`` stops accepting spans, writes what is queued (up to 30 s), then closes the ledger.
    """

    def __init__(self, ledger: Ledger | str | os.PathLike[str], *, max_queue_size: int = 8192,
                 schedule_delay_millis: float = 1000, max_export_batch_size: int = 2048,
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
        self._flush_requests: list[threading.Event] = []
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
            description="Spans the ledger did not store because its writer stalled, it was shut down, or the "
                        "process forked")
        self._worker = threading.Thread(target=self._work, name="otel-costattr-ledger", daemon=True)
        self._worker.start()
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def _in_child() -> None:
                me = ref()
                if me is not None:  # the worker thread did not survive the fork; a lock it held would not either
                    me._forked = True
                    me._space = threading.Condition(threading.Lock())
                    me._queue.clear()  # the parent's spans: the parent writes them

            os.register_at_fork(after_in_child=_in_child)

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
        if self._forked:
            self._drop(span, "forked", "a span ended in a forked child process: the ledger is written only by "
                       "the process that opened it (DuckDB allows one writer)")
            return
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
            with self._space:
                flushes, self._flush_requests = self._flush_requests, []
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
        """Write everything queued before this call; True once written (or refused and counted) in time."""
        if self._closed or not self._worker.is_alive() or threading.current_thread() is self._worker:
            return False
        done = threading.Event()
        with self._space:
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
        if self._forked:
            return  # the parent's ledger: a checkpoint from this copy of its connection could corrupt the file
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
        ``dropped_priced`` (spans that carried a cost), ``dropped_queue_full`` / ``dropped_shutdown`` /
        ``dropped_forked``, and the backpressure waits (``waits``, ``wait_s``, ``longest_wait_s``)."""
        with self._space:
            counts = dict(self._counts)
            waits, wait_s, longest = self._waits, self._wait_s, self._longest_wait_s
        by_reason = {f"dropped_{r}": counts.get(r, 0) for r in ("queue_full", "shutdown", "forked")}
        return {"queued": len(self._queue), "written": self.exporter.written,
                "failed_batches": self.exporter.failed_batches, "dropped": sum(by_reason.values()),
                "dropped_priced": counts.get("priced", 0), **by_reason, "waits": waits,
                "wait_s": round(wait_s, 3), "longest_wait_s": round(longest, 3)}
