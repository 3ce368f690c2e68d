"""``otel-costattr serve`` over real HTTP on loopback.

The client is the real ``OTLPSpanExporter`` where it can be (protobuf), and raw httpx posts for OTLP/JSON,
gzip and malformed bodies; the forward target is :class:`OTLPReceiver`, a real OTLP/HTTP receiver with
fault injection. Expected costs are computed by hand from the published rates.
"""

from __future__ import annotations

import gzip
import json
import logging
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from otel_costattr._errors import ConfigurationError
from otel_costattr._serve._app import CostServer, ServeConfig
from otel_costattr.testing._otlp_receiver import OTLPReceiver, encode_otlp_json
from tests.integration.conftest import serve_process
from tests.otlp_support import key_value

PB = "application/x-protobuf"
JS = "application/json"

# gpt-4o-mini: $0.15 / $0.075 (cached) / $0.60 per million tokens.
# 1200 input incl. 1024 cached + 300 output = 176 * 0.15 + 1024 * 0.075 + 300 * 0.60 per M = $0.0002832
MINI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.output_tokens": 300}
MINI_TOTAL, MINI_INPUT, MINI_OUTPUT, MINI_CACHE = 0.0002832, 0.0001032, 0.00018, 0.0000768


# ------------------------------------------------------------------------------------------------ helpers


