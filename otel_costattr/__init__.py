"""otel-costattr: cost attribution for LLM calls on OpenTelemetry.

Tag every LLM call when it happens, price it exactly from a maintained, versioned table, and roll the
spend up per customer, process, run, task, agent, skill, user and feature.

    >>> import otel_costattr
    >>> cost = otel_costattr.price("gpt-4o-mini", input_tokens=1200, cache_read_tokens=1024, output_tokens=300)
    >>> cost.status, cost.total  # doctest: +SKIP
    ('priced', Decimal('0.0002448'))
"""

from ._errors import ConfigurationError, OtelCostattrError, PricingError
from ._pricing import Cost, PriceBook, default_book, format_money, price
from ._version import __version__

__all__ = [
    "ConfigurationError",
    "Cost",
    "OtelCostattrError",
    "PriceBook",
    "PricingError",
    "__version__",
    "default_book",
    "format_money",
    "price",
]

# Public objects report the facade as their home (``otel_costattr.Cost``), not the private module.
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and not _name.startswith("__"):
        try:
            _obj.__module__ = "otel_costattr"
        except (AttributeError, TypeError):  # pragma: no cover
            pass
del _name, _obj
