"""Security: the trust boundary of attribution baggage, prompt content, and secrets.

(a) a client cannot claim another customer through inbound Baggage at a public edge;
(b) attribution Baggage never reaches third-party LLM endpoints (the real SDKs, their tracing on);
(c) prompt and completion content captured by instrumentations never reaches the ledger, the metrics or any
    report format unless explicitly enabled (``store_content=True``);
(e) no secret (API keys, Langfuse keys, OTLP auth headers) appears in any log record or exception message.

Each check has a control that shows the check can see what it looks for (the spoofed value does arrive when
the edge trusts inbound baggage; attribution does leak with the guard off; content is found when
``store_content=True``), so a pass is not a blind spot. (d), ``serve``'s token, is in ``test_serve.py``.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import traceback
import uuid
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import otel_costattr as oc
from otel_costattr import ConfigurationError
from otel_costattr._cli import main as cli
from otel_costattr._ledger._store import Ledger, LedgerSpanProcessor
from otel_costattr.attributes import DEFAULT_ATTRIBUTION_KEYS
from otel_costattr.testing import FakeVendorServer, OTLPReceiver, fake_headers
from otel_costattr.testing._common import REPLY_TEXT

from _helpers import LogCapture
from tests.integration.conftest import CostTelemetry

DEFAULT_TEXTMAP = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


@pytest.fixture(scope="module")
def vendor() -> Iterator[FakeVendorServer]:
    with FakeVendorServer(seed=7) as server:
        yield server


@pytest.fixture
def priced(vendor: FakeVendorServer) -> Iterator[CostTelemetry]:
    vendor.reset()
    session = CostTelemetry(vendor)
    try:
        yield session
    finally:
        session.close()


# ------------------------------------------------------------------------------ (a) inbound baggage spoofing

AUTHENTICATED = {"token-acme": "acme", "token-globex": "globex"}
SPOOFS = [
    "customer_id=victim",
    "customer_id=victim;property=1",
    "  customer_id  =  victim  ",
    "customer%5Fid=victim",
    "other=kept,customer_id=victim",
    "customer_id=victim,customer_id=victim-2",
    "task_id=victim-task,agent_run_id=victim-run,skill_id=victim-skill,user_id=victim-user",
    "customer_id=" + "victim" * 100,
    "customer_id=victim%2Cadmin",
    "CUSTOMER_ID=victim,customer_id=victim",
    "feature=victim,workload_type=victim,process_id=victim,process_run_id=victim,agent_id=victim",
]


class _Edge(BaseHTTPRequestHandler):
    """A public agent endpoint: the customer comes from the Authorization token, never from the client's
    Baggage. ``server.extract`` is the edge's way of reading inbound context."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        carrier = {k.lower(): self.headers.get_all(k) for k in set(self.headers.keys())}
        ctx = self.server.extract(carrier)  # type: ignore[attr-defined]
        tracer = self.server.tracer  # type: ignore[attr-defined]
        customer = AUTHENTICATED.get(self.headers.get("authorization", ""))
        with tracer.start_as_current_span("POST /agent", context=ctx, kind=SpanKind.SERVER):
            with oc.attribution(customer_id=customer):
                with tracer.start_as_current_span("chat", attributes={
                        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 100,
                        "gen_ai.usage.output_tokens": 10}):
                    pass
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve_edge(extract: Any) -> tuple[ThreadingHTTPServer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exporter)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Edge)
    server.extract = extract  # type: ignore[attr-defined]
    server.tracer = tp.get_tracer("edge")  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, exporter


