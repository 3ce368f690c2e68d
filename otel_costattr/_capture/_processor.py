"""``CostSpanProcessor``: adds ``gen_ai.cost.*`` to every LLM span before any span processor's ``on_end`` sees it.

One line beside the processors a provider already has, in any order (DESIGN D1)::

    provider.add_span_processor(otel_costattr.CostSpanProcessor())

The SDK calls every processor's ``_on_ending(span)`` (the spec's OnEnding hook, opentelemetry-sdk >= 1.40) after
the end time is set and before any processor's ``on_end``. This processor prices the span there and writes the
cost attributes into the ending span itself, under the span's own limits (see ``_spanattrs``): every processor on
the provider, the user's ``BatchSpanProcessor``, Langfuse's, the ledger, then exports the priced span. No copy is
made. Deciding that a span is not an LLM call takes six lookups in the span's own dict (``LLM_HINTS``).

Fallback, logged once: when the hook never reaches this processor (an SDK before 1.40, a provider that is not
the SDK's, a wrapper that does not forward it) or the span's attribute store cannot be written, the span is
priced in ``on_end`` and the processors this one wraps get a priced copy: ``CostSpanProcessor(BatchSpanProcessor(
exporter))``, the original design, which keeps working everywhere (and on a current SDK also enriches in place,
so its downstream processors and the provider's others see one and the same priced span).

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

from .. import attributes as A
from .._pricing._book import PriceBook, default_book
from ._enrich import Enricher, plain_attributes
from ._metrics import CostMetrics
from ._spanattrs import STORE, add_attributes, copy_with_attributes

__all__ = ["CostSpanProcessor", "EnrichmentStats", "LLM_HINTS"]

logger = logging.getLogger(__name__)

#: Attribution keys used as metric labels by default: few distinct values each.
DEFAULT_METRIC_KEYS = ("workload_type", "feature")

#: A span can only be an LLM call (``Call.is_llm_call``) if it carries one of these: an operation name, or a
#: model under one of its aliases. A span with none is passed over after six dict lookups (``_on_ending``).
LLM_HINTS = frozenset((*A.READ["operation"], *A.READ["response_model"], *A.READ["request_model"]))
# The same names, the most common on LLM spans first, unpacked so that a new alias fails at import rather than
# being missed by the test in _on_ending (six `in` tests cost less than one frozenset.isdisjoint over a span's
# dict, and stop at the first for an LLM span).
_H1, _H2, _H3, _H4, _H5, _H6 = sorted(LLM_HINTS, key=("gen_ai.operation.name", "gen_ai.request.model",
                                                       "llm.model_name", "gen_ai.response.model",
                                                       "llm.request.model", "llm.response.model").index)
_PRICED = frozenset({"priced", "partial"})


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

    def __call__(self, key: str, message: str, *args: Any, exc_info: bool = False, level: int = logging.WARNING,
                 ) -> None:
        with self._lock:
            if key in self._seen or len(self._seen) >= self._MAX:
                return
            self._seen.add(key)
        logger.log(level, message + " (logged once; further occurrences are only counted)", *args,
                   exc_info=exc_info)


def _overrides_on_ending(p: Any) -> bool:
    hook = getattr(type(p), "_on_ending", None)
    return hook is not None and hook is not SpanProcessor._on_ending  # noqa: SLF001


class CostSpanProcessor(SpanProcessor):
    """Prices every LLM span in place as it ends; optionally wraps downstream span processors.

    Args:
        *downstream: optional processors to wrap (``BatchSpanProcessor(...)``, the ledger, ...). Not needed on a
            current SDK: add this processor to the provider beside the ones it has. Wrapped processors get each
            span once, priced (in place, or as a priced copy where the SDK has no OnEnding hook).
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
        self._ending_hooks = tuple(p for p in downstream if _overrides_on_ending(p))
        self.book = book
        self.enricher = Enricher(book, dedup_size=dedup_size, langfuse=langfuse)
        self.metrics = CostMetrics(meter_provider, metric_keys, book=book)
        self.stats = EnrichmentStats()
        self._required = tuple(required_keys)
        self._strict = strict
        self._log = _LogOnce()
        self._shutdown = False
        # True once the SDK has called _on_ending: from then on spans are priced there, in place.
        self._hooked = False
        self.cost_listeners: list[Callable[[Mapping[str, Any], float], None]] = list(cost_listeners)

    @property
    def downstream(self) -> tuple[SpanProcessor, ...]:
        return self._downstream

    @property
    def in_place(self) -> bool:
        """True once spans are being priced in place at OnEnding (False before the first span, or in fallback)."""
        return self._hooked

    # ---------------------------------------------------------------------------------------- hooks

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._downstream:
            for p in self._downstream:
                try:
                    p.on_start(span, parent_context=parent_context)
                except Exception as exc:  # noqa: BLE001 - a processor must never raise into the app
                    self._downstream_failed(p, "on_start", exc)

    def _on_ending(self, span: Span) -> None:
        if not self._hooked:  # (a read, not a write per span: threads ending spans share this object)
            self._hooked = True
        try:
            store = span._attributes  # noqa: SLF001
            if type(store) is STORE:
                d = store._dict  # noqa: SLF001
                # The common case, a span that is not an LLM call, ends here.
                if _H1 in d or _H2 in d or _H3 in d or _H4 in d or _H5 in d or _H6 in d:
                    self._price_in_place(span, d)
            elif not self._downstream:
                self._fallback(span)  # a store we cannot write, and no one to hand a copy: price for the metrics
        except Exception as exc:  # noqa: BLE001 - fail open: the span ends unpriced, counted
            self._failed("ending", span, exc)
        if self._ending_hooks:
            for p in self._ending_hooks:
                try:
                    p._on_ending(span)  # noqa: SLF001
                except Exception as exc:  # noqa: BLE001
                    self._downstream_failed(p, "_on_ending", exc)

    def on_end(self, span: ReadableSpan) -> None:
        if self._downstream:
            # Spans whose store this processor could write were priced at OnEnding (the readable span shares it).
            if not self._hooked or type(getattr(span, "_attributes", None)) is not STORE:
                span = self._fallback(span)
            for p in self._downstream:
                try:
                    p.on_end(span)
                except Exception as exc:  # noqa: BLE001
                    self._downstream_failed(p, "on_end", exc)
        elif not self._hooked:
            self._fallback(span)  # no OnEnding hook: priced here, for the metrics, listeners and the ledger

    # ------------------------------------------------------------------------------------- pricing

    def _price_in_place(self, span: Span, attrs: Mapping[str, Any]) -> None:
        extra, status, call, cost = self.enricher.compute(span, attrs)
        if extra is None:
            return
        self._account(span, attrs, extra, status, call, cost)
        # Every value the enricher writes is a str, int or float, but for the flags (a tuple of str).
        if not add_attributes(span, extra, replace=status in _PRICED,  # pragma: no cover - SDK store checked above
                              plain=A.COST_FLAGS not in extra):
            self._log("in_place", "otel-costattr could not write cost attributes into span %r", span.name)

    def _fallback(self, span: ReadableSpan) -> ReadableSpan:
        if not self._hooked:
            self._log("fallback:hook", "the OpenTelemetry SDK did not call CostSpanProcessor._on_ending (an SDK "
                      "before 1.40, or a provider or wrapper that does not forward the OnEnding hook): spans are "
                      "priced at on_end, and only the processors it wraps see the cost, on a copy%s",
                      "" if self._downstream else ". It wraps none: pass your exporting processor, "
                      "CostSpanProcessor(BatchSpanProcessor(exporter))",
                      level=logging.INFO if self._downstream else logging.WARNING)
        else:
            self._log("fallback:store", "a span's attributes could not be written in place (a %s store): its cost "
                      "reaches the metrics and listeners, and only processors CostSpanProcessor wraps get it, on a "
                      "copy", type(getattr(span, "_attributes", None)).__name__)
        return self.enrich(span)

    def enrich(self, span: ReadableSpan) -> ReadableSpan:
        """A priced copy of a finished span (or ``span`` itself if it is not an LLM call). Never raises.

        The copy keeps the span's attribute limits (count, value length, dropped count). Used where no OnEnding
        hook runs: the fallback above and :class:`~otel_costattr.CostSpanExporter`.
        """
        try:
            extra, status, call, cost = self.enricher.compute(span)
        except Exception as exc:  # noqa: BLE001 - fail open: export the span unchanged, count it
            self._failed("compute", span, exc)
            return span
        if extra is None:
            return span
        try:
            self._account(span, plain_attributes(span), extra, status, call, cost)
            return copy_with_attributes(span, extra, replace=status in _PRICED)
        except Exception as exc:  # noqa: BLE001
            self._failed("clone", span, exc)
            return span

    def _account(self, span: Any, attrs: Mapping[str, Any], extra: Mapping[str, Any], status: str, call: Any,
                 cost: Any) -> None:
        """Stats, metrics, listeners and the strict check for one priced LLM span (once per span)."""
        self.stats.add(status)
        if call is not None and call.bad:
            self.stats.add("bad_attribute_values", len(call.bad))
        if status in _PRICED:
            total = extra.get(A.COST_TOTAL)
        elif status == "provided":
            total = call.provided_cost if call is not None else None
        else:
            total = None
        provider, model = (cost.provider, cost.model) if cost is not None else (None, None)
        self.metrics.record(status, provider or (call.provider if call else None),
                            model or (call.model if call else None), total, attrs)
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

    def _failed(self, where: str, span: Any, exc: Exception) -> None:
        self.stats.add("enrichment_failed")
        self._metric_failure(type(exc).__name__)
        self._log(f"{where}:{type(exc).__name__}", "otel-costattr could not enrich span %r: %s",
                  getattr(span, "name", "?"), exc, exc_info=True)

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
