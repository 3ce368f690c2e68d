"""Shared helpers for the finance tests: a ledger of real, priced OpenAI/Anthropic calls written through the
same pricing path as `otel-costattr ingest` (Enricher -> SpanRecord -> Ledger)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import otel_costattr as oc
from otel_costattr._capture._enrich import Enricher
from otel_costattr._ledger._store import Ledger, SpanRecord

_ids = itertools.count(1)


def ns(iso: str) -> int:
    """Epoch nanoseconds of an ISO-8601 UTC time (``2025-11-03T10:00:00``)."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 10**9


@dataclass
class Call:
    at: str
    provider: str
    model: str
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    response_model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        a: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": self.provider,
                             "gen_ai.request.model": self.model,
                             "gen_ai.response.model": self.response_model or self.model,
                             "gen_ai.response.id": f"resp-{next(_ids)}",
                             "gen_ai.usage.input_tokens": self.input, "gen_ai.usage.output_tokens": self.output}
        if self.cache_read:
            a["gen_ai.usage.cache_read.input_tokens"] = self.cache_read
        if self.cache_write:
            a["gen_ai.usage.cache_creation.input_tokens"] = self.cache_write + self.cache_write_1h
        if self.cache_write_1h:
            a["anthropic.usage.cache_creation.ephemeral_1h_input_tokens"] = self.cache_write_1h
            a["anthropic.usage.cache_creation.ephemeral_5m_input_tokens"] = self.cache_write
        if self.reasoning:
            a["gen_ai.usage.reasoning.output_tokens"] = self.reasoning
        a.update(self.tags)
        a.update(self.extra)
        return a


def write_ledger(path: Path, calls: list[Call], book: oc.PriceBook | None = None) -> Ledger:
    """A ledger at ``path`` holding ``calls``, each priced exactly as ingest would price it."""
    book = book or oc.default_book()
    enricher = Enricher(book, langfuse=False)
    records = []
    for c in calls:
        start = ns(c.at)
        attrs = c.attributes()
        sid = f"{next(_ids):016x}"
        extra, _, _, _ = enricher.compute_attributes(attrs, span_id=sid, start_ns=start, end_ns=start + 10**9)
        attrs.update(extra or {})
        records.append(SpanRecord(f"{next(_ids):032x}", sid, None, "chat", "CLIENT", start, start + 10**9, "UNSET",
                                  attrs, service_name="svc"))
    ledger = Ledger(path, book=book)
    ledger.write_records(records)
    return ledger
