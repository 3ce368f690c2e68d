"""Cost metrics through the OpenTelemetry metrics API, so totals survive trace sampling.

Instruments (meter ``otel_costattr``):

* ``gen_ai.client.cost`` (counter, ``USD``): cost of priced, partial and provided calls, by
  ``gen_ai.provider.name`` and ``gen_ai.request.model`` (both from the pricing entry, or ``unknown``) and the
  low-cardinality attribution keys chosen by the user.
* ``otel_costattr.spans`` (counter): every LLM span by ``gen_ai.cost.status``.
* ``otel_costattr.spans.unpriced`` / ``.no_usage`` / ``.duplicate`` (counters): the non-priced statuses on
  their own, for alerting without filtering. ``unpriced`` is labelled ``gen_ai.request.model=unknown`` and the
  provider when the pricing tables know it; the model names themselves go to the log (the first
  ``_LOGGED_MODELS`` distinct ones, then a count every ``_LOG_INTERVAL_S`` seconds).
* ``otel_costattr.metrics.overflow`` (counter, by ``instrument``): measurements whose attribution labels were
  replaced by ``other`` (see below).
* ``otel_costattr.enrichment.failed`` (counter, by ``error.type``): spans we could not enrich (they were
  still exported unchanged), plus downstream processors that raised.
* ``otel_costattr.spans.unattributed`` (counter): LLM spans missing a required attribution key.

The ledger's processor has its own counter, ``otel_costattr.ledger.spans.dropped`` (by ``reason`` and
``gen_ai.cost.status``), see :class:`~otel_costattr._ledger._store.LedgerSpanProcessor`.

Cardinality is bounded: model and provider labels come from the price book (the resolved entry) or are
``unknown``, never the raw value a span carries; attribution-key values are admitted per instrument until it
has ``label_limit`` label sets (default 2,000, the OpenTelemetry specification's default cardinality limit),
after which a new combination is recorded with its attribution values replaced by ``other`` and counted in
``otel_costattr.metrics.overflow`` and :attr:`CostMetrics.overflow`. The Python metrics SDK (through 1.45) has
no cardinality limit of its own, so this one applies whatever the SDK; a limit a later SDK applies comes on top.

Recording never raises. Without a configured ``MeterProvider`` the API is a no-op and costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import NoOpCounter as _NOOP

from .._version import __version__
from ..attributes import STATUSES

__all__ = ["DEFAULT_LABEL_LIMIT", "OTHER", "UNKNOWN", "CostMetrics"]

logger = logging.getLogger(__name__)

_MAX_VALUE_LEN = 128
DEFAULT_LABEL_LIMIT = 2000
OTHER = "other"
UNKNOWN = "unknown"
_LOGGED_MODELS = 20
_LOG_INTERVAL_S = 600.0
_ENTRY_STATUSES = frozenset({"priced", "partial"})  # the model and provider passed are the pricing entry's
# One label set per status, built once (the metrics SDK does not keep or change the dict it is given).
_STATUS_LABELS = {s: {"gen_ai.cost.status": s} for s in STATUSES}


def _live(instrument: Any) -> bool:
    """False only for a no-op instrument: the API's proxy before any MeterProvider is set (it forwards once one
    is), or the no-op meter's. Building the per-call labels is most of what recording costs, and is skipped
    then; any other instrument counts as live."""
    real = getattr(instrument, "_real_instrument", instrument)
    return real is not None and not isinstance(real, _NOOP)


class CostMetrics:
    """The instruments above, created once per processor."""

    def __init__(self, meter_provider: Any = None, attribution_keys: Sequence[str] = (), *, book: Any = None,
                 label_limit: int = DEFAULT_LABEL_LIMIT) -> None:
        meter = (meter_provider.get_meter("otel_costattr", __version__) if meter_provider is not None
                 else metrics.get_meter("otel_costattr", __version__))
        if label_limit < 1:
            raise ValueError(f"label_limit must be >= 1, got {label_limit}")
        self.keys = tuple(attribution_keys)
        self.book = book  # resolves the model of a span whose cost came from upstream (status provided)
        self.label_limit = label_limit
        #: measurements recorded under ``other``, by instrument name
        self.overflow: dict[str, int] = {}
        self._admitted: set[tuple[Any, ...]] = set()  # label sets of gen_ai.client.cost
        self._lock = threading.Lock()
        self._logged_models: set[str] = set()
        self._unlogged_models = 0
        self._next_summary = 0.0
        self.cost = meter.create_counter("gen_ai.client.cost", unit="USD",
                                         description="Cost of LLM calls, priced by otel-costattr")
        self.spans = meter.create_counter("otel_costattr.spans", unit="{span}",
                                          description="LLM spans seen, by gen_ai.cost.status")
        self.unpriced = meter.create_counter("otel_costattr.spans.unpriced", unit="{span}",
                                             description="LLM spans whose model is not in the pricing table")
        self.no_usage = meter.create_counter("otel_costattr.spans.no_usage", unit="{span}",
                                             description="LLM spans that reported no token usage")
        self.duplicate = meter.create_counter("otel_costattr.spans.duplicate", unit="{span}",
                                              description="Second spans of an already-priced call")
        self.failed = meter.create_counter("otel_costattr.enrichment.failed", unit="{span}",
                                           description="Spans that could not be enriched, by error.type")
        self.unattributed = meter.create_counter("otel_costattr.spans.unattributed", unit="{span}",
                                                 description="LLM spans missing a required attribution key")
        self.overflowed = meter.create_counter(
            "otel_costattr.metrics.overflow", unit="{measurement}",
            description="Measurements recorded with attribution labels `other`: the instrument had reached its "
                        "label-set limit")

    def record(self, status: str, provider: str | None, model: str | None, cost: float | None,
               span_attrs: Mapping[str, Any]) -> None:
        """Count one LLM span. ``provider``/``model`` are the pricing entry's for ``priced``/``partial``, else
        what the span says (then resolved through the book, or labelled ``unknown``)."""
        self.spans.add(1, _STATUS_LABELS.get(status) or {"gen_ai.cost.status": status})
        if status == "unpriced":
            if _live(self.unpriced):
                known = self.book.canonical_provider(provider) if self.book is not None and provider else None
                self.unpriced.add(1, {"gen_ai.provider.name": known or UNKNOWN, "gen_ai.request.model": UNKNOWN})
                self._log_unpriced(provider, model)
        elif status == "no_usage":
            self.no_usage.add(1)
        elif status == "duplicate":
            self.duplicate.add(1)
        if cost is not None and cost > 0 and _live(self.cost):
            provider, model = self._entry_labels(status, provider, model)
            values = tuple(v[:_MAX_VALUE_LEN] if isinstance(v, str) else None
                           for v in map(span_attrs.get, self.keys))
            key = (provider, model, values)
            if key not in self._admitted:
                with self._lock:
                    if len(self._admitted) < self.label_limit:
                        self._admitted.add(key)
                    elif any(v is not None for v in values):
                        values = tuple(None if v is None else OTHER for v in values)
                        self.overflow["gen_ai.client.cost"] = self.overflow.get("gen_ai.client.cost", 0) + 1
                        self.overflowed.add(1, {"instrument": "gen_ai.client.cost"})
            labels: dict[str, Any] = {"gen_ai.provider.name": provider, "gen_ai.request.model": model}
            for k, v in zip(self.keys, values):
                if v is not None:
                    labels[k] = v
            self.cost.add(cost, labels)

    def _entry_labels(self, status: str, provider: str | None, model: str | None) -> tuple[str, str]:
        """Provider and model labels from the pricing entry, or ``unknown``: never a raw span value."""
        if status in _ENTRY_STATUSES and model:
            return provider or UNKNOWN, model
        if self.book is not None and model:
            try:
                found = self.book.resolve(model, provider)  # cached, bounded
            except Exception:  # noqa: BLE001 - a label is not worth an exception in the app
                found = None
            if found is not None:
                return found[0].provider, found[0].id
        return UNKNOWN, UNKNOWN

    def _log_unpriced(self, provider: str | None, model: str | None) -> None:
        """The raw name of an unpriced model goes here, not into a label: the first few distinct names, then a
        count every ``_LOG_INTERVAL_S`` seconds."""
        name = (model or "")[:_MAX_VALUE_LEN]
        if name in self._logged_models:
            return
        with self._lock:
            if len(self._logged_models) < _LOGGED_MODELS:
                self._logged_models.add(name)
                first = True
            else:
                self._unlogged_models += 1
                first = False
                now = time.monotonic()
                due = now >= self._next_summary
                if due:
                    self._next_summary = now + _LOG_INTERVAL_S
                    count, self._unlogged_models = self._unlogged_models, 0
        if first:
            logger.warning("model %r (provider %r) is not in the pricing tables: its spans are counted as unpriced "
                           "(metric label gen_ai.request.model=unknown); add it with a pricing overlay", name,
                           provider)
        elif due:
            logger.warning("%d more unpriced span(s) of models not named above since the last such line (only the "
                           "first %d distinct names are logged)", count, _LOGGED_MODELS)

    def failure(self, error_type: str) -> None:
        self.failed.add(1, {"error.type": error_type})
