"""Exceptions raised by otel-costattr.

Only configuration-time code raises. Hot-path code (span processors, exporters) never raises into the
application; it logs once and counts instead.

    OtelCostattrError
     ├── PricingError        a pricing file is malformed (names the file, model and field)
     └── ConfigurationError  bad arguments or environment at start-up (names the fix)
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "OtelCostattrError", "PricingError"]


class OtelCostattrError(Exception):
    """Base class of every exception this library raises."""


class PricingError(OtelCostattrError, ValueError):
    """A pricing file or pricing argument is invalid.

    The message always names where the problem is (``file``, ``model``, ``field``) so that it can be
    fixed without reading the loader's code.
    """

    def __init__(self, message: str, *, file: str | None = None, model: str | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.model = model
        self.field = field
        where = []
        if file:
            where.append(str(file))
        if model:
            where.append(f"model {model!r}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join([', '.join(where)]) + ': ' if where else ''}{message}")


class ConfigurationError(OtelCostattrError, ValueError):
    """Bad configuration detected at start-up. The message says how to fix it."""
