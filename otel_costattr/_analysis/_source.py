"""The query vocabulary every analysis shares: where the spans live (:class:`Source`), the time filter
(:class:`Filters`: time window and ``--where``), the SQL for a ``--by`` dimension on each dialect, the check
that a key exists (typos fail naming the known keys), and opening one or several ledger files as a source.

Rollups, economics, FOCUS, reconciliation and budgets all build on these, so they live apart from any one of
them; that keeps the imports one way (``_rollup`` uses ``_economics``, both use this module).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .._errors import ConfigurationError
from ..attributes import DEFAULT_ATTRIBUTION_KEYS

__all__ = [
    "BUILTIN_DIMENSIONS",
    "DAY_INDEX_SQL",
    "UNATTRIBUTED",
    "Filters",
    "Source",
    "check_keys",
    "dimension_sql",
    "known_keys",
    "missing_sql",
    "open_ledgers",
]

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
#: What the economics tables still write for a missing key; the rollups use None (null in JSON) instead.
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
#: The UTC day of a call as a whole number of days since the epoch: grouping by it is several times cheaper than by
#: the formatted date (which is made only for the few groups, in Python).
DAY_INDEX_SQL = {"duckdb": "start_ns // 86400000000000", "clickhouse": "intDiv(start_ns, 86400000000000)"}
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
    """The calls a rollup covers: ``[since_ns, until_ns)`` and ``match`` (``--where``: each key must have one of
    its values; an empty value matches a call without that key)."""

    since_ns: int | None = None
    until_ns: int | None = None
    match: tuple[tuple[str, tuple[str, ...]], ...] = ()
    dialect: str = "duckdb"

    def where(self, extra: str = "") -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for key, values in self.match:
            expr = dimension_sql(key, dialect=self.dialect)
            alts = []
            named = [v for v in values if v != ""]
            if named:
                alts.append(f"{expr} IN ({', '.join('?' for _ in named)})")
                params.extend(named)
            if len(named) < len(values):
                alts.append(f"{expr} IS NULL")
            parts.append("(" + " OR ".join(alts) + ")")
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
        return f"nullif({key}, '')"
    # any other attribute: read it from the span's remaining attributes
    return f"nullif({ATTRIBUTE_SQL[dialect].format(key=key)}, '')"


def missing_sql(key: str, dialect: str = "duckdb") -> str:
    """SQL predicate: the call has no value (absent or empty) for ``key``."""
    return f"({dimension_sql(key, dialect=dialect)}) IS NULL"


def known_keys(src: Source, limit: int = 60) -> list[str]:
    """The keys ``--by``/``--where``/budget scopes accept here: built-in dimensions, attribution keys, then up to
    ``limit`` other span attributes seen in the first 100,000 calls (for error messages)."""
    if _dialect(src) == "clickhouse":
        sql = (f"SELECT DISTINCT k FROM (SELECT arrayJoin(mapKeys(attributes)) AS k FROM "
               f"(SELECT attributes FROM calls LIMIT 100000)) ORDER BY k LIMIT {int(limit)}")
    else:
        sql = (f"SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM "
               f"(SELECT attributes FROM calls WHERE attributes IS NOT NULL LIMIT 100000)) ORDER BY k LIMIT {int(limit)}")
    try:
        seen = [str(r[0]) for r in src.query(sql)]
    except Exception:  # noqa: BLE001 - only for the message: a source that cannot list its keys still works
        seen = []
    fixed = [*BUILTIN_DIMENSIONS, *DEFAULT_ATTRIBUTION_KEYS]
    return fixed + [k for k in seen if k not in fixed and _KEY_RE.match(k)]


def check_keys(src: Source, keys: Sequence[str], what: str) -> None:
    """Fail fast on a key no call has: a typo would otherwise report 100% "missing" (or $0) and exit 0.

    Built-in dimensions and attribution keys are always accepted (a ledger may simply not use one yet), and so
    are the prompt/completion content keys (``CONTENT_KEYS``: a ledger holds them only with ``store_content``,
    so their absence is a setting, not a typo); any other key must appear on at least one call.

    Raises:
        ConfigurationError: naming the unknown key and the keys that exist.
    """
    from .._ledger._store import CONTENT_KEYS

    dialect = _dialect(src)
    for key in dict.fromkeys(keys):
        dimension_sql(key, dialect=dialect)  # validates the characters
        if key in BUILTIN_DIMENSIONS or key in DEFAULT_ATTRIBUTION_KEYS or key in CONTENT_KEYS:
            continue
        if src.query(f"SELECT 1 FROM calls WHERE {dimension_sql(key, dialect=dialect)} IS NOT NULL LIMIT 1"):
            continue
        raise ConfigurationError(f"{what} {key!r}: no call has this key. Known keys: "
                                 f"{', '.join(known_keys(src))}")


def _dialect(src: Source) -> str:
    return getattr(src, "dialect", "duckdb")


def open_ledgers(paths: Sequence[str]) -> Any:
    """One ledger (a read-only :class:`~otel_costattr._ledger.Ledger`) or several (a
    :class:`~otel_costattr._ledger._store.LedgerSet`, their union).

    Raises:
        ConfigurationError: a path is given twice, a file is missing or not an otel-costattr ledger.
    """
    seen: dict[Path, str] = {}
    for p in paths:
        real = Path(p).resolve()
        if real in seen:
            raise ConfigurationError(f"--db {p}: the same ledger is passed twice ({seen[real]}); its spend would "
                                     "count twice")
        seen[real] = p
    if len(paths) > 1:
        from .._ledger._store import LedgerSet  # ledger directories read live, single files attached
        return LedgerSet(paths)
    from .._ledger._store import Ledger

    ledger = Ledger(paths[0], read_only=True)
    (n,), = ledger.query("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('spans', 'calls')")
    if n < 2:
        ledger.close()
        raise ConfigurationError(f"{paths[0]} is not an otel-costattr ledger (it has no spans/calls tables); pass "
                                 "the file that `ingest`, `demo` or configure(ledger=...) wrote")
    return ledger

