"""The OTLP backend misbehaves (down, slow, 500, 429, 503) and recovers: what the SDK exporter retried, what
was lost, and that neither the application nor the ledger (a separate downstream) notices.

The pipeline is the one ``configure()`` builds: ``CostSpanProcessor(LedgerSpanProcessor, BatchSpanProcessor(
OTLPSpanExporter))``, exporting to :class:`OTLPReceiver` on loopback, which injects the faults. Each scenario
ends one batch of spans and then flushes the OTLP processor, so every scenario's retries and losses are its
own. The exporter (opentelemetry-exporter-otlp-proto-http) retries 429/502/503/504 and connection errors with
exponential backoff (1 s, 2 s, 4 s ... +-20 %, or ``Retry-After``) within its timeout; 500 is not retried.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_costattr as oc
from otel_costattr._ledger._store import LedgerSpanProcessor
from otel_costattr.testing import OTLPReceiver

from _helpers import LogCapture, emit_units
import _workload as W

UNITS_PER_BATCH = 20  # 200 spans per scenario


class _Scenario:
    def __init__(self, name: str, timeout: float, fault: Any, *, recover_after: float | None = None) -> None:
        self.name, self.timeout, self.fault, self.recover_after = name, timeout, fault, recover_after


SCENARIOS = [
    _Scenario("429 x3, Retry-After 0.1 s", 10, lambda r: r.fail_next(3, 429, retry_after=0.1)),
    _Scenario("503 x3, Retry-After 0.1 s", 10, lambda r: r.fail_next(3, 503, retry_after=0.1)),
    _Scenario("502 x2, no Retry-After (backoff 1 s, 2 s)", 10, lambda r: r.fail_next(2, 502)),
    _Scenario("500 x1", 10, lambda r: r.fail_next(1, 500)),
    _Scenario("down 2.5 s, then up", 10, lambda r: r.set_down(True), recover_after=2.5),
    _Scenario("down 6 s (longer than the exporter's 3 s timeout)", 3, lambda r: r.set_down(True), recover_after=6),
    _Scenario("slow: 0.5 s per answer", 10, lambda r: r.set_delay(0.5)),
    _Scenario("slow: 3 s per answer, exporter timeout 1 s", 1, lambda r: r.set_delay(3.0), recover_after=3.5),
]


@pytest.mark.figure("Faults", "OTLP endpoint down / slow / 500 / 429 / 503, then recovers")
def test_otlp_faults_retry_what_the_sdk_retries_and_the_ledger_keeps_everything(tmp_path: Path, figure) -> None:
    """Proves: for each fault the application sees no exception and no blocking (span ends stay fast), the
    OTLP exporter retries exactly the retryable faults and loses only what its own rules give up on, the
    backend receives everything once it recovers, and the ledger stores every span regardless."""
    book = oc.PriceBook.load(env=False)
    rows: list[dict[str, Any]] = []
    total_spans = 0
    app_exceptions = 0
    worst_span_end_ms = 0.0
    with OTLPReceiver() as rcv, LogCapture() as logs:
        ledger_proc = LedgerSpanProcessor(tmp_path / "ledger.duckdb", book=book, schedule_delay_millis=50)
        # One OTLP processor per scenario (its own timeout), all behind one CostSpanProcessor per scenario
        # sharing the same ledger processor: the ledger is one downstream, the OTLP backend another.
        unit = 0
        for sc in SCENARIOS:
            rcv.reset_faults()
            rcv.clear()
            exporter = OTLPSpanExporter(endpoint=rcv.traces_url, timeout=sc.timeout)
            bsp = BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000, max_export_batch_size=512)
            cost = oc.CostSpanProcessor(_Shared(ledger_proc), bsp, book=book)
            tp = TracerProvider()
            tp.add_span_processor(oc.baggage_processor())
            tp.add_span_processor(cost)
            tracer = tp.get_tracer("app")
            sc.fault(rcv)
            timer = None
            if sc.recover_after is not None:
                def recover(r: OTLPReceiver = rcv) -> None:
                    r.set_down(False)
                    r.set_delay(0)
                timer = threading.Timer(sc.recover_after, recover)
                timer.start()
            mark = len(logs.records)
            t0 = time.perf_counter()
            try:
                for u in range(unit, unit + UNITS_PER_BATCH):
                    s0 = time.perf_counter()
                    emit_units(tracer, [u])
                    worst_span_end_ms = max(worst_span_end_ms, (time.perf_counter() - s0) * 1000 / W.SPANS_PER_UNIT)
            except Exception:  # noqa: BLE001 - what we measure
                app_exceptions += 1
            unit += UNITS_PER_BATCH
            spans = UNITS_PER_BATCH * W.SPANS_PER_UNIT
            total_spans += spans
            bsp.force_flush()  # the export, with the exporter's own retries, happens here
            flush_s = time.perf_counter() - t0
            if timer is not None:
                timer.join()
            delivered = rcv.span_count
            # Retries: the receiver sees answered attempts; refused connections are only visible in the
            # exporter's own "retrying" warnings.
            retry_logs = sum(1 for r in logs.records[mark:] if "retrying in" in r.getMessage())
            gave_up = any("Failed to export" in r.getMessage() for r in logs.records[mark:])
            rows.append({"scenario": sc.name, "spans": spans, "answered_posts": rcv.attempt_count,
                         "retries": retry_logs, "delivered": delivered, "lost": spans - delivered,
                         "gave_up": gave_up, "flush_s": round(flush_s, 2)})
            # After every scenario the backend is healthy again: the next batch must go through.
            rcv.reset_faults()
            if rcv.is_down:
                rcv.set_down(False)
            tp.shutdown()
        ledger_proc.force_flush()
        ledger = ledger_proc.ledger
        stored = ledger.count()
        stats_failures = ledger_proc.exporter.failed_batches
        ledger_proc.shutdown()

    by = {r["scenario"]: r for r in rows}
    figure.how_much = f"{len(SCENARIOS)} fault scenarios x {UNITS_PER_BATCH * W.SPANS_PER_UNIT} spans"
    # Per scenario: what the exporter gave up on, and what the backend nevertheless has (a request that timed
    # out on the client may still have been stored: a failed export is not always lost data).
    outcomes = [f"{r['scenario']}: exporter gave up, backend has {r['delivered']}/{r['spans']}"
                for r in rows if r["gave_up"] or r["lost"]]
    figure.lost = ("OTLP: " + "; ".join(outcomes) if outcomes else "OTLP: 0") + \
        f"; every other scenario 0 lost after retries; ledger: {total_spans - stored} of {total_spans}; " \
        f"app exceptions: {app_exceptions}"
    figure.set(scenarios=rows, worst_span_end_ms=round(worst_span_end_ms, 3), ledger_rows=stored)

    assert app_exceptions == 0
    # The ledger is a separate downstream: it keeps every span whatever the OTLP backend did.
    assert stored == total_spans and stats_failures == 0
    # Retryable faults are retried and lose nothing.
    for name in ("429 x3, Retry-After 0.1 s", "503 x3, Retry-After 0.1 s",
                 "502 x2, no Retry-After (backoff 1 s, 2 s)", "down 2.5 s, then up", "slow: 0.5 s per answer"):
        assert by[name]["lost"] == 0, by[name]
        assert not by[name]["gave_up"], by[name]
    assert by["429 x3, Retry-After 0.1 s"]["answered_posts"] == 4
    assert by["503 x3, Retry-After 0.1 s"]["answered_posts"] == 4
    assert by["down 2.5 s, then up"]["retries"] >= 1
    # 500 is not retried by the SDK: that batch is lost, once, and the exporter says so.
    assert by["500 x1"]["answered_posts"] == 1 and by["500 x1"]["lost"] == by["500 x1"]["spans"]
    # An outage longer than the exporter's timeout loses the batch it was sending (and only that).
    assert by["down 6 s (longer than the exporter's 3 s timeout)"]["gave_up"]
    # Ending a span never waits for the backend: a blocked end would take at least the fault's own delay
    # (0.5 s answers, 1 s backoff); the bound leaves room for a busy 2-core CI machine.
    assert worst_span_end_ms < 250


class _Shared:
    """Lets one LedgerSpanProcessor sit behind several CostSpanProcessors without being shut down by each."""

    def __init__(self, inner: LedgerSpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context)

    def on_end(self, span: Any) -> None:
        self.inner.on_end(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