def make_request(*spans: tuple[int, dict[str, Any]], trace: int = 1, service: str = "svc") -> ExportTraceServiceRequest:
    """A request with one span per ``(span id, attributes)``; span id 0 means "no id"."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(key_value("service.name", service))
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for sid, attrs in spans:
        sp = ss.spans.add()
        sp.trace_id = trace.to_bytes(16, "big")
        if sid:
            sp.span_id = sid.to_bytes(8, "big")
        sp.name = "chat " + str(attrs.get("gen_ai.request.model", "op"))
        sp.kind = 3
        sp.start_time_unix_nano = 1_760_000_000_000_000_000
        sp.end_time_unix_nano = 1_760_000_001_000_000_000
        for k, v in attrs.items():
            sp.attributes.append(key_value(k, v))
    return req


def post(url: str, body: bytes, ctype: str = PB, encoding: str | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"Content-Type": ctype, **(headers or {})}
    if encoding:
        h["Content-Encoding"] = encoding
    return httpx.post(url, content=body, headers=h, timeout=30)


def wait_stat(srv: CostServer, name: str, value: int, timeout: float = 10.0) -> None:
    """Wait for a counter: the receiver records a request before the forwarder has read its answer."""
    deadline = time.monotonic() + timeout
    while srv.stats.get(name) < value:
        assert time.monotonic() < deadline, f"{name} = {srv.stats.get(name)}, expected {value}"
        time.sleep(0.01)


def _status_message(resp: httpx.Response) -> str:
    if resp.headers["content-type"].startswith(PB):
        return status_pb2.Status.FromString(resp.content).message
    return json.loads(resp.content)["message"]


# ---------------------------------------------------------------------------------------------- pricing


def test_sdk_exporter_protobuf_spans_arrive_priced(make_server: Any, receiver: OTLPReceiver) -> None:
    srv = make_server()
    provider = TracerProvider(resource=Resource.create({"service.name": "billing"}))
    exporter = OTLPSpanExporter(endpoint=srv.traces_url)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("agent step"):
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=MINI):
            pass
    provider.shutdown()

    spans = {s.name: s for s in receiver.wait_for_spans(2, timeout=10)}
    wait_stat(srv, "spans_forwarded", 2)
    chat, step = spans["chat gpt-4o-mini"], spans["agent step"]
    a = chat.attributes
    assert a["gen_ai.cost.status"] == "priced"
    assert a["gen_ai.cost.total_cost"] == MINI_TOTAL
    assert a["gen_ai.cost.input_cost"] == MINI_INPUT
    assert a["gen_ai.cost.output_cost"] == MINI_OUTPUT
    assert a["gen_ai.cost.cache_read_cost"] == MINI_CACHE
    assert a["gen_ai.cost.currency"] == "USD"
    assert a["gen_ai.cost.model"] == "gpt-4o-mini"
    assert json.loads(a["langfuse.observation.cost_details"])["total"] == MINI_TOTAL
    for k, v in MINI.items():  # what the span said is still there, unchanged
        assert a[k] == v
    assert not any(k.startswith("gen_ai.cost") for k in step.attributes)  # a non-LLM span is untouched
    assert chat.resource_attributes["service.name"] == "billing"
    req = receiver.requests()[0]
    assert req.content_type == PB and req.content_encoding == "gzip"
    stats = httpx.get(srv.url + "/metrics").json()
    assert stats["spans_accepted"] == 2 and stats["spans_forwarded"] == 2
    assert stats["enriched_by_status"] == {"priced": 1}


def test_otlp_json_gzip_in_priced_protobuf_out(make_server: Any, receiver: OTLPReceiver) -> None:
    srv = make_server()
    body = gzip.compress(encode_otlp_json(make_request((7, MINI))))
    resp = post(srv.traces_url, body, JS, "gzip")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == JS
    assert json.loads(resp.content) == {}  # an empty ExportTraceServiceResponse, in JSON
    [span] = receiver.wait_for_spans(1, timeout=10)
    assert span.span_id == (7).to_bytes(8, "big").hex()
    assert span.attributes["gen_ai.cost.total_cost"] == MINI_TOTAL
    assert span.attributes["gen_ai.usage.input_tokens"] == 1200
    assert receiver.requests()[0].content_type == PB  # always forwarded as gzip protobuf


def test_protobuf_reply_is_protobuf(make_server: Any, receiver: OTLPReceiver) -> None:
    srv = make_server()
    resp = post(srv.traces_url, make_request((1, MINI)).SerializeToString())
    assert resp.status_code == 200 and resp.headers["content-type"] == PB
    parsed = ExportTraceServiceResponse.FromString(resp.content)
    assert not parsed.HasField("partial_success")
    receiver.wait_for_spans(1, timeout=10)


def test_ledger_rows_written(tmp_path: Path, receiver: OTLPReceiver) -> None:
    from otel_costattr._ledger._store import Ledger

    db = tmp_path / "costs.duckdb"
    srv = CostServer(ServeConfig(port=0, ledger=str(db), token_env=None)).start()
    try:
        other = {**MINI, "gen_ai.request.model": "gpt-4o", "customer_id": "acme"}
        assert post(srv.traces_url, make_request((1, MINI), (2, other), (3, {"http.route": "/x"})).SerializeToString()
                    ).status_code == 200
    finally:
        srv.stop()  # drains: the ledger has every accepted span once stop() returns
    led = Ledger(db, read_only=True)
    try:
        rows = led.query("SELECT span_id, cost_status, CAST(cost_total AS VARCHAR), customer_id, service_name "
                         "FROM spans ORDER BY span_id")
    finally:
        led.close()
    assert len(rows) == 3
    assert rows[0] == ((1).to_bytes(8, "big").hex(), "priced", "0.000283200000000000", None, "svc")
    # gpt-4o: $2.50 / $1.25 cached / $10 per M: 176 * 2.5 + 1024 * 1.25 + 300 * 10 per M = $0.00472
    assert rows[1][1:4] == ("priced", "0.004720000000000000", "acme")
    assert rows[2][1] is None  # not an LLM span, stored all the same


def test_one_span_the_ledger_cannot_hold_does_not_lose_its_batch(tmp_path: Path) -> None:
    from otel_costattr._ledger._store import Ledger

    db = tmp_path / "costs.duckdb"
    srv = CostServer(ServeConfig(port=0, ledger=str(db), token_env=None)).start()
    try:
        req = make_request((1, MINI), (2, MINI), (3, {"http.route": "/x"}))
        req.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano = 2**64 - 1  # beyond int64 ns
        assert post(srv.traces_url, req.SerializeToString()).status_code == 200
    finally:
        srv.stop()
    assert srv.stats.get("ledger_dropped_spans") == 1 and srv.stats.get("ledger_failed_batches") == 0
    led = Ledger(db, read_only=True)
    try:
        ids = [r[0] for r in led.query("SELECT span_id FROM spans ORDER BY span_id")]
    finally:
        led.close()
    assert ids == [(1).to_bytes(8, "big").hex(), (3).to_bytes(8, "big").hex()]


def test_ledger_and_forward_together(tmp_path: Path, make_server: Any, receiver: OTLPReceiver) -> None:
    from otel_costattr._ledger._store import Ledger

    db = tmp_path / "both.duckdb"
    srv = make_server(ledger=str(db))
    assert post(srv.traces_url, make_request((1, MINI)).SerializeToString()).status_code == 200
    receiver.wait_for_spans(1, timeout=10)
    srv.stop()
    led = Ledger(db, read_only=True)
    try:
        assert led.count() == 1
    finally:
        led.close()


def test_already_priced_spans_pass_through_and_nothing_is_overwritten(make_server: Any,
                                                                     receiver: OTLPReceiver) -> None:
    srv = make_server()
    priced = {**MINI, "gen_ai.cost.status": "priced", "gen_ai.cost.total_cost": 0.5}
    euro = {**MINI, "gen_ai.cost.currency": "EUR", "gen_ai.cost.model": "my-label"}
    req = make_request((1, priced), (2, euro))
    assert post(srv.traces_url, req.SerializeToString()).status_code == 200
    spans = {s.span_id[-1]: s for s in receiver.wait_for_spans(2, timeout=10)}
    assert spans["1"].attributes == priced  # exactly what was sent: never priced twice
    e = spans["2"].attributes
    assert e["gen_ai.cost.currency"] == "EUR" and e["gen_ai.cost.model"] == "my-label"
    assert e["gen_ai.cost.total_cost"] == MINI_TOTAL and e["gen_ai.cost.status"] == "priced"
    keys = [kv.key for kv in receiver.requests()[0].message.resource_spans[0].scope_spans[0].spans[1].attributes]
    assert len(keys) == len(set(keys))  # no key written twice
    stats = srv.stats.snapshot()
    assert stats["spans_passthrough"] == 1 and stats["attributes_kept_existing"] == 2


# ------------------------------------------------------------------------------------------ the contract


def test_partial_success_on_a_mixed_batch(make_server: Any, receiver: OTLPReceiver) -> None:
    srv = make_server()
    req = make_request((1, MINI), (0, MINI), (3, {"x": 1}))
    req.resource_spans[0].scope_spans[0].spans[2].trace_id = bytes(16)  # an all-zero trace id is invalid too
    resp = post(srv.traces_url, req.SerializeToString())
    assert resp.status_code == 200
    ps = ExportTraceServiceResponse.FromString(resp.content).partial_success
    assert ps.rejected_spans == 2
    assert "span id" in ps.error_message
    [span] = receiver.wait_for_spans(1, timeout=10)
    assert span.span_id.endswith("01")

    body = json.loads(encode_otlp_json(make_request((5, MINI), (6, MINI))))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][1].pop("spanId")
    resp = post(srv.traces_url, json.dumps(body).encode(), JS)
    assert resp.status_code == 200
    assert json.loads(resp.content)["partialSuccess"]["rejectedSpans"] == "1"  # int64 is a string in JSON
    assert srv.stats.get("spans_rejected") == 3


@pytest.mark.parametrize("body,ctype,encoding,reason", [
    (b"\xff\xff\xff\xff not protobuf", PB, None, "not a valid OTLP protobuf"),
    (b'{"resourceSpans": [', JS, None, "not JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}', JS, None, "traceId"),
    (b'{"resourceSpans": {"a": 1}}', JS, None, "OTLP/JSON"),
    (b"[1, 2]", JS, None, "resourceSpans"),
    (b"\x1f\x8b\x08\x00 broken gzip", PB, "gzip", "gzip"),
    (gzip.compress(b"x" * 100)[:-8], PB, "gzip", "truncated"),
])
def test_malformed_input_is_400_with_the_reason(make_server: Any, body: bytes, ctype: str, encoding: str | None,
                                                reason: str) -> None:
    srv = make_server()
    resp = post(srv.traces_url, body, ctype, encoding)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == ctype  # google.rpc.Status in the request's encoding
    assert reason in _status_message(resp)


def test_unsupported_media_is_415(make_server: Any) -> None:
    srv = make_server()
    r = post(srv.traces_url, b"hello", "text/plain")
    assert r.status_code == 415 and "application/x-protobuf" in _status_message(r)
    r = post(srv.traces_url, b"hello", PB, "br")
    assert r.status_code == 415 and "encoding" in _status_message(r)
    assert httpx.post(srv.traces_url, content=b"x", timeout=10).status_code == 415  # no content type at all


def test_oversized_bodies_are_413(make_server: Any) -> None:
    srv = make_server(max_body_bytes=4096)
    r = post(srv.traces_url, b"\x00" * 5000)
    assert r.status_code == 413 and "4096" in _status_message(r)
    bomb = gzip.compress(b"\x00" * 1_000_000)  # 1 KB on the wire, 1 MB inflated
    assert len(bomb) < 4096
    r = post(srv.traces_url, bomb, PB, "gzip")
    assert r.status_code == 413 and "decompressed" in _status_message(r)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(10):
            yield b"\x00" * 1000

    r = httpx.post(srv.traces_url, content=chunks(), headers={"Content-Type": PB}, timeout=10)
    assert r.status_code == 413
    assert srv.stats.get("requests_too_large") == 3
    assert post(srv.traces_url, make_request((1, MINI)).SerializeToString()).status_code == 200  # still serving


def test_bearer_token(make_server: Any, receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = "s3cret-token-value"
    srv = make_server(token=token)
    body = make_request((1, MINI)).SerializeToString()
    r = post(srv.traces_url, body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert post(srv.traces_url, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(srv.traces_url, body, headers={"Authorization": token}).status_code == 401
    assert httpx.get(srv.url + "/metrics").status_code == 401
    assert httpx.get(srv.url + "/healthz").status_code == 200  # probes need no token
    assert post(srv.traces_url, body, headers={"Authorization": f"Bearer {token}"}).status_code == 200

    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=srv.traces_url, headers={"Authorization": f"Bearer {token}"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("chat", attributes=MINI):
        pass
    provider.shutdown()
    receiver.wait_for_spans(2, timeout=10)
    assert srv.stats.get("requests_unauthorized") == 4
    assert token not in caplog.text


def test_token_from_environment(make_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVE_TOKEN", "from-env")
    srv = make_server(token_env="MY_SERVE_TOKEN")
    body = make_request((1, MINI)).SerializeToString()
    assert post(srv.traces_url, body).status_code == 401
    assert post(srv.traces_url, body, headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_full_queue_is_503_with_retry_after_and_nothing_accepted_is_lost(make_server: Any,
                                                                         receiver: OTLPReceiver) -> None:
    receiver.set_delay(0.5)  # a slow forward target
    srv = make_server(queue_size=2, workers=1, retry_after=2)
    statuses: list[int] = []
    accepted = 0
    for i in range(8):
        r = post(srv.traces_url, make_request((i + 1, MINI)).SerializeToString())
        statuses.append(r.status_code)
        if r.status_code == 200:
            accepted += 1
        else:
            assert r.status_code == 503
            assert r.headers["retry-after"] == "2"
            assert "queue is full" in _status_message(r)
    assert 503 in statuses and accepted >= 2
    assert srv.stats.get("requests_overloaded") == statuses.count(503)
    receiver.set_delay(0)
    receiver.wait_for_spans(accepted, timeout=20)
    time.sleep(0.2)
    assert receiver.span_count == accepted  # every 200 arrived, nothing else did


def test_sdk_exporter_retries_our_503(make_server: Any, receiver: OTLPReceiver) -> None:
    receiver.set_delay(0.6)
    srv = make_server(queue_size=1, workers=1, retry_after=1)
    for i in range(2):  # one in the worker, one queued: the queue is now full
        assert post(srv.traces_url, make_request((100 + i, MINI)).SerializeToString()).status_code == 200
    exporter = OTLPSpanExporter(endpoint=srv.traces_url, timeout=20)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("chat", attributes=MINI):
        pass
    provider.shutdown()
    receiver.set_delay(0)
    receiver.wait_for_spans(3, timeout=20)
    assert srv.stats.get("requests_overloaded") >= 1  # the SDK saw 503 + Retry-After and came back


def test_forward_retries_when_the_target_fails_then_recovers(make_server: Any, receiver: OTLPReceiver) -> None:
    receiver.fail_next(2, status=503, retry_after=0.1)
    srv = make_server()
    assert post(srv.traces_url, make_request((1, MINI)).SerializeToString()).status_code == 200
    [span] = receiver.wait_for_spans(1, timeout=10)
    assert span.attributes["gen_ai.cost.status"] == "priced"
    assert [a.status for a in receiver.attempts()] == [503, 503, 200]
    wait_stat(srv, "spans_forwarded", 1)
    stats = srv.stats.snapshot()
    assert stats["forward_retries"] == 2 and stats["spans_forwarded"] == 1 and stats["forward_dropped_spans"] == 0


def test_forward_gives_up_within_its_budget_and_counts_it(make_server: Any, receiver: OTLPReceiver,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.fail_next(100, status=400)  # not retryable
    srv = make_server(forward=receiver.traces_url.replace("://", "://user:pw-in-url@"),
                      forward_headers={"Authorization": "Basic cGs6c2s="})
    assert post(srv.traces_url, make_request((1, MINI)).SerializeToString()).status_code == 200
    receiver.wait_for_attempts(1, timeout=10)
    wait_stat(srv, "forward_dropped_spans", 1)
    assert srv.stats.get("forward_failed_requests") == 1 and srv.stats.get("forward_retries") == 0
    assert receiver.headers()[0]["authorization"] == "Basic cGs6c2s="  # forward headers are sent
    srv.stop()
    receiver.clear()
    receiver.reset_faults()
    srv2 = make_server(forward=receiver.traces_url.replace("://", "://user:pw-in-url@"))
    assert post(srv2.traces_url, make_request((2, MINI)).SerializeToString()).status_code == 200
    receiver.wait_for_spans(1, timeout=10)
    assert receiver.headers()[0]["authorization"] == "Basic dXNlcjpwdy1pbi11cmw="  # user:pw-in-url
    assert "answered 400" in caplog.text
    assert "cGs6c2s=" not in caplog.text and "pw-in-url" not in caplog.text  # credentials are never logged


def test_healthz_metrics_and_routes(make_server: Any) -> None:
    srv = make_server()
    r = httpx.get(srv.url + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    stats = httpx.get(srv.url + "/stats").json()
    for key in ("requests_received", "spans_accepted", "spans_rejected", "enriched_by_status", "spans_forwarded",
                "forward_retries", "forward_failed_requests", "requests_overloaded", "queue_depth",
                "queue_capacity", "attribute_cache_clears", "dedup_evictions", "pair_evictions"):
        assert key in stats
    assert httpx.get(srv.url + "/v1/traces").status_code == 405
    assert httpx.get(srv.url + "/nope").status_code == 404


# ------------------------------------------------------------------------------------------ configuration


def test_bad_configuration_fails_fast_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--forward URL .* --ledger PATH"):
        CostServer(ServeConfig(port=0))
    with pytest.raises(ConfigurationError, match="not an http"):
        CostServer(ServeConfig(port=0, forward="ftp://example.invalid/v1/traces"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        CostServer(ServeConfig(port=0, ledger=str(tmp_path / "missing" / "costs.duckdb")))
    with pytest.raises(ConfigurationError, match="--queue-size"):
        CostServer(ServeConfig(port=0, ledger=str(tmp_path / "c.duckdb"), queue_size=0))
    with pytest.raises(ConfigurationError, match="NOT_SET_ANYWHERE"):
        CostServer(ServeConfig(port=0, ledger=str(tmp_path / "c.duckdb"), token_env="NOT_SET_ANYWHERE"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[[model]]\nid = 1\n")
    with pytest.raises(ConfigurationError, match="pricing overlay"):
        CostServer(ServeConfig(port=0, ledger=str(tmp_path / "c.duckdb"), pricing=[str(bad)]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ConfigurationError, match="choose another --port"):
            CostServer(ServeConfig(port=s.getsockname()[1], ledger=str(tmp_path / "d.duckdb")))
    assert ServeConfig(forward="https://cloud.langfuse.com/api/public/otel").forward_url() == \
        "https://cloud.langfuse.com/api/public/otel/v1/traces"
    assert ServeConfig(forward="http://h:4318/v1/traces").forward_url() == "http://h:4318/v1/traces"


def test_cli_reports_bad_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    from otel_costattr._cli import main

    assert main(["serve", "--port", "0"]) == 2
    assert "--forward URL" in capsys.readouterr().err
    assert main(["serve", "--forward", "localhost:4318"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ shutdown


def test_sigterm_drains_every_accepted_span(tmp_path: Path, receiver: OTLPReceiver) -> None:
    receiver.set_delay(0.3)  # 10 batches take ~3 s to forward with one worker: most are queued at SIGTERM
    with serve_process("--forward", receiver.endpoint, "--workers", "1", "--queue-size", "32",
                       "--ledger", str(tmp_path / "c.duckdb"), "--log-level", "info") as (proc, url):
        n = 0
        for i in range(10):
            req = make_request(*[(i * 10 + j + 1, MINI) for j in range(10)])
            assert post(url + "/v1/traces", req.SerializeToString()).status_code == 200
            n += 10
        assert receiver.span_count < n
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert receiver.span_count == n  # everything that got a 200 was forwarded before exit
    assert len({s.span_id for s in receiver.spans()}) == n
    assert all(s.attributes["gen_ai.cost.status"] == "priced" for s in receiver.spans())
    assert b"draining" in err

    from otel_costattr._ledger._store import Ledger

    led = Ledger(tmp_path / "c.duckdb", read_only=True)
    try:
        assert led.count() == n
    finally:
        led.close()


def test_shutdown_with_the_target_down_is_bounded_and_counted(make_server: Any, receiver: OTLPReceiver) -> None:
    receiver.set_down(True)
    srv = make_server(workers=1, drain_retry_s=0.5)
    for i in range(3):
        assert post(srv.traces_url, make_request((i + 1, MINI)).SerializeToString()).status_code == 200
    t = time.monotonic()
    srv.stop()  # the forward retry budget is 60 s per batch; the drain stops retrying after 0.5 s
    assert time.monotonic() - t < 10
    stats = srv.stats.snapshot()
    assert stats["forward_dropped_spans"] == 3 and stats["forward_failed_requests"] == 3
    assert stats["batches_processed"] == 3
    receiver.set_down(False)


def test_healthz_is_503_while_draining(make_server: Any, receiver: OTLPReceiver) -> None:
    receiver.set_delay(0.5)
    srv = make_server(workers=1)
    assert post(srv.traces_url, make_request((1, MINI)).SerializeToString()).status_code == 200
    srv.pipeline.close_and_drain(timeout=0)  # what the lifespan shutdown does first
    r = httpx.get(srv.url + "/healthz")
    assert r.status_code == 503
    r = post(srv.traces_url, make_request((2, MINI)).SerializeToString())
    assert r.status_code == 503 and "shutting down" in _status_message(r) and "retry-after" in r.headers
    receiver.set_delay(0)
    receiver.wait_for_spans(1, timeout=10)


def test_sdk_exporter_with_gzip_sees_success(make_server: Any, receiver: OTLPReceiver) -> None:
    """The SDK exporter, compressing, sees SUCCESS (it parsed our response)."""
    srv = make_server()
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("chat", attributes=MINI) as span:
        pass
    exporter = OTLPSpanExporter(endpoint=srv.traces_url, compression=Compression.Gzip)
    assert exporter.export([span]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
    [got] = receiver.wait_for_spans(1, timeout=10)
    assert got.attributes["gen_ai.cost.total_cost"] == MINI_TOTAL
