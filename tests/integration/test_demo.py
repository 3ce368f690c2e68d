"""``otel-costattr demo``: deterministic, priced once per call, attributed, and nothing leaks to the vendor.

The demo runs in-process (the second run of the same seed also checks that a process can run it again) and once
through the CLI in a subprocess. Wall time is recorded in the test output, never asserted: this machine is shared.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate

from otel_costattr._demo import (
    CUSTOMERS,
    LEDGER_NAME,
    RETRY_HEAVY_CUSTOMER,
    UNPRICED_MODEL,
    DemoResult,
    _Progress,
    _resource_methods,
    plan_workload,
    run_demo,
)
from otel_costattr._errors import ConfigurationError
from otel_costattr._ledger._store import Ledger
from otel_costattr.attributes import DEFAULT_ATTRIBUTION_KEYS

HTML_AVAILABLE = importlib.util.find_spec("otel_costattr._report._html") is not None


def _run(out: Path, seed: int, scale: float, replace: bool = False) -> tuple[DemoResult, float]:
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = run_demo(seed=seed, out_dir=out, calls_scale=scale, progress=False, stream=io.StringIO(),
                      replace=replace)
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def process_state() -> dict[str, Any]:
    """What the demo must leave as it found it: SDK resource methods, the global propagator, instrumentor flags."""
    return {"methods": _resource_methods(), "textmap": propagate.get_global_textmap()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory,
         process_state: dict[str, Any]) -> Iterator[dict[str, tuple[DemoResult, float]]]:
    """Full-scale seed 7 twice (the second in the same process as the first), and seed 8."""
    base = tmp_path_factory.mktemp("demo")
    yield {
        "a": _run(base / "a", 7, 1.0),
        "b": _run(base / "b", 7, 1.0),
        "c": _run(base / "c", 8, 1.0),
    }


@pytest.fixture(scope="module")
def first(runs: dict[str, tuple[DemoResult, float]]) -> DemoResult:
    return runs["a"][0]


def _query(result: DemoResult, sql: str) -> list[tuple]:
    ledger = Ledger(result.ledger_path, read_only=True)
    try:
        return ledger.query(sql)
    finally:
        ledger.close()


def test_wall_time_is_recorded(runs: dict[str, tuple[DemoResult, float]], capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        for name, (result, wall) in runs.items():
            print(f"\n[demo timing] run {name}: seed {result.seed}, scale {result.calls_scale}, "
                  f"{result.planned_calls} calls, {wall:.1f} s wall (run_demo says {result.elapsed_s:.1f} s)")
    assert all(r.elapsed_s > 0 for r, _ in runs.values())


def test_same_seed_gives_identical_totals_and_rollups(runs: dict[str, tuple[DemoResult, float]]) -> None:
    a, b = runs["a"][0], runs["b"][0]
    assert a.total == b.total and a.total > 0
    assert isinstance(a.total, Decimal)
    ledger_totals = [_query(r, "SELECT sum(cost_total), count(*) FROM calls")[0] for r in (a, b)]
    assert ledger_totals[0] == ledger_totals[1]
    assert a.summary == b.summary
    for key in ("rows", "top", "vendor_share_by_workload", "by_day", "unattributed", "unpriced_models"):
        assert a.report[key] == b.report[key], key


def test_a_different_seed_changes_them(runs: dict[str, tuple[DemoResult, float]]) -> None:
    a, c = runs["a"][0], runs["c"][0]
    assert a.total != c.total
    assert a.summary != c.summary


def test_anthropic_calls_are_traced_twice_and_counted_once(first: DemoResult) -> None:
    pairs = _query(first, """
        SELECT response_id, count(*), list(DISTINCT scope_name ORDER BY scope_name)
        FROM spans WHERE is_llm AND provider = 'anthropic' GROUP BY response_id""")
    assert pairs, "no Anthropic calls in the ledger"
    assert all(rid is not None for rid, _, _ in pairs)
    assert {(n, tuple(scopes)) for _, n, scopes in pairs} == {
        (2, ("com.anthropic.sdk.python", "opentelemetry.instrumentation.anthropic"))}
    (counted,), = _query(first, "SELECT count(*) FROM calls WHERE provider = 'anthropic'")
    (distinct,), = _query(first, "SELECT count(DISTINCT response_id) FROM calls WHERE provider = 'anthropic'")
    assert counted == distinct == len(pairs)
    assert first.report["duplicate_spans"] == len(pairs)
    # The counted span is the SDK's: it carries the 5-minute / 1-hour cache-write split.
    (traceloop_counted,), = _query(first, "SELECT count(*) FROM calls WHERE scope_name = "
                                          "'opentelemetry.instrumentation.anthropic'")
    assert traceloop_counted == 0


def test_three_vendors_are_paid(first: DemoResult) -> None:
    paid = {v for v, cost in first.vendor_costs.items() if cost > 0}
    assert {"openai", "anthropic", "deepseek"} <= paid
    # DeepSeek went through the OpenAI SDK and was priced from DeepSeek's table.
    (flags,), = _query(first, "SELECT list(DISTINCT cost_flags) FROM calls WHERE pricing_model = 'deepseek-chat'")
    assert any("provider_fallback:openai" in (f or "") for f in flags)


def test_unattributed_unpriced_and_no_usage_are_visible(first: DemoResult) -> None:
    report = first.report
    assert Decimal(report["unattributed"]["cost"]) > 0 and report["unattributed"]["calls"] > 0
    assert report["unpriced_calls"] > 0
    assert [m["model"] for m in report["unpriced_models"]] == [UNPRICED_MODEL]
    assert report["no_usage_calls"] > 0
    # Unpriced is never $0: the ledger has no cost for them, and the headline says so.
    assert _query(first, "SELECT count(*) FROM calls WHERE cost_status = 'unpriced' AND cost_total IS NOT NULL") \
        == [(0,)]
    model_row = next(line for line in first.summary.splitlines() if line.strip().startswith(UNPRICED_MODEL))
    assert "unpriced" in model_row and "$" not in model_row


def test_every_attributed_call_has_the_full_key_set(first: DemoResult) -> None:
    cols = ", ".join(f"count({k})" for k in DEFAULT_ATTRIBUTION_KEYS)
    row, = _query(first, f"SELECT count(*), {cols} FROM calls WHERE customer_id IS NOT NULL")
    assert row[0] > 0 and set(row[1:]) == {row[0]}
    customers = {c for (c,) in _query(first, "SELECT DISTINCT customer_id FROM calls WHERE customer_id IS NOT NULL")}
    assert customers == set(CUSTOMERS)
    # Agent and tool structure: every attributed LLM call sits under an invoke_agent span; failed tool calls are
    # ERROR.
    (orphans,), = _query(first, """
        SELECT count(*) FROM calls c LEFT JOIN spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
        WHERE c.customer_id IS NOT NULL AND p.operation IS DISTINCT FROM 'invoke_agent'""")
    assert orphans == 0
    (failed_tools,), = _query(first, "SELECT count(*) FROM spans WHERE operation = 'execute_tool' "
                                     "AND status_code = 'ERROR'")
    assert failed_tools > 0


def test_the_retry_heavy_tenant_has_the_most_calls_per_task(first: DemoResult) -> None:
    per_task = first.calls_per_task
    assert max(per_task, key=per_task.__getitem__) == RETRY_HEAVY_CUSTOMER
    n, wasted = first.retry_waste[RETRY_HEAVY_CUSTOMER]
    tenant_cost = next(Decimal(r["cost"]) for r in first.report["top"]["customer_id"]
                       if r["key"]["customer_id"] == RETRY_HEAVY_CUSTOMER)
    assert n > 0 and wasted / tenant_cost > Decimal("0.5"), "the retry loop should dominate the tenant's spend"
    # Attempts repeat under the same agent step (same parent span).
    (max_attempts,), = _query(first, """
        SELECT max(n) FROM (SELECT count(*) AS n FROM calls WHERE customer_id = 'globex-bank'
                            AND agent_id = 'extractor' GROUP BY parent_span_id)""")
    assert max_attempts >= 6  # 5-8 attempts, then the answer after the tool ran


def test_attribution_never_reaches_the_vendor(first: DemoResult) -> None:
    assert first.baggage_leaks == 0
    assert first.vendor_requests == len(first.requests) > 0
    customers = tuple(CUSTOMERS)
    for request in first.requests:
        assert "customer_id" not in request.headers.get("baggage", "")
        assert not any(c in value for value in request.headers.values() for c in customers), request.headers
    # Trace context still flows (the guard strips attribution, not traceparent).
    assert any("traceparent" in r.headers for r in first.requests)


def test_report_html(first: DemoResult) -> None:
    if not HTML_AVAILABLE:
        pytest.skip("otel_costattr._report._html (the HTML renderer) is not in this build; the demo skips report.html")
    assert first.report_path is not None and first.report_path.exists()
    assert first.report_path.stat().st_size > 0


def test_the_process_is_left_as_found(runs: dict[str, tuple[DemoResult, float]],
                                       process_state: dict[str, Any]) -> None:
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    after = _resource_methods()
    changed = sorted(f"{cls.__qualname__}.{attr}" for (cls, attr), value in process_state["methods"].items()
                     if after.get((cls, attr)) is not value)
    assert not changed, "the demo left instrumentation wrappers behind"
    assert propagate.get_global_textmap() is process_state["textmap"]
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
    assert not AnthropicInstrumentor().is_instrumented_by_opentelemetry


def test_reruns_replace_the_demo_ledger_and_nothing_else(tmp_path: Path) -> None:
    first_run, _ = _run(tmp_path, 5, 0.1)
    again, _ = _run(tmp_path, 5, 0.1)  # the ledger the first run left: replaced
    assert again.total == first_run.total
    (n,), = _query(again, "SELECT count(*) FROM calls")
    assert n == again.report["calls"] == first_run.report["calls"]
    # An application writes into the demo's ledger: it is no longer the demo's, and a rerun must not touch it.
    from otel_costattr._ledger._store import COLUMNS
    led = Ledger(tmp_path / LEDGER_NAME)
    row = led.query(f"SELECT {', '.join(c for c, _ in COLUMNS)} FROM spans LIMIT 1")[0]
    led.write_rows([tuple(float(v) if isinstance(v, Decimal) else v for v in row)], replace=True)  # rows carry floats
    led.close()
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in (tmp_path / LEDGER_NAME).rglob("*"))
    with pytest.raises(ConfigurationError, match="not the ledger an earlier demo run left.*replace=True"):
        _run(tmp_path, 5, 0.1)
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns)
                  for p in (tmp_path / LEDGER_NAME).rglob("*")) == before  # not a file touched
    forced, _ = _run(tmp_path, 5, 0.1, replace=True)
    assert forced.total == first_run.total


def test_cli_subprocess_matches_in_process(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_"))}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "otel_costattr", "demo", "--seed", "3", "--out-dir", str(out),
                           "--no-progress", "--scale", "0.3"], capture_output=True, text=True, timeout=300, env=env)
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert (out / "costs.duckdb").exists()
    assert "TOTAL SPEND" in proc.stdout and "Done in" in proc.stdout
    assert proc.stderr.count("LLM calls") == 0  # --no-progress
    same, _ = _run(tmp_path / "inproc", 3, 0.3)
    assert proc.stdout.startswith(same.summary)
    print(f"[demo timing] CLI subprocess (seed 3, scale 0.3): {wall:.1f} s wall")


def test_cli_rejects_a_bad_scale(tmp_path: Path) -> None:
    from otel_costattr._cli import main

    assert main(["demo", "--scale", "0", "--out-dir", str(tmp_path)]) == 2


def test_plan_keeps_every_special_case_at_small_scale() -> None:
    plans = plan_workload(11, 0.05)
    calls = [c for p in plans for t in p.tasks for s in t.steps for c in s.calls]
    scenarios = {sc for c in calls for sc in c.scenario}
    assert {"malformed-tool", "flaky", "error-500"} <= scenarios
    assert any(c.stream and not c.stream_usage for c in calls)
    assert any(c.stream and c.stream_usage for c in calls)
    assert any(c.model == UNPRICED_MODEL for c in calls)
    assert any(p.customer_id is None for p in plans)
    assert {c.vendor for c in calls} == {"openai", "anthropic", "deepseek"}
    assert plan_workload(11, 0.05) == plans
    with pytest.raises(ValueError):
        plan_workload(1, 0)


def test_progress_bar_draws_counts_and_time() -> None:
    buf = io.StringIO()
    bar = _Progress(4, buf)
    for _ in range(4):
        bar.advance()
    bar.finish()
    last = buf.getvalue().strip().splitlines()[-1]
    assert "4/4 LLM calls" in last and last.endswith("s")
