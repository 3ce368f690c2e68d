"""Retry chains: how much of a tenant's spend went into attempts that had to be repeated (DESIGN D14).

A pure, deterministic algorithm over the spans of one trace (ledger rows or SDK ``ReadableSpan``\\ s).

**Steps.** A *step* is the span an LLM call works for: the nearest ancestor that is not itself an LLM call
(instrumentors that wrap another instrumentor's span are skipped). When the application marks attempts with
:func:`otel_costattr.attempt` the step is that marker's parent and the chain key is the marker's ``step`` name.
A parent that never arrived is still a step: its id is known from the children.

**Chains.** Under one step, LLM calls are taken in start order. A call opens a new chain unless the previous
call of the same step *failed* and *ended before it started* (overlapping calls are parallel branches, not
retries). Calls under different steps (sub-agents, parallel tool branches with their own spans) never share
a chain. With explicit attempt markers, a chain is the run of markers with the same ``step`` under one parent.

**Attempt outcomes**, first match wins:

* ``errored``: the call's span has status ERROR;
* ``rejected``: its output was rejected: a tool or validation span of the same step that started after the
  call ended, and before the step's next call, has status ERROR (or an attempt marker said so);
* ``succeeded``: otherwise.

**Hidden attempts.** An SDK resends a request after HTTP 408/409/429/5xx or a transport error; the
application sees one call. Two signals show them, and a call's hidden attempts are the larger of the two
(where both are present they count the same resends):

* ``http.request.resend_count = k`` on the call's span (the Anthropic SDK's own tracing sets it): ``k``;
* HTTP client spans (an HTTP client instrumentation such as ``opentelemetry-instrumentation-httpx``) under
  the call's span, or beside it and within its time (see :func:`_http_attempts`): ``n`` of them are ``n - 1``
  hidden attempts.

Hidden attempts count towards attempts per chain (a call with one is a retry chain of its own), but their
cost is unknown (vendors do not bill failed HTTP attempts) and is not invented.

**Money.** Chain cost is the sum of its attempts' costs. Waste is the cost of the attempts before the first
successful one; a chain that never succeeded wasted all of it. Costs are ``Decimal`` and summed exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..attributes import ATTEMPT_OUTCOME as OUTCOME_ATTRIBUTE
from ..attributes import ATTEMPT_STEP as STEP_ATTRIBUTE

__all__ = ["Attempt", "Chain", "ChainSpan", "HTTP_METHOD_ATTRIBUTES", "STEP_ATTRIBUTE", "build_chains",
           "is_http_client", "spans_from_readable"]

_VALIDATION_HINTS = ("validat", "parse", "guard", "check")


@dataclass(frozen=True, slots=True)
class ChainSpan:
    """The few facts about a span that chains need. ``cost`` is None when unknown (unpriced, no usage)."""

    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    error: bool
    is_llm: bool = False
    counted: bool = True  # False for the second span of a duplicated call
    cost: Decimal | None = None
    resend_count: int = 0
    operation: str | None = None
    step: str | None = None  # explicit attempt marker's step name
    outcome: str | None = None  # explicit attempt marker's outcome
    http_attempt: bool = False  # an HTTP client span: one attempt of the LLM call it sits under


@dataclass(frozen=True, slots=True)
class Attempt:
    span_id: str
    outcome: str  # "succeeded" | "errored" | "rejected"
    cost: Decimal | None
    hidden_resends: int = 0


@dataclass(frozen=True, slots=True)
class Chain:
    """Attempts at one step, in order. ``wasted`` is the cost of the attempts before the first success."""

    trace_id: str
    step_span_id: str | None
    step: str
    attempts: tuple[Attempt, ...]
    cost: Decimal
    wasted: Decimal
    succeeded: bool
    unknown_cost_attempts: int = 0

    @property
    def attempt_count(self) -> int:
        """Visible attempts plus SDK-level resends."""
        return sum(1 + a.hidden_resends for a in self.attempts)

    @property
    def is_retry(self) -> bool:
        return self.attempt_count > 1


@dataclass
class _Index:
    spans: dict[str, ChainSpan] = field(default_factory=dict)
    children: dict[str | None, list[ChainSpan]] = field(default_factory=lambda: defaultdict(list))


def _step_of(span: ChainSpan, idx: _Index) -> str | None:
    """Nearest ancestor that is not an LLM call (bounded walk; cycles and missing parents tolerated)."""
    parent = span.parent_span_id
    for _ in range(64):
        p = idx.spans.get(parent) if parent else None
        if p is None or not p.is_llm:
            return parent
        parent = p.parent_span_id
    return parent


def _http_attempts(idx: _Index) -> dict[str, int]:
    """HTTP attempts per LLM span: HTTP client spans whose parent is that span or an LLM span it wraps (two
    instrumentations of one call nest; whichever of them is counted gets the attempts). An instrumentation
    that does not make its span current (OpenLLMetry's Anthropic one) leaves the HTTP spans beside the call,
    under the same parent: they are matched by time, to the one counted call whose span contains them, and
    left out when several calls overlap them (parallel branches), rather than guessed."""
    out: dict[str, int] = defaultdict(int)
    calls_under: dict[str | None, list[ChainSpan]] = {}  # counted calls per parent, listed once per parent
    for s in idx.spans.values():
        if not s.http_attempt or s.is_llm:
            continue
        p = idx.spans.get(s.parent_span_id) if s.parent_span_id else None
        if p is None or not p.is_llm:
            calls = calls_under.get(s.parent_span_id)
            if calls is None:
                calls = calls_under[s.parent_span_id] = [c for c in idx.children.get(s.parent_span_id, ())
                                                         if c.is_llm and c.counted]
            around = [c for c in calls if c.start_ns <= s.start_ns and s.end_ns <= c.end_ns]
            if len(around) == 1:
                out[around[0].span_id] += 1
            continue
        for _ in range(64):  # bounded: cycles in a corrupt trace end here
            if p is None or not p.is_llm:
                break
            out[p.span_id] += 1
            p = idx.spans.get(p.parent_span_id) if p.parent_span_id else None
    return out


def _hidden(call: ChainSpan, http: Mapping[str, int]) -> int:
    """Hidden attempts of one call: the resend count or the HTTP attempts beyond the first, the larger."""
    return max(call.resend_count, http.get(call.span_id, 0) - 1, 0)


def _is_check(span: ChainSpan) -> bool:
    if span.is_llm:
        return False
    if span.operation == "execute_tool":
        return True
    name = span.name.lower()
    return any(h in name for h in _VALIDATION_HINTS) or name.startswith(("tool", "execute_tool"))


def _outcome(call: ChainSpan, checks: Sequence[ChainSpan], next_start: int | None) -> str:
    if call.error:
        return "errored"
    for c in checks:
        if c.start_ns >= call.end_ns and (next_start is None or c.start_ns <= next_start) and c.error:
            return "rejected"
    return "succeeded"


def _close(trace_id: str, step_id: str | None, step: str, attempts: list[Attempt]) -> Chain:
    cost = Decimal(0)
    wasted = Decimal(0)
    unknown = 0
    succeeded = False
    for a in attempts:
        if a.cost is None:
            unknown += 1
        else:
            cost += a.cost
        if not succeeded and a.outcome != "succeeded" and a.cost is not None:
            wasted += a.cost
        if a.outcome == "succeeded":
            succeeded = True
    if not succeeded:
        wasted = cost
    return Chain(trace_id=trace_id, step_span_id=step_id, step=step, attempts=tuple(attempts), cost=cost,
                 wasted=wasted, succeeded=succeeded, unknown_cost_attempts=unknown)


def build_chains(trace_id: str, spans: Iterable[ChainSpan]) -> list[Chain]:
    """Group one trace's LLM calls into retry chains (see the module docstring). Deterministic."""
    idx = _Index()
    for s in spans:
        idx.spans[s.span_id] = s
    for s in idx.spans.values():
        idx.children[s.parent_span_id].append(s)
    chains: list[Chain] = []
    http = _http_attempts(idx)

    # 1. Explicit attempt markers: chains of markers with the same step name under one parent.
    markers = [s for s in idx.spans.values() if s.step is not None]
    marked_calls: set[str] = set()
    by_parent: dict[tuple[str | None, str], list[ChainSpan]] = defaultdict(list)
    for m in markers:
        by_parent[(m.parent_span_id, m.step)].append(m)  # type: ignore[index]
    for (parent, step), ms in sorted(by_parent.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        ms.sort(key=lambda s: (s.start_ns, s.span_id))
        attempts = []
        for m in ms:
            calls = _descendant_calls(m, idx)
            marked_calls.update(c.span_id for c in calls)
            known = [c.cost for c in calls if c.cost is not None]
            cost = sum(known, Decimal(0)) if known or not calls else None
            outcome = m.outcome if m.outcome in ("succeeded", "errored", "rejected") else (
                "errored" if m.error else "succeeded")
            attempts.append(Attempt(m.span_id, outcome, cost, sum(_hidden(c, http) for c in calls)))
        chains.append(_close(trace_id, parent, step, attempts))

    # 2. Everything else: consecutive failed calls under the same step.
    groups: dict[str | None, list[ChainSpan]] = defaultdict(list)
    for s in idx.spans.values():
        if s.is_llm and s.counted and s.span_id not in marked_calls:
            groups[_step_of(s, idx)].append(s)
    for step_id in sorted(groups, key=lambda k: k or ""):
        calls = sorted(groups[step_id], key=lambda s: (s.start_ns, s.span_id))
        step_span = idx.spans.get(step_id) if step_id else None
        step_name = step_span.name if step_span is not None else "(missing parent)" if step_id else "(root)"
        checks = [c for c in idx.children.get(step_id, []) if _is_check(c)]
        current: list[Attempt] = []
        prev: ChainSpan | None = None
        for i, call in enumerate(calls):
            nxt = calls[i + 1].start_ns if i + 1 < len(calls) else None
            outcome = _outcome(call, checks, nxt)
            continues = (prev is not None and current and current[-1].outcome != "succeeded"
                         and prev.end_ns <= call.start_ns)
            if current and not continues:
                chains.append(_close(trace_id, step_id, step_name, current))
                current = []
            current.append(Attempt(call.span_id, outcome, call.cost, _hidden(call, http)))
            prev = call
        if current:
            chains.append(_close(trace_id, step_id, step_name, current))
    return chains


def _descendant_calls(marker: ChainSpan, idx: _Index) -> list[ChainSpan]:
    out, stack, seen = [], [marker.span_id], set()
    while stack:
        sid = stack.pop()
        if sid in seen or len(seen) > 10_000:
            continue
        seen.add(sid)
        for child in idx.children.get(sid, []):
            if child.is_llm and child.counted:
                out.append(child)
            stack.append(child.span_id)
    return out


#: Attributes that mark an HTTP client span: the stable HTTP semantic conventions' and the older ones'.
HTTP_METHOD_ATTRIBUTES = ("http.request.method", "http.method")


def is_http_client(kind: str | None, attributes: Mapping[str, Any]) -> bool:
    """Whether a span is an HTTP client attempt (kind CLIENT with an HTTP method), as HTTP client
    instrumentations such as ``opentelemetry-instrumentation-httpx`` emit one per request sent."""
    return kind == "CLIENT" and any(k in attributes for k in HTTP_METHOD_ATTRIBUTES)


def spans_from_readable(spans: Iterable[Any]) -> dict[str, list[ChainSpan]]:
    """Group SDK ``ReadableSpan``\\ s (after cost enrichment) by trace id (hex) into :class:`ChainSpan`\\ s."""
    from .._capture._usage import read_call

    out: dict[str, list[ChainSpan]] = defaultdict(list)
    for s in spans:
        a: Mapping[str, Any] = s.attributes or {}
        call = read_call(a)
        status = a.get("gen_ai.cost.status")
        cost = a.get("gen_ai.cost.total_cost")
        resend = a.get("http.request.resend_count")
        is_llm = call.is_llm_call
        out[format(s.context.trace_id, "032x")].append(ChainSpan(
            span_id=format(s.context.span_id, "016x"),
            parent_span_id=format(s.parent.span_id, "016x") if s.parent is not None else None,
            name=s.name, start_ns=s.start_time or 0, end_ns=s.end_time or 0,
            error=s.status.status_code.name == "ERROR", is_llm=is_llm,
            counted=status != "duplicate",
            cost=Decimal(repr(cost)) if isinstance(cost, float) and status in ("priced", "partial", "provided")
            else None,
            resend_count=resend if isinstance(resend, int) and not isinstance(resend, bool) else 0,
            operation=call.operation, step=a.get(STEP_ATTRIBUTE) if isinstance(a.get(STEP_ATTRIBUTE), str) else None,
            outcome=a.get(OUTCOME_ATTRIBUTE) if isinstance(a.get(OUTCOME_ATTRIBUTE), str) else None,
            http_attempt=not is_llm and is_http_client(s.kind.name, a)))
    return dict(out)
