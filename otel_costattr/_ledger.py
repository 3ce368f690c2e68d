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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from . import attributes as A
from ._errors import ConfigurationError
from ._usage import read_call

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
)
ATTRIBUTION_COLUMNS: tuple[str, ...] = A.DEFAULT_ATTRIBUTION_KEYS
COLUMNS: tuple[tuple[str, str], ...] = _BASE_COLUMNS + tuple((k, "VARCHAR") for k in ATTRIBUTION_COLUMNS) + (
    ("attributes", "JSON"),)
_NAMES = [c for c, _ in COLUMNS]
_DECIMAL_COLUMNS = {c for c, t in COLUMNS if t.startswith("DECIMAL")}


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
                   status_code=span.status.status_code.name, attributes=span.attributes or {},
                   service_name=res.get("service.name") if res else None,
                   scope_name=scope.name if scope is not None else None)


def _dec(value: Any) -> Decimal | None:
    # Cost crosses the span boundary as a float; repr() gives the shortest decimal that round-trips, which is
    # the exact cost whenever it has <= 15 significant digits (always, for token x published rate).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return [_json_safe(x) for x in v]
    return v


def _is_content(key: str) -> bool:
    return key in CONTENT_KEYS or key.startswith(_CONTENT_PREFIXES)


def record_to_row(rec: SpanRecord, *, store_content: bool = False, book: Any = None) -> tuple[Any, ...]:
    """One ledger row (in ``COLUMNS`` order). Never raises on odd attribute values."""
    a = rec.attributes
    call = read_call(a)
    is_llm = call.is_llm_call
    status = a.get(A.COST_STATUS) if isinstance(a.get(A.COST_STATUS), str) else None
    cost_total = _dec(a.get(A.COST_TOTAL)) if status in ("priced", "partial", "provided") else None
    extra: dict[str, Any] = {}
    if status == "duplicate" and book is not None and call.has_usage and call.model:
        # Re-price the second span of a call so that the more detailed of the pair can be the one counted.
        try:
            cost = book.price(call.model, provider=call.provider, input_tokens=call.input_tokens or 0,
                              output_tokens=call.output_tokens or 0, cache_read_tokens=call.cache_read_tokens or 0,
                              cache_write_tokens=call.cache_write_tokens or 0,
                              cache_write_1h_tokens=call.cache_write_1h_tokens or 0,
                              reasoning_tokens=call.reasoning_tokens or 0, at=rec.start_ns or None)
            if cost.priced:
                c = cost.components
                cost_total = cost.total
                extra = {"cost_input": sum((c.get(k, 0) for k in ("input", "cache_read", "cache_write",
                                                                    "cache_write_1h")), Decimal(0)),
                         "cost_output": c["output"] + c["reasoning"], "cost_cache_read": c["cache_read"],
                         "cost_cache_write": c["cache_write"] + c.get("cache_write_1h", Decimal(0)),
                         "cost_reasoning": c["reasoning"]}
        except Exception:  # noqa: BLE001 - a row is still written, without the re-priced figure
            logger.debug("could not re-price duplicate span", exc_info=True)
    flags = a.get(A.COST_FLAGS)
    if isinstance(flags, (tuple, list)):
        flags = ",".join(str(f) for f in flags)
    elif not isinstance(flags, str):
        flags = None
    resend = a.get("http.request.resend_count")
    err = a.get("error.type")
    keep = {k: _json_safe(v) for k, v in a.items() if k not in ATTRIBUTION_COLUMNS and (store_content or not
                                                                                        _is_content(k))}
    row = {
        "trace_id": rec.trace_id, "span_id": rec.span_id, "parent_span_id": rec.parent_span_id or None,
        "name": rec.name, "kind": rec.kind, "service_name": rec.service_name, "scope_name": rec.scope_name,
        "start_ns": rec.start_ns, "end_ns": rec.end_ns, "status_code": rec.status_code,
        "error_type": str(err)[:256] if err is not None else None,
        "is_llm": is_llm, "operation": call.operation, "provider": call.provider,
        "request_model": call.request_model,
        "response_model": a.get("gen_ai.response.model") if isinstance(a.get("gen_ai.response.model"), str) else None,
        "response_id": call.response_id,
        "input_tokens": call.input_tokens, "output_tokens": call.output_tokens,
        "cache_read_tokens": call.cache_read_tokens, "cache_write_tokens": call.cache_write_tokens,
        "cache_write_1h_tokens": call.cache_write_1h_tokens, "reasoning_tokens": call.reasoning_tokens,
        "usage_detail": call.detail if is_llm else None,
        "cost_status": status if is_llm else None, "cost_total": cost_total,
        "cost_input": _dec(a.get(A.COST_INPUT)), "cost_output": _dec(a.get(A.COST_OUTPUT)),
        "cost_cache_read": _dec(a.get(A.COST_CACHE_READ)),
        "cost_cache_write": _sum_dec(a.get(A.COST_CACHE_WRITE), a.get(A.COST_CACHE_WRITE_1H)),
        "cost_reasoning": _dec(a.get(A.COST_REASONING)), "cost_tool": _dec(a.get(A.COST_TOOL_USAGE)),
        "pricing_model": a.get(A.COST_MODEL) if isinstance(a.get(A.COST_MODEL), str) else None,
        "pricing_version": a.get(A.COST_PRICING_VERSION) if isinstance(a.get(A.COST_PRICING_VERSION), str)
        else None,
        "duplicate_of": a.get(A.COST_DUPLICATE_OF) if isinstance(a.get(A.COST_DUPLICATE_OF), str) else None,
        "cost_flags": flags,
        "resend_count": resend if isinstance(resend, int) and not isinstance(resend, bool) else None,
        "attributes": json.dumps(keep, default=str),
    }
    row.update(extra)
    for k in ATTRIBUTION_COLUMNS:
        v = a.get(k)
        row[k] = v[:256] if isinstance(v, str) else (str(v)[:256] if v is not None else None)
    return tuple(row[c] for c in _NAMES)


