"""The query vocabulary every analysis shares: where the spans live (:class:`Source`), the time filter
(:class:`Filters`), and the SQL for a ``--by`` dimension on each dialect.

Rollups, economics, FOCUS, reconciliation and budgets all build on these, so they live apart from any one of
them; that keeps the imports one way (``_rollup`` uses ``_economics``, both use this module).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import ConfigurationError
from ..attributes import DEFAULT_ATTRIBUTION_KEYS

__all__ = ["BUILTIN_DIMENSIONS", "Filters", "Source", "UNATTRIBUTED", "dimension_sql"]

_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
#: --by dimensions that are not attribution keys.
BUILTIN_DIMENSIONS = {
    # the vendor that bills the call (from the price table), else what the span reports
    "provider": "coalesce(pricing_provider, lower(provider), 'unknown')",
    "model": "coalesce(pricing_model, response_model, request_model, 'unknown')",
    "day": "strftime(make_timestamp(start_ns // 1000), '%Y-%m-%d')",
    "month": "strftime(make_timestamp(start_ns // 1000), '%Y-%m')",
    "service": "coalesce(service_name, 'unknown')",
    "status": "coalesce(cost_status, 'unknown')",
    "operation": "coalesce(operation, 'unknown')",
}
UNATTRIBUTED = "(unattributed)"
#: Where a source's SQL dialect (``Source.dialect``) differs from DuckDB's, the one expression that changes; every
#: other statement in this module runs unchanged on both (ClickHouse also has ``count(*) FILTER (WHERE ...)``).
DIALECT_DIMENSIONS: dict[str, dict[str, str]] = {
    "clickhouse": {
        "provider": "coalesce(pricing_provider, lowerUTF8(provider), 'unknown')",  # lower() is ASCII-only there
        "day": "formatDateTime(fromUnixTimestamp64Nano(start_ns, 'UTC'), '%Y-%m-%d')",
        "month": "formatDateTime(fromUnixTimestamp64Nano(start_ns, 'UTC'), '%Y-%m')",
    },
}
#: Any other span attribute: DuckDB reads the ledger's JSON column, ClickHouse the span's attribute map.
ATTRIBUTE_SQL = {
    "duckdb": "json_extract_string(attributes, '$.\"{key}\"')",
    "clickhouse": "if(mapContains(attributes, '{key}'), attributes['{key}'], NULL)",
}


class Source(Protocol):
    """Where the spans live: the DuckDB ledger, or ClickHouse. Runs SQL against a ``calls`` relation."""

    dialect: str

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class Filters:
    since_ns: int | None = None
    until_ns: int | None = None

    def where(self, extra: str = "") -> tuple[str, list[Any]]:
        parts, params = [], []
        if self.since_ns is not None:
            parts.append("start_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            parts.append("start_ns < ?")
            params.append(self.until_ns)
        if extra:
            parts.append(extra)
        return (" WHERE " + " AND ".join(parts)) if parts else "", params


def dimension_sql(key: str, attribution_columns: Sequence[str] = DEFAULT_ATTRIBUTION_KEYS,
                  dialect: str = "duckdb") -> str:
    """SQL expression for a ``--by`` key: a built-in dimension, an attribution column or any span attribute.

    ``dialect`` is the source's (``"duckdb"`` or ``"clickhouse"``); both expressions give the same values.

    Raises:
        ConfigurationError: the key has characters that cannot be a key, or the dialect is unknown.
    """
    if dialect not in ATTRIBUTE_SQL:
        raise ConfigurationError(f"unknown SQL dialect {dialect!r}; known: {', '.join(ATTRIBUTE_SQL)}")
    if key in BUILTIN_DIMENSIONS:
        return DIALECT_DIMENSIONS.get(dialect, {}).get(key, BUILTIN_DIMENSIONS[key])
    if not _KEY_RE.match(key):
        raise ConfigurationError(f"--by key {key!r} is not a valid attribute name (letters, digits, _ . : -)")
    if key in attribution_columns:
        return f"coalesce({key}, '{UNATTRIBUTED}')"
    # any other attribute: read it from the span's remaining attributes
    return f"coalesce({ATTRIBUTE_SQL[dialect].format(key=key)}, '{UNATTRIBUTED}')"
