"""A real OTLP/HTTP trace receiver for tests.

:class:`OTLPReceiver` listens on ``127.0.0.1`` on an ephemeral port, accepts
``POST /v1/traces`` exactly as an OTLP/HTTP collector would (binary protobuf or
OTLP/JSON, optionally gzip- or deflate-compressed), decodes every request into
an ``ExportTraceServiceRequest`` and keeps what it saw so a test can assert on
it.  It answers per the OTLP/HTTP specification (200 with an empty
``ExportTraceServiceResponse`` in the request's encoding, 400 with a
``google.rpc.Status`` for undecodable bodies, 415 for unsupported media types),
and it can be told to misbehave (fail, stall, refuse connections, demand a
header) so exporter retry and back-off paths can be exercised against a real
socket instead of a mock.

The module depends only on the standard library and on the protobuf packages
that ``opentelemetry-exporter-otlp-proto-http`` already pulls in
(``opentelemetry-proto`` and ``googleapis-common-protos``), so it imports on
its own.
"""

from __future__ import annotations

import base64
import collections
import http.server
import json
import logging
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "Attempt",
    "OTLPReceiver",
    "ReceivedRequest",
    "ReceivedSpan",
    "any_value_to_python",
    "decode_otlp_json",
    "encode_otlp_json",
]

_logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_DEFAULT_MAX_REQUESTS = 1_000
_DEFAULT_MAX_SPANS = 100_000
# The SDK exporter refuses to send more than 64 MiB; accept the same so a
# test never sees a 413 that a real collector would not send.
_DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
# serve_forever() notices shutdown() only between polls; keep set_down()/stop() snappy.
_POLL_INTERVAL_S = 0.05
# An idle keep-alive connection is closed after this long so a client that
# forgets to close its session never pins a handler thread forever.
_IDLE_CONNECTION_TIMEOUT_S = 30.0
_THREAD_JOIN_TIMEOUT_S = 5.0

# OTLP/JSON encodes these id fields as lowercase hex, unlike the base64 that the
# canonical protobuf JSON mapping uses for ``bytes``.  Both key spellings are
# listed because receivers must also accept the proto field names.
_ID_FIELDS: Mapping[str, int] = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}

_RPC_CODE_FOR_HTTP: Mapping[int, int] = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.UNIMPLEMENTED,
    429: code_pb2.RESOURCE_EXHAUSTED,
    500: code_pb2.INTERNAL,
    501: code_pb2.UNIMPLEMENTED,
    502: code_pb2.UNAVAILABLE,
    503: code_pb2.UNAVAILABLE,
    504: code_pb2.DEADLINE_EXCEEDED,
}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it, flattened out of its resource and scope.

    Ids are lowercase hex (``parent_span_id`` is ``""`` for a root span).
    ``kind`` and ``status_code`` are the OTLP wire values (``SPAN_KIND_CLIENT``
    is 3, ``STATUS_CODE_ERROR`` is 2), which differ from the SDK's Python enums;
    ``kind_name`` and ``status_name`` give the OTLP names.  Attribute values are
    plain Python values as produced by :func:`any_value_to_python`.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    scope_name: str
    scope_version: str

    @property
    def kind_name(self) -> str:
        """OTLP name of :attr:`kind`, e.g. ``"SPAN_KIND_CLIENT"``."""
        return trace_pb2.Span.SpanKind.Name(self.kind)

    @property
    def status_name(self) -> str:
        """OTLP name of :attr:`status_code`, e.g. ``"STATUS_CODE_OK"``."""
        return trace_pb2.Status.StatusCode.Name(self.status_code)


@dataclass(frozen=True)
class ReceivedRequest:
    """One accepted export request.

    ``message`` is the decoded request; treat it as read-only.  ``body_size``
    is the size on the wire, before decompression.
    """

    message: ExportTraceServiceRequest
    content_type: str
    content_encoding: str
    headers: dict[str, str]
    body_size: int
    path: str = "/v1/traces"


