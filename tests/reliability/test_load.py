"""Load: the in-process pipeline under 8 threads and 100 asyncio tasks at once (``_load_child.py``).

The run happens once per session in a child process (so its peak RSS is its own); the tests below read its
report and the ledger file it left behind. The expected spend is recomputed here from the workload's token
counts and the vendors' published rates (``_workload.py``), never from the library.

Size: ``OTEL_COSTATTR_RELIABILITY_SPANS`` (default 1,000,000; CI runs fewer, see the README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_costattr as oc
from otel_costattr._ledger import Ledger, LedgerSpanProcessor

from _helpers import emit_units, to_pico
from _settings import LOAD_SPANS
import _workload as W

HERE = Path(__file__).resolve().parent
THREADS, TASKS = 8, 100
# Peak RSS of the whole child (interpreter, SDK, pricing tables, DuckDB and its buffers). The bound is what an
# operator could plan for, and far below what holding the spans would take (1M spans x ~2 KB = 2 GB).
PEAK_RSS_BOUND_MB = 768
# Growth of the RSS floor allowed from the second tenth of the run (after warm-up) to the last: a leak of even
# 200 bytes per span would exceed it over 1M spans. (Measured at 1M: ~300 -> ~335 MB; peaks ~610 MB in waves.)
RSS_GROWTH_BOUND_MB = 200


@pytest.fixture(scope="module")
def load_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("load")
    ledger, out = d / "load.duckdb", d / "result.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / "_load_child.py"), "--spans", str(LOAD_SPANS), "--ledger",
                           str(ledger), "--out", str(out), "--threads", str(THREADS), "--tasks", str(TASKS)],
                          capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["ledger"] = ledger
    return result


def _mb(x: float) -> str:
    return f"{x:,.0f} MB"


@pytest.mark.figure("Load", f"{THREADS} threads + {TASKS} asyncio tasks through baggage -> CostSpanProcessor -> "
                    "ledger + batch export")
def test_load_no_exception_reaches_the_app_and_memory_is_bounded(load_run: dict[str, Any], figure) -> None:
    """Proves: at full speed from 108 concurrent workers the library raises nothing into the application and
    logs nothing alarming, every span reaches the export side, and peak memory stays bounded (flat after
    warm-up, not growing with the number of spans)."""
    r = load_run
    total = r["spans_started"]
    # RSS while spans are being ended, by tenth of the run: the highest and the lowest sample in each. RSS comes
    # in waves (DuckDB checkpoints the growing table, the ledger queue fills and drains), so a leak shows as a
    # rising floor, not as a high peak.
    highs, lows = [0.0] * 10, [float("inf")] * 10
    for n, rss, phase in r["rss_samples"]:
        if phase == "spans":
            k = min(9, n * 10 // max(total, 1))
            highs[k], lows[k] = max(highs[k], rss), min(lows[k], rss)
    by_phase: dict[str, float] = {}
    for _, rss, phase in r["rss_samples"]:
        by_phase[phase] = max(by_phase.get(phase, 0.0), rss)
    seen = [i for i in range(10) if lows[i] != float("inf")]  # a very short run may leave a tenth unsampled
    assert len(seen) >= 3, "too few memory samples"
    highs = [highs[i] for i in seen]
    lows = [lows[i] for i in seen]
    growth = lows[-1] - lows[1]  # the floor after warm-up (second tenth) against the floor of the last tenth
    figure.seconds = r["wall_s"]
    figure.how_much = f"{total:,} spans ({r['spans_per_s']:,}/s)"
    figure.lost = (f"app exceptions: {r['app_exceptions']}; export side: {total - r['otlp_spans_exported']:,}; "
                   f"peak RSS {_mb(r['peak_rss_mb'])}; RSS floor {_mb(lows[1])} (2nd tenth) -> {_mb(lows[-1])} "
                   "(last tenth)")
    figure.set(**{k: v for k, v in r.items() if k not in ("rss_samples", "ledger")},
               rss_high_by_tenth_mb=[round(x) for x in highs], rss_low_by_tenth_mb=[round(x) for x in lows],
               rss_peak_by_phase_mb={k: round(v) for k, v in by_phase.items()},
               rss_floor_growth_mb=round(growth, 1))
    assert r["app_exceptions"] == 0, r["app_exception_samples"]
    assert r["flushed"]
    assert r["stats"].get("enrichment_failed", 0) == 0 and r["stats"].get("downstream_failed", 0) == 0
    assert r["stats"]["priced"] == r["spans_started"] // W.SPANS_PER_UNIT * W.PRICED_PER_UNIT
    # The peak is the child's own high-water mark, so it can never be below a sample taken during the run.
    assert r["peak_rss_mb"] >= max(by_phase.values()) - 0.1, (r["peak_rss_mb"], by_phase)
    assert r["peak_rss_mb"] < PEAK_RSS_BOUND_MB, r["peak_rss_mb"]
    assert growth < RSS_GROWTH_BOUND_MB, (growth, highs, lows, by_phase)


def test_load_child_peak_rss_is_its_own_not_the_parents() -> None:
    """Proves: the load child's peak-RSS figure is its own, even when the process that started it is large.

    ``ru_maxrss`` is not: Linux carries a parent's high-water mark across fork/exec, which made the load test
    fail in the full CI run (1,122 MB "peak" for a child whose sampled RSS never passed 358 MB, because the
    pytest session had grown to that size). Here a parent touches 300 MB, then starts a small child."""
    child = ("import sys; sys.path.insert(0, sys.argv[1]); import resource, _load_child; "
             "print(_load_child.peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    parent = ("import subprocess, sys\n"
              "x = bytearray(300 * 2**20)\n"
              "for i in range(0, len(x), 4096): x[i] = 1\n"
              "print(subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]], capture_output=True, "
              "text=True, check=True).stdout)\n")
    out = subprocess.run([sys.executable, "-c", parent, child, str(HERE)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    own, inherited = (float(x) for x in out.split())
    assert inherited >= 300, "ru_maxrss no longer inherits the parent's peak: this control shows nothing"
    assert own < 100, f"the child's peak RSS ({own:.0f} MB) includes its parent's"


@pytest.mark.figure("Load", "Ledger after the load run: every priced span exactly once, exact Decimal sums")
def test_load_every_priced_span_in_the_ledger_exactly_once_with_exact_cost(load_run: dict[str, Any],
                                                                          figure) -> None:
    """Proves: the ledger holds each span at most once; every stored priced call carries exactly its
    hand-computed cost; totals per customer match (so attribution did not leak between threads or tasks);
    and, when nothing was dropped, the count and the DECIMAL sum equal the independent expectation exactly.

    The ledger processor is a BatchSpanProcessor: under overload it drops spans when its queue is full (see
    ``test_ledger_queue_overflow_loses_priced_spans_silently``). That loss is reported as the figure and this
    test is then an expected failure, never a silent pass."""
    r = load_run
    exp = W.expectation(THREADS + TASKS, r["units"])
    t0 = time.perf_counter()
    led = Ledger(r["ledger"], read_only=True)
    try:
        (rows, distinct), = led.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")
        (priced, total), = led.query("SELECT count(*), coalesce(sum(cost_total), 0) FROM calls "
                                     "WHERE cost_status = 'priced'")
        statuses = dict(led.query("SELECT cost_status, count(*) FROM spans WHERE is_llm GROUP BY 1"))
        by_customer = dict(led.query("SELECT customer_id, sum(cost_total) FROM calls WHERE cost_status = 'priced' "
                                     "GROUP BY 1"))
        per_call = led.query("SELECT response_id, cost_total FROM calls WHERE cost_status = 'priced'")
        unattributed = led.query("SELECT count(*) FROM spans WHERE customer_id IS NULL")[0][0]
    finally:
        led.close()
    wrong_cost = 0
    wrong_customer = 0
    for rid, cost in per_call:
        worker, unit, i = (int(x) for x in rid.split("_")[-1].split("-")[-3:])
        wrong_cost += to_pico(cost) != W.call(worker, unit, i).pico
    # Customer totals: recomputed from the stored response ids, so a dropped span does not hide a mix-up.
    stored_exp: dict[str, int] = {}
    for rid, _ in per_call:
        worker, unit, i = (int(x) for x in rid.split("_")[-1].split("-")[-3:])
        c = W.customer(worker, unit)
        stored_exp[c] = stored_exp.get(c, 0) + W.call(worker, unit, i).pico
    for cust, cost in by_customer.items():
        wrong_customer += cust not in stored_exp or to_pico(cost) != stored_exp[cust]
    lost = exp.spans - rows
    figure.how_much = (f"{rows:,} rows read back, {priced:,} priced calls summed "
                       f"(${Decimal(total).normalize():f} vs expected ${exp.total:f})")
    figure.lost = (f"{lost:,} of {exp.spans:,} spans ({exp.priced - priced:,} priced) never reached the ledger"
                   + (" (queue full under overload; not counted by the library)" if lost else "")
                   + f"; duplicates: {rows - distinct}; wrong costs: {wrong_cost}; wrong customer: {wrong_customer}")
    figure.set(rows=rows, priced=priced, total=str(total), expected_total=str(exp.total), statuses=statuses,
               customers=len(by_customer), read_back_s=round(time.perf_counter() - t0, 1), lost_spans=lost,
               ledger_rows_written_by_child=r["ledger_rows_written"])
    assert rows == distinct, "a span is stored twice"
    assert wrong_cost == 0 and wrong_customer == 0
    assert unattributed == 0, "a span lost its attribution"
    if lost:
        pytest.xfail(f"{lost} spans ({exp.priced - priced} priced) dropped by the ledger's full queue; BUG, see "
                     "test_ledger_queue_overflow_loses_priced_spans_silently")
    assert priced == exp.priced
    assert Decimal(total) == exp.total
    assert statuses == {"priced": exp.priced, "unpriced": exp.unpriced, "no_usage": exp.no_usage}
    assert {k: Decimal(v) for k, v in by_customer.items()} == exp.customer_totals()


@pytest.mark.figure("Load", "Ledger queue overflow (ledger writer stalled while the app ends 12,000 spans)")
@pytest.mark.xfail(strict=False, reason="BUG _ledger.py LedgerSpanProcessor: inherits BatchSpanProcessor's "
                   "drop-on-full queue (max_queue_size=8192). When the writer falls behind, priced spans are "
                   "discarded with only the SDK's 'Queue full' log line; no otel-costattr counter, metric or "
                   "ledger record says spend is missing, so ledger totals are silently low")
def test_ledger_queue_overflow_loses_priced_spans_silently(tmp_path: Path, figure) -> None:
    """Proves (once fixed): when the ledger writer stalls (slow disk, long checkpoint) while the application
    keeps ending spans, either every span still reaches the ledger (backpressure) or the loss is counted by
    the library so the report can say its totals are incomplete."""
    book = oc.PriceBook.load(env=False)
    proc = LedgerSpanProcessor(tmp_path / "l.duckdb", book=book, schedule_delay_millis=50)
    cost = oc.CostSpanProcessor(proc, book=book)
    tp = TracerProvider()
    tp.add_span_processor(cost)
    gate = threading.Event()
    write_rows = proc.ledger.write_rows

    def stalled(rows: Any, **kw: Any) -> int:
        gate.wait(30)  # a disk that stops answering for a while
        return write_rows(rows, **kw)

    proc.ledger.write_rows = stalled  # type: ignore[method-assign]
    ended = []
    app = threading.Thread(target=lambda: ended.append(emit_units(tp.get_tracer("app"), range(1200))))
    app.start()
    app.join(10)  # with backpressure the app would wait here until the disk answers again
    gate.set()
    app.join()
    tp.force_flush()
    stored = proc.ledger.count()
    stats = cost.stats.snapshot()
    tp.shutdown()
    lost = ended[0] - stored
    counted = sum(v for k, v in stats.items() if "drop" in k)
    figure.how_much = f"{ended[0]:,} spans ended while the ledger writer was stalled"
    figure.lost = f"{lost:,} spans never stored; counted by the library: {counted:,}"
    figure.set(stats=stats)
    assert lost == 0 or counted == lost, f"{lost} spans lost, {counted} counted"