def _attack(server: ThreadingHTTPServer) -> list[str]:
    """Send every spoof (one header, and split over two baggage headers), with and without a token."""
    trace_ids = []
    port = server.server_address[1]
    for i, spoof in enumerate(SPOOFS):
        for token in ("token-acme", None):
            for split in (False, True):
                trace_id = uuid.uuid4().hex
                trace_ids.append(trace_id)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.putrequest("POST", "/agent")
                conn.putheader("traceparent", f"00-{trace_id}-{i + 1:016x}-01")
                if split:
                    conn.putheader("baggage", "benign=1")
                    conn.putheader("baggage", spoof)
                else:
                    conn.putheader("baggage", spoof)
                if token:
                    conn.putheader("authorization", token)
                conn.putheader("content-length", "0")
                conn.endheaders()
                resp = conn.getresponse()
                resp.read()
                conn.close()
                assert resp.status == 204
    return trace_ids


def _victim_values(spans: list[Any]) -> list[tuple[str, str, Any]]:
    return [(s.name, k, v) for s in spans for k, v in (s.attributes or {}).items()
            if isinstance(v, str) and "victim" in v]


@pytest.mark.figure("Security", "(a) Spoofed inbound Baggage for another customer, at a public edge")
@pytest.mark.parametrize("edge", ["propagator(trust_inbound=False)", "strip_attribution(extract(...))"])
def test_spoofed_inbound_baggage_is_dropped_at_the_edge(edge: str, figure) -> None:
    """Proves: whatever a client puts in Baggage (encoded keys, properties, duplicates, padding, split headers,
    every attribution key), no span the edge creates carries it; the customer on the LLM span is the one the
    token authenticated, or none; the trace itself still continues from the client's traceparent. Control:
    an edge that trusts inbound baggage does let the spoof through, so the check would see a leak."""
    if edge.startswith("propagator"):
        untrusting = oc.propagator(trust_inbound=False)
        extract = untrusting.extract
    else:
        extract = lambda carrier: oc.strip_attribution(DEFAULT_TEXTMAP.extract(carrier))  # noqa: E731
    server, exporter = _serve_edge(extract)
    try:
        trace_ids = _attack(server)
    finally:
        server.shutdown()
        server.server_close()
    spans = exporter.get_finished_spans()
    leaked = _victim_values(spans)
    llm = [s for s in spans if s.name == "chat"]
    customers = {s.attributes.get("customer_id") for s in llm}
    continued = {format(s.context.trace_id, "032x") for s in spans if s.name == "POST /agent"}

    control_server, control_exporter = _serve_edge(oc.propagator().extract)  # trusts inbound: the leak exists
    try:
        _attack(control_server)
    finally:
        control_server.shutdown()
        control_server.server_close()
    control_leaks = len(_victim_values(control_exporter.get_finished_spans()))

    figure.what = f"(a) Spoofed inbound Baggage for another customer, edge uses {edge}"
    figure.how_much = f"{len(trace_ids)} requests ({len(SPOOFS)} spoof shapes x token/no token x one/two headers)"
    figure.lost = f"spoofed values on spans: {len(leaked)} (control, trusting edge: {control_leaks})"
    figure.set(spans=len(spans), customers_seen=sorted(str(c) for c in customers))
    assert not leaked, leaked[:5]
    assert customers <= {"acme", None}
    assert continued == set(trace_ids), "the edge must still continue the client's trace"
    assert control_leaks > 0, "the control found no leak: the check cannot see one"


# -------------------------------------------------------------------------------- (b) outbound to vendors

TAGS = {k: f"{k}-SECRET-{uuid.uuid4().hex[:8]}" for k in DEFAULT_ATTRIBUTION_KEYS}


def _leaks(vendor: FakeVendorServer) -> list[tuple[str, str, str]]:
    out = []
    for req in vendor.requests:
        for name, value in req.headers.items():
            for key, tag in TAGS.items():
                if tag in value or (name == "baggage" and key in value):
                    out.append((req.path, name, value[:120]))
    return out


