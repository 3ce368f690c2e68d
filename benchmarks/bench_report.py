"""The HTML report at 1M calls: time to build (rollups + rendering) and page size, against the issue-21 targets
(<= 2 s, <= 5 MB). 1,000,000 priced calls over 60 days, 997 customers (2% without one), 31 tasks, 7 agents, 2
workloads, generated inside DuckDB. Run: python -m benchmarks.bench_report"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from otel_costattr._analysis._rollup import build_report
from otel_costattr._ledger._store import Ledger
from otel_costattr._report._render import render

N = 1_000_000
SPAN_NS = 60 * 86_400 * 10**9 // N


def _calls(ledger: Ledger, n: int) -> None:
    ledger.con.execute(f"""
        INSERT INTO spans (trace_id, span_id, name, kind, start_ns, end_ns, status_code, is_llm, operation, provider,
                           request_model, response_id, input_tokens, output_tokens, usage_detail, counted,
                           cost_status, cost_total, customer_id, task_id, agent_id, workload_type, attributes)
        SELECT printf('%032x', i // 4), printf('%016x', i), 'chat', 'CLIENT',
               1788000000000000000 + i * {SPAN_NS}, 1788000000000000000 + i * {SPAN_NS} + 500000000, 'UNSET', true,
               'chat', CASE WHEN i % 5 = 0 THEN 'anthropic' ELSE 'openai' END,
               CASE WHEN i % 5 = 0 THEN 'claude-sonnet-4-5' ELSE 'gpt-4o' END, 'r' || i, 1000 + i % 5000,
               100 + i % 700, 2, true, 'priced',
               CAST(((1000 + i % 5000) * 2.5 + (100 + i % 700) * 10) / 1000000.0 AS DECIMAL(38,18)),
               CASE WHEN i % 50 = 0 THEN NULL ELSE 'cust-' || (i % 997) END, 'task-' || (i % 31),
               'agent-' || (i % 7), CASE i % 3 WHEN 0 THEN 'batch' ELSE 'interactive' END, '{{}}'
        FROM range({n}) t(i)""")


def main() -> list[str]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    led = Ledger(tmp / "r.duckdb")
    _calls(led, N)
    led.close()
    led = Ledger(tmp / "r.duckdb", read_only=True)
    out = []
    t0 = time.perf_counter()
    report = build_report(led, by=["customer_id"])
    t1 = time.perf_counter()
    page = render(report, "html", trace_url="http://jaeger:16686/trace/{trace_id}")
    t2 = time.perf_counter()
    size = len(page.encode("utf-8"))
    out.append(f"report --format html over {N:,} calls / 60 days: {t2 - t0:.2f} s "
               f"(rollups {t1 - t0:.2f} s, rendering {t2 - t1:.2f} s; target <= 2 s)")
    out.append(f"  page size {size / 1e6:.2f} MB (target <= 5 MB), {len(report['rows']):,} rollup rows in the JSON")
    led.close()
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return out


if __name__ == "__main__":
    print("\n".join(main()))
