"""Agent economics over a 10M-call ledger (issue 23): the report's retry and economics sections (candidate
pre-filter, chains of the candidate traces, waste per key, findings, cost per successful task) against the same
sections with the pre-filter as it was before issue 23, in the same run, on the same data. In process, only the
pre-filter differs (fetching the candidates and building their chains is today's code for both).

The earlier pre-filter selected a trace only when one parent had two billed calls and the trace had an error
(or an attempt marker). It missed resend-only traces and single-attempt failures; the complete one selects
every trace with an errored span, a resend count or a marker. Target: the report's economics sections take
at most 1.2x the earlier time. ``--quick`` runs 1M calls.

``--baseline DIR`` compares against another tree's code as a whole instead (DIR holds an older
``otel_costattr`` package, e.g. ``git archive <rev> otel_costattr | tar -x -C DIR``): each round runs the
sections once under each tree, in a subprocess of its own, on the same ledger file.

The ledger: traces of four calls under one step (a parent that was never recorded: the chain rules tolerate
it). One trace in 1,000 each has an errored call that is retried, an SDK resend count, a failed validation
span, a single-attempt failure (each call of that trace under its own step), and explicit attempt markers;
the rest are clean. The previous pre-filter analyses three of those five kinds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from _harness import line

try:
    from otel_costattr._analysis import _economics
    from otel_costattr._analysis._chains import STEP_ATTRIBUTE
    from otel_costattr._analysis._source import Filters
    from otel_costattr._ledger._store import Ledger
except ImportError:  # --baseline with a tree from before the layout move (issue 24)
    from otel_costattr import _economics  # type: ignore[no-redef]
    from otel_costattr._chains import STEP_ATTRIBUTE  # type: ignore[no-redef]
    from otel_costattr._ledger import Ledger  # type: ignore[no-redef]
    from otel_costattr._rollup import Filters  # type: ignore[no-redef]

_T = "(i // 4)"  # trace number of call i
_SIGNAL = f"{_T} % 1000"


def _fill(ledger: Ledger, n: int) -> None:
    """n priced calls (and the few non-call spans of the signal traces), generated inside DuckDB."""
    ledger.con.execute(f"""
        INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, is_llm,
                           operation, provider, request_model, response_id, input_tokens, output_tokens,
                           usage_detail, counted, cost_status, cost_total, resend_count, customer_id, task_id,
                           agent_id, workload_type, attributes)
        SELECT printf('%032x', {_T}), printf('%016x', i),
               CASE WHEN {_SIGNAL} = 3 THEN printf('b%015x', i)
                    WHEN {_SIGNAL} = 4 THEN printf('m%015x', i) ELSE printf('a%015x', {_T}) END,
               'chat', 'CLIENT', 1763000000000000000 + i * 1000000, 1763000000000000000 + i * 1000000 + 500000,
               CASE WHEN ({_SIGNAL} = 0 AND i % 4 = 0) OR ({_SIGNAL} = 3 AND i % 4 = 3) THEN 'ERROR'
                    ELSE 'UNSET' END,
               true, 'chat', 'openai', 'gpt-4o', 'r' || i, 1000 + i % 5000, 100 + i % 700, 2, true, 'priced',
               CAST(((1000 + i % 5000) * 2.5 + (100 + i % 700) * 10) / 1000000.0 AS DECIMAL(38,18)),
               CASE WHEN {_SIGNAL} = 1 AND i % 4 = 2 THEN 1 END,
               'cust-' || ({_T} % 997), 'task-' || ({_T} % 31), 'agent-' || ({_T} % 7),
               CASE i % 3 WHEN 0 THEN 'batch' ELSE 'interactive' END, '{{}}'
        FROM range({n}) t(i)""")
    # a validation span that failed after the first call of signal-2 traces; markers of signal-4 traces
    ledger.con.execute(f"""
        INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, is_llm,
                           counted, attributes)
        SELECT printf('%032x', {_T}), printf('v%015x', i), printf('a%015x', {_T}), 'validate output', 'INTERNAL',
               1763000000000000000 + i * 1000000 + 600000, 1763000000000000000 + i * 1000000 + 700000, 'ERROR',
               false, false, '{{}}'
        FROM range(0, {n}, 4) t(i) WHERE {_SIGNAL} = 2
        UNION ALL
        SELECT printf('%032x', {_T}), printf('m%015x', i), printf('a%015x', {_T}), 'attempt extract', 'INTERNAL',
               1763000000000000000 + i * 1000000, 1763000000000000000 + i * 1000000 + 600000,
               CASE WHEN i % 4 = 0 THEN 'ERROR' ELSE 'UNSET' END, false, false,
               '{{"{STEP_ATTRIBUTE}": "extract"}}'
        FROM range({n}) t(i) WHERE {_SIGNAL} = 4""")


def _previous_candidate_traces(src: object, f: Filters) -> list[str]:
    """The pre-filter before issue 23, verbatim: a parent with two billed calls and an error in the trace, or a
    marker (incomplete: see the module docstring). Kept here only as the benchmark's baseline."""
    llm_where, p1 = f.where("is_llm AND counted")
    err_where, p2 = f.where("status_code = 'ERROR'")
    mark_where, p3 = f.where(f"attributes LIKE '%{STEP_ATTRIBUTE}%'")
    sql = (
        "SELECT trace_id FROM (("
        f"  SELECT trace_id FROM (SELECT trace_id, parent_span_id, count(*) AS n FROM spans{llm_where}"
        "                        GROUP BY trace_id, parent_span_id) WHERE n >= 2"
        f"  INTERSECT DISTINCT SELECT trace_id FROM spans{err_where})"
        f" UNION DISTINCT SELECT trace_id FROM spans{mark_where}) "
        f"ORDER BY trace_id LIMIT {_economics._MAX_TRACES + 1}")
    return [r[0] for r in src.query(sql, p1 + p2 + p3)]  # type: ignore[attr-defined]