def _vendor_calls(t: CostTelemetry, *, anthropic_only: bool = False) -> None:
    a = t.anthropic(sdk_tracing=True, propagation=True)
    a.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    with a.messages.stream(model="claude-haiku-4-5", max_tokens=50,
                           messages=[{"role": "user", "content": "hi"}]) as stream:
        for _ in stream:
            pass
    if anthropic_only:
        return
    o = t.openai()
    o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    o.responses.create(model="gpt-4o-mini", input="hi")
    o.embeddings.create(model="text-embedding-3-small", input="hi")


@pytest.mark.figure("Security", "(b) Attribution Baggage towards LLM vendors (real SDKs, tracing on)")
def test_attribution_never_reaches_llm_vendors(priced: CostTelemetry, vendor: FakeVendorServer,
                                              monkeypatch: pytest.MonkeyPatch, figure) -> None:
    """Proves: inside ``attribution(...)`` with every attribution key set, the Anthropic SDK (its own tracing
    and trace propagation on) and the OpenAI SDK under Traceloop's instrumentation send no attribution key or
    value in any header to the vendor, while the trace context still goes out. Control: with the outbound
    guard off, the Anthropic SDK does send the keys, so this check would see a leak."""
    propagate.set_global_textmap(DEFAULT_TEXTMAP)  # the SDK default an application starts with
    priced.instrument("traceloop-openai")
    with oc.attribution(**TAGS):
        _vendor_calls(priced)
    requests = vendor.requests
    leaks = _leaks(vendor)
    traceparents = sum(1 for r in requests if "traceparent" in r.headers)
    # The spans themselves do carry the attribution (that is the point): only the wire must not.
    tagged = sum(1 for s in priced.spans() if s.attributes.get("customer_id") == TAGS["customer_id"])

    vendor.reset()
    monkeypatch.setenv("OTEL_COSTATTR_OUTBOUND_ATTRIBUTION", "allow")
    propagate.set_global_textmap(DEFAULT_TEXTMAP)
    with oc.attribution(**TAGS):
        _vendor_calls(priced, anthropic_only=True)
    control = _leaks(vendor)

    figure.how_much = (f"{len(requests)} vendor requests (Anthropic create + stream with SDK tracing; OpenAI chat, "
                       f"responses, embeddings under Traceloop), {len(TAGS)} attribution keys set")
    figure.lost = f"attribution in vendor headers: {len(leaks)} (control, guard off: {len(control)})"
    figure.set(requests_with_traceparent=traceparents, spans_tagged=tagged, control_leak_example=control[:1])
    assert not leaks, leaks
    assert traceparents >= 2, "the Anthropic SDK should still propagate its trace context"
    assert tagged >= 5
    assert control, "the control found no leak: the check cannot see one"


# ---------------------------------------------------------------------------------- (c) prompt content

