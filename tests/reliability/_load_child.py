"""The load run, in a process of its own so that its peak RSS is its own (run by ``test_load.py``).

    python tests/reliability/_load_child.py --spans 1000000 --ledger L.duckdb --out result.json

Pipeline, as an application would build it: ``baggage_processor()`` then
``CostSpanProcessor(LedgerSpanProcessor(ledger), BatchSpanProcessor(counting exporter))``. Work runs at once on
8 threads and 100 asyncio tasks (in the main thread's event loop); every unit of work is wrapped in
``otel_costattr.attribution(...)`` with its own customer, task and run, so any context mix-up between threads
or tasks shows up as spend on the wrong customer.

The child never checks its own results: it reports what the application saw (exceptions, warnings), what the
exporters received, timings and memory, and the parent reads the ledger file after the child has exited.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as W  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    """This process's own peak RSS (``VmHWM``, the high-water mark of its address space).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's high-water mark across fork/exec
    into the child's ``ru_maxrss``, so inside a long pytest session (whose RSS had reached 1.1 GB by the
    time this child started) it reported the parent's peak, not this run's.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Counter(logging.Handler):
    """Counts (and keeps the first few of) the warnings the libraries log during the run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 10:
            self.first.append(f"{record.name}: {record.getMessage()[:300]}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, required=True)
    ap.add_argument("--ledger", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=100)
    args = ap.parse_args(argv)

    t_import = time.perf_counter()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import otel_costattr as oc
    from otel_costattr._ledger._store import LedgerSpanProcessor

    warnings = _Counter()
    logging.getLogger().addHandler(warnings)
    logging.getLogger().setLevel(logging.WARNING)

    class CountingExporter(SpanExporter):
        """Stands for the OTLP backend: counts what it is handed, and the cost on it."""

        def __init__(self) -> None:
            self.spans = 0
            self.priced = 0

        def export(self, spans: Any) -> SpanExportResult:
            self.spans += len(spans)
            self.priced += sum(1 for s in spans if s.attributes.get("gen_ai.cost.status") == "priced")
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    book = oc.PriceBook.load(env=False)
    counting = CountingExporter()
    ledger_proc = LedgerSpanProcessor(args.ledger, book=book)
    otlp_proc = BatchSpanProcessor(counting)
    cost = oc.CostSpanProcessor(ledger_proc, otlp_proc, book=book)
    provider = TracerProvider(resource=Resource.create({"service.name": "load-test"}))
    provider.add_span_processor(oc.baggage_processor())
    provider.add_span_processor(cost)
    tracer = provider.get_tracer("load")
    setup_s = time.perf_counter() - t_import

    units = args.spans // W.SPANS_PER_UNIT
    workers = args.threads + args.tasks
    done = [0] * workers  # units finished per worker (each slot written by one worker only)
    errors: list[str] = []
    errors_lock = threading.Lock()

    def app_error(where: str) -> None:
        with errors_lock:
            if len(errors) < 20:
                errors.append(f"{where}: {traceback.format_exc(limit=5)}")
            else:
                errors.append(where)

    def run_unit(w: int, u: int) -> None:
        """One agent step, as application code: the library must never raise into it."""
        with oc.attribution(customer_id=W.customer(w, u), task_id=f"task-{u % 11}", agent_run_id=f"run-{w}-{u}",
                            workload_type="load"):
            with tracer.start_as_current_span("invoke_agent support", attributes={
                    "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}):
                for i in range(W.CALLS_PER_UNIT):
                    c = W.call(w, u, i)
                    with tracer.start_as_current_span(f"chat {c.start['gen_ai.request.model']}",
                                                      attributes=c.start) as span:
                        span.set_attributes(c.end)
                with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}):
                    pass

    def thread_worker(w: int) -> None:
        for u in W.units_of(w, workers, units):
            try:
                run_unit(w, u)
            except Exception:  # noqa: BLE001 - what we measure: anything the library raised into the app
                app_error(f"thread {w} unit {u}")
            done[w] += 1

    async def task_worker(w: int) -> None:
        for u in W.units_of(w, workers, units):
            try:
                run_unit(w, u)
            except Exception:  # noqa: BLE001
                app_error(f"task {w} unit {u}")
            done[w] += 1
            await asyncio.sleep(0)  # let the other 99 tasks interleave, as awaiting a real LLM call would

    # Memory: sampled every 0.1 s by a monitor thread, with the progress and the phase at that moment.
    samples: list[tuple[int, float, str]] = []
    phase = ["spans"]
    stop = threading.Event()

    def monitor() -> None:
        while not stop.wait(0.1):
            samples.append((sum(done) * W.SPANS_PER_UNIT, rss_mb(), phase[0]))

    def hook(args_: Any) -> None:
        app_error(f"uncaught in thread {args_.thread.name}: {args_.exc_type.__name__}: {args_.exc_value}")

    threading.excepthook = hook
    rss_start = rss_mb()
    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=thread_worker, args=(w,), name=f"app-{w}") for w in range(args.threads)]
    for t in threads:
        t.start()

    async def run_tasks() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: app_error(f"asyncio: {ctx.get('message')}"))
        await asyncio.gather(*(task_worker(args.threads + k) for k in range(args.tasks)))

    asyncio.run(run_tasks())
    for t in threads:
        t.join()
    t_spans = time.perf_counter() - t0
    phase[0] = "flush"
    flushed = provider.force_flush(600_000)
    t_flush = time.perf_counter() - t0 - t_spans
    stats = cost.stats.snapshot()
    written = ledger_proc.exporter.written
    failed_batches = ledger_proc.exporter.failed_batches
    ledger_stats = ledger_proc.stats()
    phase[0] = "shutdown"
    provider.shutdown()  # closes the ledger (checkpoint)
    rss_end = rss_mb()
    stop.set()
    mon.join()
    result = {
        "spans_requested": args.spans, "spans_started": units * W.SPANS_PER_UNIT, "units": units,
        "threads": args.threads, "tasks": args.tasks, "app_exceptions": len(errors), "app_exception_samples":
        errors[:5], "warnings_logged": warnings.count, "warning_samples": warnings.first, "flushed": flushed,
        "ledger_rows_written": written, "ledger_failed_batches": failed_batches, "ledger_stats": ledger_stats,
        "otlp_spans_exported": counting.spans, "otlp_priced_exported": counting.priced, "stats": stats,
        "setup_s": round(setup_s, 2), "spans_s": round(t_spans, 2), "flush_s": round(t_flush, 2),
        "spans_per_s": round(units * W.SPANS_PER_UNIT / t_spans), "rss_start_mb": round(rss_start, 1),
        # The kernel's high-water mark, or a sample if one was higher: the kernel folds RSS counts in batches
        # (per CPU or thread), so VmHWM can trail a VmRSS read by a few pages (seen: 390.0 vs 390.19 MB).
        "peak_rss_mb": round(max(peak_rss_mb(), max((x for _, x, _ in samples), default=0.0)), 1),
        "peak_rss_vmhwm_mb": round(peak_rss_mb(), 1), "rss_after_shutdown_mb": round(rss_end, 1),
        "rss_samples": samples,
    }
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
