"""Writes spans into a ledger until it is killed (run by ``test_faults_ledger.py``, which sends SIGKILL).

    python tests/reliability/_kill_child.py LEDGER ACKS FIRST_UNIT

The real pipeline (baggage processor, CostSpanProcessor, LedgerSpanProcessor) with the ledger exporter wrapped:
before a batch is written its span ids are appended to ACKS as ``begin <n> <ids>``, and after the export
returned SUCCESS as ``ack <n>``, each line flushed and fsync'ed before going on. So after a SIGKILL the parent
knows exactly which batches the ledger acknowledged, and which one (at most) was in flight.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: E402

import otel_costattr as oc  # noqa: E402
from otel_costattr._ledger._store import LedgerSpanProcessor  # noqa: E402

from _helpers import emit_units  # noqa: E402


def main() -> int:
    ledger_path, acks_path, first_unit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    book = oc.PriceBook.load(env=False)
    proc = LedgerSpanProcessor(ledger_path, book=book, schedule_delay_millis=5, max_export_batch_size=512)
    acks = open(acks_path, "a", buffering=1)
    export = proc.exporter.export
    counter = [0]

    def logged_export(spans):  # type: ignore[no-untyped-def]
        n = counter[0] = counter[0] + 1
        ids = ",".join(format(s.context.span_id, "016x") for s in spans)
        acks.write(f"begin {os.getpid()}-{n} {ids}\n")
        acks.flush()
        os.fsync(acks.fileno())
        result = export(spans)
        if result is SpanExportResult.SUCCESS:
            acks.write(f"ack {os.getpid()}-{n}\n")
            acks.flush()
            os.fsync(acks.fileno())
        return result

    proc.exporter.export = logged_export  # the batch worker calls exporter.export on this very object
    tp = TracerProvider()
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(oc.CostSpanProcessor(proc, book=book))
    tracer = tp.get_tracer("app")
    print("ready", flush=True)
    unit = first_unit
    while True:  # until SIGKILL
        emit_units(tracer, range(unit, unit + 5))
        unit += 5


if __name__ == "__main__":
    sys.exit(main())
