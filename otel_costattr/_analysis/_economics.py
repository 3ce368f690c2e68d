"""Agent economics over a rollup source: retry waste and cost per successful task.

Retry chains need each trace's tree, so they are built in Python (:mod:`otel_costattr._analysis._chains`), but
only for the *candidate* traces: those with a retry signal. Every other call is a chain of one attempt that
succeeded, and is accounted for in SQL without fetching it. The selection is complete: a chain that is a retry
(two or more attempts) or that failed has at least one of

* a span with status ERROR: an errored call, a rejected output (the failed tool or validation span, or the
  attempt marker :meth:`Attempt.reject` set), or a hidden HTTP attempt (SDKs resend only after an HTTP
  error status or a transport error, and HTTP client instrumentations mark both ERROR);
* ``http.request.resend_count > 0`` on a call (the resend succeeded, so nothing else errored);
* an explicit attempt marker (its outcome attribute may say ``rejected`` without an ERROR status).

That includes a failure on the only attempt: such a chain is no retry, but its task instance did not
succeed. The selection is one pass over ``spans`` with no grouping; chains are then built per candidate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .._errors import ConfigurationError
from .._pricing._book import format_money
from ._chains import HTTP_METHOD_ATTRIBUTES, OUTCOME_ATTRIBUTE, STEP_ATTRIBUTE, Chain, ChainSpan, build_chains
from ._source import Filters, Source

__all__ = ["economics", "retry_analysis"]

_KEYS = ("customer_id", "agent_id", "task_id", "skill_id")
_ATTRIBUTION = (*_KEYS, "workload_type")  # economics() also splits by workload type
_MAX_TRACES = 20_000  # bound on traces fetched for chain analysis; the report says when it was reached
_FETCH_CHUNK = 5_000  # traces fetched per query (DuckDB); bounds the rows held at once


def _d(v: Decimal) -> str:
    return format_money(v) or "0"


def _pct(part: Decimal, whole: Decimal) -> str:
    return format(((part / whole) * 100).quantize(Decimal("0.01")), "f") if whole else "0"


def _candidate_traces(src: Source, f: Filters) -> list[str]:
    """Trace ids with a retry signal (see the module docstring), in order, at most ``_MAX_TRACES + 1``."""
    marked = (f"mapContains(attributes, '{STEP_ATTRIBUTE}')" if getattr(src, "dialect", "duckdb") == "clickhouse"
              else f"attributes LIKE '%{STEP_ATTRIBUTE}%'")
    where, params = f.where(f"(status_code = 'ERROR' OR resend_count > 0 OR {marked})")
    sql = f"SELECT DISTINCT trace_id FROM spans{where} ORDER BY trace_id LIMIT {_MAX_TRACES + 1}"
    return [r[0] for r in src.query(sql, params)]


def _json_field(src: Source, key: str) -> str:
    if getattr(src, "dialect", "duckdb") == "clickhouse":  # there `attributes` is the span's attribute map
        return f"if(mapContains(attributes, '{key}'), attributes['{key}'], NULL)"
    return f"json_extract_string(attributes, '$.\"{key}\"')"


def _http_sql(src: Source) -> str:
    """SQL for :func:`otel_costattr._chains.is_http_client` over a ``spans`` row."""
    has = " OR ".join(f"{_json_field(src, k)} IS NOT NULL" for k in HTTP_METHOD_ATTRIBUTES)
    return f"(kind = 'CLIENT' AND NOT coalesce(is_llm, false) AND ({has}))"


def chains_for(src: Source, f: Filters) -> tuple[list[tuple[Chain, dict[str, str]]], bool]:
    """Chains of the candidate traces, each with its attribution; and whether the trace bound was hit."""
    traces = _candidate_traces(src, f)
    truncated = len(traces) > _MAX_TRACES
    traces = traces[:_MAX_TRACES]
    out: list[tuple[Chain, dict[str, str]]] = []
    step_sql, outcome_sql = _json_field(src, STEP_ATTRIBUTE), _json_field(src, OUTCOME_ATTRIBUTE)
    http_sql = _http_sql(src)
    # Each query scans the spans once, so few large chunks beat many small ones: DuckDB takes the chunk as one
    # list parameter (5,000 traces: at most 4 scans); ClickHouse gets literals, 500 per query as before.
    clickhouse = getattr(src, "dialect", "duckdb") == "clickhouse"
    size = 500 if clickhouse else _FETCH_CHUNK
    for i in range(0, len(traces), size):
        chunk = traces[i:i + size]
        where = (f"trace_id IN ({', '.join('?' for _ in chunk)})" if clickhouse
                 else "trace_id IN (SELECT unnest(?::VARCHAR[]))")
        rows = src.query(
            f"SELECT trace_id, span_id, parent_span_id, name, start_ns, end_ns, status_code, is_llm, counted, "
            f"cost_total, resend_count, operation, {step_sql}, {outcome_sql}, {http_sql}, {', '.join(_ATTRIBUTION)} "
            f"FROM spans WHERE {where} ORDER BY trace_id, start_ns, span_id", chunk if clickhouse else [chunk])
        by_trace: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            by_trace[r[0]].append(r)
        for trace_id, rs in by_trace.items():
            spans = [ChainSpan(span_id=r[1], parent_span_id=r[2] or None, name=r[3] or "", start_ns=r[4] or 0,
                               end_ns=r[5] or 0, error=r[6] == "ERROR", is_llm=bool(r[7]), counted=bool(r[8]),
                               cost=Decimal(r[9]) if r[9] is not None else None, resend_count=r[10] or 0,
                               operation=r[11], step=r[12] or None, outcome=r[13] or None,
                               http_attempt=bool(r[14])) for r in rs]
            attribution = {s.span_id: {k: r[15 + j] for j, k in enumerate(_ATTRIBUTION)} for s, r in zip(spans, rs)}
            for chain in build_chains(trace_id, spans):
                first = next((attribution[a.span_id] for a in chain.attempts if a.span_id in attribution), {})
                if not any(first.values()):  # an attempt marker: take the attribution of a call under it
                    first = next((v for v in attribution.values() if any(v.values())), first)
                # a missing (or empty) key is None, null in JSON: never a string that a real value could also be
                out.append((chain, {k: first.get(k) or None for k in _ATTRIBUTION}))
    return out, truncated


#: The keys retry findings can be given per (``findings_by``).
FINDING_KEYS = _KEYS
#: The finding's sentence; ``share`` is the percentage with two decimals, ``key`` the customer (agent, task...).
FINDING_SENTENCE = "{share}% of {key}'s spend went into retry loops before the model produced an answer"


def check_findings_by(keys: Sequence[str]) -> tuple[str, ...]:
    """Validate ``findings_by`` keys.

    Raises:
        ConfigurationError: a key is not one of :data:`FINDING_KEYS`, naming them.
    """
    bad = [k for k in keys if k not in FINDING_KEYS]
    if bad:
        raise ConfigurationError(f"retry findings are given per {', '.join(FINDING_KEYS)}; not per "
                                 f"{', '.join(map(repr, bad))}. Use e.g. --findings-by customer_id,agent_id")
    return tuple(dict.fromkeys(keys))


def _findings(by: dict[str, list[dict[str, Any]]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One finding per value of each key in ``keys`` whose retry loops wasted money: largest share first."""
    out: list[dict[str, Any]] = []
    for key in keys:
        rows = [r for r in by.get(key, []) if Decimal(r["wasted"]) > 0]
        rows.sort(key=lambda r: (-Decimal(r["wasted_share_of_spend"]), -Decimal(r["wasted"]), str(r["key"][key])))
        out.extend({"by": key, key: r["key"][key], "share": r["wasted_share_of_spend"], "wasted": r["wasted"],
                    "total": r["spend"], "sentence": FINDING_SENTENCE.format(
                        share=r["wasted_share_of_spend"],
                        key=r["key"][key] if r["key"][key] is not None else f"(no {key})")}
                   for r in rows)
    return out