def _content_run(priced: CostTelemetry, tmp_path: Path, store_content: bool) -> dict[str, Any]:
    """Real SDKs under every emitter that can capture content, each with capture on: Traceloop (on by
    default), the official genai instrumentations (``SPAN_AND_EVENT``), and the Anthropic SDK's own tracing
    (``content_mode="content"``); priced into a ledger and the cost metrics. Returns every place content could
    end up."""
    marker = f"PROMPT-{uuid.uuid4().hex}"
    system = f"SYSTEM-{uuid.uuid4().hex}"
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    db = tmp_path / f"content-{store_content}.duckdb"
    ledger = LedgerSpanProcessor(db, book=priced.book, store_content=store_content, schedule_delay_millis=50)
    exporter = InMemorySpanExporter()
    cost = oc.CostSpanProcessor(SimpleSpanProcessor(exporter), ledger, book=priced.book, meter_provider=meters,
                                metric_keys=("workload_type", "feature"))
    tp = TracerProvider()
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(cost)
    priced.provider = tp  # instrumentors below report to this provider
    priced.instrument("traceloop-openai", "traceloop-anthropic", "genai-openai", "genai-anthropic")
    sdk_traced = priced.anthropic(sdk_tracing=False, open_telemetry={"tracer_provider": tp,
                                                                     "traces": {"content_mode": "content"}})
    with oc.attribution(customer_id="acme", feature="support", workload_type="chat"):
        priced.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "system", "content": system}, {"role": "user", "content": marker}],
            extra_headers=fake_headers(usage={"input": 1200, "output": 300}))
        for client in (priced.anthropic(), sdk_traced):
            client.messages.create(model="claude-haiku-4-5", max_tokens=100, system=system,
                                   messages=[{"role": "user", "content": marker}])
    tp.force_flush()
    metrics = json.loads(reader.get_metrics_data().to_json())
    tp.shutdown()
    meters.shutdown()
    span_text = json.dumps([dict(s.attributes or {}) for s in exporter.get_finished_spans()], default=str)
    led = Ledger(db, read_only=True)
    try:
        rows = repr(led.query("SELECT * FROM spans"))
    finally:
        led.close()
    # Every byte under the ledger directory, and (segments are zstd-compressed) every segment's decoded values and
    # key-value metadata: content hidden anywhere in the files shows up here.
    import pyarrow.parquet as pq
    files = [p for p in Path(db).rglob("*") if p.is_file()]
    file_bytes = b"".join(p.read_bytes() for p in files) + b"".join(
        repr(pq.read_table(p).to_pylist()).encode() + repr(pq.read_metadata(p).metadata).encode()
        for p in files if p.suffix == ".parquet")
    reports = {}
    for fmt in ("table", "csv", "json", "html"):
        for by in ("customer_id", "model", "gen_ai.input.messages,gen_ai.output.messages"):
            out = tmp_path / f"report-{store_content}-{fmt}-{by[:10]}.{fmt}"
            assert cli(["report", "--db", str(db), "--format", fmt, "--by", by, "--out", str(out)]) == 0
            reports[f"{fmt} --by {by}"] = out.read_text()
    return {"markers": (marker, system, REPLY_TEXT), "spans": span_text, "ledger_rows": rows,
            "ledger_file": file_bytes, "metrics": json.dumps(metrics), "reports": reports}


def _found(run: dict[str, Any]) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for m in run["markers"]:
        where = []
        if m in run["ledger_rows"]:
            where.append("ledger rows")
        if m.encode() in run["ledger_file"]:
            where.append("ledger file bytes")
        if m in run["metrics"]:
            where.append("metrics")
        where += [f"report {k}" for k, text in run["reports"].items() if m in text]
        hits[m[:20]] = where
    return hits


@pytest.mark.figure("Security", "(c) Prompt/completion content captured by instrumentations (Traceloop, genai "
                    "SPAN_AND_EVENT, Anthropic SDK content mode), kept out of ledger, metrics and reports")
