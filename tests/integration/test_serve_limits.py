"""``otel-costattr serve``'s limits, each on its own, with small settings so each test takes a second or two: the
memory budget (503 + Retry-After before the body is read, connection still usable, reservation given back), the
connection cap, the header and body-progress timeouts, the keep-alive request limit, large bodies decoded off
the event loop, bounded logging, and the configuration checks. Real server, raw sockets on loopback.
"""

from __future__ import annotations

import http.client
import logging
import socket
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_costattr._errors import ConfigurationError
from otel_costattr._serve._app import _UPFRONT_FACTOR, CostServer, ServeConfig
from otel_costattr._serve._guard import LogLimiter
from otel_costattr.testing._otlp_receiver import OTLPReceiver
from tests.otlp_support import key_value

PB = "application/x-protobuf"
MINI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300}


def make_body(n_spans: int, trace: int = 1, pad: int = 0) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for j in range(n_spans):
        sp = ss.spans.add()
        sp.trace_id = trace.to_bytes(16, "big")
        sp.span_id = (j + 1).to_bytes(8, "big")
        sp.name = "chat"
        sp.start_time_unix_nano = 1_760_000_000_000_000_000
        sp.end_time_unix_nano = 1_760_000_001_000_000_000
        for k, v in MINI.items():
            sp.attributes.append(key_value(k, v))
        if pad:
            kv = sp.attributes.add()
            kv.key = "padding"
            kv.value.string_value = "x" * pad
    return req.SerializeToString()