def _sections(led: Ledger) -> dict[str, object]:
    """What build_report computes for the retry and economics sections."""
    f = Filters()
    (total,), = led.query("SELECT sum(cost_total) FROM calls")
    found = _economics.chains_for(led, f)
    retry = _economics.retry_analysis(led, f, Decimal(total), chains=found)
    _economics.economics(led, f, found[0], "task_id")
    _economics.economics(led, f, found[0], "workload_type")
    return retry


def _measure(db: str) -> None:
    """Subprocess side of --baseline: time the sections with whichever otel_costattr is on the path."""
    led = Ledger(db, read_only=True)
    t = time.perf_counter()
    retry = _sections(led)
    print(json.dumps({"s": time.perf_counter() - t, "traces": retry["traces_analysed"],
                      "chains": retry["retry_chains"]}))
    led.close()


def _in_tree(tree: str | None, db: Path) -> tuple[float, tuple[int, int]]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([tree, env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, "--measure", str(db)], env=env, check=True,
                          capture_output=True, text=True, cwd=Path(__file__).parent)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return got["s"], (got["traces"], got["chains"])


def main(long: bool = True, baseline: str | None = None) -> list[str]:
    n = 10_000_000 if long else 1_000_000
    out = [f"economics (issue 23): retry and economics sections over {n:,} calls"]
    tmp = Path(tempfile.mkdtemp(prefix="costattr-bench-econ-"))
    led = Ledger(tmp / "econ.duckdb")
    t = time.perf_counter()
    _fill(led, n)
    out.append(line("  ledger generated in DuckDB", f"{time.perf_counter() - t:.1f} s"))
    current = _economics._candidate_traces
    times: dict[str, list[float]] = {"complete": [], "previous": []}
    chains: dict[str, tuple[int, int]] = {}
    if baseline is not None:
        led.close()
    try:
        for k in range(3):  # interleaved, alternating which goes first: the VM is shared
            order = ("complete", "previous") if k % 2 == 0 else ("previous", "complete")
            for name in order:
                if baseline is not None:
                    took, chains[name] = _in_tree(None if name == "complete" else baseline, tmp / "econ.duckdb")
                    times[name].append(took)
                    continue
                _economics._candidate_traces = current if name == "complete" else _previous_candidate_traces
                t = time.perf_counter()
                retry = _sections(led)
                times[name].append(time.perf_counter() - t)
                chains[name] = (retry["traces_analysed"], retry["retry_chains"])  # type: ignore[assignment]
    finally:
        _economics._candidate_traces = current
        led.close()
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    new, old = statistics.median(times["complete"]), statistics.median(times["previous"])
    signal_traces = n // 4 // 1000
    out.append(line("  complete pre-filter (median of 3)", f"{new:.2f} s",
                    f"{chains['complete'][0]:,} traces analysed, {chains['complete'][1]:,} retry chains"))
    out.append(line(f"  {'baseline tree' if baseline else 'previous pre-filter'}, same run (median of 3)",
                    f"{old:.2f} s",
                    f"{chains['previous'][0]:,} traces analysed, {chains['previous'][1]:,} retry chains"))
    out.append(line("  complete / previous", f"{new / old:.2f}x", "target <= 1.2x", new / old <= 1.2))
    # every signal trace is analysed (signals 0-4), none is missed; the previous one skipped 1 and 3
    assert chains["complete"][0] == 5 * signal_traces, chains
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        _measure(sys.argv[2])
    else:
        base = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else None
        print("\n".join(main(long="--quick" not in sys.argv, baseline=base)))
