"""A local fake LLM vendor speaking enough of the OpenAI, Anthropic, Bedrock Runtime and Gemini HTTP APIs for
the real SDKs.

Standard library only: a :class:`http.server.ThreadingHTTPServer` on 127.0.0.1 in a background
thread, HTTP/1.1 keep-alive (the SDKs pool connections) and ``TCP_NODELAY`` (small replies must
not wait for delayed ACKs), so a few hundred calls take well under a second of server time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from . import _anthropic, _bedrock, _gemini, _openai
from ._common import DEFAULT_MODEL_MAP, FakeReply, IdFactory, Plan
from ._usage import (
    MODEL_HEADER,
    REQUEST_KEY_HEADER,
    SCENARIO_HEADER,
    SERVICE_TIER_HEADER,
    USAGE_HEADER,
    Usage,
)

__all__ = ["DEFAULT_USAGE", "FakeRequest", "FakeVendorServer", "RecordedRequest", "RequestHook"]

logger = logging.getLogger(__name__)

DEFAULT_USAGE = Usage(input=120, output=40)
"""The usage a :class:`FakeVendorServer` reports when neither its constructor nor a header says otherwise."""

_RETRIEVE_PATH = re.compile(r"^/v1/responses/([^/]+)$")
_ERROR_SCENARIO = re.compile(r"^error-([45]\d\d)$")
_FLAKY_SCENARIO = re.compile(r"^flaky(?:-(\d+))?$")
_PLAIN_SCENARIOS = frozenset({"malformed-tool", "no-usage"})
# Bedrock Runtime (boto3 "bedrock-runtime" with endpoint_url=...) and Gemini (google-genai with base_url=...):
# the model is in the path.
_BEDROCK_PATH = re.compile(r"^/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)$")
_GEMINI_PATH = re.compile(r"^/(?:v1|v1beta|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_BEDROCK_ENDPOINTS = {"converse": "bedrock.converse", "converse-stream": "bedrock.converse_stream",
                      "invoke": "bedrock.invoke_model", "invoke-with-response-stream": "bedrock.invoke_model_stream"}
_GEMINI_ENDPOINTS = {"generateContent": "gemini.generate_content",
                     "streamGenerateContent": "gemini.stream_generate_content"}

# (method, path) -> (vendor, endpoint); the retrieve path is matched separately.
_ROUTES: Mapping[tuple[str, str], tuple[str, str]] = {
    ("POST", "/v1/chat/completions"): ("openai", "chat.completions"),
    ("POST", "/v1/responses"): ("openai", "responses"),
    ("POST", "/v1/embeddings"): ("openai", "embeddings"),
    ("POST", "/v1/messages"): ("anthropic", "messages"),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the server received it, and the status it answered with.

    ``headers`` has lower-cased names (repeated headers joined with ``", "``); ``body`` is the
    parsed JSON body, or ``None`` when there was none or it was not JSON. ``attempt`` counts the
    requests seen so far for the same logical request (see :class:`FakeVendorServer`), from 1.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    endpoint: str | None
    attempt: int
    status: int


@dataclass(frozen=True)
class FakeRequest:
    """What an :meth:`FakeVendorServer.on_request` hook sees about one request.

    ``endpoint`` is one of ``chat.completions``, ``responses``, ``responses.retrieve``,
    ``embeddings``, ``messages``, ``bedrock.converse``, ``bedrock.converse_stream``,
    ``bedrock.invoke_model``, ``bedrock.invoke_model_stream``, ``gemini.generate_content``,
    ``gemini.stream_generate_content``, or ``None`` for a path the fake does not serve. ``usage`` is the
    server default overlaid with the ``x-fake-usage`` header, ``model`` the response model the
    fake would report, ``scenarios`` the parsed ``x-fake-scenario`` names, in order.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    vendor: str | None
    endpoint: str | None
    attempt: int
    usage: Usage
    model: str
    scenarios: tuple[str, ...] = field(default=())


RequestHook = Callable[[FakeRequest], FakeReply | Usage | None]
"""A hook returns a :class:`FakeReply` (sent verbatim), a :class:`Usage` (replaces the request's
usage, then the normal reply is built) or ``None`` (normal handling)."""


