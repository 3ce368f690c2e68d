"""Cost metrics keep their label sets bounded: model and provider labels come from the pricing entry (or are
``unknown``), attribution values past the per-instrument limit are recorded as ``other``, and that overflow is
counted. Real MeterProvider and InMemoryMetricReader."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_costattr as oc
from otel_costattr._capture._metrics import OTHER, UNKNOWN, CostMetrics


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    out: dict[str, list[tuple[dict[str, Any], float]]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = [(dict(p.attributes), p.value) for p in m.data.data_points]
    return out


@pytest.fixture(scope="module")
def book() -> Any:
    return oc.PriceBook.load(env=False)


def _metrics(book: Any = None, **kw: Any) -> tuple[CostMetrics, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return CostMetrics(MeterProvider(metric_readers=[reader]), ("feature",), book=book, **kw), reader


def test_attribution_values_past_the_limit_go_to_other_and_are_counted(book: Any) -> None:
    m, reader = _metrics(book, label_limit=3)
    for i in range(10):
        m.record("priced", "openai", "gpt-4o-mini", 0.5, {"feature": f"f{i}"})
    m.record("priced", "openai", "gpt-4o-mini", 0.5, {"feature": "f0"})  # admitted earlier: keeps its label
    m.record("priced", "openai", "gpt-4o-mini", 0.5, {})  # no feature: a new set, past the limit, no `other`
    pts = _points(reader)
    cost = {a.get("feature"): v for a, v in pts["gen_ai.client.cost"]}
    assert cost == {"f0": 1.0, "f1": 0.5, "f2": 0.5, OTHER: 3.5, None: 0.5}
    assert sum(v for _, v in pts["gen_ai.client.cost"]) == 6.0  # nothing lost, only relabelled
    assert m.overflow == {"gen_ai.client.cost": 7}  # f3..f9; the set without a feature had nothing to relabel
    assert pts["otel_costattr.metrics.overflow"] == [({"instrument": "gen_ai.client.cost"}, 7)]


def test_unpriced_models_are_labelled_unknown_and_logged_boundedly(book: Any, caplog: Any) -> None:
    m, reader = _metrics(book)
    with caplog.at_level(logging.WARNING, logger="otel_costattr._capture._metrics"):
        for i in range(500):
            m.record("unpriced", "openai" if i % 2 else "my-gateway", f"no-such-model-{i}", None, {})
    pts = _points(reader)
    labels = sorted((a["gen_ai.provider.name"], a["gen_ai.request.model"], v) for a, v in
                    pts["otel_costattr.spans.unpriced"])
    assert labels == [("openai", UNKNOWN, 250), (UNKNOWN, UNKNOWN, 250)]
    named = [r for r in caplog.records if "is not in the pricing tables" in r.getMessage()]
    assert 0 < len(named) <= 20 and "no-such-model-0" in named[0].getMessage()
    assert len(caplog.records) <= 21


def test_provided_costs_are_labelled_by_the_resolved_entry_or_unknown(book: Any) -> None:
    m, reader = _metrics(book)
    m.record("provided", "openai", "gpt-4o-mini-2024-07-18", 0.25, {})  # a dated alias: the entry's id
    m.record("provided", "openai", "my-finetune-123", 0.25, {})
    m.record("provided", "anything", None, 0.25, {})
    models = sorted((a["gen_ai.provider.name"], a["gen_ai.request.model"]) for a, _ in
                    _points(reader)["gen_ai.client.cost"])
    assert models == [("openai", "gpt-4o-mini"), (UNKNOWN, UNKNOWN)]


def test_without_a_book_only_entry_statuses_keep_their_model() -> None:
    m, reader = _metrics(None)
    m.record("priced", "openai", "gpt-4o-mini", 0.1, {})
    m.record("provided", "openai", "raw-name-from-a-span", 0.1, {})
    models = sorted(a["gen_ai.request.model"] for a, _ in _points(reader)["gen_ai.client.cost"])
    assert models == ["gpt-4o-mini", UNKNOWN]


def test_label_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="label_limit"):
        CostMetrics(MeterProvider(), (), label_limit=0)


def test_processor_uses_entry_labels_end_to_end() -> None:
    """Through CostSpanProcessor: the cost metric carries the entry id, not the dated name the span sent."""
    from opentelemetry.sdk.trace import TracerProvider

    reader = InMemoryMetricReader()
    proc = oc.CostSpanProcessor(meter_provider=MeterProvider(metric_readers=[reader]), required_keys=())
    tp = TracerProvider()
    tp.add_span_processor(proc)
    with tp.get_tracer("t").start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 1, "feature": "search"}):
        pass
    (attrs, _), = _points(reader)["gen_ai.client.cost"]
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini" and attrs["feature"] == "search"
    tp.shutdown()
