"""OTLPReceiver against the real OTLP/HTTP span exporter, plus raw HTTP edge cases.

Every export here goes through ``opentelemetry-exporter-otlp-proto-http`` over
a real loopback socket; only the malformed-request tests speak raw HTTP,
because no conforming exporter would send those bodies.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_costattr.testing._otlp_receiver import (
    OTLPReceiver,
    decode_otlp_json,
    encode_otlp_json,
)

COST_DETAILS = json.dumps({"input": 0.00015, "output": 0.0003, "total": 0.00045})

# One attribute of every OTLP value type, with the doubles that cost code
# actually produces (tiny per-token prices are where float formatting breaks).
ALL_TYPES: dict[str, Any] = {
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
    "gen_ai.cost.total_cost": 0.00045,
    "gen_ai.cost.input_price_per_token": 1.5e-7,
    "gen_ai.cost.whole_double": 2.0,
    "gen_ai.cost.negative": -0.125,
    "gen_ai.cost.status": "priced",
    "gen_ai.cost.estimated": False,
    "big.int": 2**62 + 1,
    "negative.int": -(2**40),
    "empty.string": "",
    "unicode.string": "naïve – 価格 🚀",
    "numeric.string": "007",
    "langfuse.observation.cost_details": COST_DETAILS,
    "gen_ai.response.finish_reasons": ["stop", "length"],
    "bool.array": [True, False, True],
    "int.array": [1, -2, 3],
    "double.array": [0.1, 1.5e-7, 2.0],
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rcv:
        yield rcv


@contextlib.contextmanager
def tracing(
    exporter: OTLPSpanExporter, *, batch: bool = False, resource: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """A private TracerProvider wired to ``exporter``; flushed and shut down on exit."""
    provider = TracerProvider(resource=Resource.create(dict(resource or {"service.name": "receiver-test"})))
    if batch:
        processor: Any = BatchSpanProcessor(exporter, schedule_delay_millis=50)
    else:
        processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        yield provider.get_tracer("otel-costattr.tests", "0.0.1")
    finally:
        provider.force_flush()
        provider.shutdown()


def finished_spans(n: int = 1, attributes: Mapping[str, Any] | None = None) -> tuple[ReadableSpan, ...]:
    """Make ``n`` ended SDK spans, to hand straight to ``OTLPSpanExporter.export``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "receiver-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otel-costattr.tests")
    for i in range(n):
        with tracer.start_as_current_span(f"span-{i}", attributes=attributes):
            pass
    spans = memory.get_finished_spans()
    provider.shutdown()
    return spans


def exporter_for(rcv: OTLPReceiver, **kwargs: Any) -> OTLPSpanExporter:
    kwargs.setdefault("timeout", 5)
    return OTLPSpanExporter(endpoint=rcv.traces_url, **kwargs)


def post(
    rcv: OTLPReceiver, body: bytes, headers: Mapping[str, str], path: str = "/v1/traces", method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request on a fresh connection; returns status, lower-cased headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def as_request(spans: tuple[ReadableSpan, ...]) -> ExportTraceServiceRequest:
    return encode_spans(spans)


# --------------------------------------------------------------------------- decoding


def test_every_attribute_type_survives_the_real_exporter(receiver: OTLPReceiver) -> None:
    exporter = exporter_for(receiver)
    resource = {"service.name": "cost-svc", "openinference.project.name": "costs", "deployment.id": 7}
    with tracing(exporter, batch=True, resource=resource) as tracer:
        with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.INTERNAL) as parent:
            with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=ALL_TYPES) as child:
                child.set_status(Status(StatusCode.ERROR, "rate limited"))
    spans = {s.name: s for s in receiver.wait_for_spans(2)}

    chat = spans["chat gpt-4o-mini"]
    assert chat.attributes == ALL_TYPES
    for key, value in ALL_TYPES.items():
        # == would accept 2 for 2.0 and True for 1; the wire type must match too.
        assert type(chat.attributes[key]) is type(value), key
        if isinstance(value, list):
            assert [type(v) for v in chat.attributes[key]] == [type(v) for v in value], key
    assert json.loads(chat.attributes["langfuse.observation.cost_details"])["total"] == 0.00045

    ctx, parent_ctx = child.get_span_context(), parent.get_span_context()
    assert chat.trace_id == format(ctx.trace_id, "032x")
    assert chat.span_id == format(ctx.span_id, "016x")
    assert chat.parent_span_id == format(parent_ctx.span_id, "016x")
    assert spans["invoke_agent planner"].parent_span_id == ""
    assert (chat.kind_name, spans["invoke_agent planner"].kind_name) == ("SPAN_KIND_CLIENT", "SPAN_KIND_INTERNAL")
    assert (chat.status_name, chat.status_message) == ("STATUS_CODE_ERROR", "rate limited")
    assert 0 < chat.start_time_unix_nano <= chat.end_time_unix_nano
    assert chat.scope_name == "otel-costattr.tests" and chat.scope_version == "0.0.1"
    assert chat.resource_attributes["openinference.project.name"] == "costs"
    assert chat.resource_attributes["deployment.id"] == 7

    [request] = receiver.requests()
    assert request.content_type == "application/x-protobuf"
    assert request.content_encoding == ""
    assert receiver.attempts()[0].status == 200