def test_prompt_content_stays_out_of_ledger_metrics_and_reports(priced: CostTelemetry, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, figure) -> None:
    """Proves: the instrumentations capture the prompt, system prompt and completion on the spans (the
    exported trace has them), yet none of them is in the ledger's rows or its file bytes, in any cost metric data point, or in
    any report format (table, CSV, JSON, HTML; even grouped by the content attributes). Control: with
    ``Ledger(store_content=True)`` the same search finds the prompt in the ledger."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    run = _content_run(priced, tmp_path, store_content=False)
    assert all(m in run["spans"] for m in run["markers"][:2]), "Traceloop did not capture content: no test"
    hits = _found(run)
    priced.close()  # undo the instrumentors before the control run instruments again
    control_session = CostTelemetry(priced.vendor)
    try:
        control = _found(_content_run(control_session, tmp_path, store_content=True))
    finally:
        control_session.close()
    places = 3 + len(run["reports"])
    figure.how_much = (f"3 content strings (prompt, system prompt, completion) x {places} places (ledger rows, "
                       f"ledger file bytes, metric points, {len(run['reports'])} reports)")
    leaked = {m: w for m, w in hits.items() if w}
    figure.lost = f"content found: {sum(len(w) for w in hits.values())} (control, store_content=True: " \
                  f"{sum(len(w) for w in control.values())})"
    figure.set(control_found=control, content_on_exported_spans=run["spans"].count(run["markers"][0]))
    assert not leaked, leaked
    assert any("ledger rows" in w for w in control.values()), control


# ----------------------------------------------------------------------------------------------- (e) secrets

SECRET_ID = uuid.uuid4().hex[:12]
LF_PK = f"pk-lf-{SECRET_ID}-public"
LF_SK = f"sk-lf-{SECRET_ID}-secret"
OTLP_TOKEN = f"otlp-token-{SECRET_ID}"
OPENAI_KEY = f"sk-proj-{SECRET_ID}-openai"
ANTHROPIC_KEY = f"sk-ant-{SECRET_ID}-anthropic"
SECRETS = [LF_PK, LF_SK, OTLP_TOKEN, OPENAI_KEY, ANTHROPIC_KEY,
           base64.b64encode(f"{LF_PK}:{LF_SK}".encode()).decode(), SECRET_ID]


class _Seen:
    """Everything a secret could leak into: exception texts (message, repr, traceback), warnings."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.scenarios: list[str] = []

    def exception(self, exc: BaseException) -> None:
        self.texts.append(str(exc))
        self.texts.append(repr(exc))
        self.texts.append("".join(traceback.format_exception(exc)))


def _configure_failures(seen: _Seen, rcv: OTLPReceiver) -> None:
    """Bad and partial Langfuse / OTLP settings: each must fail at start-up without echoing a secret."""
    cases = {
        "langfuse: secret key only": dict(env={"LANGFUSE_SECRET_KEY": LF_SK}),
        "langfuse: public key only": dict(env={"LANGFUSE_PUBLIC_KEY": LF_PK}),
        "langfuse: keys swapped": dict(env={"LANGFUSE_PUBLIC_KEY": LF_SK, "LANGFUSE_SECRET_KEY": LF_PK}),
        "langfuse: host not a URL (secret pasted)": dict(env={"LANGFUSE_PUBLIC_KEY": LF_PK, "LANGFUSE_SECRET_KEY":
                                                               LF_SK, "LANGFUSE_HOST": LF_SK}),
        "langfuse: mapping, secret only": dict(langfuse={"secret_key": LF_SK}),
        "otlp: header without '='": dict(env={"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.endpoint,
                                             "OTEL_EXPORTER_OTLP_HEADERS": f"authorization Bearer {OTLP_TOKEN}"}),
        "otlp: endpoint not a URL (token pasted)": dict(otlp_endpoint=f"Bearer {OTLP_TOKEN}"),
    }
    for name, kwargs in cases.items():
        seen.scenarios.append(f"configure: {name}")
        with pytest.raises(ConfigurationError) as info:
            oc.configure(tracer_provider=TracerProvider(), set_global=False, instrument_threading=False,
                         **{"env": {}, **kwargs})
        seen.exception(info.value)


def _exporters_failing(seen: _Seen, rcv: OTLPReceiver, tmp_path: Path) -> None:
    """Working configuration, failing backends: 401 (wrong credentials), 500, connection refused."""
    pipe = oc.configure(
        tracer_provider=TracerProvider(), set_global=False, instrument_threading=False, ledger=tmp_path / "s.duckdb",
        otlp_endpoint=rcv.endpoint, otlp_headers={"authorization": f"Bearer {OTLP_TOKEN}"},
        langfuse={"host": rcv.endpoint, "public_key": LF_PK, "secret_key": LF_SK}, env={})
    tracer = pipe.tracer_provider.get_tracer("app")

    def batch() -> None:
        with oc.attribution(customer_id="acme"):
            with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat",
                                                                  "gen_ai.request.model": "gpt-4o-mini",
                                                                  "gen_ai.usage.input_tokens": 10}):
                pass
        pipe.force_flush()

    rcv.require_header("authorization", "Bearer something-else")
    seen.scenarios.append("exporters: backend answers 401 to both OTLP and Langfuse credentials")
    batch()
    rcv.reset_faults()
    rcv.fail_next(2, 500)
    seen.scenarios.append("exporters: backend answers 500")
    batch()
    rcv.set_down(True)
    seen.scenarios.append("exporters: backend down (connection refused, retries)")
    batch()
    rcv.set_down(False)
    pipe.shutdown()


