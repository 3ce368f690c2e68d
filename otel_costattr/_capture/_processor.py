"""``CostSpanProcessor``: adds ``gen_ai.cost.*`` to every LLM span before its downstream processors see it.

The SDK freezes a span before ``on_end`` (DESIGN D1), so this processor *wraps* the processors that export
and hands each of them an enriched copy::

    provider.add_span_processor(CostSpanProcessor(BatchSpanProcessor(OTLPSpanExporter())))

Contract (OpenTelemetry ``SpanProcessor``): every hook runs on the thread that started or ended the span,
does not block beyond what the downstream processors do, and never raises into the application. A failure
to enrich exports the span unchanged; a downstream processor that raises does not stop the others. Both are
logged once per kind and counted (``stats`` and the ``otel_costattr.enrichment.failed`` metric).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._enrich import Enricher, clone_span, plain_attributes
from ._metrics import CostMetrics
from .._pricing._book import PriceBook, default_book

__all__ = ["CostSpanProcessor", "EnrichmentStats"]

logger = logging.getLogger(__name__)

#: Attribution keys used as metric labels by default: few distinct values each.
DEFAULT_METRIC_KEYS = ("workload_type", "feature")


class EnrichmentStats:
    """Counters kept in process (also exported as metrics). Read them with :meth:`snapshot`."""

    __slots__ = ("_lock", "_counts")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _LogOnce:
    """Log each distinct problem once; later occurrences are only counted."""

    _MAX = 256

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        with self._lock:
            if key in self._seen or len(self._seen) >= self._MAX:
                return
            self._seen.add(key)
        logger.warning(message + " (logged once; further occurrences are only counted)", *args, exc_info=exc_info)


class CostSpanProcessor(SpanProcessor):
    """Wraps downstream span processors and hands each an enriched copy of every span.

    Args:
        *downstream: the processors that export (``BatchSpanProcessor(...)``, the ledger, ...).
        book: the :class:`PriceBook` to price with (default: the shipped tables plus
            ``$OTEL_COSTATTR_PRICING``).
        pricing: overlay pricing files, loaded at construction (bad files raise :class:`PricingError` now).
        meter_provider: for the cost metrics (default: the global one).
        metric_keys: attribution keys used as metric labels; keep them low-cardinality.
        required_keys: attribution keys every LLM span should carry; with ``strict=True`` a span missing one
            logs a warning (once per key) and is counted as unattributed.
        strict: warn at emission time about unattributed LLM spans.
        dedup_size: capacity of the in-process duplicate index (evictions are counted).
        langfuse: also write ``langfuse.observation.cost_details`` (default True).
        cost_listeners: callables ``listener(attributes, cost)`` invoked with the span's attributes and its cost in
            USD (a float) for every call that carries a cost (priced, partial, provided; duplicates excluded), on
            the thread that ended the span. Keep them fast; an exception is logged once and counted, never raised.

    Raises:
        ValueError: a bad argument (e.g. a downstream object that is not a span processor).
        PricingError: an overlay pricing file is invalid.
    """

    def __init__(self, *downstream: SpanProcessor, book: PriceBook | None = None,
                 pricing: Iterable[str] = (), meter_provider: Any = None,
                 metric_keys: Sequence[str] = DEFAULT_METRIC_KEYS,
                 required_keys: Sequence[str] = ("customer_id",), strict: bool = False,
                 dedup_size: int = 16_384, langfuse: bool = True,
                 cost_listeners: Iterable[Callable[[Mapping[str, Any], float], None]] = ()) -> None:
        for p in downstream:
            if not (hasattr(p, "on_end") and hasattr(p, "on_start") and hasattr(p, "shutdown")):
                raise ValueError(f"CostSpanProcessor wraps span processors; got {type(p).__name__}. Wrap an "
                                 "exporter with BatchSpanProcessor(exporter) first, or use CostSpanExporter.")
        pricing = list(pricing)
        if book is None:
            book = PriceBook.load(pricing) if pricing else default_book()
        elif pricing:
            raise ValueError("pass either `book` or `pricing`, not both")
        unknown = [k for k in (*metric_keys, *required_keys) if not isinstance(k, str) or not k]
        if unknown:
            raise ValueError(f"attribution keys must be non-empty strings, got {unknown!r}")
        self._downstream: tuple[SpanProcessor, ...] = tuple(downstream)
        self.book = book
        self.enricher = Enricher(book, dedup_size=dedup_size, langfuse=langfuse)
        self.metrics = CostMetrics(meter_provider, metric_keys)
        self.stats = EnrichmentStats()
        self._required = tuple(required_keys)
        self._strict = strict
        self._log = _LogOnce()
        self._shutdown = False
        self.cost_listeners: list[Callable[[Mapping[str, Any], float], None]] = list(cost_listeners)

    @property
    def downstream(self) -> tuple[SpanProcessor, ...]:
        return self._downstream

    # ---------------------------------------------------------------------------------------- hooks

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for p in self._downstream:
            try:
                p.on_start(span, parent_context=parent_context)
            except Exception as exc:  # noqa: BLE001 - a processor must never raise into the app
                self._downstream_failed(p, "on_start", exc)

    def _on_ending(self, span: Span) -> None:
        for p in self._downstream:
            hook = getattr(p, "_on_ending", None)
            if hook is None:
                continue
            try:
                hook(span)
            except Exception as exc:  # noqa: BLE001
                self._downstream_failed(p, "_on_ending", exc)

    def on_end(self, span: ReadableSpan) -> None:
        enriched = self.enrich(span)
        for p in self._downstream:
            try:
                p.on_end(enriched)
            except Exception as exc:  # noqa: BLE001
                self._downstream_failed(p, "on_end", exc)

    def enrich(self, span: ReadableSpan) -> ReadableSpan:
        """The span with cost attributes added (or ``span`` itself if it is not an LLM call). Never raises."""
        try:
            extra, status, call, cost = self.enricher.compute(span)
        except Exception as exc:  # noqa: BLE001 - fail open: export the span unchanged, count it
            self.stats.add("enrichment_failed")
            self._metric_failure(type(exc).__name__)
            self._log(f"compute:{type(exc).__name__}", "otel-costattr could not enrich span %r: %s",
                      getattr(span, "name", "?"), exc, exc_info=True)
            return span
        if extra is None:
            return span
        try:
            attrs = plain_attributes(span)
            self.stats.add(status)
            if call is not None and call.bad:
                self.stats.add("bad_attribute_values", len(call.bad))
            if status == "provided":
                total = call.provided_cost if call is not None else None
            elif status in ("priced", "partial"):
                total = extra.get("gen_ai.cost.total_cost")
            else:
                total = None
            self.metrics.record(status, cost.provider if cost is not None and cost.provider else
                                (call.provider if call else None),
                                cost.model if cost is not None and cost.model else (call.model if call else None),
                                total, attrs)
            if total is not None and self.cost_listeners:
                self._notify(attrs, total)
            if self._strict and status != "duplicate":
                missing = [k for k in self._required if k not in attrs]
                if missing:
                    self.stats.add("unattributed")
                    self.metrics.unattributed.add(1, {"missing": ",".join(missing)})
                    self._log(f"unattributed:{','.join(missing)}",
                              "LLM span %r has no %s attribute: its spend will be reported as unattributed. Set it "
                              "with otel_costattr.attribution(...) at the agent entrypoint.", span.name,
                              " / ".join(missing))
            return clone_span(span, extra, override=status in ("priced", "partial"))
        except Exception as exc:  # noqa: BLE001
            self.stats.add("enrichment_failed")
            self._metric_failure(type(exc).__name__)
            self._log(f"clone:{type(exc).__name__}", "otel-costattr could not enrich span %r: %s",
                      getattr(span, "name", "?"), exc, exc_info=True)
            return span

    def _notify(self, attrs: Mapping[str, Any], total: Any) -> None:
        for listener in self.cost_listeners:
            try:
                listener(attrs, total)
            except Exception as exc:  # noqa: BLE001 - a listener must never break tracing
                self.stats.add("listener_failed")
                self._log(f"listener:{type(exc).__name__}", "cost listener %r raised %s: %s", listener,
                          type(exc).__name__, exc)

    def _metric_failure(self, error_type: str) -> None:
        try:
            self.metrics.failure(error_type)
        except Exception:  # noqa: BLE001 - a broken meter must not break tracing
            pass

    def _downstream_failed(self, p: SpanProcessor, hook: str, exc: Exception) -> None:
        self.stats.add("downstream_failed")
        self._metric_failure(f"downstream:{type(exc).__name__}")
        self._log(f"{type(p).__name__}.{hook}:{type(exc).__name__}",
                  "downstream span processor %s.%s raised %s: %s", type(p).__name__, hook, type(exc).__name__, exc)

    # ------------------------------------------------------------------------------------- lifecycle

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        for p in self._downstream:
            try:
                p.shutdown()
            except Exception as exc:  # noqa: BLE001
                self._downstream_failed(p, "shutdown", exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        ok = True
        for p in self._downstream:
            try:
                ok = bool(p.force_flush(timeout_millis)) and ok
            except Exception as exc:  # noqa: BLE001
                self._downstream_failed(p, "force_flush", exc)
                ok = False
        return ok
