"""CostSpanExporter (entry point) and configure(): wiring and fail-fast configuration."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from tests.conftest import DATA

BOOK = oc.PriceBook.load([DATA / "rules.toml"], builtin=False, imported=False, env=False)


def test_exporter_wrapper_enriches() -> None:
    inner = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(oc.CostSpanExporter(inner, book=BOOK)))
    with tp.get_tracer("t").start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "tiered",
            "gen_ai.usage.input_tokens": 100_000, "gen_ai.usage.output_tokens": 0}):
        pass
    assert inner.get_finished_spans()[0].attributes["gen_ai.cost.total_cost"] == 0.3


def test_entry_point_builds_with_no_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    (ep,) = [e for e in entry_points(group="opentelemetry_traces_exporter") if e.name == "otel_costattr"]
    exporter = ep.load()()
    assert isinstance(exporter, oc.CostSpanExporter)
    assert type(exporter.inner).__name__ == "OTLPSpanExporter"
    exporter.shutdown()


def test_sdk_environment_configuration_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk._configuration import _import_exporters
    trace_exporters, _, _ = _import_exporters(["otel_costattr"], [], [])
    assert trace_exporters["otel_costattr"] is oc.CostSpanExporter


@pytest.mark.parametrize("env,match", [
    ({"LANGFUSE_PUBLIC_KEY": "pk-lf-123"}, "LANGFUSE_SECRET_KEY is not set"),
    ({"LANGFUSE_SECRET_KEY": "sk-lf-SECRETVALUE"}, "LANGFUSE_PUBLIC_KEY is not set"),
    ({"LANGFUSE_PUBLIC_KEY": "sk-lf-SECRETVALUE", "LANGFUSE_SECRET_KEY": "pk-lf-1"}, "swapped"),
    ({"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-SECRETVALUE",
      "LANGFUSE_HOST": "localhost:3000"}, "LANGFUSE_HOST must be an http"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTLP endpoint"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "nonsense"}, "key=value"),
])
def test_bad_configuration_fails_fast_without_leaking_secrets(env: dict, match: str) -> None:
    with pytest.raises(oc.ConfigurationError, match=match) as info:
        oc.configure(env=env, tracer_provider=TracerProvider(), book=BOOK, set_global=False,
                     instrument_threading=False)
    assert "SECRETVALUE" not in str(info.value)


def test_langfuse_required_but_missing() -> None:
    with pytest.raises(oc.ConfigurationError, match="API keys"):
        oc.configure(env={}, langfuse=True, tracer_provider=TracerProvider(), book=BOOK, set_global=False)


def test_broken_pricing_overlay_fails_at_start(tmp_path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text((DATA / "mini.toml").read_text().replace('"2"', '"-2"'))
    with pytest.raises(oc.ConfigurationError, match="p.toml"):
        oc.configure(env={}, pricing=[str(bad)], tracer_provider=TracerProvider(), set_global=False)


def test_configure_wires_destinations() -> None:
    tp = TracerProvider()
    env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-2", "LANGFUSE_HOST": "http://127.0.0.1:3000",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    p = oc.configure(env=env, jaeger="http://127.0.0.1:14318", tracer_provider=tp, book=BOOK, set_global=False,
                     instrument_threading=False)
    assert p.destinations == ["otlp", "langfuse", "jaeger"]
    # what actually goes over the wire (URL, Basic auth) is asserted against a real receiver in
    # tests/integration/test_export_wire.py
    for e in p.exporters.values():
        e.shutdown()
