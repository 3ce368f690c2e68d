"""Cost attributes survive a round trip through a real Arize Phoenix server.

Spans go out through the real OTLP/HTTP exporter to Phoenix running on
loopback (see ``phoenix_support``) and are read back through Phoenix's REST
API.  The module is skipped when ``arize-phoenix`` is not installed; it costs
about 15 s, mostly Phoenix's start-up.

Marker: ``phoenix_server``, not ``phoenix``.  ``arize-phoenix-client`` (a
dependency of ``arize-phoenix``) auto-loads a pytest plugin that owns
``@pytest.mark.phoenix`` and records every test carrying it as a Phoenix
experiment run, talking to whatever Phoenix ``PHOENIX_COLLECTOR_ENDPOINT``
points at (localhost:6006 by default).
"""

from __future__ import annotations

import http.client
import json
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from phoenix_support import PhoenixServer, phoenix_version, start_phoenix

if phoenix_version() is None:
    # Checked through package metadata rather than importorskip("phoenix"):
    # importing Phoenix takes ~10 s, and "phoenix" also imports when only the
    # client (no server) is installed.
    pytest.skip("arize-phoenix is not installed", allow_module_level=True)

with warnings.catch_warnings():
    # The suite turns warnings into errors, and an unregistered marker warns.
    # Registering ``phoenix_server`` in the pytest config makes this a no-op.
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.phoenix_server]

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}

# gpt-4o-mini, 1000 input tokens of which 200 cache reads, 500 output tokens:
# 800 x 1.5e-7 + 200 x 7.5e-8 + 500 x 6e-7.  Tiny doubles on purpose: they are
# where a backend that narrows or reformats numbers would show it.
CHAT_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
    "gen_ai.usage.cache_read.input_tokens": 200,
    "gen_ai.cost.total_cost": 0.000435,
    "gen_ai.cost.input_cost": 0.000135,
    "gen_ai.cost.output_cost": 0.0003,
    "gen_ai.cost.input_price_per_token": 1.5e-7,
    "gen_ai.cost.status": "priced",
    "gen_ai.cost.currency": "USD",
    "gen_ai.cost.estimated": False,
    "langfuse.observation.cost_details": json.dumps({"input": 0.000135, "output": 0.0003, "total": 0.000435}),
    # A double with an integral value must not come back as an int.
    "test.whole_double": 2.0,
}

# OTLP AnyValue field that must hold each Python type on Phoenix's side.
_OTLP_FIELD = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value", list: "array_value"}


@pytest.fixture(scope="module")
def phoenix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    server = start_phoenix(tmp_path_factory.mktemp("phoenix"))
    # Registered before anything else can fail, so the server is always stopped.
    request.addfinalizer(server.stop)
    yield server


def _otlp_value(any_value: dict[str, Any]) -> tuple[str, Any]:
    """(field, plain value) of one AnyValue from Phoenix's otlpv1 JSON."""
    [(field, value)] = [(k, v) for k, v in any_value.items() if v is not None]
    if field == "array_value":
        return field, [_otlp_value(v) for v in value["values"]]
    return field, value


def _export(server: PhoenixServer, project: str, **exporter_kwargs: Any) -> tuple[Any, Any]:
    """Export an agent span with a chat child; return both spans' contexts."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "otel-costattr-it", "openinference.project.name": project})
    )
    exporter = OTLPSpanExporter(endpoint=server.otlp_traces_url, timeout=10, **exporter_kwargs)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    tracer = provider.get_tracer("otel-costattr.tests")
    try:
        with tracer.start_as_current_span(
            "invoke_agent planner", attributes={"gen_ai.operation.name": "invoke_agent"}
        ) as agent:
            with tracer.start_as_current_span(
                "chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=CHAT_ATTRIBUTES
            ) as chat:
                pass
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    return agent.get_span_context(), chat.get_span_context()


def test_phoenix_listens_on_loopback_only(phoenix: PhoenixServer) -> None:
    listening = phoenix.listening_addresses()
    assert {port for _, port in listening} == {phoenix.http_port, phoenix.grpc_port}, listening
    assert {address for address, _ in listening} <= LOOPBACK, listening


def test_cost_attributes_survive_phoenix(phoenix: PhoenixServer) -> None:
    project = f"otel-costattr-{uuid.uuid4().hex[:8]}"
    agent_ctx, chat_ctx = _export(phoenix, project)

    spans = {s["name"]: s for s in phoenix.wait_for_spans(project, 2)}
    chat = spans["chat gpt-4o-mini"]
    assert chat["context"] == {
        "trace_id": format(chat_ctx.trace_id, "032x"),
        "span_id": format(chat_ctx.span_id, "016x"),
    }
    assert chat["parent_id"] == format(agent_ctx.span_id, "016x")
    assert spans["invoke_agent planner"]["parent_id"] is None

    # Phoenix adds keys of its own (llm.model_name, llm.token_count.*, ...);
    # ours must all be there unchanged in value and JSON type.
    got = chat["attributes"]
    for key, expected in CHAT_ATTRIBUTES.items():
        assert key in got, f"{key} lost; Phoenix kept {sorted(got)}"
        assert got[key] == expected, key
        assert type(got[key]) is type(expected), f"{key}: {type(got[key]).__name__}"
    assert json.loads(got["langfuse.observation.cost_details"])["total"] == 0.000435

    # The same span in OTLP form: the stored value types, as Phoenix reports them.
    [otlp_chat] = [s for s in phoenix.get_spans_otlp(project) if s["name"] == "chat gpt-4o-mini"]
    otlp_attrs = {kv["key"]: _otlp_value(kv["value"]) for kv in otlp_chat["attributes"]}
    for key, expected in CHAT_ATTRIBUTES.items():
        field, value = otlp_attrs[key]
        assert field == _OTLP_FIELD[type(expected)], (key, field)
        if isinstance(expected, list):
            assert value == [(_OTLP_FIELD[type(v)], v) for v in expected], key
        else:
            assert value == expected, key


def test_phoenix_takes_gzip_protobuf_but_not_json(phoenix: PhoenixServer) -> None:
    project = f"otel-costattr-gz-{uuid.uuid4().hex[:8]}"
    _export(phoenix, project, compression=Compression.Gzip)
    spans = {s["name"]: s for s in phoenix.wait_for_spans(project, 2)}
    assert spans["chat gpt-4o-mini"]["attributes"]["gen_ai.cost.total_cost"] == 0.000435

    # Phoenix's OTLP/HTTP endpoint is protobuf-only: an exporter pointed at it
    # must not be configured for OTLP/JSON.
    conn = http.client.HTTPConnection("127.0.0.1", phoenix.http_port, timeout=10)
    try:
        conn.request("POST", "/v1/traces", body=b"{}", headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 415
