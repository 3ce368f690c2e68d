"""Helpers shared by the reliability tests: the application's span workload and a ledger checker."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as W  # noqa: E402

import otel_costattr as oc  # noqa: E402


def emit_units(tracer: Any, units: Iterable[int], *, worker: int = 0) -> int:
    """Run workload units as application code would; returns the number of spans ended."""
    n = 0
    for u in units:
        with oc.attribution(customer_id=W.customer(worker, u), task_id=f"task-{u % 11}",
                            agent_run_id=f"run-{worker}-{u}"):
            with tracer.start_as_current_span("invoke_agent support",
                                              attributes={"gen_ai.operation.name": "invoke_agent"}):
                for i in range(W.CALLS_PER_UNIT):
                    c = W.call(worker, u, i)
                    with tracer.start_as_current_span("chat", attributes=c.start) as span:
                        span.set_attributes(c.end)
                with tracer.start_as_current_span("execute_tool lookup",
                                                  attributes={"gen_ai.operation.name": "execute_tool"}):
                    pass
        n += W.SPANS_PER_UNIT
    return n


def to_pico(value: Decimal) -> int:
    scaled = value * W.PICO
    assert scaled == scaled.to_integral_value(), f"{value} is not a whole number of pico-dollars"
    return int(scaled)


class LogCapture(logging.Handler):
    """Every record logged anywhere while installed (root logger, level DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        out = []
        for r in self.records:
            try:
                msg = r.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is still text to search
                msg = f"{r.msg} {r.args}"
            out.append(msg + ("\n" + logging.Formatter().formatException(r.exc_info) if r.exc_info else ""))
        return out

    def __enter__(self) -> "LogCapture":
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)
