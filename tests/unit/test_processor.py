"""CostSpanProcessor contract: statuses, de-duplication, failure isolation, attribute copies."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from otel_costattr import attributes as A
from tests.conftest import DATA

BOOK = oc.PriceBook.load([DATA / "rules.toml"], builtin=False, imported=False, env=False)
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "rulesco", "gen_ai.request.model": "tiered"}


def pipeline(**kw):
    exp = InMemorySpanExporter()
    proc = oc.CostSpanProcessor(SimpleSpanProcessor(exp), book=kw.pop("book", BOOK), **kw)
    tp = TracerProvider(span_limits=kw.pop("limits", None))
    tp.add_span_processor(proc)
    return tp.get_tracer("test"), exp, proc


def emit(tracer, name="chat tiered", start=CHAT, end=None, **kw):
    with tracer.start_as_current_span(name, attributes=dict(start), start_time=kw.get("start_time")) as s:
        if end:
            s.set_attributes(end)
    return s


def test_priced_span_carries_exact_cost_and_langfuse_details() -> None:
    tracer, exp, proc = pipeline()
    emit(tracer, end={"gen_ai.usage.input_tokens": 10_000, "gen_ai.usage.cache_read.input_tokens": 2_000,
                      "gen_ai.usage.output_tokens": 2_000, "gen_ai.response.id": "r1"})
    (span,) = exp.get_finished_spans()
    a = span.attributes
    assert a[A.COST_STATUS] == "priced" and a[A.COST_CURRENCY] == "USD"
    # 8,000 x $3/M + 2,000 x $0.30/M + 2,000 x $15/M
    assert Decimal(repr(a[A.COST_TOTAL])) == Decimal("0.0546")
    assert a[A.COST_INPUT] == 0.0246 and a[A.COST_OUTPUT] == 0.03 and a[A.COST_CACHE_READ] == 0.0006
    assert a[A.COST_MODEL] == "tiered" and a[A.COST_PRICING_VERSION] == "rules-1"
    details = json.loads(a[A.LANGFUSE_COST_DETAILS])
    assert details["total"] == 0.0546 and details["input"] == 0.024
    assert not any(k.startswith("gen_ai.usage.") and "cost" in k for k in a)
    assert proc.stats.snapshot() == {"priced": 1}


@pytest.mark.parametrize("mask", range(32))
def test_langfuse_details_list_exactly_the_non_zero_components_in_order(mask: int) -> None:
    """Every combination of the five components: keys in component order then total, each the span's float."""
    from otel_costattr._capture._enrich import Enricher

    book = oc.PriceBook.load(imported=False, env=False)
    on = [bool(mask >> i & 1) for i in range(5)]  # input, cache_read, cache_write, output, reasoning
    cache_read, cache_write = 2_000 * on[1], 700 * on[2]
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
             "gen_ai.request.model": "claude-sonnet-4-5",
             "gen_ai.usage.input_tokens": 3_000 * on[0] + cache_read + cache_write,
             "gen_ai.usage.cache_read_input_tokens": cache_read, "gen_ai.usage.cache_creation_input_tokens": cache_write,
             "gen_ai.usage.output_tokens": 500 * on[3] + 90 * on[4], "gen_ai.usage.reasoning_tokens": 90 * on[4]}
    out, status, _, _ = Enricher(book).compute_attributes(attrs, span_id=None, start_ns=1_760_000_000_000_000_000,
                                                          end_ns=None)
    assert status == "priced", out
    text = out[A.LANGFUSE_COST_DETAILS]
    details = json.loads(text)
    names = ["input", "cache_read", "cache_write", "output", "reasoning"]
    floats = [out[A.COST_UNCACHED_INPUT], out[A.COST_CACHE_READ], out[A.COST_CACHE_WRITE], out[A.COST_TEXT_OUTPUT],
              out[A.COST_REASONING]]
    want = {n: f for n, f, o in zip(names, floats, on) if o} | {"total": out[A.COST_TOTAL]}
    assert list(details.items()) == list(want.items())
    assert text == "{" + ", ".join(f'"{k}": {v!r}' for k, v in want.items()) + "}"  # shortest repr, no drift


def test_non_llm_spans_pass_through_untouched() -> None:
    tracer, exp, proc = pipeline()
    emit(tracer, "db query", start={"db.system": "postgresql"})
    emit(tracer, "invoke_agent triage", start={"gen_ai.operation.name": "invoke_agent",
                                               "gen_ai.request.model": "tiered"},
         end={"gen_ai.usage.input_tokens": 999})  # an agent roll-up is never priced again
    assert all(not any(k.startswith("gen_ai.cost") for k in s.attributes) for s in exp.get_finished_spans())
    assert proc.stats.snapshot() == {}


