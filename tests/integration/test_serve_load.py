"""Load: 1,000,000 spans through ``otel-costattr serve`` over loopback, each counted out exactly once.

Set-up, all on 127.0.0.1 and bounded in time (the test fails rather than hangs past ``DEADLINE_S``):

* ``serve`` runs as its own process (the real CLI), so its peak RSS is its own (``VmHWM``);
* a counting sink (a stdlib HTTP server in this process) decodes every forwarded request and counts each
  span id in a bytearray: memory stays at 1 byte per span id, whatever the volume;
* ``CLIENTS`` threads post 1,000 requests of 1,000 protobuf spans each, one in four a gen_ai chat call
  (every other request gzip), over
  keep-alive connections, and back off for ``Retry-After`` seconds whenever ``serve`` answers 503.

Asserted: every span id arrives exactly once, each carrying ``gen_ai.cost.status``; every non-200 answer was a
503 with ``Retry-After`` that the client retried; the serve process's counters agree; its peak RSS is bounded.
The figures (spans/s, overload answers, peak RSS) are printed (``pytest -s``) and recorded as user properties.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.otlp_support import key_value

REQUESTS = 1_000
SPANS_PER_REQUEST = 1_000
TOTAL = REQUESTS * SPANS_PER_REQUEST
CLIENTS = 4
DEADLINE_S = 240.0
MAX_RSS_MIB = 1024
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"),
          ("openai", "no-such-model-xyz")]


LLM_EVERY = 4  # one span in four is an LLM call (a trace also has HTTP, DB and agent spans)


def _template() -> tuple[ExportTraceServiceRequest, list[int]]:
    """One request of SPANS_PER_REQUEST spans; ids are filled in per request.

    Returns the request and, per span, how many attributes it was sent with (serve appends after them).
    """
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(key_value("service.name", "load-client"))
    rs.resource.attributes.append(key_value("telemetry.sdk.language", "go"))
    ss = rs.scope_spans.add()
    ss.scope.name = "github.com/example/genai"
    sizes = []
    for j in range(SPANS_PER_REQUEST):
        sp = ss.spans.add()
        sp.kind = 3
        sp.parent_span_id = b"\x00\x00\x00\x00\x00\x00\x00\x01"
        sp.start_time_unix_nano = 1_760_000_000_000_000_000 + j
        sp.end_time_unix_nano = 1_760_000_001_000_000_000 + j
        attrs: dict[str, Any]
        if j % LLM_EVERY == 0:
            provider, model = MODELS[(j // LLM_EVERY) % len(MODELS)]
            sp.name = f"chat {model}"
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                     "gen_ai.request.model": model, "gen_ai.response.model": model,
                     "gen_ai.usage.input_tokens": 1000 + j, "gen_ai.usage.output_tokens": 200 + j % 50,
                     "gen_ai.usage.cache_read.input_tokens": 512, "server.address": "api.example.com",
                     "customer_id": f"c{j % 17}", "task_id": "load"}
        else:
            sp.name = "GET /orders/{id}"
            attrs = {"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 200,
                     "server.address": "orders.internal", "url.path": f"/orders/{j}", "customer_id": f"c{j % 17}"}
        for k, v in attrs.items():
            sp.attributes.append(key_value(k, v))
        sizes.append(len(attrs))
    return req, sizes


class _Sink(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.lock = threading.Lock()
        self.seen = bytearray(TOTAL + 1)  # count per span id (ids are 1..TOTAL): exact, 1 MB
        self.spans = 0
        self.requests = 0
        self.wrong_shape = 0  # LLM spans without gen_ai.cost.status where serve puts it, or other spans changed
        self.bad = 0
        self.sizes: list[int] = []

    def server_bind(self) -> None:  # skip HTTPServer's reverse-DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Sink

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest.FromString(body)
        ids: list[int] = []
        wrong = 0
        sizes = self.server.sizes
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    sid = int.from_bytes(sp.span_id, "big")
                    ids.append(sid)
                    kvs = sp.attributes
                    n = sizes[(sid - 1) % SPANS_PER_REQUEST]
                    if (sid - 1) % LLM_EVERY == 0:
                        # The first attribute serve appends is the status; the span's own come first.
                        wrong += len(kvs) <= n or kvs[n].key != "gen_ai.cost.status"
                    else:
                        wrong += len(kvs) != n
        sink = self.server
        with sink.lock:
            for i in ids:
                if 0 < i <= TOTAL:
                    sink.seen[i] = min(sink.seen[i] + 1, 255)
                else:
                    sink.bad += 1
            sink.spans += len(ids)
            sink.requests += 1
            sink.wrong_shape += wrong
        out = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def test_one_million_spans_through_serve(record_property: Any) -> None:
    template, sizes = _template()
    sink = _Sink()
    sink.sizes = sizes
    sink_thread = threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    sink_thread.start()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_costattr", "serve", "--port", str(port), "--forward",
         f"http://127.0.0.1:{sink.server_port}/v1/traces", "--queue-size", "64", "--workers", "2",
         "--retry-after", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    deadline = started + DEADLINE_S
    stop = threading.Event()
    try:
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < started + 30, "serve did not become healthy"
            time.sleep(0.05)

        template_bytes = template.SerializeToString()
        overloads = [0] * CLIENTS
        others: list[tuple[int, str]] = []

        def client(worker: int) -> int:
            """Post requests worker, worker + CLIENTS, ...; returns how many were accepted."""
            req = ExportTraceServiceRequest.FromString(template_bytes)
            spans = req.resource_spans[0].scope_spans[0].spans
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            done = 0
            for r in range(worker, REQUESTS, CLIENTS):
                trace_id = (r + 1).to_bytes(16, "big")
                for j, sp in enumerate(spans):
                    sp.trace_id = trace_id
                    sp.span_id = (r * SPANS_PER_REQUEST + j + 1).to_bytes(8, "big")
                body = req.SerializeToString()
                headers = {"Content-Type": "application/x-protobuf"}
                if r % 2:
                    body = gzip.compress(body, compresslevel=1)
                    headers["Content-Encoding"] = "gzip"
                while True:
                    if stop.is_set() or time.monotonic() > deadline:
                        return done
                    conn.request("POST", "/v1/traces", body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    if resp.status == 200:
                        assert not ExportTraceServiceResponse.FromString(payload).HasField("partial_success")
                        done += 1
                        break
                    retry_after = resp.getheader("Retry-After")
                    if resp.status == 503 and retry_after is not None:
                        overloads[worker] += 1
                        time.sleep(float(retry_after))
                        continue
                    others.append((resp.status, payload[:200].decode("latin-1")))
                    stop.set()
                    return done
            conn.close()
            return done

        with ThreadPoolExecutor(CLIENTS) as pool:
            accepted = sum(pool.map(client, range(CLIENTS)))
        sent_at = time.monotonic()
        assert not others, f"answers other than 200 and 503 + Retry-After: {others[:3]}"
        assert accepted == REQUESTS, f"only {accepted} requests accepted before the deadline"

        while sink.spans < TOTAL and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        stats = httpx.get(base + "/metrics", timeout=10).json()
        peak_rss = _vm_hwm_mib(proc.pid)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        sink.shutdown()
        sink.server_close()

    rate = TOTAL / elapsed
    overload_total = sum(overloads)
    report = (f"serve load: {TOTAL:,} spans in {elapsed:.1f} s = {rate:,.0f} spans/s end to end "
              f"(all sent after {sent_at - started:.1f} s); {overload_total} overload answers (503 + Retry-After), "
              f"all retried; serve peak RSS {peak_rss:.0f} MiB")
    print("\n" + report)
    for k, v in (("spans", TOTAL), ("seconds", round(elapsed, 1)), ("spans_per_s", round(rate)),
                 ("overload_answers", overload_total), ("peak_rss_mib", round(peak_rss))):
        record_property(k, v)

    assert proc.returncode == 0, err.decode()[-2000:]
    assert sink.spans == TOTAL, f"sink counted {sink.spans} spans, expected {TOTAL}"
    assert sink.bad == 0
    assert sink.seen.count(1) == TOTAL, "some span id arrived more than once or never"
    assert sink.wrong_shape == 0, f"{sink.wrong_shape} span(s) arrived without cost attributes, or changed"
    assert stats["spans_accepted"] == TOTAL and stats["spans_forwarded"] == TOTAL
    assert stats["forward_dropped_spans"] == 0 and stats["enrich_errors"] == 0
    assert stats["requests_overloaded"] == overload_total
    by_status = stats["enriched_by_status"]
    models = [MODELS[(j // LLM_EVERY) % len(MODELS)][1] for j in range(0, SPANS_PER_REQUEST, LLM_EVERY)]
    unpriced = models.count("no-such-model-xyz") * REQUESTS
    assert by_status == {"priced": len(models) * REQUESTS - unpriced, "unpriced": unpriced}
    assert peak_rss < MAX_RSS_MIB, f"serve peak RSS {peak_rss:.0f} MiB"
