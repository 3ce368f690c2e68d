"""Rollups over the ledger: who spent what, exactly (the numbers behind ``otel-costattr report``).

Every figure is computed in SQL over the ``calls`` view (one row per billed call, duplicates collapsed) and
summed as ``DECIMAL(38,18)``, so totals equal the exact sum of the per-span costs. Unpriced and no-usage calls
are counted, never folded into totals as zero. Spend missing a required attribution key is reported as the
unattributed share.

The same queries run on ClickHouse over the collector's ``otel_traces`` table (see ``_clickhouse``) through
the :class:`Source` interface: a source only has to expose a ``calls`` relation with the ledger's columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Protocol

from ._errors import ConfigurationError
from ._pricing import format_money
from .attributes import DEFAULT_ATTRIBUTION_KEYS

__all__ = ["Filters", "SORTS", "Source", "build_report", "check_keys", "dimension_sql", "growth", "known_keys",
           "missing_sql", "open_ledgers", "series"]

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

    Built-in dimensions and attribution keys are always accepted (a ledger may simply not use one yet); any
    other key must appear on at least one call.

    Raises:
        ConfigurationError: naming the unknown key and the keys that exist.
    """
    dialect = _dialect(src)
    for key in dict.fromkeys(keys):
        dimension_sql(key, dialect=dialect)  # validates the characters
        if key in BUILTIN_DIMENSIONS or key in DEFAULT_ATTRIBUTION_KEYS:
            continue
        if src.query(f"SELECT 1 FROM calls WHERE {dimension_sql(key, dialect=dialect)} IS NOT NULL LIMIT 1"):
            continue
        raise ConfigurationError(f"{what} {key!r}: no call has this key. Known keys: "
                                 f"{', '.join(known_keys(src))}")


def _d(v: Any) -> str:
    return format_money(Decimal(v) if v is not None else Decimal(0)) or "0"


def _money(v: Any) -> str | None:
    """An exact amount, or None when it is unknown (only unpriced or no-usage calls): never "0" for unknown."""
    return None if v is None else (format_money(Decimal(v)) or "0")


def _share(part: Any, total: Decimal) -> str | None:
    if part is None:
        return None
    if not total:
        return "0.00"
    return format(((Decimal(part) / total) * 100).quantize(Decimal("0.01")), "f")