_attr_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", min_size=1, max_size=12)
_utf8_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_doubles = st.floats(allow_nan=False)  # NaN never equals itself; inf is a valid double
_attr_values = st.one_of(
    _utf8_text,
    st.booleans(),
    _int64,
    _doubles,
    st.lists(_utf8_text, max_size=4),
    st.lists(_int64, max_size=4),
    st.lists(_doubles, max_size=4),
    st.lists(st.booleans(), max_size=4),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attrs=st.dictionaries(_attr_keys, _attr_values, max_size=6))
def test_attribute_roundtrip_property(attrs: dict[str, Any]) -> None:
    """Whatever the SDK accepts as attributes arrives with the same value and type."""
    with OTLPReceiver() as rcv:
        with tracing(exporter_for(rcv)) as tracer:
            with tracer.start_as_current_span("prop", attributes=attrs):
                pass
        [span] = rcv.wait_for_spans(1)
    assert span.attributes == attrs
    for key, value in attrs.items():
        got = span.attributes[key]
        assert type(got) is type(value)
        if isinstance(value, list):
            assert [type(v) for v in got] == [type(v) for v in value]


@settings(max_examples=40, deadline=None)
@given(attrs=st.dictionaries(_attr_keys, _attr_values, max_size=6))
def test_otlp_json_codec_roundtrip_property(attrs: dict[str, Any]) -> None:
    request = as_request(finished_spans(2, attrs))
    body = encode_otlp_json(request)
    doc = json.loads(body)
    span_doc = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span_doc["traceId"]) == 32 and len(span_doc["spanId"]) == 16
    int(span_doc["traceId"], 16)  # hex, not base64
    assert isinstance(span_doc["startTimeUnixNano"], str)  # int64 as a string
    assert isinstance(span_doc["kind"], int)  # enums as integers
    assert decode_otlp_json(body) == request


# --------------------------------------------------------------------------- headers, encodings


def test_custom_headers_are_seen(receiver: OTLPReceiver) -> None:
    token = base64.b64encode(b"pk-lf-123:sk-lf-456").decode()
    exporter = exporter_for(receiver, headers={"Authorization": f"Basic {token}", "X-Tenant": "acme"})
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    [headers] = receiver.headers()
    assert headers["authorization"] == f"Basic {token}"
    assert headers["x-tenant"] == "acme"
    assert headers["content-type"] == "application/x-protobuf"
    assert all(name == name.lower() for name in headers)


def test_require_header_gives_401_and_counts_the_attempt(receiver: OTLPReceiver) -> None:
    receiver.require_header("Authorization", "Basic right")
    wrong = exporter_for(receiver, headers={"Authorization": "Basic wrong"})
    assert wrong.export(finished_spans()) is SpanExportResult.FAILURE  # 401 is not retryable
    wrong.shutdown()
    right = exporter_for(receiver, headers={"authorization": "Basic right"})
    assert right.export(finished_spans()) is SpanExportResult.SUCCESS
    right.shutdown()

    assert [a.status for a in receiver.attempts()] == [401, 200]
    assert receiver.attempt_count == 2
    assert len(receiver.spans()) == 1
    status, headers, body = post(receiver, b"", {"Content-Type": "application/x-protobuf"})
    assert status == 401 and headers["www-authenticate"] == "Basic"
    assert status_pb2.Status.FromString(body).code == code_pb2.UNAUTHENTICATED


