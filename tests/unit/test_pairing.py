"""One API call traced by two instrumentations is charged once, whatever order the spans end in (DESIGN D16).

The spans go through a real TracerProvider with CostSpanProcessor; hypothesis draws how they relate (parent and
child either way round, overlapping siblings, or one of them the root of a trace of its own), which of them has a
response id, which has usage (or an upstream cost), and the order of their start and end times.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from otel_costattr import attributes as A
from otel_costattr._ledger._store import _COUNTED, _NAMES, SpanRecord, _prepare, record_to_row

BOOK = oc.PriceBook.load(imported=False, env=False)
T0 = 1_760_000_000 * 10**9
# gpt-4o-mini: 1,200 x $0.15/M + 300 x $0.60/M = 180 + 180 micro-dollars
FIGURE = Decimal("0.00036")
CARRIES = ("priced", "partial", "provided")

# What each of the two emitters writes (one the GenAI way, one the OpenInference way; both follow the GenAI usage
# convention).
GENAI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}
OPENINFERENCE = {"openinference.span.kind": "LLM", "llm.system": "openai", "llm.model_name": "gpt-4o-mini-2024-07-18"}
USAGE = {"a": {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300},
         "b": {"llm.token_count.prompt": 1200, "llm.token_count.completion": 300}}


def emitter_attrs(which: str, *, usage: bool, rid: bool, provided: bool) -> dict[str, Any]:
    out: dict[str, Any] = dict(GENAI if which == "a" else OPENINFERENCE)
    if usage:
        out.update(USAGE[which])
    if rid:
        out["gen_ai.response.id"] = "chatcmpl-1"
        if which == "b":  # OpenInference has no response id; this is an emitter that writes both conventions
            out["gen_ai.response.model"] = "gpt-4o-mini-2024-07-18"
    if provided:
        out["gen_ai.cost.total_cost"] = 0.00036  # an upstream cost (LiteLLM's callback), with usage beside it
    return out


spans_kind = st.fixed_dictionaries({
    "usage": st.booleans(), "rid": st.booleans(), "provided": st.booleans()})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=spans_kind, b=spans_kind,
       relation=st.sampled_from(["a_parent", "b_parent", "siblings", "b_own_trace"]),
       starts=st.tuples(st.integers(0, 50), st.integers(0, 50)),
       ends=st.tuples(st.integers(100, 200), st.integers(100, 200)), b_first=st.booleans())
def test_a_call_traced_twice_is_charged_once_in_any_order(a: dict, b: dict, relation: str,
                                                           starts: tuple[int, int], ends: tuple[int, int],
                                                           b_first: bool) -> None:
    if relation == "b_own_trace":
        # Across traces only token counts tie two spans together: an upstream cost there comes with usage (as
        # LiteLLM's does), and two spans without usage in different traces are not known to be one call.
        assume(not any(d["provided"] and not d["usage"] for d in (a, b)))
    exporter = InMemorySpanExporter()
    processor = oc.CostSpanProcessor(SimpleSpanProcessor(exporter), book=BOOK)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    app, ta, tb = (provider.get_tracer(n) for n in ("app", "emitter-a", "emitter-b"))

    step = app.start_span("agent step", start_time=T0)
    step_ctx = trace.set_span_in_context(step)
    attrs_a = emitter_attrs("a", **a)
    attrs_b = emitter_attrs("b", **b)
    t_a, t_b = T0 + starts[0], T0 + starts[1]
    if relation == "a_parent":
        span_a = ta.start_span("chat", context=step_ctx, attributes=attrs_a, start_time=min(t_a, t_b))
        span_b = tb.start_span("ChatCompletion", context=trace.set_span_in_context(span_a), attributes=attrs_b,
                               start_time=max(t_a, t_b))
    elif relation == "b_parent":
        span_b = tb.start_span("ChatCompletion", context=step_ctx, attributes=attrs_b, start_time=min(t_a, t_b))
        span_a = ta.start_span("chat", context=trace.set_span_in_context(span_b), attributes=attrs_a,
                               start_time=max(t_a, t_b))
    else:
        span_a = ta.start_span("chat", context=step_ctx, attributes=attrs_a, start_time=t_a)
        # b_own_trace: an emitter that starts its span on another thread, outside the current context: a root
        b_ctx = step_ctx if relation == "siblings" else trace.set_span_in_context(trace.INVALID_SPAN)
        span_b = tb.start_span("ChatCompletion", context=b_ctx, attributes=attrs_b, start_time=t_b)
    first, second = (span_b, span_a) if b_first else (span_a, span_b)
    first.end(end_time=T0 + min(ends))
    second.end(end_time=T0 + max(ends) + 1)
    step.end(end_time=T0 + 1000)

    by_name = {s.name: s for s in exporter.get_finished_spans()}
    status = {k: by_name[n].attributes.get(A.COST_STATUS) for k, n in (("a", "chat"), ("b", "ChatCompletion"))}
    carried = [k for k in ("a", "b") if status[k] in CARRIES]
    costed = {k: d["usage"] or d["provided"] for k, d in (("a", a), ("b", b))}
    if any(costed.values()):
        # exactly one span carries the call, at the call's figure; it is one that has usage or an upstream cost
        assert len(carried) == 1, status
        (k,) = carried
        assert costed[k]
        total = by_name["chat" if k == "a" else "ChatCompletion"].attributes[A.COST_TOTAL]
        assert Decimal(repr(total)) == FIGURE
        other = "b" if k == "a" else "a"
        if relation != "b_own_trace" or costed[other]:
            # the other span is its duplicate, or (a span without usage that ended first) stays no_usage
            assert status[other] == "duplicate" or (status[other] == "no_usage" and not costed[other]), status
    else:
        assert not carried
        if relation != "b_own_trace":  # two failed-call spans of one call in one trace: one no_usage, one duplicate
            assert sorted(status.values()) == ["duplicate", "no_usage"], status
    assert "agent step" in by_name and A.COST_STATUS not in by_name["agent step"].attributes

    # The ledger counts the call once too, whether both spans are in one batch or in two segments (the rule
    # readers apply): a span without usage that ended first is superseded, not a "no usage" call of its own.
    rows = [record_to_row(SpanRecord.from_readable(by_name[n]), book=BOOK) for n in ("chat", "ChatCompletion")]
    table = _prepare(rows)[0]
    in_batch = [r for r, c in zip(rows, table.column("counted").to_pylist()) if c]
    named = {r[_NAMES.index("duplicate_of")] for r in rows if r[_COUNTED] and r[_NAMES.index("duplicate_of")]}
    apart = [r for r in rows if r[_COUNTED] and r[_NAMES.index("span_id")] not in named]
    if relation != "b_own_trace" or all(costed.values()):  # (across traces a span without usage is not tied)
        assert len(in_batch) == len(apart) == 1, [(r[_NAMES.index("cost_status")], r[_COUNTED]) for r in rows]
        assert in_batch[0] is apart[0]
        if any(costed.values()):
            assert Decimal(repr(in_batch[0][_NAMES.index("cost_total")])) == FIGURE


def test_a_span_with_usage_is_never_the_duplicate_of_one_without() -> None:
    """The openai-agents case: OpenInference's OpenAI span (no usage: a streamed Responses call with a pinned model)
    ends first, inside the agents bridge's span that has the usage; the bridge's span carries the call."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exporter), book=BOOK))
    bridge, inner = provider.get_tracer("openinference.instrumentation.openai_agents"), \
        provider.get_tracer("openinference.instrumentation.openai")
    outer = bridge.start_span("response", attributes=emitter_attrs("b", usage=True, rid=False, provided=False))
    child = inner.start_span("Response", context=trace.set_span_in_context(outer),
                             attributes=emitter_attrs("b", usage=False, rid=False, provided=False))
    child.end()
    outer.end()
    statuses = {s.name: s.attributes[A.COST_STATUS] for s in exporter.get_finished_spans()}
    assert statuses == {"Response": "no_usage", "response": "priced"}


