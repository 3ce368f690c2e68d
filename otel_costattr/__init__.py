"""otel-costattr: cost attribution for LLM calls on OpenTelemetry.

Tag every LLM call when it happens, price it exactly from a maintained, versioned table, and roll the
spend up per customer, process, run, task, agent, skill, user and feature.

Three lines on an existing ``TracerProvider``, beside the processors it already has::

    provider.add_span_processor(otel_costattr.baggage_processor())
    provider.add_span_processor(otel_costattr.CostSpanProcessor())
    with otel_costattr.attribution(customer_id="acme", task_id="triage"): ...

or everything at once with :func:`configure`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import ConfigurationError, OtelCostattrError, PricingError
from ._pricing._book import Cost, PriceBook, default_book, format_money, price
from ._version import __version__

# Pricing is imported eagerly (it is what `price()` needs); the tracing pieces load on first use, so that
# `import otel_costattr` stays cheap for scripts that only price.
_LAZY = {
    "AttributionBaggageProcessor": "._capture._attribution",
    "attribution": "._capture._attribution",
    "attribution_keys": "._capture._attribution",
    "baggage_processor": "._capture._attribution",
    "propagator": "._capture._attribution",
    "set_attribution_keys": "._capture._attribution",
    "strip_attribution": "._capture._attribution",
    "Pipeline": "._configure",
    "configure": "._configure",
    "CostSpanExporter": "._capture._exporter",
    "CostSpanProcessor": "._capture._processor",
    "CostAwareSampler": "._capture._sampling",
    "attributes": ".attributes",
    "attempt": "._capture._attempt",
    "Chain": "._analysis._chains",
    "token_layers": "._capture._layers",
    "memory": "._capture._layers",
    "set_memory_rule": "._capture._layers",
    "build_chains": "._analysis._chains",
}

__all__ = [
    "AttributionBaggageProcessor",
    "Chain",
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
    "attempt",
    "attributes",
    "baggage_processor",
    "build_chains",
    "configure",
    "default_book",
    "format_money",
    "memory",
    "price",
    "propagator",
    "set_attribution_keys",
    "set_memory_rule",
    "strip_attribution",
    "token_layers",
]


def _rehome(obj: Any) -> Any:
    # Public classes and functions report the facade as their home (``otel_costattr.Cost``).
    if callable(obj):
        try:
            obj.__module__ = "otel_costattr"
        except (AttributeError, TypeError):  # pragma: no cover
            pass
    return obj


for _name in ("ConfigurationError", "Cost", "OtelCostattrError", "PriceBook", "PricingError", "default_book",
              "format_money", "price"):
    _rehome(globals()[_name])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_costattr' has no attribute {name!r}")
    mod = importlib.import_module(module, __name__)
    value = mod if name == "attributes" else _rehome(getattr(mod, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
