"""``CostSpanExporter``: the cost enrichment at the exporter level (DESIGN D1).

For set-ups configured through ``OTEL_TRACES_EXPORTER``, where the SDK builds the processors itself and there is
no place for ``CostSpanProcessor`` (which prices spans in place as they end, for every processor): the
entry point ``otel_costattr`` (group ``opentelemetry_traces_exporter``) builds this exporter with no
arguments, wrapping an OTLP/HTTP exporter configured from the standard ``OTEL_EXPORTER_OTLP_*`` variables::

    OTEL_TRACES_EXPORTER=otel_costattr opentelemetry-instrument python app.py

Contract (``SpanExporter``): ``export`` is called from the batch processor's worker thread; each LLM span is priced
on a copy (the span may be in other processors' queues too), under the span's attribute limits; enrichment never
raises (a span that cannot be enriched is exported unchanged and counted) and the inner exporter's result is
returned as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._processor import CostSpanProcessor

__all__ = ["CostSpanExporter"]


class CostSpanExporter(SpanExporter):
    """Enrich each span with cost, then hand the batch to ``inner``.

    Args:
        inner: the exporter to wrap. Default: ``OTLPSpanExporter()`` (OTLP/HTTP protobuf, configured from the
            environment), built with ``**inner_kwargs``.
        **options: passed to the enrichment (``book``, ``pricing``, ``meter_provider``, ``metric_keys``,
            ``required_keys``, ``strict``, ``dedup_size``, ``langfuse``), see :class:`CostSpanProcessor`.
    """

    _OPTIONS = ("book", "pricing", "meter_provider", "metric_keys", "required_keys", "strict", "dedup_size",
                "langfuse")

    def __init__(self, inner: SpanExporter | None = None, **kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in self._OPTIONS}
        if inner is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            inner = OTLPSpanExporter(**kwargs)
        elif kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} (inner exporter options are only accepted when "
                            "CostSpanExporter builds the OTLP exporter itself)")
        if not hasattr(inner, "export"):
            raise TypeError(f"CostSpanExporter wraps a SpanExporter, got {type(inner).__name__}")
        self.inner = inner
        self._enricher = CostSpanProcessor(**options)

    @property
    def stats(self) -> Any:
        return self._enricher.stats

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        enrich = self._enricher.enrich
        return self.inner.export([enrich(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.inner, "force_flush", None)
        return bool(flush(timeout_millis)) if flush is not None else True