@pytest.mark.parametrize("end,status", [
    ({}, "no_usage"),
    ({"gen_ai.usage.input_tokens": 100}, "partial"),
    ({"gen_ai.usage.output_tokens": 100}, "partial"),
    ({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 5, "gen_ai.response.model": "new-model-x"},
     "unpriced"),
    ({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 5, "gen_ai.cost.total_cost": 0.25},
     "provided"),
    ({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 5, "llm.cost.total": 0.5}, "provided"),
])
def test_statuses(end: dict, status: str) -> None:
    tracer, exp, proc = pipeline()
    emit(tracer, end=end)
    a = exp.get_finished_spans()[0].attributes
    assert a[A.COST_STATUS] == status
    if status in ("no_usage", "unpriced"):
        assert A.COST_TOTAL not in a  # unknown is never written as zero
        assert A.LANGFUSE_COST_DETAILS not in a
    if status == "unpriced":
        assert "new-model-x" in a[A.COST_REASON]
    if status == "provided":
        assert a[A.COST_TOTAL] == end.get("gen_ai.cost.total_cost", end.get("llm.cost.total"))
    if status == "partial":
        assert a[A.COST_TOTAL] > 0
    assert proc.stats.snapshot()[status] == 1


def test_duplicates_parent_child_and_siblings_are_priced_once() -> None:
    tracer, exp, proc = pipeline()
    usage = {"gen_ai.usage.input_tokens": 3050, "gen_ai.usage.cache_read.input_tokens": 1000,
             "gen_ai.usage.cache_write.input_tokens": 2000, "gen_ai.usage.output_tokens": 300}
    detailed = {**usage, "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 1500,
                "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 500}
    # parent/child (genai-anthropic + SDK): the child ends first
    with tracer.start_as_current_span("chat tiered", attributes=CHAT) as parent:
        emit(tracer, "anthropic.messages.create", end={**detailed, "gen_ai.response.id": "msg_1"})
        parent.set_attributes({**usage, "gen_ai.response.id": "msg_1"})
    # siblings, less detailed first
    emit(tracer, "anthropic.chat", end={**usage, "gen_ai.response.id": "msg_2"})
    emit(tracer, "anthropic.messages.create", end={**detailed, "gen_ai.response.id": "msg_2"})
    spans = exp.get_finished_spans()
    st = [(s.name, s.attributes[A.COST_STATUS]) for s in spans]
    assert st == [("anthropic.messages.create", "priced"), ("chat tiered", "duplicate"),
                  ("anthropic.chat", "priced"), ("anthropic.messages.create", "duplicate")]
    child, par, first, second = spans
    assert par.attributes[A.COST_DUPLICATE_OF] == format(child.context.span_id, "016x")
    assert A.COST_TOTAL not in par.attributes
    assert json.loads(par.attributes[A.LANGFUSE_COST_DETAILS]) == {"total": 0}
    assert second.attributes[A.COST_FLAGS] == ("more_detailed",)
    # the detailed span used the 5m/1h split: 50 x $3 + 1,000 x $0.30 + 1,500 x $3.75 + 500 x $6 + 300 x $15
    assert Decimal(repr(child.attributes[A.COST_TOTAL])) == Decimal("0.013575")
    # the less detailed one priced every write as 5m: 50 x 3 + 1000 x 0.3 + 2000 x 3.75 + 300 x 15
    assert Decimal(repr(first.attributes[A.COST_TOTAL])) == Decimal("0.01245")
    assert proc.stats.snapshot() == {"priced": 2, "duplicate": 2}


def test_dedup_index_is_bounded_and_counts_evictions() -> None:
    tracer, exp, proc = pipeline(dedup_size=4)
    for i in range(10):
        emit(tracer, end={"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1,
                          "gen_ai.response.id": f"r{i}"})
    assert len(proc.enricher.dedup) == 4 and proc.enricher.dedup.evicted == 6


def test_usage_aliases_are_read() -> None:
    tracer, exp, _ = pipeline()
    emit(tracer, start={"gen_ai.system": "rules.co", "llm.model_name": "tiered"},
         end={"gen_ai.usage.prompt_tokens": 10_000, "gen_ai.usage.cache_creation.input_tokens": 1_000,
              "gen_ai.usage.completion_tokens": 2_000, "gen_ai.usage.reasoning_tokens": 500})
    emit(tracer, start={"gen_ai.operation.name": "chat", "llm.provider": "rulesco", "llm.model_name": "tiered"},
         end={"llm.token_count.prompt": 10_000, "llm.token_count.prompt_details.cache_write": 1_000,
              "llm.token_count.completion": 2_000, "llm.token_count.completion_details.reasoning": 500})
    for s in exp.get_finished_spans():
        # 9,000 x $3 + 1,000 x $3.75 + 1,500 x $15 + 500 x $15 (reasoning at output rate), per million
        assert Decimal(repr(s.attributes[A.COST_TOTAL])) == Decimal("0.06075"), dict(s.attributes)
        assert s.attributes[A.COST_CACHE_WRITE] == 0.00375


def test_span_start_time_selects_the_price_period() -> None:
    tracer, exp, _ = pipeline(book=oc.PriceBook.load([DATA / "mini.toml"], builtin=False, imported=False,
                                                      env=False))
    start = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "acme-large"}
    end = {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
    emit(tracer, start=start, end=end, start_time=1_749_000_000_000_000_000)  # 2025-06-04
    emit(tracer, start=start, end=end, start_time=1_750_000_000_000_000_000)  # 2025-06-15
    a, b = exp.get_finished_spans()
    assert a.attributes[A.COST_TOTAL] == 0.0028 and b.attributes[A.COST_TOTAL] == 0.0014


def test_clone_keeps_dropped_counts_events_links_and_existing_values() -> None:
    exp = InMemorySpanExporter()
    tp = TracerProvider(span_limits=SpanLimits(max_span_attributes=12, max_events=1))
    tp.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exp), book=BOOK))
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("chat") as s:
        s.set_attributes({f"x{i}": i for i in range(20)})  # the oldest are dropped (and counted) by the SDK
        s.set_attributes({**CHAT, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1,
                          "gen_ai.cost.currency": "EUR-from-app", "app.note": "mine"})
        s.add_event("e1")
        s.add_event("e2")
    (span,) = exp.get_finished_spans()
    assert span.dropped_attributes > 0 and span.dropped_events == 1
    assert span.attributes["app.note"] == "mine"
    # we priced the call, so our consistent gen_ai.cost.* set replaces the unusable upstream one, and says so
    assert span.attributes[A.COST_CURRENCY] == "USD"
    assert "replaced_upstream_cost" in span.attributes[A.COST_FLAGS]
    assert [e.name for e in span.events] == ["e2"]
    assert isinstance(span, ReadableSpan) and span.attributes[A.COST_STATUS] == "priced"