def _sum_dec(*values: Any) -> Decimal | None:
    ds = [d for d in (_dec(v) for v in values) if d is not None]
    return sum(ds, Decimal(0)) if ds else None


class Ledger:
    """A DuckDB ledger file. Create with :func:`open_ledger` or ``Ledger(path)``.

    Raises:
        ConfigurationError: the file cannot be opened (missing folder, no permission, locked by another
            process, not a DuckDB file); the message names the fix.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, store_content: bool = False,
                 book: Any = None) -> None:
        import duckdb

        self.path = Path(path)
        self.store_content = store_content
        self.book = book
        self._lock = threading.Lock()
        if not read_only and not self.path.parent.exists():
            raise ConfigurationError(f"ledger folder {self.path.parent} does not exist; create it or choose another "
                                     "path")
        if read_only and not self.path.exists():
            raise ConfigurationError(f"ledger {self.path} does not exist; run `otel-costattr demo` or pass the path "
                                     "your application writes (configure(ledger=...))")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise ConfigurationError(f"cannot open ledger {self.path}: {exc}. If another process is writing it, "
                                     "stop that process or read a copy of the file") from None
        if not read_only:
            self._migrate()
        self.read_only = read_only

    def _migrate(self) -> None:
        cols = ",\n  ".join(f"{n} {t}" for n, t in COLUMNS)
        self.con.execute("CREATE TABLE IF NOT EXISTS ledger_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute(f"CREATE TABLE IF NOT EXISTS spans (\n  {cols},\n  PRIMARY KEY (trace_id, span_id))")
        self.con.execute("INSERT OR REPLACE INTO ledger_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        self.con.execute(_CALLS_VIEW)

    # ------------------------------------------------------------------------------------------- writing

    def write_records(self, records: Iterable[SpanRecord]) -> int:
        """Insert (or replace) records in one transaction. Returns the number of rows written."""
        rows = [record_to_row(r, store_content=self.store_content, book=self.book) for r in records]
        return self.write_rows(rows)

    def write_spans(self, spans: Iterable[ReadableSpan]) -> int:
        return self.write_records(SpanRecord.from_readable(s) for s in spans)

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        columns = [list(c) for c in zip(*rows)]
        selects = ", ".join(
            f"unnest(${i + 1})::{t.replace(' NOT NULL', '')}" if t.startswith(("DECIMAL", "JSON"))
            else f"unnest(${i + 1})" for i, (_, t) in enumerate(COLUMNS))
        sql = f"INSERT OR REPLACE INTO spans ({', '.join(_NAMES)}) SELECT {selects}"
        with self._lock:
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(sql, [[str(v) if v is not None else None for v in col] if name in _DECIMAL_COLUMNS
                                       else col for name, col in zip(_NAMES, columns)])
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
        return len(rows)

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
_CALLS_VIEW = """
CREATE OR REPLACE VIEW calls AS
SELECT * EXCLUDE (rn) FROM (
  SELECT s.*, row_number() OVER (
      PARTITION BY coalesce(s.response_id, s.trace_id || ':' || s.span_id), coalesce(lower(s.provider), '')
      ORDER BY coalesce(s.usage_detail, 0) DESC, (s.cost_total IS NOT NULL) DESC, s.end_ns, s.span_id) AS rn
  FROM spans s WHERE s.is_llm
) WHERE rn = 1
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


class LedgerSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` into the ledger that also stores *unsampled* spans.

    Spans recorded but not sampled (``CostAwareSampler`` keeps LLM calls that the head sampler dropped) are
    not exported to backends, but the ledger must see every priced call to stay exact.
    """

    def __init__(self, ledger: Ledger | str | os.PathLike[str], *, max_queue_size: int = 8192,
                 schedule_delay_millis: float = 1000, max_export_batch_size: int = 2048, **kwargs: Any) -> None:
        self.exporter = LedgerExporter(ledger, **kwargs)
        super().__init__(self.exporter, max_queue_size=max_queue_size, schedule_delay_millis=schedule_delay_millis,
                         max_export_batch_size=max_export_batch_size)

    @property
    def ledger(self) -> Ledger:
        return self.exporter.ledger

    def on_end(self, span: ReadableSpan) -> None:
        inner = getattr(self, "_batch_processor", None)
        if inner is not None and hasattr(inner, "emit"):
            inner.emit(span)  # no sampled-flag check, unlike the parent class
        else:  # pragma: no cover - older SDKs: sampled spans only
            super().on_end(span)
