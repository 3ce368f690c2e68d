"""``otel-costattr serve`` (the OTLP/HTTP pricing endpoint): bad input and the bearer token.

Written against its ``CostServer`` API
(``CostServer(port=0, ledger=..., token=..., book=...)``, ``start()``, ``traces_url``, ``stop()`` draining the
queue) and HTTP contract (200 / 400 / 401 / 413 / 415, 503 with Retry-After when its queue is full).
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from otel_costattr._ledger._store import Ledger
from otel_costattr.testing._otlp_receiver import encode_otlp_json

from _helpers import LogCapture, emit_units
from _settings import FUZZ_SECONDS



def _request(units: range) -> Any:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(SimpleSpanProcessor(exporter))  # unpriced: serve prices them
    emit_units(tp.get_tracer("client"), units)
    tp.shutdown()
    return encode_spans(exporter.get_finished_spans())


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def server_factory(tmp_path: Path) -> Any:
    from otel_costattr._serve._app import CostServer

    started: list[Any] = []
    book = oc.PriceBook.load(env=False)

    def make(**kwargs: Any) -> Any:
        srv = CostServer(host="127.0.0.1", port=0, ledger=str(tmp_path / f"serve-{len(started)}.duckdb"), book=book,
                         **kwargs).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.mark.figure("Security", "(d) `serve` refuses requests without the configured bearer token")
def test_serve_refuses_requests_without_the_token(server_factory: Any, tmp_path: Path, figure) -> None:
    """Proves: with a token configured, every request without exactly ``Bearer <token>`` is refused with 401
    and none of its spans reaches the ledger; the right token is accepted; the token is never logged."""
    token = f"serve-token-{uuid.uuid4().hex}"
    with LogCapture() as logs:
        srv = server_factory(token=token)
        body = _request(range(3)).SerializeToString()
        wrong = {
            "no header": {},
            "empty": {"authorization": ""},
            "bare token": {"authorization": token},
            "lower-case scheme": {"authorization": f"bearer {token}"},
            "basic scheme": {"authorization": f"Basic {token}"},
            "prefix of the token": {"authorization": f"Bearer {token[:-1]}"},
            "token plus a byte": {"authorization": f"Bearer {token}x"},
            "extra space": {"authorization": f"Bearer  {token}"},
            "other token": {"authorization": f"Bearer serve-token-{uuid.uuid4().hex}"},
            "token in another header": {"x-api-key": token, "x-authorization": f"Bearer {token}"},
        }
        refused = {}
        for name, headers in wrong.items():
            status, _ = _post(srv.traces_url, body, {"content-type": "application/x-protobuf", **headers})
            refused[name] = status
        metrics_without = _get(srv.url, "/metrics")
        ok, _ = _post(srv.traces_url, _request(range(3, 4)).SerializeToString(),
                      {"content-type": "application/x-protobuf", "authorization": f"Bearer {token}"})
        srv.stop()
    led = Ledger(srv.config.ledger, read_only=True)
    try:
        stored = led.count()
    finally:
        led.close()
    leaked = [r.getMessage() for r in logs.records if token in r.getMessage()]
    figure.how_much = f"{len(wrong)} wrong or missing credentials + /metrics without token; 1 right token"
    figure.lost = (f"accepted without the token: {sum(1 for s in refused.values() if s != 401)}; spans stored from "
                   f"refused requests: {stored - 10}; token in logs: {len(leaked)}")
    figure.set(statuses=refused, metrics_without_token=metrics_without, right_token=ok)
    assert all(s == 401 for s in refused.values()), refused
    assert metrics_without == 401
    assert ok == 200 and stored == 10, (ok, stored)
    assert not leaked


def _mutations(valid_pb: bytes, valid_json: bytes, rng: random.Random) -> tuple[bytes, dict[str, str]]:
    kind = rng.randrange(8)
    ctype = rng.choice(["application/x-protobuf", "application/json", "application/x-protobuf",
                        "text/plain", "application/json; charset=utf-8", ""])
    base = valid_pb if "protobuf" in ctype else valid_json
    if kind == 0:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    elif kind in (1, 2):
        b = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            pos = rng.randrange(len(b) + 1)
            b[pos:pos + rng.randrange(4)] = bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
        body = bytes(b)
    elif kind == 3:
        body = base[:rng.randrange(len(base))]
    elif kind == 4:
        doc = json.loads(valid_json)
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0][rng.choice(["traceId", "spanId", "attributes",
                                                                        "startTimeUnixNano", "kind"])] = \
            rng.choice([None, "zz", -1, [], {}, "0" * 32, 1e300, "A" * 10_000])
        body, ctype = json.dumps(doc).encode(), "application/json"
    elif kind == 5:
        body = b"{\"resourceSpans\": " + b"[" * rng.randrange(10, 50_000)
        ctype = "application/json"
    elif kind == 6:
        body = base
    else:
        body = gzip.compress(base)[: rng.randrange(5, 200)]
    headers = {"content-type": ctype}
    if kind == 7 or rng.random() < 0.2:
        headers["content-encoding"] = rng.choice(["gzip", "br", "deflate", "gzip"])
        if kind != 7 and headers["content-encoding"] == "gzip" and rng.random() < 0.7:
            body = gzip.compress(body)
    return body, headers


@pytest.mark.figure("Bad input", "Fuzz the `serve` endpoint (random, mutated, truncated, gzip, deep JSON bodies)")
def test_fuzz_serve_endpoint(server_factory: Any, figure) -> None:
    """Proves: for random, byte-mutated, truncated, mis-typed, mis-encoded, deeply nested or structurally
    wrong bodies, ``serve`` answers with a 2xx/4xx (or 503 asking to retry), never a 5xx error or a dropped
    connection, and afterwards is still healthy and still stores a valid request."""
    srv = server_factory()
    req = _request(range(2))
    valid_pb, valid_json = req.SerializeToString(), encode_otlp_json(req)
    rng = random.Random(20261122)
    statuses: dict[int, int] = {}
    dropped = 0
    sent = 0
    deadline = time.monotonic() + FUZZ_SECONDS
    while time.monotonic() < deadline:
        body, headers = _mutations(valid_pb, valid_json, rng)
        sent += 1
        try:
            status, _ = _post(srv.traces_url, body, headers)
        except (ConnectionError, http.client.HTTPException, OSError):
            dropped += 1
            continue
        statuses[status] = statuses.get(status, 0) + 1
    errors = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    healthy = _get(srv.url, "/healthz")
    final, _ = _post(srv.traces_url, _request(range(100, 101)).SerializeToString(),
                     {"content-type": "application/x-protobuf"})
    figure.how_much = f"{sent:,} requests in {FUZZ_SECONDS:g} s"
    figure.lost = f"crashes (5xx other than 503, dropped connections): {errors + dropped}"
    figure.set(statuses={str(k): v for k, v in sorted(statuses.items())}, healthz_after=healthy,
               valid_after=final)
    assert errors == 0 and dropped == 0, statuses
    assert healthy == 200 and final == 200