class Boom(SimpleSpanProcessor):
    def on_end(self, span):  # noqa: ANN001
        raise RuntimeError("downstream broke")


def test_downstream_failure_is_isolated_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    good = InMemorySpanExporter()
    proc = oc.CostSpanProcessor(Boom(InMemorySpanExporter()), SimpleSpanProcessor(good), book=BOOK)
    tp = TracerProvider()
    tp.add_span_processor(proc)
    tracer = tp.get_tracer("t")
    for _ in range(3):
        emit(tracer, end={"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1})
    assert len(good.get_finished_spans()) == 3
    assert proc.stats.snapshot()["downstream_failed"] == 3
    assert sum("downstream broke" in r.getMessage() for r in caplog.records) == 1  # logged once


class FlakyBook:
    """A pricing table that breaks after a few calls (a hot reload gone wrong, a bug)."""

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.real = BOOK

    def canonical_provider(self, name):  # noqa: ANN001
        return self.real.canonical_provider(name)

    def price(self, *a, **kw):  # noqa: ANN002, ANN003
        self.ok -= 1
        if self.ok < 0:
            raise MemoryError("pricing table exploded")
        return self.real.price(*a, **kw)


def test_pricing_table_failing_mid_run_never_reaches_the_app() -> None:
    tracer, exp, proc = pipeline(book=FlakyBook(2))
    for _ in range(5):
        emit(tracer, end={"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1})
    spans = exp.get_finished_spans()
    assert len(spans) == 5
    assert [s.attributes.get(A.COST_STATUS) for s in spans] == ["priced", "priced", None, None, None]
    assert proc.stats.snapshot()["enrichment_failed"] == 3


def test_bad_construction_fails_fast() -> None:
    with pytest.raises(ValueError, match="BatchSpanProcessor"):
        oc.CostSpanProcessor(InMemorySpanExporter(), book=BOOK)
    with pytest.raises(oc.PricingError):
        oc.CostSpanProcessor(pricing=[str(DATA / "missing.toml")])


def test_unpaired_index_bounds_the_spans_kept_under_one_parent() -> None:
    """A parent with thousands of LLM children and no response ids must not grow one list without bound (nor make
    every match scan it): the oldest siblings go, counted, and pairing of recent siblings still works."""
    from otel_costattr._capture._enrich import _UNPAIRED_PER_PARENT, _UnpairedIndex

    index = _UnpairedIndex(capacity=8)
    n = 5 * _UNPAIRED_PER_PARENT
    for i in range(n):  # one instrumentation, sequential calls under one parent: none pairs with another
        assert index.match("t" * 32, f"{i:016x}", "p" * 16, "scope-a", "openai", "gpt-4o", i * 10, i * 10 + 5) is None
    assert [len(v) for v in index._by_parent.values()] == [_UNPAIRED_PER_PARENT]
    assert index.evicted == n - _UNPAIRED_PER_PARENT
    # a second instrumentation's span of the latest call still finds its twin
    last = n - 1
    assert index.match("t" * 32, "f" * 16, "p" * 16, "scope-b", "openai", "gpt-4o", last * 10, last * 10 + 5) \
        == f"{last:016x}"
