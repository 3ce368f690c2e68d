"""Cost metrics through the OpenTelemetry metrics API, so totals survive trace sampling.

Instruments (meter ``otel_costattr``):

* ``gen_ai.client.cost`` (counter, ``USD``): cost of priced and partial calls, by ``gen_ai.provider.name``,
  ``gen_ai.request.model`` (the pricing entry) and the low-cardinality attribution keys chosen by the user.
* ``otel_costattr.spans`` (counter): every LLM span by ``gen_ai.cost.status``.
* ``otel_costattr.spans.unpriced`` / ``.no_usage`` / ``.duplicate`` (counters): the non-priced statuses on
  their own, for alerting without filtering.
* ``otel_costattr.enrichment.failed`` (counter, by ``error.type``): spans we could not enrich (they were
  still exported unchanged), plus downstream processors that raised.
* ``otel_costattr.spans.unattributed`` (counter): LLM spans missing a required attribution key.

The ledger's processor has its own counter, ``otel_costattr.ledger.spans.dropped`` (by ``reason`` and
``gen_ai.cost.status``), see :class:`~otel_costattr._ledger._store.LedgerSpanProcessor`.

Recording never raises. Without a configured ``MeterProvider`` the API is a no-op and costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import NoOpCounter as _NOOP

from .._version import __version__
from ..attributes import STATUSES

__all__ = ["CostMetrics"]

logger = logging.getLogger(__name__)

_MAX_VALUE_LEN = 128
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

    def __init__(self, meter_provider: Any = None, attribution_keys: Sequence[str] = ()) -> None:
        meter = (meter_provider.get_meter("otel_costattr", __version__) if meter_provider is not None
                 else metrics.get_meter("otel_costattr", __version__))
        self.keys = tuple(attribution_keys)
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

    def record(self, status: str, provider: str | None, model: str | None, cost: float | None,
               span_attrs: Mapping[str, Any]) -> None:
        self.spans.add(1, _STATUS_LABELS.get(status) or {"gen_ai.cost.status": status})
        if status == "unpriced":
            self.unpriced.add(1, {"gen_ai.request.model": (model or "unknown")[:_MAX_VALUE_LEN]})
        elif status == "no_usage":
            self.no_usage.add(1)
        elif status == "duplicate":
            self.duplicate.add(1)
        if cost is not None and cost > 0 and _live(self.cost):
            labels: dict[str, Any] = {"gen_ai.provider.name": provider or "unknown",
                                      "gen_ai.request.model": (model or "unknown")[:_MAX_VALUE_LEN]}
            for k in self.keys:
                v = span_attrs.get(k)
                if isinstance(v, str):
                    labels[k] = v[:_MAX_VALUE_LEN]
            self.cost.add(cost, labels)

    def failure(self, error_type: str) -> None:
        self.failed.add(1, {"error.type": error_type})
