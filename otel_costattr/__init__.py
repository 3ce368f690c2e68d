"""otel-costattr: cost attribution for LLM calls on OpenTelemetry.

Tag every LLM call when it happens, price it exactly from a maintained, versioned table, and roll the
spend up per customer, process, run, task, agent, skill, user and feature.

Three lines on an existing ``TracerProvider``::

    provider.add_span_processor(otel_costattr.baggage_processor())
    provider.add_span_processor(otel_costattr.CostSpanProcessor(BatchSpanProcessor(exporter)))
    with otel_costattr.attribution(customer_id="acme", task_id="triage"): ...

or everything at once with :func:`configure`.
"""

from . import attributes
from ._attribution import (
    AttributionBaggageProcessor,
    attribution,
    attribution_keys,
    baggage_processor,
    propagator,
    set_attribution_keys,
    strip_attribution,
)
from ._configure import Pipeline, configure
from ._errors import ConfigurationError, OtelCostattrError, PricingError
from ._exporter import CostSpanExporter
from ._pricing import Cost, PriceBook, default_book, format_money, price
from ._processor import CostSpanProcessor
from ._sampling import CostAwareSampler
from ._version import __version__

__all__ = [
    "AttributionBaggageProcessor",
    "ConfigurationError",
    "Cost",
    "CostAwareSampler",
    "CostSpanExporter",
    "CostSpanProcessor",
    "OtelCostattrError",
    "Pipeline",
    "PriceBook",
    "PricingError",
    "__version__",
    "attribution",
    "attribution_keys",
    "attributes",
    "baggage_processor",
    "configure",
    "default_book",
    "format_money",
    "price",
    "propagator",
    "set_attribution_keys",
    "strip_attribution",
]

# Public classes and functions report the facade as their home (``otel_costattr.Cost``).
for _name in __all__:
    _obj = globals()[_name]
    if callable(_obj) and not _name.startswith("__"):
        try:
            _obj.__module__ = "otel_costattr"
        except (AttributeError, TypeError):  # pragma: no cover
            pass
del _name, _obj
