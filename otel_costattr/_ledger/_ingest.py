"""``otel-costattr ingest``: load OTLP files into the ledger, pricing the spans that are not priced yet."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .._capture._enrich import UNRENDERED, Enricher
from .._capture._usage import Call
from .._pricing._book import PriceBook
from ..attributes import COST_STATUS, NON_LLM_OPERATIONS, READ
from ._otlp import OTLPDecodeError, iter_file
from ._store import MONEY_LIMIT, Ledger, Priced, SpanRecord

__all__ = ["IngestResult", "ingest_files"]

_BATCH = 8192
_OPERATION = READ["operation"][0]  # the one attribute read_call takes the operation from
assert READ["operation"] == (_OPERATION,)


@dataclass
class IngestResult:
    """What a load did. ``spans`` were read (and written); ``distinct`` of them are distinct spans
    (``(trace_id, span_id)``); ``replaced`` of those were already in the ledger (an earlier load, a live
    writer) and now have this load's copy. ``errors`` are the malformed lines or messages, skipped."""

    files: int = 0
    spans: int = 0
    priced_now: int = 0
    distinct: int | None = None
    replaced: int | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was read and what the ledger holds now (for standard output)."""
        line = f"read {self.spans} span(s) from {self.files} file(s)"
        if self.distinct is not None:
            line += f"; stored {self.distinct} distinct span(s)"
            repeated = self.spans - self.distinct
            notes = []
            if repeated:
                notes.append(f"{repeated} repeated a span read earlier in this load")
            if self.replaced:
                notes.append(f"{self.replaced} replaced a copy already in the ledger")
            if notes:
                line += " (" + "; ".join(notes) + ")"
        return line + f"; priced {self.priced_now} on the way in"

    def error_lines(self, limit: int = 50) -> list[str]:
        """The skipped lines, file:line first (for standard error)."""
        lines = [f"skipped {where}: {why}" for where, why in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more malformed line(s)")
        return lines

    def __str__(self) -> str:
        return "\n".join([self.summary(), *("  " + e for e in self.error_lines())])


def _price_missing(records: list[SpanRecord], enricher: Enricher) -> tuple[int, list[Call | Priced | None]]:
    """Price the records that carry no cost status yet. Returns how many were priced now, and for each record
    what the ledger row needs from it: a :class:`~otel_costattr._ledger._store.Priced` for a call priced with the
    standard figures (nothing is added to its attributes: the row takes the figures as they are), its ``Call``
    as the enricher read it (the enricher's attributes added to the record's own, the decoder's dict, owned by
    this record), or None where the enricher read none, or found no model call (the ledger reads those)."""
    n = 0
    calls: list[Call | Priced | None] = []
    figures = enricher.standard_figures
    for rec in records:
        a = rec.attributes
        if COST_STATUS in a:
            calls.append(None)
            continue
        op = a.get(_OPERATION)
        if type(op) is str and op in NON_LLM_OPERATIONS:
            # an agent, tool or workflow span: never a model call (Call.is_llm_call), so the enricher would read
            # it only to return nothing; the ledger reads it once for its row
            calls.append(None)
            continue
        # trace, parent and scope let two instrumentations' spans of one call pair without a response id (D16),
        # and the scope selects the emitter's usage convention (botocore's Bedrock input count)
        extra, status, call, cost = enricher.compute_attributes(
            a, span_id=rec.span_id, start_ns=rec.start_ns, end_ns=rec.end_ns, trace_id=rec.trace_id,
            parent_span_id=rec.parent_span_id, scope=rec.scope_name or "", render=False)
        if extra is UNRENDERED:
            # The standard priced set (the common case): the row's money columns take the figures the attributes
            # would carry, without writing them into the span only for the row to read them back (cost
            # attributes are columns, never kept in the row's JSON). A total too large for its column takes the
            # general path, which marks it.
            f = figures(cost)
            if f[0] < MONEY_LIMIT:
                calls.append(Priced(call, status, cost, f))
                n += 1
                continue
            extra = enricher._priced_attributes(cost, status)  # noqa: SLF001 - what render=True would give
        calls.append(call)
        if extra:
            a.update(extra)  # type: ignore[attr-defined] - a dict the decoder made for this record alone
            n += status in ("priced", "partial")
    return n, calls


def ingest_files(paths: Iterable[str | Path], ledger: Ledger, book: PriceBook, *,
                 progress: Callable[[int, int], None] | None = None, count_distinct: bool = True) -> IngestResult:
    """Load every file; malformed lines are reported (file:line) and skipped, good ones still load.

    Re-ingesting the same spans replaces them (idempotent): the ledger holds each ``(trace_id, span_id)`` once.
    ``progress(bytes_read, spans_stored)`` is called as the load goes (bytes of the files as they are on disk).
    With ``count_distinct`` the result says how many distinct spans were stored and how many replaced a copy
    already in the ledger (one query over the ledger's keys at the end). Raises only for a file that cannot
    be read, or :class:`~otel_costattr._ledger._segments.LedgerStorageError` when the storage refuses a write
    (the batches before it are stored).
    """
    enricher = Enricher(book, langfuse=False)
    result = IngestResult()
    paths = [Path(p) for p in paths]
    sizes = [p.stat().st_size if p.is_file() else 0 for p in paths]
    state = {"bytes": 0, "stored": 0}

    def report() -> None:
        if progress is not None:
            progress(state["bytes"], state["stored"])

    def priced() -> Iterable[tuple[SpanRecord, Call | Priced | None]]:
        # Runs on the caller's thread inside Ledger.write_read_stream, while the previous batch is being written.
        pending: list[SpanRecord] = []
        done = 0
        for p, size in zip(paths, sizes):
            if not p.is_file():
                result.errors.append((str(p), "no such file"))
                continue
            result.files += 1

            def at(fraction: float, base: int = done, size: int = size) -> None:
                state["bytes"] = base + int(size * fraction)
                report()

            for where, got in iter_file(p, at if progress is not None else None):
                if isinstance(got, OTLPDecodeError):
                    result.errors.append((where, str(got)))
                    continue
                pending.extend(got)
                result.spans += len(got)
                if len(pending) >= _BATCH:
                    yield from read(pending)
                    pending = []
            done += size
            state["bytes"] = done
            report()
        if pending:
            yield from read(pending)

    def read(records: list[SpanRecord]) -> Iterable[tuple[SpanRecord, Call | Priced | None]]:
        priced_now, calls = _price_missing(records, enricher)
        result.priced_now += priced_now
        return zip(records, calls)

    def stored(n: int) -> None:
        state["stored"] += n
        report()

    before = {s.name for s in ledger.segments()}
    ledger.write_read_stream(priced(), replace=True, progress=stored)
    if count_distinct and result.spans:
        result.distinct, result.replaced, paired = ledger.load_counts(before)
        if result.distinct == result.spans and not result.replaced and not paired:
            ledger.settle_load(before)  # new spans only: reports need not settle anything for this load
    return result