@pytest.mark.parametrize(("compression", "encoding"), [(Compression.Gzip, "gzip"), (Compression.Deflate, "deflate")])
def test_compressed_exports_decode(receiver: OTLPReceiver, compression: Compression, encoding: str) -> None:
    exporter = exporter_for(receiver, compression=compression)
    payload = "x" * 5000  # compressible, so a decoding slip would show
    assert exporter.export(finished_spans(3, {"payload": payload, "cost": 1.5e-7})) is SpanExportResult.SUCCESS
    exporter.shutdown()
    spans = receiver.wait_for_spans(3)
    assert {s.attributes["payload"] for s in spans} == {payload}
    assert {s.attributes["cost"] for s in spans} == {1.5e-7}
    [attempt] = receiver.attempts()
    assert attempt.content_encoding == encoding
    assert attempt.headers["content-encoding"] == encoding
    [request] = receiver.requests()
    assert request.body_size < 5000 < request.message.ByteSize()


def test_otlp_json_post(receiver: OTLPReceiver) -> None:
    request = as_request(finished_spans(2, ALL_TYPES))
    # MessageToJson is the generic proto3 mapping: lowerCamelCase names and
    # int64 as strings, as OTLP/JSON wants, but base64 ids, which OTLP/JSON
    # replaces with hex (and enum names, which OTLP/JSON replaces with
    # integers: use_integers_for_enums).  Convert the ids and nothing else.
    doc = json.loads(json_format.MessageToJson(request, use_integers_for_enums=True))
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64decode(span[key]).hex()
    assert isinstance(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"], str)
    body = json.dumps(doc).encode()
    assert json.loads(body) == json.loads(encode_otlp_json(request))

    status, headers, reply = post(receiver, body, {"Content-Type": "application/json"})
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json_format.Parse(reply, ExportTraceServiceResponse()) == ExportTraceServiceResponse()

    [received] = receiver.requests()
    assert received.message == request
    assert received.content_type == "application/json"
    spans = receiver.wait_for_spans(2)
    assert spans[0].attributes == ALL_TYPES
    assert spans[0].trace_id == request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()

    # gzip over JSON is legal too.
    status, _, _ = post(receiver, gzip.compress(body), {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 200
    assert len(receiver.wait_for_spans(4)) == 4


def test_otlp_json_with_base64_ids_is_rejected(receiver: OTLPReceiver) -> None:
    """The receiver is strict: an exporter that forgets the hex rule must fail a test."""
    body = json_format.MessageToJson(as_request(finished_spans())).encode()
    status, headers, reply = post(receiver, body, {"Content-Type": "application/json; charset=utf-8"})
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(reply)["code"] == code_pb2.INVALID_ARGUMENT
    assert "hex" in json.loads(reply)["message"]
    assert receiver.spans() == []


# --------------------------------------------------------------------------- faults and retries


def test_retry_after_503_then_success(receiver: OTLPReceiver) -> None:
    # The 1.45 exporter retries 429/502/503/504 and connection errors up to 6
    # times within `timeout`, sleeping 2**n s (±20 % jitter) or, when present,
    # the Retry-After value instead.  Two 503s with Retry-After: 1 therefore
    # cost two seconds, not 1 + 2.
    receiver.fail_next(2, status=503, retry_after=1)
    exporter = exporter_for(receiver, timeout=8)
    started = time.monotonic()
    assert exporter.export(finished_spans(1, {"cost": 0.00045})) is SpanExportResult.SUCCESS
    elapsed = time.monotonic() - started
    exporter.shutdown()

    attempts = receiver.attempts()
    assert [a.status for a in attempts] == [503, 503, 200]
    gaps = [b.monotonic_time - a.monotonic_time for a, b in zip(attempts, attempts[1:], strict=False)]
    assert all(0.9 <= gap < 1.5 for gap in gaps), gaps
    assert 1.9 <= elapsed < 4
    assert receiver.attempt_count == 3
    assert [s.attributes["cost"] for s in receiver.spans()] == [0.00045]  # stored once


def test_429_with_fractional_retry_after(receiver: OTLPReceiver) -> None:
    receiver.fail_next(3, status=429, retry_after=0.05)
    exporter = exporter_for(receiver)
    started = time.monotonic()
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    # Without Retry-After the exporter would sleep 1 s + 2 s + 4 s (each -20 % at best).
    assert time.monotonic() - started < 2
    exporter.shutdown()
    assert [a.status for a in receiver.attempts()] == [429, 429, 429, 200]
    status, headers, body = post(receiver, b"", {"Content-Type": "application/x-protobuf"})
    assert status == 200  # the faults are used up


def test_500_is_not_retried(receiver: OTLPReceiver) -> None:
    receiver.fail_next(1, status=500)
    exporter = exporter_for(receiver)
    assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
    exporter.shutdown()
    [attempt] = receiver.attempts()
    assert (attempt.status, attempt.error) == (500, "injected failure")
    assert receiver.spans() == []

    receiver.fail_next(1, status=503, retry_after=7)
    status, headers, body = post(receiver, b"", {"Content-Type": "application/x-protobuf"})
    assert status == 503 and headers["retry-after"] == "7"
    assert status_pb2.Status.FromString(body).code == code_pb2.UNAVAILABLE


def test_set_down_refuses_connections_and_comes_back_on_the_same_port(receiver: OTLPReceiver) -> None:
    exporter = exporter_for(receiver, timeout=0.5)
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS  # leaves a pooled connection
    port = receiver.port

    receiver.set_down(True)
    assert receiver.is_down and receiver.is_running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    started = time.monotonic()
    assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 2
    assert receiver.attempt_count == 1  # a refused connection never reaches the receiver

    receiver.set_down(False)
    assert receiver.port == port and not receiver.is_down
    # The exporter's pooled connection died with the old socket; it must reconnect by itself.
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert [a.status for a in receiver.attempts()] == [200, 200]
    assert len(receiver.spans()) == 2


def test_delay_makes_the_exporter_time_out(receiver: OTLPReceiver) -> None:
    receiver.set_delay(1.0)
    exporter = exporter_for(receiver, timeout=0.2)
    started = time.monotonic()
    assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 0.9
    exporter.shutdown()
    # The receiver still processes the post after the client gave up, as a
    # real collector would: a timed-out export may have been delivered.
    receiver.wait_for_attempts(1, timeout=3)
    receiver.set_delay(0)
    assert len(receiver.spans()) == 1


# --------------------------------------------------------------------------- malformed requests


def test_undecodable_protobuf_gives_400_status(receiver: OTLPReceiver) -> None:
    status, headers, body = post(receiver, b"\xff\xff\xff\xff", {"Content-Type": "application/x-protobuf"})
    assert status == 400
    assert headers["content-type"] == "application/x-protobuf"
    rpc = status_pb2.Status.FromString(body)
    assert rpc.code == code_pb2.INVALID_ARGUMENT and rpc.message.startswith("cannot decode body")
    assert receiver.attempts()[0].status == 400
    assert receiver.requests() == []


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"Content-Type": "application/json"}),
        (b"[1, 2]", {"Content-Type": "application/json"}),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "abc"}]}]}]}',
            {"Content-Type": "application/json"},
        ),
        (b'{"resourceSpans": 5}', {"Content-Type": "application/json"}),
        (b"not gzip at all", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}),
        (gzip.compress(b"x" * 100)[:-8], {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}),
    ],
    ids=["bad-json", "json-array", "short-trace-id", "wrong-shape", "bad-gzip", "truncated-gzip"],
)
def test_bad_bodies_give_400(receiver: OTLPReceiver, body: bytes, headers: dict[str, str]) -> None:
    status, _, reply = post(receiver, body, headers)
    assert status == 400, reply
    assert receiver.spans() == []


