"""Cost metrics stay exact under head sampling with CostAwareSampler (DESIGN D13)."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import otel_costattr as oc
from tests.conftest import DATA

BOOK = oc.PriceBook.load([DATA / "rules.toml"], builtin=False, imported=False, env=False)
N = 400


def run(sampler):
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    exp = InMemorySpanExporter()
    proc = oc.CostSpanProcessor(BatchSpanProcessor(exp), book=BOOK, meter_provider=mp,
                                metric_keys=("workload_type",))
    tp = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tp.add_span_processor(proc)
    tracer = tp.get_tracer("agent")
    for i in range(N):
        with tracer.start_as_current_span("agent step", attributes={"workload_type": "support"}):
            with tracer.start_as_current_span("chat tiered", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "rulesco",
                    "gen_ai.request.model": "tiered", "workload_type": "support"}) as s:
                s.set_attributes({"gen_ai.usage.input_tokens": 1000 + i, "gen_ai.usage.output_tokens": 10 + i % 7,
                                  "gen_ai.response.id": f"r{i}"})
    tp.force_flush()
    data = reader.get_metrics_data()
    sums: dict[str, float] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for dp in m.data.data_points:
                    key = m.name + ("" if m.name != "otel_costattr.spans" else ":" + dp.attributes["gen_ai.cost.status"])
                    sums[key] = sums.get(key, 0) + dp.value
    return sums, exp.get_finished_spans()


def test_metric_totals_equal_unsampled_totals_while_only_sampled_spans_export() -> None:
    full, full_spans = run(None)
    sampled, sampled_spans = run(oc.CostAwareSampler(ParentBased(TraceIdRatioBased(0.1))))
    assert len(full_spans) == 2 * N
    assert 0 < len(sampled_spans) < 0.3 * 2 * N  # roughly 10% of traces exported
    assert full["otel_costattr.spans:priced"] == sampled["otel_costattr.spans:priced"] == N
    # exact figure: sum over i of (1000+i) x $3/M + (10 + i % 7) x $15/M
    expected = sum((1000 + i) * 3 + (10 + i % 7) * 15 for i in range(N)) / 1e6
    assert abs(full["gen_ai.client.cost"] - expected) < 1e-9
    assert abs(sampled["gen_ai.client.cost"] - expected) < 1e-9


def test_sampler_leaves_other_decisions_alone() -> None:
    inner = TraceIdRatioBased(0.0)
    s = oc.CostAwareSampler(inner)
    assert s.should_sample(None, 1, "db query", attributes={"db.system": "pg"}).decision.name == "DROP"
    assert s.should_sample(None, 1, "chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}).decision.name \
        == "RECORD_ONLY"
    assert s.should_sample(None, 1, "invoke_agent x", attributes={"gen_ai.operation.name": "invoke_agent"}) \
        .decision.name == "DROP"
    assert "CostAwareSampler" in s.get_description()


def test_unpriced_and_failures_are_counted_as_metrics() -> None:
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    proc = oc.CostSpanProcessor(book=BOOK, meter_provider=mp)
    tp = TracerProvider()
    tp.add_span_processor(proc)
    tracer = tp.get_tracer("t")
    for model in ("nope-1", "nope-2"):
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat",
                                                              "gen_ai.request.model": model}) as s:
            s.set_attributes({"gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 5})
    with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat",
                                                          "gen_ai.request.model": "tiered"}):
        pass
    names = {m.name: sum(dp.value for dp in m.data.data_points)
             for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert names["otel_costattr.spans.unpriced"] == 2 and names["otel_costattr.spans.no_usage"] == 1
    assert "gen_ai.client.cost" not in names  # nothing priced, nothing counted as $0
