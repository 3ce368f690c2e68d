"""Rollups over the ledger: who spent what, exactly (the numbers behind ``otel-costattr report``).

Every figure is computed in SQL over the ``calls`` view (one row per billed call, duplicates collapsed) and
summed as ``DECIMAL(38,18)``, so totals equal the exact sum of the per-span costs. Unpriced and no-usage calls
are counted, never folded into totals as zero. Spend missing a required attribution key is reported as the
unattributed share.

The same queries run on ClickHouse over the collector's ``otel_traces`` table (see ``_clickhouse``) through
the :class:`Source` interface: a source only has to expose a ``calls`` relation with the ledger's columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .._errors import ConfigurationError
from .._pricing._book import format_money
from ._economics import chains_for, check_findings_by, economics, layers, retry_analysis
from ._source import UNATTRIBUTED, Filters, Source, dimension_sql

__all__ = ["Filters", "Source", "build_report", "dimension_sql"]


def _d(v: Any) -> str:
    return format_money(Decimal(v) if v is not None else Decimal(0)) or "0"


def _share(part: Any, total: Decimal) -> str:
    if not total:
        return "0"
    return format(((Decimal(part or 0) / total) * 100).quantize(Decimal("0.01")), "f")


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


def _rollup(src: Source, keys: Sequence[str], f: Filters, total: Decimal, top: int | None) -> dict[str, Any]:
    exprs = [dimension_sql(k, dialect=_dialect(src)) for k in keys]
    select = ", ".join(f"{e} AS k{i}" for i, e in enumerate(exprs))
    group = ", ".join(f"k{i}" for i in range(len(exprs)))
    where, params = f.where()
    sql = f"SELECT {select}, {_AGG} FROM calls{where} GROUP BY {group} ORDER BY cost DESC NULLS LAST, calls DESC, {group}"
    rows = src.query(sql, params)
    out = []
    for r in rows:
        key = {k: r[i] for i, k in enumerate(keys)}
        vals = dict(zip(_ROW_FIELDS, r[len(keys):]))
        cost = Decimal(vals["cost"]) if vals["cost"] is not None else Decimal(0)
        out.append({"key": key, "cost": _d(cost), "share": _share(cost, total),
                    **{k: int(vals[k]) for k in _ROW_FIELDS if k != "cost"}})
    other = None
    if top is not None and len(out) > top:
        rest = out[top:]
        out = out[:top]
        rest_cost = sum((Decimal(r["cost"]) for r in rest), Decimal(0))
        other = {"rows": len(rest), "cost": _d(rest_cost), "share": _share(rest_cost, total),
                 **{k: sum(r[k] for r in rest) for k in _ROW_FIELDS if k != "cost"}}
    return {"rows": out, "other": other}


def build_report(src: Source, *, by: Sequence[str] = ("customer_id",), since_ns: int | None = None,
                 until_ns: int | None = None, top: int | None = None,
                 required_keys: Sequence[str] = ("customer_id",), sections: bool = True, retry: bool | None = None,
                 findings_by: Sequence[str] = ("customer_id",)) -> dict[str, Any]:
    """The report as plain data (the JSON of ``report --format json``; the HTML report renders it).

    ``rows`` roll up by ``by`` (any attribution key, span attribute, or provider/model/day/month/service).
    With ``sections`` the report also carries spend by day, the top customers/tasks/agents/skills/models and
    vendor share by workload type, and the economics sections. ``retry`` (default: as ``sections``) adds the
    retry analysis with its findings per ``findings_by`` key (see :func:`._economics.retry_analysis`).
    """
    if not by:
        raise ConfigurationError("--by needs at least one key, e.g. --by customer_id")
    for k in required_keys:
        dimension_sql(k)  # validates
    findings_by = check_findings_by(findings_by)
    retry = sections if retry is None else retry
    f = Filters(since_ns, until_ns)
    where, params = f.where()
    (total, calls, unpriced, no_usage, partial, provided), = src.query(
        f"SELECT sum(cost_total), count(*), count(*) FILTER (WHERE cost_status = 'unpriced'), "
        f"count(*) FILTER (WHERE cost_status = 'no_usage' OR cost_status IS NULL), "
        f"count(*) FILTER (WHERE cost_status = 'partial'), count(*) FILTER (WHERE cost_status = 'provided') "
        f"FROM calls{where}", params)
    total = Decimal(total) if total is not None else Decimal(0)
    dup_where, dup_params = f.where("is_llm AND cost_status = 'duplicate'")
    (dups,), = src.query(f"SELECT count(*) FROM spans{dup_where}", dup_params)
    missing = " OR ".join(f"{dimension_sql(k, dialect=_dialect(src))} = '{UNATTRIBUTED}'" for k in required_keys)
    un_where, un_params = f.where(f"({missing})")
    (un_cost, un_calls), = src.query(f"SELECT sum(cost_total), count(*) FROM calls{un_where}", un_params)
    un_cost = Decimal(un_cost) if un_cost is not None else Decimal(0)
    up_where, up_params = f.where("cost_status = 'unpriced'")
    unpriced_models = [{"model": m, "provider": p, "calls": int(n)} for m, p, n in src.query(
        f"SELECT coalesce(response_model, request_model, 'unknown'), coalesce(provider, 'unknown'), count(*) "
        f"FROM calls{up_where} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50", up_params)]
    main = _rollup(src, list(by), f, total, top)
    report: dict[str, Any] = {
        "currency": "USD",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "since": _iso(since_ns), "until": _iso(until_ns),
        "by": list(by),
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
        report["by_day"] = [{"day": r["key"]["day"], "cost": r["cost"], "calls": r["calls"]}
                            for r in sorted(_rollup(src, ["day"], f, total, None)["rows"],
                                            key=lambda r: r["key"]["day"])]
        report["top"] = {k: _rollup(src, [k], f, total, 10)["rows"]
                         for k in ("customer_id", "task_id", "agent_id", "skill_id", "process_id", "model",
                                   "provider")}
        report["vendor_share_by_workload"] = vendor_share(src, f)
    found = chains_for(src, f) if sections or retry else None
    if retry and found is not None:
        report["retry"] = retry_analysis(src, f, total, chains=found, findings_by=findings_by)
    if sections and found is not None:
        report["economics"] = {"by_task": economics(src, f, found[0], "task_id"),
                               "by_workload": economics(src, f, found[0], "workload_type")}
        report["layers"] = layers(src, f, "agent_id")
    return report


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
    return [{"workload_type": w, "provider": p, "cost": _d(c), "calls": int(n),
             "share": _share(c, totals[w])} for w, p, c, n in rows]


def _dialect(src: Source) -> str:
    return getattr(src, "dialect", "duckdb")


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")
