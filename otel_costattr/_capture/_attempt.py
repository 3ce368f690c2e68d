"""``attempt(step=...)``: mark attempts explicitly when the application knows better than the heuristics.

    for n in range(5):
        with otel_costattr.attempt(step="extract-claim") as a:
            reply = client.chat.completions.create(...)
            if not valid(reply):
                a.reject("tool arguments were not valid JSON")
                continue
        break

Each attempt is an INTERNAL span ``attempt <step>`` carrying ``otel_costattr.attempt.step``,
``otel_costattr.attempt.number`` and ``otel_costattr.attempt.outcome`` (``succeeded``, ``rejected`` or
``errored``); LLM calls made inside are its children. The retry-chain analysis groups markers with the same
step under the same parent into one chain. An exception inside the block marks the attempt ``errored``,
records it on the span and propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ..attributes import ATTEMPT_NUMBER as ATTEMPT_ATTRIBUTE
from ..attributes import ATTEMPT_OUTCOME as OUTCOME_ATTRIBUTE
from ..attributes import ATTEMPT_STEP as STEP_ATTRIBUTE

__all__ = ["Attempt", "attempt"]


class Attempt:
    """Handle returned by :func:`attempt`; call :meth:`reject` when the output was not usable."""

    def __init__(self, span: Any) -> None:
        self.span = span
        self.outcome = "succeeded"

    def reject(self, reason: str = "") -> None:
        """The model answered, but the answer was rejected (invalid tool arguments, failed validation...)."""
        self.outcome = "rejected"
        self.span.set_status(Status(StatusCode.ERROR, reason[:256] or "rejected"))


@contextmanager
def attempt(step: str, *, number: int | None = None, tracer_provider: Any = None) -> Iterator[Attempt]:
    """Mark one attempt at ``step`` (see the module docstring). ``number`` is optional (order is used)."""
    if not isinstance(step, str) or not step:
        raise ValueError("attempt(step=...) needs a non-empty step name")
    tracer = trace.get_tracer("otel_costattr", tracer_provider=tracer_provider)
    attrs: dict[str, Any] = {STEP_ATTRIBUTE: step[:256]}
    if number is not None:
        attrs[ATTEMPT_ATTRIBUTE] = int(number)
    with tracer.start_as_current_span(f"attempt {step[:64]}", attributes=attrs, record_exception=True,
                                      set_status_on_exception=True) as span:
        handle = Attempt(span)
        try:
            yield handle
        except BaseException:
            handle.outcome = "errored"
            raise
        finally:
            span.set_attribute(OUTCOME_ATTRIBUTE, handle.outcome)