def test_raw_deflate_and_empty_body_are_accepted(receiver: OTLPReceiver) -> None:
    payload = as_request(finished_spans()).SerializeToString()
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = raw.compress(payload) + raw.flush()
    status, _, _ = post(receiver, body, {"Content-Type": "application/x-protobuf", "Content-Encoding": "deflate"})
    assert status == 200
    # An empty body is a valid, empty ExportTraceServiceRequest.
    status, _, reply = post(receiver, b"", {"Content-Type": "application/x-protobuf"})
    assert (status, reply) == (200, b"")
    assert len(receiver.spans()) == 1 and len(receiver.requests()) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {},
        {"Content-Type": "application/protobuf"},
        {"Content-Type": "application/x-protobuf", "Content-Encoding": "br"},
    ],
    ids=["text", "missing", "almost-protobuf", "brotli"],
)
def test_unsupported_media_gives_415(receiver: OTLPReceiver, headers: dict[str, str]) -> None:
    status, _, body = post(receiver, b"\x0a\x00", headers)
    assert status == 415
    assert receiver.attempts()[0].status == 415
    assert receiver.spans() == []


def test_other_paths_and_methods(receiver: OTLPReceiver) -> None:
    assert post(receiver, b"", {"Content-Type": "application/x-protobuf"}, path="/v1/metrics")[0] == 404
    status, headers, _ = post(receiver, b"", {}, method="GET")
    assert status == 405 and headers["allow"] == "POST"
    assert receiver.attempt_count == 0  # only trace posts are attempts


