"""Agent economics over a rollup source: retry waste and cost per successful task.

Retry chains need each trace's tree, so they are built in Python (:mod:`otel_costattr._analysis._chains`), but only for
the traces that can contain one: a step with two or more billed calls and a failure somewhere in the trace,
or an explicit attempt marker. Every other call is a chain of one attempt that succeeded, and is accounted
for in SQL without fetching it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ._chains import OUTCOME_ATTRIBUTE, STEP_ATTRIBUTE, Chain, ChainSpan, build_chains
from .._pricing._book import format_money
from ._source import UNATTRIBUTED, Filters, Source

__all__ = ["economics", "retry_analysis"]

_KEYS = ("customer_id", "agent_id", "task_id", "skill_id")
_MAX_TRACES = 20_000  # bound on traces fetched for chain analysis; the report says when it was reached


def _d(v: Decimal) -> str:
    return format_money(v) or "0"


def _pct(part: Decimal, whole: Decimal) -> str:
    return format(((part / whole) * 100).quantize(Decimal("0.01")), "f") if whole else "0"


def _candidate_traces(src: Source, f: Filters) -> list[str]:
    llm_where, p1 = f.where("is_llm AND counted")
    err_where, p2 = f.where("status_code = 'ERROR'")
    marked = (f"mapContains(attributes, '{STEP_ATTRIBUTE}')" if getattr(src, "dialect", "duckdb") == "clickhouse"
              else f"attributes LIKE '%{STEP_ATTRIBUTE}%'")
    mark_where, p3 = f.where(marked)
    sql = (
        "SELECT trace_id FROM (("
        f"  SELECT trace_id FROM (SELECT trace_id, parent_span_id, count(*) AS n FROM spans{llm_where}"
        "                        GROUP BY trace_id, parent_span_id) WHERE n >= 2"
        f"  INTERSECT DISTINCT SELECT trace_id FROM spans{err_where})"
        f" UNION DISTINCT SELECT trace_id FROM spans{mark_where}) "
        f"ORDER BY trace_id LIMIT {_MAX_TRACES + 1}")
    return [r[0] for r in src.query(sql, p1 + p2 + p3)]


def _json_field(src: Source, key: str) -> str:
    if getattr(src, "dialect", "duckdb") == "clickhouse":  # there `attributes` is the span's attribute map
        return f"if(mapContains(attributes, '{key}'), attributes['{key}'], NULL)"
    return f"json_extract_string(attributes, '$.\"{key}\"')"


def chains_for(src: Source, f: Filters) -> tuple[list[tuple[Chain, dict[str, str]]], bool]:
    """Chains of the candidate traces, each with its attribution; and whether the trace bound was hit."""
    traces = _candidate_traces(src, f)
    truncated = len(traces) > _MAX_TRACES
    traces = traces[:_MAX_TRACES]
    out: list[tuple[Chain, dict[str, str]]] = []
    step_sql, outcome_sql = _json_field(src, STEP_ATTRIBUTE), _json_field(src, OUTCOME_ATTRIBUTE)
    for i in range(0, len(traces), 500):
        chunk = traces[i:i + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = src.query(
            f"SELECT trace_id, span_id, parent_span_id, name, start_ns, end_ns, status_code, is_llm, counted, "
            f"cost_total, resend_count, operation, {step_sql}, {outcome_sql}, {', '.join(_KEYS)} "
            f"FROM spans WHERE trace_id IN ({marks}) ORDER BY trace_id, start_ns, span_id", chunk)
        by_trace: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            by_trace[r[0]].append(r)
        for trace_id, rs in by_trace.items():
            spans = [ChainSpan(span_id=r[1], parent_span_id=r[2] or None, name=r[3] or "", start_ns=r[4] or 0,
                               end_ns=r[5] or 0, error=r[6] == "ERROR", is_llm=bool(r[7]), counted=bool(r[8]),
                               cost=Decimal(r[9]) if r[9] is not None else None, resend_count=r[10] or 0,
                               operation=r[11], step=r[12] or None, outcome=r[13] or None) for r in rs]
            attribution = {s.span_id: {k: r[14 + j] for j, k in enumerate(_KEYS)} for s, r in zip(spans, rs)}
            for chain in build_chains(trace_id, spans):
                first = next((attribution[a.span_id] for a in chain.attempts if a.span_id in attribution), {})
                if not any(first.values()):  # an attempt marker: take the attribution of a call under it
                    first = next((v for v in attribution.values() if any(v.values())), first)
                out.append((chain, {k: first.get(k) or UNATTRIBUTED for k in _KEYS}))
    return out, truncated


def retry_analysis(src: Source, f: Filters, total: Decimal, *, worst: int = 10,
                   chains: tuple[list[tuple[Chain, dict[str, str]]], bool] | None = None) -> dict[str, Any]:
    """Retry waste overall, per customer/agent/task/skill, and the worst loops (with trace ids)."""
    chains, truncated = chains if chains is not None else chains_for(src, f)
    retries = [(c, a) for c, a in chains if c.is_retry]
    wasted = sum((c.wasted for c, _ in retries), Decimal(0))
    loop_cost = sum((c.cost for c, _ in retries), Decimal(0))
    spend: dict[str, dict[str, Decimal]] = {}
    for key in _KEYS:
        where, params = f.where()
        spend[key] = {(k if k is not None else UNATTRIBUTED): Decimal(v or 0) for k, v in src.query(
            f"SELECT {key}, sum(cost_total) FROM calls{where} GROUP BY {key}", params)}
    by: dict[str, list[dict[str, Any]]] = {}
    for key in _KEYS:
        agg: dict[str, list[Any]] = defaultdict(lambda: [Decimal(0), Decimal(0), 0, 0])
        for c, a in retries:
            row = agg[a[key]]
            row[0] += c.wasted
            row[1] += c.cost
            row[2] += 1
            row[3] += c.attempt_count
        rows = []
        for k, (w, cost, n, attempts) in agg.items():
            s = spend[key].get(k, Decimal(0))
            rows.append({"key": {key: k}, "wasted": _d(w), "loop_cost": _d(cost), "spend": _d(s),
                         "wasted_share_of_spend": _pct(w, s), "loop_share_of_spend": _pct(cost, s),
                         "retry_chains": n, "attempts": attempts})
        rows.sort(key=lambda r: (-Decimal(r["wasted"]), str(r["key"][key])))
        by[key] = rows
    worst_rows = sorted(retries, key=lambda ca: (-ca[0].wasted, -ca[0].attempt_count, ca[0].trace_id))[:worst]
    return {
        "retry_chains": len(retries),
        "attempts": sum(c.attempt_count for c, _ in retries),
        "wasted": _d(wasted),
        "wasted_share": _pct(wasted, total),
        "loop_cost": _d(loop_cost),
        "loop_share": _pct(loop_cost, total),
        "by": by,
        "worst": [{"trace_id": c.trace_id, "step": c.step, "step_span_id": c.step_span_id,
                   "attempts": c.attempt_count, "outcomes": [x.outcome for x in c.attempts], "cost": _d(c.cost),
                   "wasted": _d(c.wasted), "succeeded": c.succeeded, **a} for c, a in worst_rows],
        "traces_analysed": len({c.trace_id for c, _ in chains}),
        "truncated": truncated,
    }


def economics(src: Source, f: Filters, chains: Sequence[tuple[Chain, dict[str, str]]] | None = None,
              by: str = "task_id") -> list[dict[str, Any]]:
    """Cost per call against cost per successful task (chain-aware), per ``by`` key.

    A task instance is one (trace, task) pair; it succeeded unless one of its chains never succeeded. Failed
    instances still cost money, which is why cost per successful task exceeds cost per call x calls per task.
    """
    if chains is None:
        chains, _ = chains_for(src, f)
    failed: dict[str, set[str]] = defaultdict(set)
    for c, a in chains:
        if not c.succeeded:
            failed[a.get(by, UNATTRIBUTED)].add(c.trace_id)
    where, params = f.where()
    rows = src.query(f"SELECT coalesce({by}, '{UNATTRIBUTED}') AS k, count(*), sum(cost_total), "
                     f"count(DISTINCT trace_id) FROM calls{where} GROUP BY k ORDER BY 3 DESC NULLS LAST, k", params)
    out = []
    for k, calls, cost, instances in rows:
        cost = Decimal(cost or 0)
        ok = instances - len(failed.get(k, ()))
        out.append({"key": {by: k}, "calls": int(calls), "cost": _d(cost), "instances": int(instances),
                    "successful": int(ok), "cost_per_call": _d((cost / calls).quantize(Decimal("1e-9"))) if calls
                    else "0", "cost_per_successful_task": _d((cost / ok).quantize(Decimal("1e-9"))) if ok
                    else None})
    return out


def layers(src: Source, f: Filters, by: str = "agent_id") -> dict[str, Any]:
    """The four token layers per ``by`` key: input tokens and cost as prompt / tool / memory, and output as
    response with reasoning as a part of it. Calls without layer data (no content captured and no explicit
    counts) are counted, not guessed."""
    where, params = f.where()
    rows = src.query(
        f"SELECT coalesce({by}, '{UNATTRIBUTED}') AS k, count(*) AS calls, "
        "count(*) FILTER (WHERE layer_source IS NOT NULL) AS with_layers, "
        "coalesce(sum(layer_prompt_tokens), 0), coalesce(sum(layer_tool_tokens), 0), "
        "coalesce(sum(layer_memory_tokens), 0), sum(cost_layer_prompt), sum(cost_layer_tool), sum(cost_layer_memory), "
        "coalesce(sum(output_tokens), 0), coalesce(sum(reasoning_tokens), 0), sum(cost_output), sum(cost_reasoning) "
        f"FROM calls{where} GROUP BY k ORDER BY k", params)
    out = []
    for k, calls, with_layers, pt, tt, mt, pc, tc, mc, ot, rt, oc, rc in rows:
        split_in = pt + tt + mt
        out.append({"key": {by: k}, "calls": int(calls), "calls_with_layers": int(with_layers),
                    "prompt_tokens": int(pt), "tool_tokens": int(tt), "memory_tokens": int(mt),
                    "tool_share": _pct(Decimal(tt), Decimal(split_in)), "memory_share": _pct(Decimal(mt), Decimal(split_in)),
                    "prompt_cost": _d(Decimal(pc or 0)), "tool_cost": _d(Decimal(tc or 0)),
                    "memory_cost": _d(Decimal(mc or 0)), "response_tokens": int(ot), "reasoning_tokens": int(rt),
                    "response_cost": _d(Decimal(oc or 0)), "reasoning_cost": _d(Decimal(rc or 0))})
    return {"by": by, "rows": out}