def retry_analysis(src: Source, f: Filters, total: Decimal, *, worst: int = 10,
                   chains: tuple[list[tuple[Chain, dict[str, str]]], bool] | None = None,
                   findings_by: Sequence[str] = ("customer_id",)) -> dict[str, Any]:
    """Retry waste overall, per customer/agent/task/skill, the worst loops (with trace ids), and ``findings``.

    A retry chain has two or more attempts (hidden ones included); a failure on the only attempt is no retry
    (see :func:`economics`). ``findings`` has one entry per value of each ``findings_by`` key whose loops
    wasted money, largest share of that value's spend first: ``{"by": key, key: value, "share": "60.00",
    "wasted": ..., "total": <its spend>, "sentence": "60.00% of X's spend went into retry loops before the
    model produced an answer"}``. Shares are of known spend; unpriced calls are not in it.
    """
    findings_keys = check_findings_by(findings_by)
    chains, truncated = chains if chains is not None else chains_for(src, f)
    retries = [(c, a) for c, a in chains if c.is_retry]
    wasted = sum((c.wasted for c, _ in retries), Decimal(0))
    loop_cost = sum((c.cost for c, _ in retries), Decimal(0))
    spend: dict[str, dict[str, Decimal]] = {}
    for key in _KEYS:
        where, params = f.where()
        spend[key] = {k: Decimal(v or 0) for k, v in src.query(
            f"SELECT nullif({key}, '') AS k, sum(cost_total) FROM calls{where} GROUP BY k", params)}
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
        rows.sort(key=lambda r: (-Decimal(r["wasted"]), r["key"][key] is None, str(r["key"][key])))
        by[key] = rows
    # Ties are broken by what the chain is (its attribution and step) before the trace id, which is random: the
    # same workload then lists the same loops in the same order on every run (the demo's seed promise).
    worst_rows = sorted(retries, key=lambda ca: (-ca[0].wasted, -ca[0].attempt_count,
                                                 sorted((k, str(v)) for k, v in ca[1].items()), ca[0].step,
                                                 ca[0].trace_id))[:worst]
    return {
        "retry_chains": len(retries),
        "attempts": sum(c.attempt_count for c, _ in retries),
        "wasted": _d(wasted),
        "wasted_share": _pct(wasted, total),
        "loop_cost": _d(loop_cost),
        "loop_share": _pct(loop_cost, total),
        "by": by,
        "findings": _findings(by, findings_keys),
        "worst": [{"trace_id": c.trace_id, "step": c.step, "step_span_id": c.step_span_id,
                   "attempts": c.attempt_count, "outcomes": [x.outcome for x in c.attempts], "cost": _d(c.cost),
                   "wasted": _d(c.wasted), "succeeded": c.succeeded, **a} for c, a in worst_rows],
        "traces_analysed": len({c.trace_id for c, _ in chains}),
        "truncated": truncated,
    }


def economics(src: Source, f: Filters, chains: Sequence[tuple[Chain, dict[str, str]]] | None = None,
              by: str = "task_id") -> list[dict[str, Any]]:
    """Cost per call against cost per successful task (chain-aware), per ``by`` key.

    A task instance is one (trace, task) pair; it succeeded unless one of its chains never succeeded, a chain
    of one failed attempt included (an errored call, or an output a tool or validation rejected). Failed
    instances still cost money, which is why cost per successful task exceeds cost per call x calls per task.
    """
    if chains is None:
        chains, _ = chains_for(src, f)
    failed: dict[str, set[str]] = defaultdict(set)
    for c, a in chains:
        if not c.succeeded:
            failed[a.get(by)].add(c.trace_id)
    where, params = f.where()
    rows = src.query(f"SELECT nullif({by}, '') AS k, count(*), sum(cost_total), "
                     f"count(DISTINCT trace_id) FROM calls{where} GROUP BY k ORDER BY 3 DESC NULLS LAST, k", params)
    out = []
    for k, calls, cost, instances in rows:
        cost = Decimal(cost or 0)
        ok = max(instances - len(failed.get(k, ())), 0)
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
        f"SELECT nullif({by}, '') AS k, count(*) AS calls, "
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