def test_identical_parallel_calls_pair_off_one_to_one() -> None:
    """Two identical calls in parallel under one step, each traced by two instrumentations: four overlapping
    spans with equal usage. Pairing is one-to-one per instrumentation, so two are charged, not one or four."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exporter), book=BOOK))
    ta, tb = provider.get_tracer("emitter-a"), provider.get_tracer("emitter-b")
    with provider.get_tracer("app").start_as_current_span("step"):
        spans = [ta.start_span("chat", attributes=emitter_attrs("a", usage=True, rid=False, provided=False)),
                 ta.start_span("chat", attributes=emitter_attrs("a", usage=True, rid=False, provided=False)),
                 tb.start_span("ChatCompletion", attributes=emitter_attrs("b", usage=True, rid=False,
                                                                          provided=False)),
                 tb.start_span("ChatCompletion", attributes=emitter_attrs("b", usage=True, rid=False,
                                                                          provided=False))]
        for s in spans:
            s.end()
    statuses = sorted(s.attributes[A.COST_STATUS] for s in exporter.get_finished_spans() if s.name != "step")
    assert statuses == ["duplicate", "duplicate", "priced", "priced"]


def test_a_span_seen_again_is_remembered_once() -> None:
    """serve gets the same spans again when an exporter retries (and ingest when a file is loaded twice): each is
    remembered once, so a trace's list, which every later span of the trace scans, does not grow with copies;
    and the copy is not charged as a second call."""
    from otel_costattr._capture._enrich import Enricher

    enricher = Enricher(BOOK)
    attrs = {**GENAI, **USAGE["a"]}
    # another instrumentation was seen (in another trace): from then on spans are indexed (see _PairIndex.solo)
    enricher.compute_attributes({**GENAI, "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 1},
                                span_id="9" * 16, start_ns=T0, end_ns=T0 + 10, trace_id="b" * 32, scope="emitter-z")
    statuses = []
    for _ in range(3):
        for sid in ("1" * 16, "2" * 16):
            statuses.append(enricher.compute_attributes(
                attrs, span_id=sid, start_ns=T0, end_ns=T0 + 10, trace_id="a" * 32, parent_span_id=sid[:15] + "f",
                scope="emitter-a")[1])
    assert len(enricher.pairs) == 1 + 2
    assert statuses == ["priced"] * 6  # two calls (one scope: never merged), each copy priced as its span



_ONE_SCOPE_SPAN = st.fixed_dictionaries({
    "trace": st.integers(0, 5), "sid": st.integers(0, 40), "parent": st.one_of(st.none(), st.integers(0, 40)),
    "usage": st.sampled_from(["a", "none"]), "start": st.integers(0, 50), "end": st.integers(60, 100)})


def _compute(enricher: Any, scope: str, s: dict) -> Any:
    attrs = {**GENAI, **(USAGE["a"] if s["usage"] == "a" else {})}
    return enricher.compute_attributes(
        attrs, span_id=f"{s['sid'] + 1:016x}", start_ns=T0 + s["start"], end_ns=T0 + s["end"],
        trace_id=f"{s['trace'] + 1:032x}", parent_span_id=None if s["parent"] is None else f"{s['parent'] + 1:016x}",
        scope=scope)[:2]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(_ONE_SCOPE_SPAN, min_size=1, max_size=40), later=st.lists(
    st.tuples(st.sampled_from(["emitter-a", "emitter-b"]), _ONE_SCOPE_SPAN), max_size=12))
def test_spans_of_one_scope_are_indexed_as_if_every_span_had_been(first: list[dict],
                                                                  later: list[tuple[str, dict]]) -> None:
    """Proves: while every span came from one instrumentation scope the pair index only keeps them in order (no
    twin can exist), and the first span of a second scope finds the same twins, and leaves the same indexes, as
    when every span was indexed as it came: the same attributes for every span, the same spans by trace and by
    usage, the same pairs. Spans seen again (an exporter's retry to serve) are among the draws."""
    from otel_costattr._capture._enrich import Enricher

    lazy, eager = Enricher(BOOK, dedup_size=64), Enricher(BOOK, dedup_size=64)  # room for every draw
    eager.pairs._replay()  # indexes every span from the first
    for s in first:
        assert _compute(lazy, "emitter-a", s) == _compute(eager, "emitter-a", s)
    assert lazy.pairs._by_trace == {} and len(lazy.pairs) == len(first)
    for scope, s in later:
        assert _compute(lazy, scope, s) == _compute(eager, scope, s)
    if any(scope == "emitter-b" for scope, _ in later):
        assert not lazy.pairs._pending and len(lazy.pairs) == len(eager.pairs)
        assert lazy.pairs._by_trace == eager.pairs._by_trace
        assert lazy.pairs._by_usage == eager.pairs._by_usage
        assert lazy.pairs._paired == eager.pairs._paired
        assert lazy.pairs.evicted == eager.pairs.evicted


@pytest.mark.parametrize("usage_first", [True, False])
def test_a_second_instrumentation_pairs_with_a_recent_span_after_many_of_one_scope(usage_first: bool) -> None:
    """Proves: after far more spans of one scope than the index holds (the oldest dropped and counted), the first
    span of a second instrumentation still pairs with its recent twin: charged once (a duplicate, or the twin
    without usage superseded)."""
    from otel_costattr._capture._enrich import Enricher

    enricher = Enricher(BOOK, dedup_size=16)
    for i in range(100):
        _compute(enricher, "emitter-a", {"trace": i, "sid": 0, "parent": None, "usage": "none", "start": 0,
                                         "end": 60})
    assert enricher.pairs.evicted == 100 - 16 and len(enricher.pairs) == 16
    twin = {"trace": 98, "sid": 1, "parent": 0, "usage": "a", "start": 10, "end": 50}
    extra, status = _compute(enricher, "emitter-b", twin)
    assert status == "priced" and extra[A.COST_SUPERSEDES] == f"{1:016x}"  # the span of trace 98 without usage
    assert not enricher.pairs._pending and len(enricher.pairs) == 16  # still bounded
    if usage_first:
        again = {"trace": 98, "sid": 2, "parent": 0, "usage": "a", "start": 10, "end": 50}
        assert _compute(enricher, "emitter-c", again)[1] == "duplicate"