def _sdks_with_bad_keys(seen: _Seen, vendor: FakeVendorServer, tmp_path: Path) -> None:
    """The real SDKs with a rejected API key, under instrumentation, priced into a ledger."""
    t = CostTelemetry(vendor)
    try:
        ledger = LedgerSpanProcessor(tmp_path / "bad-key.duckdb", book=t.book)
        t.provider.add_span_processor(oc.CostSpanProcessor(ledger, book=t.book))
        t.instrument("traceloop-openai", "traceloop-anthropic")
        reject = fake_headers(scenario="error-401")
        for name, call in {
            "openai: 401 for a bad API key": lambda: t.openai(api_key=OPENAI_KEY, max_retries=0)
            .chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                     extra_headers=reject),
            "anthropic: 401 for a bad API key": lambda: t.anthropic(api_key=ANTHROPIC_KEY, max_retries=0)
            .messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                             extra_headers=reject),
        }.items():
            seen.scenarios.append(f"sdk: {name}")
            with oc.attribution(customer_id="acme"):
                with pytest.raises((openai.AuthenticationError, anthropic.AuthenticationError)) as info:
                    call()
            seen.exception(info.value)
        t.provider.force_flush()
        seen.texts.append(json.dumps([dict(s.attributes or {}) for s in t.spans()], default=str))
        ledger.shutdown()
        led = Ledger(tmp_path / "bad-key.duckdb", read_only=True)
        seen.texts.append(repr(led.query("SELECT * FROM spans")))
        led.close()
    finally:
        t.close()


@pytest.mark.figure("Security", "(e) Secrets in logs and error messages (bad Langfuse/OTLP settings, failing "
                    "exporters, SDKs with a bad key)")
def test_no_secret_in_logs_or_error_messages(vendor: FakeVendorServer, tmp_path: Path, figure) -> None:
    """Proves: with every logger at DEBUG, no API key, Langfuse key (alone or as the Basic credential) or
    OTLP token appears in any log record, exception message, repr or traceback, warning, exported span or
    ledger row, across bad configuration, exporters rejected or refused by their backend, and SDK calls
    rejected for a bad key."""
    seen = _Seen()
    vendor.reset()
    with LogCapture() as logs, warnings.catch_warnings(record=True) as caught, OTLPReceiver() as rcv:
        warnings.simplefilter("always")
        _configure_failures(seen, rcv)
        _exporters_failing(seen, rcv, tmp_path)
        _sdks_with_bad_keys(seen, vendor, tmp_path)
    texts = logs.texts() + seen.texts + [str(w.message) for w in caught]
    # The secrets did travel where they must (the backend saw the credentials): the search is not blind.
    sent = json.dumps(rcv.headers())
    assert OTLP_TOKEN in sent and base64.b64encode(f"{LF_PK}:{LF_SK}".encode()).decode() in sent
    found = [(s, t[:200]) for t in texts for s in SECRETS if s in t]
    by_logger = sorted({r.name for r in logs.records})
    figure.how_much = (f"{len(seen.scenarios)} scenarios; {len(logs.records):,} log records (DEBUG, "
                       f"{len(by_logger)} loggers), {len(seen.texts)} exception texts, {len(caught)} warnings")
    figure.lost = f"secrets found: {len(found)}"
    figure.set(scenarios=seen.scenarios, loggers=by_logger)
    assert not found, found[:5]