class _ControlError(ValueError):
    """A control header that cannot be honoured; answered with HTTP 400 in the vendor's format."""


class FakeVendorServer:
    """A fake OpenAI + Anthropic + Bedrock Runtime + Gemini HTTP API on ``127.0.0.1`` for tests and the demo.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Point the SDKs at
    :attr:`openai_base_url` (``OpenAI(base_url=...)``), :attr:`anthropic_base_url`
    (``Anthropic(base_url=...)``), :attr:`bedrock_endpoint_url` (``boto3.client("bedrock-runtime",
    endpoint_url=...)``) and :attr:`gemini_base_url` (``genai.Client(http_options={"base_url": ...})``);
    any API key or AWS credentials are accepted.

    Served: OpenAI ``POST /v1/chat/completions``, ``POST /v1/responses``, ``GET /v1/responses/{id}``,
    ``POST /v1/embeddings``; Anthropic ``POST /v1/messages``; Bedrock Runtime ``POST
    /model/{modelId}/converse``, ``/converse-stream``, ``/invoke`` and ``/invoke-with-response-stream``
    (Anthropic bodies); Gemini ``POST /v1beta/models/{model}:generateContent`` and
    ``:streamGenerateContent``; each streaming where the real API streams. Anything else is a 404 in the
    vendor's error format.

    Per-request control is by headers (see :func:`fake_headers`): ``x-fake-usage`` overlays the
    keys it names on ``default_usage``; ``x-fake-model`` sets the response model (otherwise
    ``model_map`` and a built-in alias table map the requested model to a dated id, and other ids
    are echoed); ``x-fake-service-tier`` sets the reported tier; ``x-fake-scenario`` takes
    comma-separated scenarios:

    * ``error-NNN`` (400-599): every attempt fails with that status and a vendor-format error body.
    * ``flaky`` / ``flaky-N``: the first 1 / N attempts of a logical request fail with HTTP 500,
      later attempts succeed. A logical request is named by ``x-fake-request-key``, else by a hash
      of method, path and body, which SDK retries keep; so two identical calls are one logical
      request unless given different keys.
    * ``malformed-tool``: the answer is a tool call whose arguments are invalid JSON.
    * ``no-usage``: the usage object is left out (and no usage chunk is streamed).

    The fake's own 429 and 5xx replies carry ``retry-after-ms: retry_after_ms``, so the SDKs'
    automatic retries wait milliseconds, not their default backoff of about a second
    (``retry_after_ms=0`` leaves the header out). A bad control header (unknown usage key,
    unknown scenario) is answered with HTTP 400 naming the problem. ``default_usage`` is a
    public attribute and may be reassigned at any time.

    Every request is recorded (:attr:`requests`), up to ``max_recorded``; older ones are dropped
    and counted in :attr:`dropped_requests`. ``seed`` makes the sequence of generated ids
    reproducible. ``stream_delay`` (seconds) is slept between SSE events, to give streams a
    measurable time to first chunk. ``anthropic_cumulative_delta_usage`` repeats the input and
    cache counts in Anthropic ``message_delta`` events, as the current API does.
    """

    def __init__(
        self,
        *,
        default_usage: Usage | None = None,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model_map: Mapping[str, str] | None = None,
        retry_after_ms: int = 5,
        stream_delay: float = 0.0,
        anthropic_cumulative_delta_usage: bool = True,
        max_recorded: int = 1000,
        max_stored_responses: int = 1000,
        max_tracked_requests: int = 10_000,
    ) -> None:
        if max_recorded < 1 or max_stored_responses < 1 or max_tracked_requests < 1:
            raise ValueError("max_recorded, max_stored_responses and max_tracked_requests must be >= 1")
        if retry_after_ms < 0 or stream_delay < 0:
            raise ValueError("retry_after_ms and stream_delay must be >= 0")
        self.default_usage = DEFAULT_USAGE if default_usage is None else default_usage
        self._host, self._port = host, port
        self._model_map = {**DEFAULT_MODEL_MAP, **(model_map or {})}
        self._retry_after_ms = retry_after_ms
        self._stream_delay = stream_delay
        self._cumulative_delta_usage = anthropic_cumulative_delta_usage
        self._ids = IdFactory(seed)
        self._lock = threading.Lock()
        self._records: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._dropped = 0
        self._attempts: OrderedDict[str, int] = OrderedDict()
        self._max_tracked = max_tracked_requests
        self._stored: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max_stored = max_stored_responses
        self._hook: RequestHook | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeVendorServer:
        """Bind and serve in a daemon thread; returns ``self``. A stopped server cannot restart."""
        if self._stopped:
            raise RuntimeError("FakeVendorServer cannot be restarted; create a new one")
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-vendor:{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("fake vendor listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close open client connections and join the threads. Idempotent."""
        self._stopped = True
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.debug("fake vendor stopped")

    def __enter__(self) -> FakeVendorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is started and not yet stopped."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound TCP port (ephemeral unless one was given)."""
        return self._require().server_address[1]

    @property
    def url(self) -> str:
        """``http://host:port`` with no trailing slash."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``: :attr:`url` + ``/v1``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic`` (the SDK adds ``/v1/messages`` itself)."""
        return self.url

    @property
    def bedrock_endpoint_url(self) -> str:
        """The ``endpoint_url`` for ``boto3.client("bedrock-runtime", ...)``: :attr:`url`."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """The ``base_url`` for ``google.genai.Client(http_options=...)``: :attr:`url`."""
        return self.url

    def _require(self) -> _HTTPServer:
        if self._httpd is None:
            raise RuntimeError("FakeVendorServer is not running; call start() or use it as a context manager")
        return self._httpd

    # -- inspection and control ------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def dropped_requests(self) -> int:
        """How many recorded requests were discarded because the record was full."""
        with self._lock:
            return self._dropped

    def clear_requests(self) -> None:
        """Forget the recorded requests and reset :attr:`dropped_requests`."""
        with self._lock:
            self._records.clear()
            self._dropped = 0

    def reset(self) -> None:
        """:meth:`clear_requests`, and forget attempt counts (``flaky``) and stored Responses."""
        with self._lock:
            self._records.clear()
            self._dropped = 0
            self._attempts.clear()
            self._stored.clear()

    def on_request(self, hook: RequestHook | None) -> RequestHook | None:
        """Install ``hook`` (replacing any previous one; ``None`` removes it) and return it.

        The hook runs on a server thread for every request, before scenarios are applied; see
        :data:`RequestHook` for what it may return. A returned :class:`FakeReply` is sent as is
        (add ``retry-after-ms`` yourself if the SDK should retry it quickly). If the hook raises,
        the client gets HTTP 500 and the exception is logged. Usable as a decorator.
        """
        self._hook = hook
        return hook

    # -- request handling (server threads) -------------------------------------------------

    def _handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> FakeReply:
        path, _, query = target.partition("?")
        route = _ROUTES.get((method, path))
        retrieve = _RETRIEVE_PATH.match(path) if method == "GET" else None
        bedrock = _BEDROCK_PATH.match(path) if method == "POST" else None
        gemini = _GEMINI_PATH.match(path) if method == "POST" else None
        path_model = None
        if route is not None:
            vendor, endpoint = route
        elif retrieve is not None:
            vendor, endpoint = "openai", "responses.retrieve"
        elif bedrock is not None:
            vendor, endpoint, path_model = "bedrock", _BEDROCK_ENDPOINTS[bedrock.group(2)], unquote(bedrock.group(1))
        elif gemini is not None:
            vendor, endpoint, path_model = "gemini", _GEMINI_ENDPOINTS[gemini.group(2)], unquote(gemini.group(1))
        elif path.startswith("/model/"):
            vendor, endpoint = "bedrock", None
        elif path.startswith(("/v1beta/", "/v1alpha/")):
            vendor, endpoint = "gemini", None
        else:
            anthropic_like = path.startswith("/v1/messages") or "anthropic-version" in headers
            vendor, endpoint = ("anthropic" if anthropic_like else "openai"), None
        if vendor == "bedrock":
            request_id = "-".join(self._ids.hex(n) for n in (8, 4, 4, 4, 12))
        else:
            request_id = "req_" + (self._ids.token(24) if vendor == "anthropic" else self._ids.hex(32))

        body: Any = None
        body_error = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                body_error = f"Request body is not valid JSON: {exc}"
        key = (
            headers.get(REQUEST_KEY_HEADER)
            or hashlib.sha256(method.encode() + b"\0" + path.encode() + b"\0" + raw).hexdigest()
        )
        with self._lock:
            attempt = self._attempts.pop(key, 0) + 1
            self._attempts[key] = attempt
            if len(self._attempts) > self._max_tracked:
                self._attempts.popitem(last=False)

        try:
            reply = self._answer(method, path, query, headers, body, body_error, vendor, endpoint, attempt, request_id,
                                 path_model)
        except _ControlError as exc:
            reply = self._error(vendor, 400, request_id, str(exc))
        except Exception:  # a bug here or in a user hook must reach the client as an error, not a hang
            logger.exception("fake vendor failed on %s %s", method, path)
            reply = self._error(vendor, 500, request_id, None)
        id_header = {"anthropic": "request-id", "bedrock": "x-amzn-RequestId"}.get(vendor, "x-request-id")
        reply = FakeReply(reply.status, reply.body, {id_header: request_id, **reply.headers}, reply.events)

        record = RecordedRequest(method, path, query, dict(headers), body, endpoint, attempt, reply.status)
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self._dropped += 1
            self._records.append(record)
        logger.debug("fake vendor %s %s attempt=%d -> %d", method, path, attempt, reply.status)
        return reply

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: Any,
        body_error: str | None,
        vendor: str,
        endpoint: str | None,
        attempt: int,
        request_id: str,
        path_model: str | None = None,
    ) -> FakeReply:
        scenarios = _parse_scenarios(headers.get(SCENARIO_HEADER, ""))
        try:
            usage = self.default_usage.overlay(Usage.parse(headers.get(USAGE_HEADER, "")))
        except ValueError as exc:
            raise _ControlError(str(exc)) from None
        mapping = body if isinstance(body, dict) else {}
        requested_model = path_model or str(mapping.get("model") or "")
        if vendor == "bedrock":
            # Bedrock model ids carry a geo prefix and a version (us.anthropic.claude-...-v1:0); replies name the
            # model as the vendor does (Anthropic bodies) or not at all (Converse).
            requested_model = _bedrock_base_model(requested_model)
        model = headers.get(MODEL_HEADER) or self._model_map.get(requested_model, requested_model)

        if self._hook is not None:
            decision = self._hook(
                FakeRequest(
                    method, path, query, dict(headers), body, vendor, endpoint, attempt, usage, model, scenarios
                )
            )
            if isinstance(decision, FakeReply):
                return decision
            if isinstance(decision, Usage):
                usage = decision
            elif decision is not None:
                raise TypeError(
                    f"on_request hook returned {type(decision).__name__}; expected FakeReply, Usage or None"
                )

        if body_error is not None:
            raise _ControlError(body_error)
        if endpoint is None:
            return self._error(vendor, 404, request_id, f"No fake for {method} {path}.")
        for scenario in scenarios:
            error = _ERROR_SCENARIO.match(scenario)
            if error:
                return self._error(vendor, int(error.group(1)), request_id, None)
        for scenario in scenarios:
            flaky = _FLAKY_SCENARIO.match(scenario)
            if flaky and attempt <= int(flaky.group(1) or 1):
                return self._error(vendor, 500, request_id, f"Flaky failure on attempt {attempt} (fake vendor).")

        if endpoint == "responses.retrieve":
            response_id = unquote(path.rsplit("/", 1)[1])
            with self._lock:
                stored = self._stored.get(response_id)
            if stored is None:
                return self._error(vendor, 404, request_id, f"Response with id '{response_id}' not found.")
            return FakeReply(body=stored)

        plan = Plan(
            body=mapping,
            model=model or "unknown-model",
            usage=None if "no-usage" in scenarios else usage.resolved(),
            malformed_tool="malformed-tool" in scenarios,
            service_tier=headers.get(SERVICE_TIER_HEADER),
            ids=self._ids,
        )
        if endpoint == "chat.completions":
            return _openai.chat_completion(plan)
        if endpoint == "embeddings":
            return _openai.embeddings(plan)
        if endpoint == "messages":
            return _anthropic.messages_create(plan, cumulative_delta_usage=self._cumulative_delta_usage)
        if endpoint in ("bedrock.converse", "bedrock.converse_stream"):
            return _bedrock.converse(plan, stream=endpoint == "bedrock.converse_stream")
        if endpoint in ("bedrock.invoke_model", "bedrock.invoke_model_stream"):
            return _bedrock.invoke_model(plan, stream=endpoint == "bedrock.invoke_model_stream")
        if endpoint in ("gemini.generate_content", "gemini.stream_generate_content"):
            return _gemini.generate_content(plan, stream=endpoint == "gemini.stream_generate_content")
        reply, response = _openai.responses_create(plan)
        if response.get("store", True):
            with self._lock:
                self._stored[response["id"]] = response
                if len(self._stored) > self._max_stored:
                    self._stored.popitem(last=False)
        return reply

    def _error(self, vendor: str, status: int, request_id: str, message: str | None) -> FakeReply:
        # Retryable statuses get a tiny retry-after-ms, which both SDKs prefer over their backoff.
        retryable = status == 429 or status >= 500
        headers = {"retry-after-ms": str(self._retry_after_ms)} if retryable and self._retry_after_ms > 0 else {}
        if vendor == "anthropic":
            return _anthropic.error_reply(status, request_id, message, headers)
        if vendor == "bedrock":
            return _bedrock.error_reply(status, message, headers)
        if vendor == "gemini":
            return _gemini.error_reply(status, message, headers)
        return _openai.error_reply(status, message, headers)


def _bedrock_base_model(model_id: str) -> str:
    """``us.anthropic.claude-haiku-4-5-20251001-v1:0`` -> ``claude-haiku-4-5-20251001``; other ids unchanged
    apart from the geo prefix and ``-vN:M`` version."""
    name = model_id
    head, dot, rest = name.partition(".")
    if dot and head in ("us", "eu", "apac", "global", "jp", "au", "ca", "us-gov"):
        name = rest
    name = re.sub(r"-v\d+:\d+$", "", name)
    return name.split(".", 1)[1] if name.startswith("anthropic.") else name


def _parse_scenarios(text: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for name in names:
        if name not in _PLAIN_SCENARIOS and not _ERROR_SCENARIO.match(name) and not _FLAKY_SCENARIO.match(name):
            known = "error-NNN, flaky, flaky-N, malformed-tool, no-usage"
            raise _ControlError(f"{SCENARIO_HEADER}: unknown scenario {name!r}; known: {known}")
    return names


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that keeps a connection open must not block interpreter exit
    request_queue_size = 128  # the demo opens many pooled connections at once

    def __init__(self, address: tuple[str, int], fake: FakeVendorServer) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, active: bool) -> None:
        with self._connections_lock:
            if active:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Unblock handler threads parked on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a library logs instead.
        logger.debug("fake vendor connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDKs reuse pooled connections
    disable_nagle_algorithm = True
    timeout = 60  # idle keep-alive connections are closed after this long
    server: _HTTPServer
    server_version = "fake-vendor"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raw = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        reply = self.server.fake._handle(self.command, self.path, headers, raw)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            # The client closed early (e.g. a stream it stopped reading); nothing left to do.
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: FakeReply) -> None:
        if reply.events is not None:
            parts = [_sse(event, data) for event, data in reply.events]
            content_type = "text/event-stream; charset=utf-8"
        elif isinstance(reply.body, bytes):  # already framed (Bedrock's event stream)
            parts = [reply.body]
            content_type = "application/octet-stream"
        else:
            payload = b"" if reply.body is None else json.dumps(reply.body, separators=(",", ":")).encode()
            parts = [payload]
            content_type = "application/json"
        self.send_response(reply.status)
        header_names = {name.lower() for name in reply.headers}
        if "content-type" not in header_names:
            self.send_header("content-type", content_type)
        for name, value in reply.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(sum(len(part) for part in parts)))
        self.end_headers()
        delay = self.server.fake._stream_delay if reply.events is not None else 0.0
        if delay <= 0:
            self.wfile.write(b"".join(parts))
            return
        for index, part in enumerate(parts):
            if index:
                time.sleep(delay)
            self.wfile.write(part)
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake vendor http: " + format, *args)


def _sse(event: str | None, data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event is not None else ""
    return f"{prefix}data: {text}\n\n".encode()
