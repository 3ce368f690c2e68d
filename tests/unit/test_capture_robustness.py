"""The processor never raises into the app, whatever the spans say (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from otel_costattr.attributes import READ
from tests.conftest import DATA

BOOK = oc.PriceBook.load([DATA / "rules.toml"], builtin=False, imported=False, env=False)
KEYS = sorted({n for names in READ.values() for n in names} | {"gen_ai.cost.total_cost", "llm.cost.total"})
scalar = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.booleans(), st.sampled_from(["tiered", "rulesco", "chat", "batch", "1e9", "-5", ""]))
value = st.one_of(scalar, st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=4))
attrs = st.dictionaries(st.sampled_from(KEYS), value, max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=attrs, end=attrs)
def test_arbitrary_attribute_values_never_raise(start: dict, end: dict) -> None:
    exp = InMemorySpanExporter()
    proc = oc.CostSpanProcessor(SimpleSpanProcessor(exp), book=BOOK)
    tp = TracerProvider()
    tp.add_span_processor(proc)
    tracer = tp.get_tracer("fuzz")
    start = {"gen_ai.operation.name": "chat", **{k: v for k, v in start.items() if not isinstance(v, list)}}
    with tracer.start_as_current_span("chat", attributes=start) as span:
        try:
            span.set_attributes(end)
        except Exception:  # the SDK itself may reject a value; that is not ours to test
            pass
    (out,) = exp.get_finished_spans()
    st_ = out.attributes.get("gen_ai.cost.status")
    assert st_ in (None, "priced", "partial", "unpriced", "no_usage", "duplicate", "provided")
    total = out.attributes.get("gen_ai.cost.total_cost")
    if st_ in ("priced", "partial"):
        assert isinstance(total, float) and math.isfinite(total) and total >= 0
    if st_ in ("unpriced", "no_usage"):
        # we never write a total for them; only an attribute the app set itself can be there
        assert "gen_ai.cost.total_cost" not in out.attributes or "gen_ai.cost.total_cost" in {**start, **end}
    assert proc.stats.snapshot().get("enrichment_failed", 0) == 0