_AGG = """
  sum(cost_total) AS cost,
  count(*) AS calls,
  coalesce(sum(input_tokens), 0) AS input_tokens,
  coalesce(sum(output_tokens), 0) AS output_tokens,
  coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
  coalesce(sum(coalesce(cache_write_tokens, 0) + coalesce(cache_write_1h_tokens, 0)), 0) AS cache_write_tokens,
  coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
  count(*) FILTER (WHERE cost_status = 'unpriced') AS unpriced_calls,
  count(*) FILTER (WHERE cost_status = 'no_usage' OR cost_status IS NULL) AS no_usage_calls
"""
_ROW_FIELDS = ("cost", "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "reasoning_tokens", "unpriced_calls", "no_usage_calls")


#: ``--sort`` orders. "auto": by time for day/month, else by cost (largest first).
SORTS = ("auto", "cost", "calls", "key", "input_tokens", "output_tokens")
#: Dimensions drawn as time series on the HTML page (with period-over-period growth).
SERIES_DIMENSIONS = ("customer_id", "workload_type", "agent_id", "model", "provider")
_TIME_DIMENSIONS = ("day", "month")


def _order(sort: str, keys: Sequence[str], group: str) -> str:
    keys_asc = ", ".join(f"k{i} ASC NULLS LAST" for i in range(len(keys)))
    if sort == "auto":
        sort = "key" if all(k in _TIME_DIMENSIONS for k in keys) else "cost"
    if sort == "key":
        return f"{keys_asc}"
    if sort == "calls":
        return f"calls DESC, cost DESC NULLS LAST, {keys_asc}"
    if sort in ("input_tokens", "output_tokens"):
        return f"{sort} DESC, cost DESC NULLS LAST, {keys_asc}"
    return f"cost DESC NULLS LAST, calls DESC, {keys_asc}"


def _rollup(src: Source, keys: Sequence[str], f: Filters, total: Decimal, top: int | None,
            sort: str = "auto") -> dict[str, Any]:
    exprs = [dimension_sql(k, dialect=_dialect(src)) for k in keys]
    select = ", ".join(f"{e} AS k{i}" for i, e in enumerate(exprs))
    group = ", ".join(f"k{i}" for i in range(len(exprs)))
    where, params = f.where()
    sql = f"SELECT {select}, {_AGG} FROM calls{where} GROUP BY {group} ORDER BY {_order(sort, keys, group)}"
    rows = src.query(sql, params)
    out = []
    for r in rows:
        key = {k: r[i] for i, k in enumerate(keys)}
        vals = dict(zip(_ROW_FIELDS, r[len(keys):]))
        cost = Decimal(vals["cost"]) if vals["cost"] is not None else None
        out.append({"key": key, "cost": _money(cost), "share": _share(cost, total),
                    **{k: int(vals[k]) for k in _ROW_FIELDS if k != "cost"}})
    other = None
    if top is not None and len(out) > top:
        rest = out[top:]
        out = out[:top]
        known = [Decimal(r["cost"]) for r in rest if r["cost"] is not None]
        rest_cost = sum(known, Decimal(0)) if known else None
        other = {"rows": len(rest), "cost": _money(rest_cost), "share": _share(rest_cost, total),
                 **{k: sum(r[k] for r in rest) for k in _ROW_FIELDS if k != "cost"}}
    return {"rows": out, "other": other}


def build_report(src: Source, *, by: Sequence[str] = ("customer_id",), since_ns: int | None = None,
                 until_ns: int | None = None, top: int | None = None,
                 required_keys: Sequence[str] = ("customer_id",), sections: bool = True,
                 where: Sequence[tuple[str, str]] = (), sort: str = "auto") -> dict[str, Any]:
    """The report as plain data (the JSON of ``report --format json``; the HTML report renders it).

    ``rows`` roll up by ``by`` (any attribution key, span attribute, or provider/model/day/month/service),
    ordered by ``sort`` (:data:`SORTS`), over the calls matching ``where`` (``(key, value)`` pairs: values of
    one key are alternatives, keys must all match; an empty value means "no value"). A missing key is ``None``
    in ``key`` (never a made-up string); an amount is ``None`` when it is unknown (only unpriced/no-usage calls).
    With ``sections`` the report also carries spend by day, the top customers/tasks/agents/skills/models (with
    ``top_other``), vendor share by workload type, per-dimension daily ``series`` and ``growth``.

    Raises:
        ConfigurationError: no key in ``by``; a key no call has (a typo; the message lists the known keys);
            an unknown ``sort``.
    """
    if not by:
        raise ConfigurationError("--by needs at least one key, e.g. --by customer_id")
    if sort not in SORTS:
        raise ConfigurationError(f"--sort {sort!r} is not known; use one of: {', '.join(SORTS)}")
    check_keys(src, list(by), "--by")
    check_keys(src, list(required_keys), "--required-keys")
    check_keys(src, [k for k, _ in where], "--where")
    match: dict[str, list[str]] = {}
    for k, v in where:
        match.setdefault(k, []).append(v)
    f = Filters(since_ns, until_ns, tuple((k, tuple(v)) for k, v in match.items()), _dialect(src))
    where_sql, params = f.where()
    (total, calls, unpriced, no_usage, partial, provided), = src.query(
        f"SELECT sum(cost_total), count(*), count(*) FILTER (WHERE cost_status = 'unpriced'), "
        f"count(*) FILTER (WHERE cost_status = 'no_usage' OR cost_status IS NULL), "
        f"count(*) FILTER (WHERE cost_status = 'partial'), count(*) FILTER (WHERE cost_status = 'provided') "
        f"FROM calls{where_sql}", params)
    total = Decimal(total) if total is not None else Decimal(0)
    dup_where, dup_params = f.where("is_llm AND cost_status = 'duplicate'")
    (dups,), = src.query(f"SELECT count(*) FROM spans{dup_where}", dup_params)
    missing = " OR ".join(missing_sql(k, _dialect(src)) for k in required_keys) or "1 = 0"
    un_where, un_params = f.where(f"({missing})")
    (un_cost, un_calls), = src.query(f"SELECT sum(cost_total), count(*) FROM calls{un_where}", un_params)
    un_cost = Decimal(un_cost) if un_cost is not None else Decimal(0)
    up_where, up_params = f.where("cost_status = 'unpriced'")
    unpriced_models = [{"model": m, "provider": p, "calls": int(n)} for m, p, n in src.query(
        f"SELECT coalesce(response_model, request_model, 'unknown'), coalesce(provider, 'unknown'), count(*) "
        f"FROM calls{up_where} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50", up_params)]
    main = _rollup(src, list(by), f, total, top, sort)
    report: dict[str, Any] = {
        "currency": "USD",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "since": _iso(since_ns), "until": _iso(until_ns),
        "by": list(by),
        "where": {k: list(v) for k, v in match.items()},
        "sort": sort,
        "total": _d(total),
        "calls": int(calls),
        "rows": main["rows"],
        "other": main["other"],
        "unattributed": {"required_keys": list(required_keys), "cost": _d(un_cost), "share": _share(un_cost, total),
                         "calls": int(un_calls)},
        "unpriced_calls": int(unpriced),
        "no_usage_calls": int(no_usage),
        "partial_calls": int(partial),
        "provided_calls": int(provided),
        "duplicate_spans": int(dups),
        "unpriced_models": unpriced_models,
    }
    if sections:
        day_sql = DAY_INDEX_SQL[_dialect(src)]
        report["by_day"] = [{"day": _day_text(d), "cost": _money(c), "calls": int(n)} for d, c, n in src.query(
            f"SELECT {day_sql} AS d, sum(cost_total), count(*) FROM calls{where_sql} GROUP BY d ORDER BY d", params)]
        tops = {k: _rollup(src, [k], f, total, 10)
                for k in ("customer_id", "workload_type", "task_id", "agent_id", "skill_id", "process_id", "model",
                          "provider")}
        report["top"] = {k: t["rows"] for k, t in tops.items()}
        report["top_other"] = {k: t["other"] for k, t in tops.items() if t["other"]}
        days = [d["day"] for d in report["by_day"]]
        report["series"] = {k: series(src, f, k, days, [r["key"][k] for r in tops[k]["rows"]][:8])
                            for k in SERIES_DIMENSIONS}
        report["growth"] = {k: growth(src, f, k, days) for k in SERIES_DIMENSIONS}
        report["vendor_share_by_workload"] = vendor_share(src, f)
        report["top_traces"] = top_traces(src, f)
        from ._economics import chains_for, economics, layers, retry_analysis

        found = chains_for(src, f)
        chains = found[0]
        report["retry"] = retry_analysis(src, f, total, chains=found)
        report["economics"] = {"by_task": economics(src, f, chains, "task_id"),
                               "by_workload": economics(src, f, chains, "workload_type")}
        report["layers"] = layers(src, f, "agent_id")
    return report


def _all_days(days: Sequence[str]) -> list[str]:
    """Every UTC day from the first to the last of ``days`` (a day without calls is a day of zero spend)."""
    if not days:
        return []
    first, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
    return [(first + timedelta(n)).isoformat() for n in range((last - first).days + 1)]


def series(src: Source, f: Filters, key: str, days: Sequence[str], top: Sequence[Any] | None = None,
           entries: int = 8) -> dict[str, Any]:
    """Daily spend of ``key``'s ``entries`` largest values (plus one "other" entry for the rest, so every day
    adds up to its total): ``{"periods": [day...], "entries": [{"key", "other", "total", "costs"}]}``.

    ``top``: those values, largest first, when the caller has them already (else they are queried). ``costs``
    has one exact amount per period: ``"0"`` for a day without calls, ``None`` when the day's calls all have an
    unknown cost. A missing key is the entry with ``key`` None."""
    dialect = _dialect(src)
    k, day = dimension_sql(key, dialect=dialect), DAY_INDEX_SQL[dialect]
    where, params = f.where()
    if top is None:
        top = [r[0] for r in src.query(
            f"SELECT {k} AS k, sum(cost_total) AS c, count(*) AS n FROM calls{where} GROUP BY k "
            f"ORDER BY c DESC NULLS LAST, n DESC, k NULLS LAST LIMIT {int(entries)}", params)]
    top = list(top)[:entries]
    named = [v for v in top if v is not None]
    has_missing = any(v is None for v in top)
    inlist = f"{k} IN ({', '.join('?' for _ in named)})" if named else "1 = 0"
    rows = src.query(
        f"SELECT {day} AS d, CASE WHEN {k} IS NULL THEN 0 WHEN {inlist} THEN 1 ELSE 2 END AS t, "
        f"CASE WHEN {inlist} THEN {k} END AS kk, sum(cost_total), count(*) FROM calls{where} GROUP BY d, t, kk",
        [*named, *named, *params])
    periods = _all_days(days)
    index = {d: i for i, d in enumerate(periods)}
    other_key = object()
    cells: dict[Any, list[Decimal | None]] = {}
    seen: dict[Any, list[bool]] = {}
    for d, t, kk, cost, _n in rows:
        i = index.get(_day_text(d))
        if i is None:
            continue
        entry = (None if has_missing else other_key) if t == 0 else kk if t == 1 else other_key
        costs = cells.setdefault(entry, [Decimal(0)] * len(periods))
        known = seen.setdefault(entry, [False] * len(periods))
        if cost is not None:
            costs[i] = (costs[i] or Decimal(0)) + Decimal(cost)
            known[i] = True
        elif not known[i]:
            costs[i] = None
    out = []
    for key_value in top + ([other_key] if other_key in cells else []):
        costs = cells.get(key_value, [Decimal(0)] * len(periods))
        other = key_value is other_key
        total = sum((c for c in costs if c is not None), Decimal(0))
        out.append({"key": None if other else key_value, "other": other, "total": _money(total),
                    "costs": [_money(c) for c in costs]})
    return {"periods": periods, "entries": out}


def _day_text(day_index: Any) -> str:
    return (date(1970, 1, 1) + timedelta(int(day_index))).isoformat()


def growth(src: Source, f: Filters, key: str, days: Sequence[str], fastest: int = 5) -> dict[str, Any]:
    """Period over period for ``key``: the last ``n`` days against the ``n`` days before (``n`` = half the
    days covered), and the ``fastest`` entries by increase in dollars (the percentage is None for an entry new in
    the recent period). Exact amounts as strings."""
    periods = _all_days(days)
    n = len(periods) // 2
    if n < 1:
        return {"days": 0, "fastest": [], "note": "Growth needs at least two days of spend."}
    prior_from, recent_from = date.fromisoformat(periods[-2 * n]), date.fromisoformat(periods[-n])
    end = date.fromisoformat(periods[-1]) + timedelta(1)
    lo, mid, hi = (_day_ns(d) for d in (prior_from, recent_from, end))
    k = dimension_sql(key, dialect=_dialect(src))
    where, params = f.where("start_ns >= ? AND start_ns < ?")
    rows = src.query(
        f"SELECT {k} AS k, sum(cost_total) FILTER (WHERE start_ns >= ?) AS recent, "
        f"sum(cost_total) FILTER (WHERE start_ns < ?) AS prior FROM calls{where} GROUP BY k "
        f"HAVING coalesce(sum(cost_total) FILTER (WHERE start_ns >= ?), 0) > "
        f"coalesce(sum(cost_total) FILTER (WHERE start_ns < ?), 0) "
        f"ORDER BY coalesce(recent, 0) - coalesce(prior, 0) DESC, k NULLS LAST LIMIT {int(fastest)}",
        [mid, mid, *params, lo, hi, mid, mid])
    out = []
    for key_value, recent, prior in rows:
        r, p = Decimal(recent or 0), Decimal(prior or 0)
        out.append({"key": key_value, "prior": _money(p), "recent": _money(r), "change": _money(r - p),
                    "change_pct": format(((r - p) / p * 100).quantize(Decimal("0.01")), "f") if p else None})
    return {"days": n, "prior_from": prior_from.isoformat(), "recent_from": recent_from.isoformat(),
            "fastest": out}


def _day_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def top_traces(src: Source, f: Filters, limit: int = 10) -> list[dict[str, Any]]:
    """The ``limit`` most expensive traces (the drill-down from a rollup to what happened): trace id, the customer
    and agent of its most expensive call (None if missing), calls and exact cost."""
    where, params = f.where()
    top = [r[0] for r in src.query(f"SELECT trace_id FROM calls{where} GROUP BY trace_id "
                                   f"ORDER BY sum(cost_total) DESC NULLS LAST, trace_id LIMIT {int(limit)}", params)]
    if not top:
        return []
    d = _dialect(src)
    in_where, in_params = f.where(f"trace_id IN ({', '.join('?' for _ in top)})")
    rows = {r[0]: r for r in src.query(
        f"SELECT trace_id, argMax({dimension_sql('customer_id', dialect=d)}, cost_total), "
        f"argMax({dimension_sql('agent_id', dialect=d)}, cost_total), count(*), sum(cost_total), min(start_ns) "
        f"FROM calls{in_where} GROUP BY trace_id", [*in_params, *top])}
    return [{"trace_id": t, "customer_id": c, "agent_id": a, "calls": int(n), "cost": _money(cost),
             "start": _iso(start)} for t, c, a, n, cost, start in (rows[t] for t in top)]


def vendor_share(src: Source, f: Filters) -> list[dict[str, Any]]:
    """Per workload type: each provider's cost and share of that workload's spend."""
    where, params = f.where()
    rows = src.query(
        f"SELECT {dimension_sql('workload_type', dialect=_dialect(src))} AS w, "
        f"{dimension_sql('provider', dialect=_dialect(src))} AS p, sum(cost_total) AS c, "
        f"count(*) AS n FROM calls{where} GROUP BY w, p ORDER BY w, c DESC NULLS LAST, p", params)
    totals: dict[str, Decimal] = {}
    for w, _, c, _ in rows:
        totals[w] = totals.get(w, Decimal(0)) + (Decimal(c) if c is not None else Decimal(0))
    return [{"workload_type": w, "provider": p, "cost": _money(c), "calls": int(n),
             "share": _share(c, totals[w])} for w, p, c, n in rows]


def _dialect(src: Source) -> str:
    return getattr(src, "dialect", "duckdb")


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")


class LedgerUnion:
    """Several ledger files read as one :class:`Source`: its ``calls`` and ``spans`` are the union of theirs.

    Each file is attached read-only to an in-memory DuckDB. A call stored in two of the files counts twice: pass
    ledgers that hold different spans (e.g. one per service or per month).

    Raises:
        ConfigurationError: a file is missing, is not a DuckDB file, or is not an otel-costattr ledger.
    """

    dialect = "duckdb"

    def __init__(self, paths: Sequence[str]) -> None:
        import duckdb

        self.con = duckdb.connect(":memory:")
        for i, p in enumerate(paths):
            path = Path(p)
            if not path.exists():
                raise ConfigurationError(f"ledger {p} does not exist; run `otel-costattr demo` or pass the path "
                                         "your application writes (configure(ledger=...))")
            literal = str(path).replace("'", "''")
            try:
                self.con.execute(f"ATTACH '{literal}' AS l{i} (READ_ONLY)")
            except duckdb.Error as exc:
                raise ConfigurationError(f"cannot open ledger {p}: {exc}") from None
            have = {r[0] for r in self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [f"l{i}"]).fetchall()}
            if not {"spans", "calls"} <= have:
                raise ConfigurationError(f"{p} is not an otel-costattr ledger (it has no spans/calls tables); pass "
                                         "the file that `ingest`, `demo` or configure(ledger=...) wrote")
        for view in ("spans", "calls"):
            union = " UNION ALL BY NAME ".join(f"SELECT * FROM l{i}.{view}" for i in range(len(paths)))
            self.con.execute(f"CREATE VIEW {view} AS {union}")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def close(self) -> None:
        self.con.close()


def open_ledgers(paths: Sequence[str]) -> Any:
    """One ledger file (a read-only :class:`~otel_costattr._ledger.Ledger`) or several (a :class:`LedgerUnion`).

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
        return LedgerUnion(paths)
    from ._ledger import Ledger

    ledger = Ledger(paths[0], read_only=True)
    (n,), = ledger.query("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('spans', 'calls')")
    if n < 2:
        ledger.close()
        raise ConfigurationError(f"{paths[0]} is not an otel-costattr ledger (it has no spans/calls tables); pass "
                                 "the file that `ingest`, `demo` or configure(ledger=...) wrote")
    return ledger
