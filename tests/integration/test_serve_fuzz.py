"""Fuzz ``otel-costattr serve`` over real HTTP: random bodies, mutated valid protobuf, random JSON and random
attribute values on well-formed spans.

Whatever arrives, the service never crashes and never answers a 5xx other than 503; enrichment never raises
(``enrich_errors`` stays 0), and the queue keeps working: a valid request afterwards is accepted and arrives,
priced, at the forward target. The budget is fixed (``max_examples`` per strategy, no deadline per example;
the whole module takes a few seconds).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_costattr import attributes as A
from otel_costattr._serve._app import CostServer, ServeConfig
from otel_costattr.testing._otlp_receiver import OTLPReceiver, encode_otlp_json

PB = "application/x-protobuf"
JS = "application/json"
ALLOWED = {200, 400, 413, 415, 503}
FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

MINI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.output_tokens": 300}


def _request(attrs: dict[str, Any], span_id: int = 1) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    sp = ss.spans.add()
    sp.trace_id = (7).to_bytes(16, "big")
    sp.span_id = span_id.to_bytes(8, "big")
    sp.name = "chat"
    sp.start_time_unix_nano = 1_760_000_000_000_000_000
    sp.end_time_unix_nano = 1_760_000_001_000_000_000
    for k, v in attrs.items():
        kv = sp.attributes.add()
        kv.key = k
        _set(kv.value, v)
    return req


def _set(target: Any, v: Any) -> None:
    if isinstance(v, bool):
        target.bool_value = v
    elif isinstance(v, int):
        target.int_value = v
    elif isinstance(v, float):
        target.double_value = v
    elif isinstance(v, bytes):
        target.bytes_value = v
    elif isinstance(v, list):
        target.array_value.SetInParent()
        for x in v:
            _set(target.array_value.values.add(), x)
    elif isinstance(v, dict):
        target.kvlist_value.SetInParent()
        for k, x in v.items():
            kv = target.kvlist_value.values.add()
            kv.key = k
            _set(kv.value, x)
    elif v is not None:
        target.string_value = str(v)


VALID = _request(MINI).SerializeToString()


@pytest.fixture(scope="module")
def service() -> Iterator[tuple[CostServer, OTLPReceiver]]:
    with OTLPReceiver(max_spans=10_000) as rcv:
        srv = CostServer(ServeConfig(port=0, forward=rcv.traces_url, token_env=None, max_body_bytes=256 * 1024,
                                     queue_size=256)).start()
        try:
            yield srv, rcv
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def client(service: tuple[CostServer, OTLPReceiver]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service[0].url, timeout=30) as c:
        yield c


def _post(client: httpx.Client, body: bytes, ctype: str, encoding: str | None = None) -> int:
    headers = {"Content-Type": ctype}
    if encoding:
        headers["Content-Encoding"] = encoding
    r = client.post("/v1/traces", content=body, headers=headers)
    assert r.status_code in ALLOWED, (r.status_code, r.content[:300])
    if r.status_code == 503:
        assert "retry-after" in r.headers
    return r.status_code


def _still_serving(srv: CostServer, rcv: OTLPReceiver, client: httpx.Client, span_id: int) -> None:
    assert client.get("/healthz").status_code == 200
    before = rcv.span_count
    assert _post(client, _request(MINI, span_id).SerializeToString(), PB) == 200
    spans = rcv.wait_for_spans(before + 1, timeout=20)
    mine = [s for s in spans if s.span_id == span_id.to_bytes(8, "big").hex()]
    assert mine and mine[-1].attributes["gen_ai.cost.total_cost"] == 0.0002832
    assert srv.stats.get("enrich_errors") == 0


def test_random_bodies(service: tuple[CostServer, OTLPReceiver], client: httpx.Client) -> None:
    @FUZZ
    @given(body=st.binary(max_size=2048), ctype=st.sampled_from([PB, JS, "text/plain", "application/x-protobuf; x=1"]),
           encoding=st.sampled_from([None, "gzip", "identity", "deflate"]), wrap=st.booleans())
    def run(body: bytes, ctype: str, encoding: str | None, wrap: bool) -> None:
        if encoding == "gzip" and wrap:
            body = gzip.compress(body)  # valid gzip around garbage: reaches the decoder
        _post(client, body, ctype, encoding)

    run()
    _still_serving(*service, client, 1001)


def test_mutated_valid_protobuf(service: tuple[CostServer, OTLPReceiver], client: httpx.Client) -> None:
    base = _request({**MINI, "gen_ai.response.id": "chatcmpl-1", "customer_id": "acme"}).SerializeToString()

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        buf = bytearray(base)
        for _ in range(data.draw(st.integers(1, 3))):  # few: most bodies should still decode, to reach enrichment
            op = data.draw(st.sampled_from(["letter", "letter", "digit", "flip", "insert", "delete", "truncate",
                                            "dup"]))
            pos = data.draw(st.integers(0, max(len(buf) - 1, 0)))
            if op in ("letter", "digit") and buf:
                # Keeps the structure and valid UTF-8: changes keys, model names, numbers, ids.
                buf[pos] = ord(data.draw(st.sampled_from("abcxyz._-" if op == "letter" else "0123456789")))
            elif op == "flip" and buf:
                buf[pos] ^= 1 << data.draw(st.integers(0, 7))
            elif op == "insert":
                buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
            elif op == "delete" and buf:
                del buf[pos:pos + data.draw(st.integers(1, 8))]
            elif op == "truncate":
                del buf[pos:]
            elif op == "dup":
                buf += buf[pos:]
        _post(client, bytes(buf), PB, None)

    run()
    _still_serving(*service, client, 1002)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25)
_span_keys = st.sampled_from(["traceId", "spanId", "parentSpanId", "name", "kind", "attributes", "status",
                              "startTimeUnixNano", "endTimeUnixNano", "events", "links", "flags"])


def test_random_json(service: tuple[CostServer, OTLPReceiver], client: httpx.Client) -> None:
    @FUZZ
    @given(doc=_json | st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries(
        {"scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(st.dictionaries(_span_keys, _json,
                                                                                          max_size=6),
                                                                          max_size=3)}), max_size=2)}),
        max_size=2)}), encoding=st.sampled_from([None, "gzip"]))
    def run(doc: Any, encoding: str | None) -> None:
        body = json.dumps(doc).encode()
        if encoding:
            body = gzip.compress(body)
        _post(client, body, JS, encoding)

    run()
    _still_serving(*service, client, 1003)


_usage_keys = sorted({n for names in A.READ.values() for n in names} | set(A.PROVIDED_COST) | {A.COST_TOTAL})
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=30)
    | st.binary(max_size=8) | st.sampled_from(["gpt-4o-mini", "openai", "chat", "12", " 7 ", "-1", "1e9", "nan"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=6)


def test_random_attribute_values_on_valid_spans(service: tuple[CostServer, OTLPReceiver],
                                                client: httpx.Client) -> None:
    """Well-formed spans whose usage/identity attributes hold anything: priced or not, never an error."""
    srv, rcv = service

    @FUZZ
    @given(attrs=st.dictionaries(st.sampled_from(_usage_keys), _values, min_size=1, max_size=10),
           base=st.sampled_from([{}, MINI, {"gen_ai.operation.name": "chat"}]), as_json=st.booleans())
    def run(attrs: dict[str, Any], base: dict[str, Any], as_json: bool) -> None:
        req = _request({**base, **attrs}, span_id=5)
        if as_json:
            try:
                body = encode_otlp_json(req)
            except ValueError:  # NaN/inf doubles: not representable in strict JSON by this encoder
                return
            assert _post(client, body, JS) == 200
        else:
            assert _post(client, req.SerializeToString(), PB) == 200

    run()
    assert srv.stats.get("enrich_errors") == 0
    _still_serving(srv, rcv, client, 1004)
