"""``otel-costattr ingest``: load OTLP files into the ledger, pricing the spans that are not priced yet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._capture._enrich import Enricher
from ._store import Ledger, SpanRecord
from ._otlp import OTLPDecodeError, iter_file
from .._pricing._book import PriceBook
from ..attributes import COST_STATUS

__all__ = ["IngestResult", "ingest_files"]

_BATCH = 8192


@dataclass
class IngestResult:
    files: int = 0
    spans: int = 0
    priced_now: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loaded {self.spans} span(s) from {self.files} file(s); priced {self.priced_now} on the way in"]
        for where, why in self.errors[:50]:
            lines.append(f"  skipped {where}: {why}")
        if len(self.errors) > 50:
            lines.append(f"  ... and {len(self.errors) - 50} more malformed line(s)")
        return "\n".join(lines)


def _price_missing(records: list[SpanRecord], enricher: Enricher) -> int:
    n = 0
    for i, rec in enumerate(records):
        if COST_STATUS in rec.attributes:
            continue
        extra, status, _, _ = enricher.compute_attributes(rec.attributes, span_id=rec.span_id,
                                                           start_ns=rec.start_ns, end_ns=rec.end_ns)
        if extra:
            merged: dict[str, Any] = dict(rec.attributes)
            merged.update(extra)
            records[i] = SpanRecord(rec.trace_id, rec.span_id, rec.parent_span_id, rec.name, rec.kind, rec.start_ns,
                                    rec.end_ns, rec.status_code, merged, rec.service_name, rec.scope_name)
            n += status in ("priced", "partial")
    return n


def ingest_files(paths: Iterable[str | Path], ledger: Ledger, book: PriceBook) -> IngestResult:
    """Load every file; malformed lines are reported (file:line) and skipped, good ones still load.

    Re-ingesting the same spans replaces them (idempotent). Raises only for a file that cannot be read.
    """
    enricher = Enricher(book, langfuse=False)
    result = IngestResult()

    def priced() -> Iterable[SpanRecord]:
        # Runs on the caller's thread inside Ledger.write_stream, while the previous batch is being written.
        pending: list[SpanRecord] = []
        for path in paths:
            p = Path(path)
            if not p.is_file():
                result.errors.append((str(p), "no such file"))
                continue
            result.files += 1
            for where, got in iter_file(p):
                if isinstance(got, OTLPDecodeError):
                    result.errors.append((where, str(got)))
                    continue
                pending.extend(got)
                if len(pending) >= _BATCH:
                    result.priced_now += _price_missing(pending, enricher)
                    yield from pending
                    pending = []
        if pending:
            result.priced_now += _price_missing(pending, enricher)
            yield from pending

    result.spans = ledger.write_stream(priced(), replace=True)
    return result
