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
from otel_costattr._ledger._store import Ledger, LedgerSpanProcessor

from _helpers import LogCapture, emit_units, to_pico
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

    The ledger processor holds the application back when its queue is full (backpressure) instead of dropping
    spans, so nothing may be missing; if anything is, the processor's own drop counters are in the message."""
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
    ls = r["ledger_stats"]
    figure.lost = (f"{lost:,} of {exp.spans:,} spans ({exp.priced - priced:,} priced) never reached the ledger "
                   f"(dropped and counted by the ledger processor: {ls['dropped']:,}); duplicates: {rows - distinct}; "
                   f"wrong costs: {wrong_cost}; wrong customer: {wrong_customer}; the app was held back "
                   f"{ls['waits']:,} times, longest {ls['longest_wait_s']:.2f} s")
    figure.set(rows=rows, priced=priced, total=str(total), expected_total=str(exp.total), statuses=statuses,
               customers=len(by_customer), read_back_s=round(time.perf_counter() - t0, 1), lost_spans=lost,
               ledger_rows_written_by_child=r["ledger_rows_written"], ledger_stats=ls)
    assert rows == distinct, "a span is stored twice"
    assert wrong_cost == 0 and wrong_customer == 0
    assert unattributed == 0, "a span lost its attribution"
    assert lost == 0 and ls["dropped"] == 0 and r["ledger_failed_batches"] == 0, (lost, ls)
    assert priced == exp.priced
    assert Decimal(total) == exp.total
    assert statuses == {"priced": exp.priced, "unpriced": exp.unpriced, "no_usage": exp.no_usage}
    assert {k: Decimal(v) for k, v in by_customer.items()} == exp.customer_totals()


class _StalledDisk:
    """Makes the ledger's writes hang until released, like a disk that stops answering."""

    def __init__(self, proc: LedgerSpanProcessor) -> None:
        self.gate = threading.Event()
        write_rows = proc.ledger.write_rows

        def stalled(rows: Any, **kw: Any) -> int:
            self.gate.wait(60)
            return write_rows(rows, **kw)

        proc.ledger.write_rows = stalled  # type: ignore[method-assign]


def _ledger_pipeline(path: Path, **kw: Any) -> tuple[TracerProvider, LedgerSpanProcessor, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    book = oc.PriceBook.load(env=False)
    reader = InMemoryMetricReader()
    proc = LedgerSpanProcessor(path, book=book, schedule_delay_millis=50,
                               meter_provider=MeterProvider(metric_readers=[reader]), **kw)
    tp = TracerProvider()
    tp.add_span_processor(oc.CostSpanProcessor(proc, book=book))
    return tp, proc, reader


def _dropped_metric(reader: Any) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "otel_costattr.ledger.spans.dropped":
                    for p in m.data.data_points:
                        key = (p.attributes["reason"], p.attributes["gen_ai.cost.status"])
                        out[key] = out.get(key, 0) + p.value
    return out


@pytest.mark.figure("Load", "Ledger writer stalled for 2 s with its queue full (8,192) while the app ends "
                    "12,000 spans")
def test_ledger_backpressure_holds_the_app_back_instead_of_dropping(tmp_path: Path, figure) -> None:
    """Proves: when the ledger writer stalls (slow disk, long checkpoint) for less than ``max_block_millis``
    while the application keeps ending spans, the application waits for room and every span is stored."""
    tp, proc, _ = _ledger_pipeline(tmp_path / "l.duckdb")
    disk = _StalledDisk(proc)
    ended: list[int] = []
    t0 = time.perf_counter()
    app = threading.Thread(target=lambda: ended.append(emit_units(tp.get_tracer("app"), range(1200))))
    app.start()
    deadline = time.monotonic() + 60
    while proc.stats()["queued"] < 8192 and app.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the queue is full and the app has to wait, however slow this machine is
    time.sleep(2.0)  # the disk stays stuck 2 s longer: less than max_block_millis (5 s by default)
    disk.gate.set()
    app.join(60)
    app_s = time.perf_counter() - t0
    tp.force_flush()
    stored = proc.ledger.count()
    stats = proc.stats()
    tp.shutdown()
    lost = ended[0] - stored
    figure.how_much = f"{ended[0]:,} spans ended; the ledger writer stayed stalled 2 s after its queue was full"
    figure.lost = (f"{lost:,} spans never stored; dropped: {stats['dropped']}; the app was held back "
                   f"{stats['waits']} time(s), longest {stats['longest_wait_s']:.2f} s")
    figure.set(stats=stats, app_s=round(app_s, 2))
    assert lost == 0 and stats["dropped"] == 0, stats
    assert stats["waits"] >= 1 and stats["longest_wait_s"] >= 1.9, stats  # it really was held back


@pytest.mark.figure("Load", "Ledger writer stalled past the bound (max_block_millis=1000) while the app ends "
                    "12,000 spans")
def test_ledger_stalled_past_the_bound_drops_counted_and_logged_once(tmp_path: Path, figure) -> None:
    """Proves: when the writer stays stalled past ``max_block_millis`` the application is held back once, for
    that long, and not per span; then spans that find the queue full are dropped, and every drop is counted
    (stats and the ``otel_costattr.ledger.spans.dropped`` metric, priced ones apart) and logged once."""
    tp, proc, reader = _ledger_pipeline(tmp_path / "l.duckdb", max_block_millis=1000)
    disk = _StalledDisk(proc)
    ended: list[int] = []
    with LogCapture() as logs:
        t0 = time.perf_counter()
        app = threading.Thread(target=lambda: ended.append(emit_units(tp.get_tracer("app"), range(1200))))
        app.start()
        app.join(60)
        app_s = time.perf_counter() - t0
        disk.gate.set()
        tp.force_flush()
    stored = proc.ledger.count()
    (priced_stored,), = proc.ledger.query("SELECT count(*) FROM spans WHERE cost_status = 'priced'")
    stats = proc.stats()
    metric = _dropped_metric(reader)
    tp.shutdown()
    lost = ended[0] - stored
    priced_lost = ended[0] // W.SPANS_PER_UNIT * W.PRICED_PER_UNIT - priced_stored
    warnings = [t for t in logs.texts() if "dropping spans" in t]
    figure.how_much = f"{ended[0]:,} spans ended while the ledger writer was stalled (app took {app_s:.1f} s)"
    figure.lost = (f"{lost:,} spans never stored ({priced_lost:,} priced); counted by the library: "
                   f"{stats['dropped']:,} ({stats['dropped_priced']:,} priced); warnings logged: {len(warnings)}")
    figure.set(stats=stats, metric={"/".join(k): v for k, v in metric.items()}, app_s=round(app_s, 2))
    assert lost > 0, "the stall did not overflow the queue: this test shows nothing"
    assert stats["dropped"] == stats["dropped_queue_full"] == lost
    assert stats["dropped_priced"] == priced_lost
    assert sum(metric.values()) == lost and sum(v for (_, st), v in metric.items() if st == "priced") == priced_lost
    assert len(warnings) == 1, warnings
    # Held back once for the bound, then shed without waiting: not 1 s per dropped span.
    assert stats["waits"] <= 3 and stats["longest_wait_s"] < 1.5, stats
    assert app_s < 10, app_s