def test_chunked_body(receiver: OTLPReceiver) -> None:
    payload = as_request(finished_spans(2)).SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    try:
        conn.request(
            "POST", "/v1/traces", body=iter([payload[:10], payload[10:]]),
            headers={"Content-Type": "application/x-protobuf"}, encode_chunked=True,
        )  # fmt: skip
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()
    assert len(receiver.wait_for_spans(2)) == 2


def test_oversized_body_gives_413() -> None:
    with OTLPReceiver(max_body_bytes=1024) as rcv:
        status, _, _ = post(rcv, b"\x00" * 2048, {"Content-Type": "application/x-protobuf"})
        assert status == 413
        bomb = gzip.compress(b"\x00" * 100_000)
        assert len(bomb) < 1024
        status, _, _ = post(rcv, bomb, {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
        assert status == 413


# --------------------------------------------------------------------------- bookkeeping


def test_caps_and_dropped_counters() -> None:
    with OTLPReceiver(max_requests=2, max_spans=3) as rcv:
        exporter = exporter_for(rcv)
        for _ in range(3):
            assert exporter.export(finished_spans(2)) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(rcv.requests()) == 2 and rcv.dropped_requests == 1
        assert len(rcv.spans()) == 3 and rcv.dropped_spans == 3 and rcv.span_count == 6
        assert len(rcv.attempts()) == 2 and rcv.attempt_count == 3
        rcv.clear()
        assert (rcv.requests(), rcv.spans(), rcv.attempt_count, rcv.dropped_spans) == ([], [], 0, 0)


def test_concurrent_exports_are_all_counted(receiver: OTLPReceiver) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        exporter = exporter_for(receiver)
        try:
            for _ in range(5):
                assert exporter.export(finished_spans(2)) is SpanExportResult.SUCCESS
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            exporter.shutdown()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    assert len(receiver.wait_for_spans(60)) == 60
    assert receiver.attempt_count == 30
    assert len({s.span_id for s in receiver.spans()}) == 60


def test_wait_for_spans_times_out(receiver: OTLPReceiver) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="expected 1 spans"):
        receiver.wait_for_spans(1, timeout=0.1)
    assert time.monotonic() - started < 1


def test_lifecycle_and_endpoint() -> None:
    rcv = OTLPReceiver()
    with pytest.raises(RuntimeError):
        _ = rcv.endpoint
    with pytest.raises(RuntimeError):
        rcv.set_down(True)
    rcv.start()
    try:
        assert rcv.endpoint == f"http://127.0.0.1:{rcv.port}"
        assert rcv.traces_url == rcv.endpoint + "/v1/traces"
        with pytest.raises(RuntimeError):
            rcv.start()
    finally:
        rcv.stop()
    rcv.stop()  # idempotent
    assert not [t.name for t in threading.enumerate() if t.name.startswith(f"otlp-receiver-{rcv.port}")]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", rcv.port), timeout=1).close()
    with pytest.raises(ValueError):
        rcv.fail_next(1, status=200)
    with pytest.raises(ValueError):
        OTLPReceiver(max_spans=0)


def test_stop_cuts_a_stalled_request() -> None:
    rcv = OTLPReceiver().start()
    rcv.set_delay(30)
    exporter = exporter_for(rcv, timeout=0.3)
    assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
    exporter.shutdown()
    started = time.monotonic()
    rcv.stop()
    assert time.monotonic() - started < 2  # the 30 s delay did not hold stop() up
    assert rcv.attempt_count == 0