def _connect(srv: CostServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def _post(conn: http.client.HTTPConnection, body: bytes, **kw: Any) -> http.client.HTTPResponse:
    conn.request("POST", "/v1/traces", body=body, headers={"content-type": PB}, **kw)
    resp = conn.getresponse()
    resp.read()
    return resp


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _closed_within(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the server closes ``s`` or ``seconds`` pass; returns (closed, what was read)."""
    s.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = s.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return True, got
        if not data:
            return True, got
        got += data
    return False, got


# ------------------------------------------------------------------------------------------- memory budget


def test_over_budget_is_refused_before_the_body_and_the_connection_stays_usable(make_server: Any) -> None:
    small = make_body(2)
    srv = make_server(max_body_bytes=1 << 20, max_memory=4 << 20, body_timeout=1.0, min_body_rate=1024)
    # a client that announces 300 kB and stalls holds 300 kB x the worst-case factor of the budget
    stalled = _connect(srv)
    stalled.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PB}\r\nContent-Length: 300000\r\n\r\n"
                    .encode() + b"\x00" * 1000)
    _wait(lambda: srv.budget.used >= 300_000 * _UPFRONT_FACTOR[PB])
    big = make_body(1, pad=200_000)  # 200 kB: does not fit next to the stalled one
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    refused = _post(conn, big)
    assert refused.status == 503 and refused.getheader("retry-after") == "1"
    assert srv.stats.get("requests_over_budget") == 1
    # same connection, a small request fits: the refused body was dropped, not held
    assert _post(conn, small).status == 200
    # the stalled upload is cut off by the body-progress timeout and its reservation given back
    closed, _ = _closed_within(stalled, 5)
    stalled.close()
    assert closed and srv.stats.get("connections_body_timeout") == 1
    assert _post(conn, big).status == 200
    conn.close()
    _wait(lambda: srv.stats.get("batches_processed") == 2)
    _wait(lambda: srv.budget.used == 0)  # every reservation came back
    assert srv.budget.peak <= 4 << 20


def test_chunked_body_is_reserved_as_it_arrives(make_server: Any) -> None:
    srv = make_server(max_body_bytes=1 << 20, max_memory=1 << 20)
    body = make_body(300)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("POST", "/v1/traces", body=iter([body[:1000], body[1000:]]), headers={"content-type": PB},
                 encode_chunked=True)
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    _wait(lambda: srv.budget.used == 0)
    # now hold most of the budget with a stalled announced upload: a chunked one is refused mid-way
    stalled = _connect(srv)
    stalled.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PB}\r\nContent-Length: 90000\r\n\r\n"
                    .encode())
    _wait(lambda: srv.budget.used > 0)
    conn.request("POST", "/v1/traces", body=iter([body[:100_000], body[100_000:]]), headers={"content-type": PB},
                 encode_chunked=True)
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 503 and resp.getheader("retry-after")
    stalled.close()
    conn.close()


def test_large_bodies_are_decoded_off_the_event_loop(make_server: Any, receiver: OTLPReceiver) -> None:
    srv = make_server()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    assert _post(conn, make_body(3)).status == 200
    assert srv.stats.get("requests_decoded_off_loop") == 0
    big = make_body(10_000, trace=2)
    assert len(big) > 1 << 20
    assert _post(conn, big).status == 200
    assert srv.stats.get("requests_decoded_off_loop") == 1
    conn.close()
    _wait(lambda: srv.stats.get("spans_forwarded") == 10_003)


# ----------------------------------------------------------------------------------------- connections


def test_connections_past_the_cap_get_503_and_are_counted(make_server: Any) -> None:
    srv = make_server(max_connections=4)
    held = [_connect(srv) for _ in range(4)]
    _wait(lambda: len(srv.app.connections) == 4)
    extra = _connect(srv)
    closed, got = _closed_within(extra, 5)
    extra.close()
    assert closed and got.startswith(b"HTTP/1.1 503") and b"retry-after" in got.lower()
    assert srv.stats.get("connections_refused") == 1
    for s in held:
        s.close()
    _wait(lambda: len(srv.app.connections) == 0)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    assert _post(conn, make_body(1)).status == 200
    conn.close()


def test_a_slow_header_is_cut_off_with_408(make_server: Any) -> None:
    srv = make_server(header_timeout=1.0)
    silent = _connect(srv)  # never sends anything
    slow = _connect(srv)
    slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    closed_slow, got = _closed_within(slow, 5)
    closed_silent, _ = _closed_within(silent, 5)
    slow.close()
    silent.close()
    assert closed_slow and closed_silent and time.monotonic() - t0 < 5
    assert got.startswith(b"HTTP/1.1 408")
    assert srv.stats.get("connections_header_timeout") == 2
    # a keep-alive connection that completes its requests is not cut off between them
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    for i in range(3):
        assert _post(conn, make_body(1, trace=10 + i)).status == 200
        time.sleep(0.6)
    assert srv.stats.get("connections_header_timeout") == 2
    conn.close()


def test_keep_alive_request_limit_answers_connection_close(make_server: Any) -> None:
    srv = make_server(keep_alive_max_requests=3)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    headers = [_post(conn, make_body(1, trace=20 + i)).getheader("connection") for i in range(3)]
    assert headers[:2] == [None, None] and headers[2] == "close"
    assert srv.stats.get("connections_closed_max_requests") == 1
    conn.close()


def test_metrics_report_the_limits(make_server: Any) -> None:
    srv = make_server(max_memory=64 << 20)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/metrics")
    import json

    snap = json.loads(conn.getresponse().read())
    conn.close()
    assert snap["memory_budget_bytes"] == 64 << 20 and snap["memory_reserved_bytes"] == 0
    for key in ("connections_open", "connections_refused", "connections_header_timeout", "connections_body_timeout",
                "requests_over_budget", "log_lines_suppressed", "pricing_resolve_evictions"):
        assert key in snap


# --------------------------------------------------------------------------------------------- logging


def test_log_limiter_lets_one_line_per_kind_through_without_traceback() -> None:
    log = logging.getLogger("test.serve.limits")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    limiter = LogLimiter(interval=60)
    log.addFilter(limiter)
    log.addHandler(handler)
    log.propagate = False
    try:
        for _ in range(1000):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                log.error("socket.accept() out of system resource", exc_info=True)
        log.warning("Invalid HTTP request received.")
        log.warning("Invalid HTTP request received.")
    finally:
        log.removeFilter(limiter)
        log.removeHandler(handler)
    assert len(records) == 2
    assert records[0].exc_info is None and "Too many open files" in records[0].getMessage()
    assert limiter.suppressed == 1000 - 1 + 1 and limiter.accept_errors == 1000


# -------------------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("kwargs", "fix"), [
    ({"max_memory": 1 << 20, "max_body_bytes": 2 << 20}, "--max-memory"),
    ({"max_memory": 0}, "--max-memory"),
    ({"max_connections": 0}, "--max-connections"),
    ({"header_timeout": 0}, "--header-timeout"),
    ({"body_timeout": -1}, "--body-timeout"),
    ({"min_body_rate": 0}, "--min-body-rate"),
    ({"keep_alive_max_requests": 0}, "--keep-alive-max-requests"),
])
def test_bad_limits_fail_fast_naming_the_option(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ConfigurationError, match=fix):
        ServeConfig(forward="http://127.0.0.1:9", **kwargs).validate()


def test_cli_sizes_accept_units_and_refuse_junk(tmp_path: Any) -> None:
    import subprocess

    run = subprocess.run([sys.executable, "-m", "otel_costattr", "serve", "--forward", "http://127.0.0.1:9",
                          "--max-memory", "lots"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--max-memory" in run.stderr and "Traceback" not in run.stderr
    from otel_costattr._serve._cli import _bytes

    assert _bytes("256MiB") == 256 << 20 and _bytes("1_000") == 1000 and _bytes("2 GB") == 2 * 10**9


def test_thread_safety_of_the_budget() -> None:
    from otel_costattr._serve._pipeline import MemoryBudget

    budget = MemoryBudget(10_000)

    def churn() -> None:
        for _ in range(2000):
            if budget.reserve(7):
                budget.release(7)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.used == 0
    assert budget.reserve(20_000)  # alone, a reservation larger than the budget is allowed
    assert not budget.reserve(1)  # ... and then nothing else fits
    assert budget.reserve(1, own=20_000)  # except for its own holder


def test_the_serve_command_raises_its_soft_open_file_limit() -> None:
    import subprocess

    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024)); "
            "from otel_costattr._serve._guard import raise_open_file_limit, fd_headroom_cap; "
            "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], fd_headroom_cap(5000))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["1024", "1024", str(1024 - 64)]


def test_price_book_caches_evict_safely_under_serves_concurrent_workers() -> None:
    """serve's workers price on two threads: past 4,096 distinct models the book's resolve cache evicts, and an
    eviction racing another thread's insert raised "dictionary changed size during iteration" (an enrich error
    for that whole batch). Switch threads as often as possible to make the race likely."""
    import otel_costattr as oc

    book = oc.PriceBook.load(env=False)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        barrier.wait()
        try:
            for i in range(8000):
                book.resolve(f"no-such-model-{k}-{i}", "openai")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:1]
    assert book.cache_stats()["resolve_evictions"] > 0