@dataclass(frozen=True)
class Attempt:
    """One ``POST /v1/traces`` the receiver answered, whatever the outcome.

    ``seq`` counts from 1 since the last :meth:`OTLPReceiver.clear`.  ``status``
    is the HTTP status sent back; ``error`` says why it was not 200.
    ``headers`` has lower-cased names; repeated headers are joined with ``", "``.
    """

    seq: int
    status: int
    content_type: str
    content_encoding: str
    headers: dict[str, str]
    span_count: int
    error: str | None
    monotonic_time: float


# --------------------------------------------------------------------------- codecs


def any_value_to_python(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to a plain Python value.

    Strings, bools, ints and doubles map to ``str``, ``bool``, ``int`` and
    ``float``; arrays to ``list``; key-value lists to ``dict``; bytes to
    ``bytes``; an empty ``AnyValue`` to ``None``.
    """
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _key_values_to_dict(value.kvlist_value.values)
    return getattr(value, which)


def _key_values_to_dict(items: Iterable[KeyValue]) -> dict[str, Any]:
    # A repeated key is a producer bug; the last one wins, as in most backends.
    return {kv.key: any_value_to_python(kv.value) for kv in items}


def _rewrite_ids(node: Any, convert: Any) -> Any:
    """Apply ``convert(value, nbytes)`` to every id field of an OTLP/JSON tree, in place."""
    if isinstance(node, dict):
        for key, child in node.items():
            if key in _ID_FIELDS and isinstance(child, str):
                node[key] = convert(child, _ID_FIELDS[key])
            else:
                _rewrite_ids(child, convert)
    elif isinstance(node, list):
        for child in node:
            _rewrite_ids(child, convert)
    return node


def _hex_to_b64(value: str, nbytes: int) -> str:
    if value == "":
        return value
    if len(value) != 2 * nbytes:
        raise ValueError(f"id {value!r} must be {2 * nbytes} hex digits")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"id {value!r} is not hex") from None
    return base64.b64encode(raw).decode("ascii")


def _b64_to_hex(value: str, nbytes: int) -> str:
    del nbytes  # the protobuf side already guarantees what it holds
    return base64.b64decode(value).hex()


def decode_otlp_json(body: bytes | str) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON trace export body.

    Follows the OTLP/JSON rules: trace and span ids are hex strings (not the
    base64 of the generic protobuf JSON mapping), field names may be
    lowerCamelCase or the proto names, 64-bit integers may be strings or
    numbers, enums are integers or names, unknown fields are ignored.

    Raises:
        ValueError: the body is not valid OTLP/JSON.
    """
    obj = json.loads(body)  # JSONDecodeError is a ValueError
    if not isinstance(obj, dict):
        raise ValueError("OTLP/JSON body must be a JSON object")
    _rewrite_ids(obj, _hex_to_b64)
    try:
        return json_format.ParseDict(obj, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except json_format.Error as exc:
        # json_format's errors are not ValueErrors; give callers one type to catch.
        raise ValueError(str(exc)) from exc


def encode_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """Encode a request as OTLP/JSON: lowerCamelCase names, hex ids, int64 as strings.

    This is ``json_format.MessageToDict`` plus the one OTLP deviation from the
    generic mapping (hex instead of base64 ids), so a test can post a body the
    way a conforming OTLP/JSON exporter would.
    """
    obj = json_format.MessageToDict(request, use_integers_for_enums=True)
    _rewrite_ids(obj, _b64_to_hex)
    return json.dumps(obj).encode("utf-8")


def _decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding``; refuse output larger than ``limit`` (zip bombs)."""
    if encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        candidates = [zlib.MAX_WBITS | 16]
    elif encoding == "deflate":
        # HTTP "deflate" means the zlib format, but some clients send raw
        # deflate; accept both, as common servers do.
        candidates = [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    else:
        raise _UnsupportedEncoding(encoding)
    last_error: Exception | None = None
    for wbits in candidates:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error as exc:
            last_error = exc
            continue
        if len(out) > limit:
            raise _TooLarge(f"decompressed body exceeds {limit} bytes")
        if not inflater.eof:
            raise ValueError(f"truncated {encoding} body")
        return out
    raise ValueError(f"invalid {encoding} body: {last_error}")


# What a refused request is answered with: status, message, reply content type, extra headers.
_Refusal = tuple[int, str, str, "dict[str, str] | None"]


class _UnsupportedEncoding(Exception):
    pass


class _TooLarge(Exception):
    pass


def _flatten(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource_attrs = _key_values_to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=int(span.kind),
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                        status_code=int(span.status.code),
                        status_message=span.status.message,
                        attributes=_key_values_to_dict(span.attributes),
                        # Each span gets its own copy so a test mutating one
                        # cannot change what another span reports.
                        resource_attributes=dict(resource_attrs),
                        scope_name=scope.name,
                        scope_version=scope.version,
                    )
                )
    return spans


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(http.server.HTTPServer):
    """HTTPServer that tracks its connections so they can be cut on demand.

    Each connection gets a daemon thread (a forgotten receiver must never block
    interpreter exit); the server remembers the socket and thread so
    :meth:`close_connections` can shut them down and join them.
    """

    allow_reuse_address = True  # set_down(False) must rebind the same port at once
    request_queue_size = 64

    def __init__(self, port: int, receiver: OTLPReceiver) -> None:
        self.receiver = receiver
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse-DNS lookup
        # that can stall for seconds on a machine without a resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"otlp-receiver-{self.server_port}-conn-{client_address[1]}",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a dropped connection is normal here
            self.handle_error(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connections cut by set_down()/stop() raise in the handler; that is
        # expected, so keep it out of stderr.
        _logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open connection and wait for its thread."""
        with self._conn_lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + _THREAD_JOIN_TIMEOUT_S
        for _, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 so clients keep connections alive, as they do with a real
    # collector; this is what makes set_down() exercise stale-connection paths.
    protocol_version = "HTTP/1.1"
    server_version = "otel-costattr-otlp-receiver"
    timeout = _IDLE_CONNECTION_TIMEOUT_S
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        self.server.receiver._handle_post(self)

    def do_GET(self) -> None:  # noqa: N802
        self.server.receiver._handle_other(self)

    # HEAD is left to the base class (501): a HEAD answer must not carry a body.
    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        _logger.debug("%s - %s", self.address_string(), format % args)


# --------------------------------------------------------------------------- receiver


class OTLPReceiver:
    """OTLP/HTTP trace receiver on ``127.0.0.1`` running in a background thread.

    Use it as a context manager or call :meth:`start` and :meth:`stop`.  All
    methods are thread-safe.  What is retained is bounded: the newest
    ``max_requests`` accepted requests and attempts and the newest ``max_spans``
    spans are kept, older ones are evicted and counted in
    :attr:`dropped_requests` and :attr:`dropped_spans`.

    A ``POST /v1/traces`` is processed in this order; the first rule that
    applies decides the answer, and every answered post counts as an attempt
    (a post still waiting out its delay when the receiver is stopped or set
    down is cut without an answer and is not recorded):

    1. the delay set by :meth:`set_delay` is waited out;
    2. a pending :meth:`fail_next` fault is answered (faults model a proxy or
       overloaded front end, so they come before authentication);
    3. a header required by :meth:`require_header` that is missing or wrong
       gives 401;
    4. a ``Content-Type`` other than protobuf or JSON, or an unknown
       ``Content-Encoding``, gives 415;
    5. a body that cannot be decompressed or decoded gives 400;
    6. otherwise the request is stored and answered 200.

    Error bodies are a ``google.rpc.Status``; every response body uses the
    request's encoding (JSON when the request's type was unsupported).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        max_requests: int = _DEFAULT_MAX_REQUESTS,
        max_spans: int = _DEFAULT_MAX_SPANS,
        max_body_bytes: int = _DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        """Create a stopped receiver.

        Args:
            port: TCP port on 127.0.0.1; 0 picks a free ephemeral port at
                :meth:`start` and keeps it for the receiver's lifetime.
            max_requests: how many accepted requests and attempts to retain.
            max_spans: how many decoded spans to retain.
            max_body_bytes: largest body accepted, both on the wire and after
                decompression; larger ones get 413.

        Raises:
            ValueError: a limit is not positive or the port is out of range.
        """
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        for name, limit in (
            ("max_requests", max_requests),
            ("max_spans", max_spans),
            ("max_body_bytes", max_body_bytes),
        ):
            if limit <= 0:
                raise ValueError(f"{name} must be positive, got {limit}")
        self._port = port
        self._max_body_bytes = max_body_bytes

        # One condition guards all captured data and fault settings, so waiters
        # wake on every change.
        self._cond = threading.Condition()
        self._requests: collections.deque[ReceivedRequest] = collections.deque(maxlen=max_requests)
        self._spans: collections.deque[ReceivedSpan] = collections.deque(maxlen=max_spans)
        self._attempts: collections.deque[Attempt] = collections.deque(maxlen=max_requests)
        self._requests_total = 0
        self._spans_total = 0
        self._attempts_total = 0

        self._fail_remaining = 0
        self._fail_status = 503
        self._fail_retry_after: str | None = None
        self._delay_s = 0.0
        self._required_headers: dict[str, str] = {}

        # Lifecycle is serialised separately: stopping joins handler threads,
        # which need self._cond to finish.
        self._lifecycle = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._down = False
        # Set while the server is being torn down so delayed handlers stop waiting.
        self._wake = threading.Event()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> OTLPReceiver:
        """Bind and start serving; returns ``self``.

        Raises:
            RuntimeError: already started.
            OSError: the port cannot be bound.
        """
        with self._lifecycle:
            if self._running:
                raise RuntimeError("OTLPReceiver is already running")
            self._open()
            self._running = True
            self._down = False
        _logger.debug("OTLP receiver listening on %s", self.endpoint)
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and join threads. Idempotent."""
        with self._lifecycle:
            if not self._running:
                return
            self._close()
            self._running = False
            self._down = False
        _logger.debug("OTLP receiver on port %s stopped", self._port)

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _open(self) -> None:
        server = _Server(self._port, self)
        self._port = server.server_port
        self._wake.clear()
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=f"otlp-receiver-{self._port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()

    def _close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        self._wake.set()
        server.shutdown()  # stops accepting; returns once serve_forever has exited
        server.server_close()  # closes the listening socket: new connects are refused
        server.close_connections()
        if thread is not None:
            thread.join(_THREAD_JOIN_TIMEOUT_S)

    @property
    def port(self) -> int:
        """The bound port (known once :meth:`start` has run)."""
        if self._port == 0:
            raise RuntimeError("OTLPReceiver has not been started; its port is not chosen yet")
        return self._port

    @property
    def endpoint(self) -> str:
        """Base URL, ``http://127.0.0.1:<port>`` (for ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        """Full traces URL, :attr:`endpoint` + ``/v1/traces`` (for ``OTLPSpanExporter(endpoint=...)``)."""
        return self.endpoint + TRACES_PATH

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`, including while down."""
        return self._running

    @property
    def is_down(self) -> bool:
        """True while :meth:`set_down` has closed the listening socket."""
        return self._down

    # ---------------------------------------------------------------- faults

    def fail_next(self, n: int, status: int = 503, retry_after: float | str | None = None) -> None:
        """Answer the next ``n`` trace posts with ``status`` instead of processing them.

        Args:
            n: number of posts to fail; 0 cancels pending failures.
            status: an HTTP error status, typically 500, 503 or 429 (the OTLP
                retryable set is 429, 502, 503, 504).
            retry_after: value for a ``Retry-After`` header: seconds (a float
                such as 0.1 is sent as is, which the Python SDK honours though
                RFC 9110 only defines integers) or an HTTP-date string.

        Raises:
            ValueError: ``n`` is negative or ``status`` is not 4xx/5xx.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (4xx/5xx), got {status}")
        if retry_after is None or isinstance(retry_after, str):
            header = retry_after
        elif float(retry_after).is_integer():
            header = str(int(retry_after))
        else:
            header = repr(float(retry_after))
        with self._cond:
            self._fail_remaining = n
            self._fail_status = status
            self._fail_retry_after = header

    def set_delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each trace post (0 disables).

        The wait is cut short when the receiver is stopped or set down.
        """
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, got {seconds}")
        with self._cond:
            self._delay_s = float(seconds)

    def set_down(self, down: bool) -> None:
        """Take the receiver off the network, or put it back.

        ``set_down(True)`` closes the listening socket and cuts open
        connections, so clients see "connection refused" (or a reset on a
        pooled connection).  ``set_down(False)`` listens again on the same
        port.  Captured data and fault settings are kept.

        Raises:
            RuntimeError: the receiver is not running.
            OSError: the port was taken by someone else while down.
        """
        with self._lifecycle:
            if not self._running:
                raise RuntimeError("OTLPReceiver is not running")
            if down == self._down:
                return
            if down:
                self._close()
            else:
                self._open()
            self._down = down
        _logger.debug("OTLP receiver on port %s is %s", self._port, "down" if down else "up")

    def require_header(self, name: str, value: str | None) -> None:
        """Require header ``name`` (case-insensitive) to equal ``value`` exactly, else 401.

        Several headers can be required at once; ``value=None`` drops the
        requirement for ``name``.
        """
        with self._cond:
            if value is None:
                self._required_headers.pop(name.lower(), None)
            else:
                self._required_headers[name.lower()] = value

    def reset_faults(self) -> None:
        """Cancel pending failures, the delay and all header requirements."""
        with self._cond:
            self._fail_remaining = 0
            self._fail_retry_after = None
            self._delay_s = 0.0
            self._required_headers.clear()

    # ---------------------------------------------------------------- inspection

    def spans(self, name: str | None = None) -> list[ReceivedSpan]:
        """Retained spans in arrival order, optionally only those called ``name``."""
        with self._cond:
            spans = list(self._spans)
        return spans if name is None else [s for s in spans if s.name == name]

    def requests(self) -> list[ReceivedRequest]:
        """Retained accepted requests in arrival order."""
        with self._cond:
            return list(self._requests)

    def attempts(self) -> list[Attempt]:
        """Retained attempts (every answered trace post, failed or not) in order."""
        with self._cond:
            return list(self._attempts)

    def headers(self) -> list[dict[str, str]]:
        """Lower-cased request headers of each retained attempt, in order."""
        with self._cond:
            return [dict(a.headers) for a in self._attempts]

    @property
    def attempt_count(self) -> int:
        """Trace posts answered since :meth:`clear`, including failed ones."""
        with self._cond:
            return self._attempts_total

    @property
    def span_count(self) -> int:
        """Spans accepted since :meth:`clear`, including evicted ones."""
        with self._cond:
            return self._spans_total

    @property
    def dropped_requests(self) -> int:
        """Accepted requests evicted because more than ``max_requests`` arrived."""
        with self._cond:
            return self._requests_total - len(self._requests)

    @property
    def dropped_spans(self) -> int:
        """Spans evicted because more than ``max_spans`` arrived."""
        with self._cond:
            return self._spans_total - len(self._spans)

    def wait_for_spans(self, n: int, timeout: float = 5.0) -> list[ReceivedSpan]:
        """Block until at least ``n`` spans were accepted since :meth:`clear`.

        Returns:
            The retained spans (as :meth:`spans`).

        Raises:
            TimeoutError: fewer than ``n`` arrived within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._spans_total >= n, timeout):
                raise TimeoutError(
                    f"expected {n} spans within {timeout}s, got {self._spans_total} ({self._attempts_total} attempts)"
                )
            return list(self._spans)

    def wait_for_attempts(self, n: int, timeout: float = 5.0) -> list[Attempt]:
        """Block until at least ``n`` trace posts were answered since :meth:`clear`.

        Raises:
            TimeoutError: fewer than ``n`` were answered within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._attempts_total >= n, timeout):
                raise TimeoutError(f"expected {n} attempts within {timeout}s, got {self._attempts_total}")
            return list(self._attempts)

    def clear(self) -> None:
        """Forget captured requests, spans, attempts and counters (not faults)."""
        with self._cond:
            self._requests.clear()
            self._spans.clear()
            self._attempts.clear()
            self._requests_total = self._spans_total = self._attempts_total = 0
            self._cond.notify_all()

    # ---------------------------------------------------------------- request handling

    def _handle_other(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path
        if not self._drain_body(handler):
            return
        if path.endswith(TRACES_PATH):
            self._send_status(handler, 405, "only POST is allowed", JSON, {"Allow": "POST"})
        else:
            self._send_status(handler, 404, f"no such path {path}", JSON)

    def _handle_post(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path
        # Any base path: backends mount OTLP under their own prefix (Langfuse: /api/public/otel/v1/traces).
        if not path.endswith(TRACES_PATH):
            if self._drain_body(handler):
                self._send_status(handler, 404, f"no such path {path}", JSON)
            return

        headers: dict[str, str] = {}
        for key, value in handler.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        content_encoding = headers.get("content-encoding", "").strip().lower()
        reply_type = PROTOBUF if content_type == PROTOBUF else JSON

        try:
            body = self._read_body(handler)
        except _TooLarge as exc:
            handler.close_connection = True  # the rest of the body is unread
            self._finish(handler, headers, content_type, content_encoding, 413, str(exc), reply_type)
            return
        except (ValueError, OSError) as exc:
            _logger.debug("could not read request body: %s", exc)
            handler.close_connection = True
            return

        with self._cond:
            delay = self._delay_s
        if delay > 0 and self._wake.wait(delay):
            # set_down()/stop() cut this connection while it was stalled: the
            # client sees a reset, so the post is neither answered nor recorded.
            handler.close_connection = True
            return

        refusal = self._refusal(headers, content_type, reply_type)
        if refusal is None:
            decoded, refusal = self._decode(body, content_type, content_encoding, reply_type)
        if refusal is not None:
            self._finish(handler, headers, content_type, content_encoding, *refusal)
            return
        message, spans = decoded
        record = ReceivedRequest(message, content_type, content_encoding, headers, len(body),
                                 urlsplit(handler.path).path)
        self._finish(
            handler, headers, content_type, content_encoding, 200, None, reply_type,
            accepted=(record, spans),
        )  # fmt: skip

    def _refusal(self, headers: dict[str, str], content_type: str, reply_type: str) -> _Refusal | None:
        """The answer for a request refused before its body is decoded, in the order a backend checks:
        an injected failure, a missing or wrong required header, an unsupported content type."""
        with self._cond:
            fault: tuple[int, str | None] | None = None
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                fault = (self._fail_status, self._fail_retry_after)
            required = dict(self._required_headers)
        if fault is not None:
            status, retry_after = fault
            return status, "injected failure", reply_type, {"Retry-After": retry_after} if retry_after is not None else None
        for name, expected in required.items():
            if headers.get(name) != expected:
                return (401, f"missing or wrong {name} header", reply_type,
                        {"WWW-Authenticate": "Basic"} if name == "authorization" else None)
        if content_type not in (PROTOBUF, JSON):
            return 415, f"unsupported content type {content_type!r}; use {PROTOBUF} or {JSON}", JSON, None
        return None

    def _decode(self, body: bytes, content_type: str, content_encoding: str,
                reply_type: str) -> tuple[Any, _Refusal | None]:
        """``((message, spans), None)`` for a body that decodes, else ``(None, refusal)`` (415, 413 or 400)."""
        try:
            payload = _decompress(body, content_encoding, self._max_body_bytes)
            if content_type == PROTOBUF:
                message = ExportTraceServiceRequest.FromString(payload)
            else:
                message = decode_otlp_json(payload)
            return (message, _flatten(message)), None
        except _UnsupportedEncoding:
            return None, (415, f"unsupported content encoding {content_encoding!r}", reply_type, None)
        except _TooLarge as exc:
            return None, (413, str(exc), reply_type, None)
        except (DecodeError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            return None, (400, f"cannot decode body: {exc}", reply_type, None)

    def _finish(
        self,
        handler: _Handler,
        headers: dict[str, str],
        content_type: str,
        content_encoding: str,
        status: int,
        error: str | None,
        reply_type: str,
        extra_headers: Mapping[str, str] | None = None,
        accepted: tuple[ReceivedRequest, list[ReceivedSpan]] | None = None,
    ) -> None:
        # Everything is recorded in one step, and before the answer goes out,
        # so that a client that has seen the response always finds its request,
        # spans and attempt recorded together.
        span_count = 0
        with self._cond:
            if accepted is not None:
                record, spans = accepted
                self._requests.append(record)
                self._requests_total += 1
                self._spans.extend(spans)
                self._spans_total += len(spans)
                span_count = len(spans)
            self._attempts_total += 1
            self._attempts.append(
                Attempt(
                    seq=self._attempts_total,
                    status=status,
                    content_type=content_type,
                    content_encoding=content_encoding,
                    headers=headers,
                    span_count=span_count,
                    error=error,
                    monotonic_time=time.monotonic(),
                )
            )
            self._cond.notify_all()
        if status == 200:
            response = ExportTraceServiceResponse()
            if reply_type == PROTOBUF:
                body = response.SerializeToString()
            else:
                body = json_format.MessageToJson(response).encode("utf-8")
            self._send(handler, 200, body, reply_type)
        else:
            _logger.debug("answering %s to a trace post: %s", status, error)
            self._send_status(handler, status, error or "", reply_type, extra_headers)

    def _send_status(
        self,
        handler: _Handler,
        status: int,
        message: str,
        reply_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        rpc_status = status_pb2.Status(code=_RPC_CODE_FOR_HTTP.get(status, code_pb2.UNKNOWN), message=message)
        if reply_type == PROTOBUF:
            body = rpc_status.SerializeToString()
        else:
            body = json_format.MessageToJson(rpc_status).encode("utf-8")
        self._send(handler, status, body, reply_type, extra_headers)

    @staticmethod
    def _send(
        handler: _Handler,
        status: int,
        body: bytes,
        content_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            for name, value in (extra_headers or {}).items():
                handler.send_header(name, value)
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(body)
            handler.wfile.flush()
        except OSError as exc:
            # The client went away or set_down() cut the connection.
            _logger.debug("could not send %s response: %s", status, exc)
            handler.close_connection = True

    def _read_body(self, handler: _Handler) -> bytes:
        """Read the request body (Content-Length or chunked), at most ``max_body_bytes``."""
        limit = self._max_body_bytes
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                line = handler.rfile.readline(1024)
                if not line:
                    raise ValueError("connection closed inside a chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # Skip trailers up to the blank line that ends the message.
                    while handler.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise _TooLarge(f"body exceeds {limit} bytes")
                chunks.append(self._read_exact(handler, size))
                handler.rfile.readline(8)  # the CRLF after each chunk
        length_header = handler.headers.get("Content-Length")
        if length_header is None:
            return b""
        length = int(length_header)
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        if length > limit:
            raise _TooLarge(f"body of {length} bytes exceeds {limit} bytes")
        return self._read_exact(handler, length)

    @staticmethod
    def _read_exact(handler: _Handler, size: int) -> bytes:
        data = handler.rfile.read(size)
        if len(data) != size:
            raise ValueError(f"connection closed after {len(data)} of {size} body bytes")
        return data

    def _drain_body(self, handler: _Handler) -> bool:
        """Consume a body we will not use so the keep-alive stream stays in sync."""
        try:
            self._read_body(handler)
        except _TooLarge:
            handler.close_connection = True
            self._send_status(handler, 413, "body too large", JSON)
            return False
        except (ValueError, OSError):
            handler.close_connection = True
            return False
        return True

    def __repr__(self) -> str:
        state = "down" if self._down else "running" if self._running else "stopped"
        return f"<OTLPReceiver port={self._port or '?'} {state}>"
