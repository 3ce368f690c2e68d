"""``otel-costattr serve``: an OTLP/HTTP endpoint that prices the gen_ai spans of any language's SDK or
collector, then forwards them (OTLP/HTTP, gzip protobuf) and/or writes them to the ledger.

::

    app (any language) ── OTLP/HTTP ──> otel-costattr serve ──> --forward URL (Langfuse, Jaeger, a collector)
                                          │                 └─> --ledger costs.duckdb
                          POST /v1/traces: decode, validate ids, queue (bounded), 200
                          workers: enrich in the protobuf message, write the ledger, forward (retries)

Stack: uvicorn (httptools parser) running a small raw ASGI callable (:class:`OTLPApp`), no web framework: the
server owns HTTP/1.1 parsing, keep-alive, connection limits and graceful shutdown, and the app is a few
routes. The CPU work (enrichment, encoding, gzip, the ledger) runs on worker threads behind a bounded queue.

HTTP contract (OTLP/HTTP specification):

* ``POST /v1/traces`` with ``application/x-protobuf`` or ``application/json`` (OTLP/JSON), optionally
  ``Content-Encoding: gzip``: 200 with an ``ExportTraceServiceResponse`` in the request's encoding, with
  ``partial_success`` when spans were rejected (a span without a valid trace or span id); 400 with a
  ``google.rpc.Status`` naming the reason for a malformed body; 415 for another content type or encoding;
  413 above ``max_body_bytes`` (on the wire and after decompression); 401 without the bearer token when one
  is configured; 503 with ``Retry-After`` when the queue is full, the memory budget is spent, or the server is
  shutting down. A 200 means the spans are queued and will be processed, including across a SIGTERM (the queue
  is drained first).
* ``GET /healthz``: 200 ``{"status": "ok"}`` while accepting, 503 once shutting down. Never needs the token.
* ``GET /metrics`` (or ``/stats``): the JSON counters of :class:`~otel_costattr._serve._pipeline.Stats`.

Memory: one :class:`~otel_costattr._serve._pipeline.MemoryBudget` (``max_memory`` bytes) covers bodies being
received, decoded requests queued, and requests being processed. A request reserves its worst case when its
header arrives (``_UPFRONT_FACTOR`` times its ``Content-Length``, or chunk by chunk without one) and is refused
with 503 before its body is read when that does not fit; once decoded, the reservation shrinks to an estimate
from what the request holds (its size and its LLM spans), which the worker gives back when it is done. Bodies
above ``_INLINE_DECODE_MAX`` bytes are decompressed and decoded on a worker thread, so the event loop keeps
answering (``/healthz`` included). Connection limits (cap, header and body-progress timeouts, keep-alive) are
in :mod:`~otel_costattr._serve._guard`.

Python API: :class:`CostServer` (in-process, background thread, ephemeral port: for tests and embedding) and
:func:`serve` (blocking, signal handling: the CLI).
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import ipaddress
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from .._errors import ConfigurationError
from .._ledger._otlp import OTLPDecodeError
from ._codec import JSON, PROTOBUF, BodyTooLarge, encode_response, gunzip
from ._guard import ConnectionLimits, fd_headroom_cap, guarded_protocol, install_log_limits
from ._pipeline import Batch, Forwarder, MemoryBudget, Pipeline, Stats, redact_url

__all__ = ["DEFAULT_PORT", "TOKEN_ENV", "CostServer", "ServeConfig", "serve"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 4319  # next to the collector's 4318, so both can run on one host
TOKEN_ENV = "OTEL_COSTATTR_SERVE_TOKEN"
TRACES_PATH = "/v1/traces"
_DEFAULT_MAX_BODY = 20 * 1024 * 1024  # the collector's default max_request_body_size
_DEFAULT_MAX_MEMORY = 256 * 1024 * 1024  # OTLP exporters send a few MiB per request: dozens fit
# What one request can cost, per byte of its body as received (measured with tests/reliability's hostile load:
# an 18.6 MiB protobuf request of 72,000 small chat spans peaks at ~9x its size while it is decoded, enriched and
# re-serialized; OTLP/JSON peaks at ~14x its size inside json.loads). Reserved when the header arrives.
_UPFRONT_FACTOR = {PROTOBUF: 10, JSON: 15}
# Once decoded: what a request holds until a worker is done with it (the decoded message and its serialized
# copy, ~2x the protobuf size; the cost attributes appended to, and serialized with, each LLM span).
_HELD_PER_BYTE = 2
_HELD_PER_CALL = 2048
_INLINE_DECODE_MAX = 1024 * 1024  # larger bodies are decoded on a thread, off the event loop (a 1 MiB body
# decodes in a few ms; the thread hop costs latency and a malloc arena, not worth it for typical requests)
_STARTUP_TIMEOUT_S = 30.0
_GRACEFUL_TIMEOUT_S = 30.0

_RPC_CODE = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 404: code_pb2.NOT_FOUND,
             405: code_pb2.UNIMPLEMENTED, 413: code_pb2.RESOURCE_EXHAUSTED, 415: code_pb2.UNIMPLEMENTED,
             503: code_pb2.UNAVAILABLE}


# ------------------------------------------------------------------------------------------ configuration


_DISCARD_MAX = 64 * 1024  # bytes of a refused request body read before closing (see _traces)


@dataclass
class ServeConfig:
    """Everything ``serve`` needs. :meth:`validate` fails fast with a :class:`ConfigurationError` naming the fix.

    ``forward`` is an OTLP/HTTP traces URL; a base URL (no path, or a path not ending in ``/v1/traces``, such
    as Langfuse's ``https://host/api/public/otel``) gets ``/v1/traces`` appended. ``token`` enables bearer
    authentication; ``token_env`` names the environment variable to read it from when ``token`` is None.
    ``max_memory`` is the memory budget in bytes (see the module docstring) and ``queue_size`` the most export
    requests queued; past either, clients get 503 with ``Retry-After`` (``retry_after`` seconds). Connection
    limits: ``max_connections`` (lowered to fit the open-file limit), ``header_timeout`` (seconds for a request
    header), ``body_timeout`` and ``min_body_rate`` (a body must deliver ``min_body_rate`` bytes per second over
    each ``body_timeout`` window), ``keep_alive_timeout`` (idle seconds) and ``keep_alive_max_requests``. At
    shutdown every queued batch is still delivered; forward retries stop ``drain_retry_s`` seconds into the drain.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    forward: str | None = None
    forward_headers: Mapping[str, str] = field(default_factory=dict)
    ledger: str | os.PathLike[str] | None = None
    pricing: Sequence[str | os.PathLike[str]] = ()
    token: str | None = None
    token_env: str | None = TOKEN_ENV
    queue_size: int = 64
    max_body_bytes: int = _DEFAULT_MAX_BODY
    max_memory: int = _DEFAULT_MAX_MEMORY
    max_connections: int = 1024
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    min_body_rate: int = 4096
    keep_alive_timeout: float = 30.0
    keep_alive_max_requests: int = 10_000
    workers: int = 2
    retry_after: int = 1
    forward_timeout: float = 10.0
    forward_max_attempts: int = 6
    forward_max_elapsed: float = 60.0
    drain_retry_s: float = 30.0
    langfuse: bool = True
    book: Any = None  # a ready PriceBook (tests, embedding); ``pricing`` is then ignored

    def validate(self) -> None:
        """Check the configuration without side effects. Raises :class:`ConfigurationError`."""
        if not self.forward and not self.ledger:
            raise ConfigurationError("serve needs somewhere to send spans: pass --forward URL (an OTLP/HTTP "
                                     "endpoint) and/or --ledger PATH (a ledger directory)")
        if self.forward:
            self.forward_url()
        if self.ledger:
            folder = Path(self.ledger).expanduser().resolve().parent
            if not folder.is_dir():
                raise ConfigurationError(f"ledger folder {folder} does not exist; create it or pass another "
                                         "--ledger path")
        for name, value in self.forward_headers.items():
            if not name or any(c in name for c in " :\r\n\t") or any(c in str(value) for c in "\r\n"):
                raise ConfigurationError(f"forward header {name!r} is not a valid HTTP header; use --forward-header "
                                         "'Name=value'")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"--port {self.port} is out of range (0..65535; 0 picks a free port)")
        for what, value in (("--queue-size", self.queue_size), ("--max-body-bytes", self.max_body_bytes),
                            ("--workers", self.workers), ("--retry-after", self.retry_after),
                            ("--max-memory", self.max_memory), ("--max-connections", self.max_connections),
                            ("--keep-alive-max-requests", self.keep_alive_max_requests),
                            ("--min-body-rate", self.min_body_rate)):
            if value < 1:
                raise ConfigurationError(f"{what} must be >= 1, got {value}")
        for what, seconds in (("--header-timeout", self.header_timeout), ("--body-timeout", self.body_timeout),
                              ("--keep-alive-timeout", self.keep_alive_timeout)):
            if not seconds > 0:
                raise ConfigurationError(f"{what} must be > 0 seconds, got {seconds}")
        if self.max_memory < self.max_body_bytes:
            raise ConfigurationError(f"--max-memory ({self.max_memory} bytes) is below --max-body-bytes "
                                     f"({self.max_body_bytes}): no request of the largest allowed size could be "
                                     "received; raise --max-memory or lower --max-body-bytes")
        if not self.drain_retry_s >= 0:
            raise ConfigurationError(f"--drain-retry must be >= 0 seconds, got {self.drain_retry_s}")
        if self.token is None and self.token_env and self.token_env != TOKEN_ENV and not os.environ.get(
                self.token_env):
            raise ConfigurationError(f"--token-env {self.token_env}: that environment variable is not set or empty; "
                                     "export it, or leave --token-env out to serve without a token")

    def forward_url(self) -> str:
        """The full traces URL to forward to. Raises :class:`ConfigurationError` if it is not http(s)."""
        assert self.forward
        parts = urlsplit(self.forward.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"--forward {self.forward!r} is not an http(s) URL; pass the OTLP/HTTP endpoint, "
                                     "e.g. http://localhost:4318/v1/traces")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise ConfigurationError(f"--forward {self.forward!r} has an invalid port") from None
        path = parts.path.rstrip("/")
        if not path.endswith(TRACES_PATH):
            path += TRACES_PATH
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

    def resolved_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_env:
            return os.environ.get(self.token_env) or None
        return None


# ---------------------------------------------------------------------------------------------- the app


def _status_body(status: int, message: str, content_type: str) -> bytes:
    st = status_pb2.Status(code=_RPC_CODE.get(status, code_pb2.UNKNOWN), message=message)
    if content_type == PROTOBUF:
        return st.SerializeToString()
    return json_format.MessageToJson(st, indent=None).encode()


class _OverBudget(Exception):
    """The request does not fit in the memory budget now."""


def _request_headers(headers: Any) -> tuple[str, str, int | None]:
    """(content type, content encoding, announced length) from an ASGI scope's headers, lower-cased."""
    content_type = encoding = ""
    length: int | None = None
    for name, value in headers:
        if name == b"content-type":
            content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif name == b"content-encoding":
            encoding = value.decode("latin-1").strip().lower()
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
    return content_type, encoding, length


class OTLPApp:
    """The raw ASGI application. Runs on the server's event loop thread; never blocks on the queue.

    Decoding and id validation happen here (they decide the answer: 400, ``partial_success``); enrichment,
    encoding and delivery happen on the pipeline's workers.
    """

    def __init__(self, pipeline: Pipeline, stats: Stats, *, token: str | None, max_body_bytes: int,
                 retry_after: int, drain_retry_s: float = 30.0, held_per_call: int = _HELD_PER_CALL) -> None:
        self.drain_retry_s = drain_retry_s
        self.pipeline = pipeline
        self.budget = pipeline.budget
        self.stats = stats
        self.held_per_call = held_per_call
        # Large bodies are decoded here, off the event loop. Two threads: the budget, not this pool, bounds how
        # much is decoded at once.
        self._decoder = ThreadPoolExecutor(2, thread_name_prefix="serve-decode")
        self.log_limiter = install_log_limits()
        self.connections: Any = None  # the open-connection set, once the server runs (for /metrics)
        self._token = b"Bearer " + token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self._retry_after = str(retry_after).encode()
        self.ready = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websocket: not served; returning makes the server refuse the handshake

    # ----------------------------------------------------------------------------------------- lifespan

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                # The server has stopped accepting and finished in-flight requests: every 200 sent is in the
                # queue. Drain it off the loop thread (workers forward and write), then report completion.
                self.ready = False
                await asyncio.get_running_loop().run_in_executor(None, self._drain)
                self._decoder.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ----------------------------------------------------------------------------------------------- http

    def _drain(self) -> None:
        self.pipeline.close_and_drain(retry_for=self.drain_retry_s)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        method = scope["method"]
        if path == TRACES_PATH:
            if method == "POST":
                await self._traces(scope, receive, send)
            else:
                await self._reply(send, 405, _status_body(405, "use POST", JSON), JSON, [(b"allow", b"POST")])
            return
        if path == "/healthz":
            if self.ready and not self.pipeline.closed:
                await self._reply(send, 200, b'{"status": "ok"}', JSON)
            else:
                await self._reply(send, 503, b'{"status": "shutting down"}', JSON)
            return
        if path in ("/metrics", "/stats"):
            if method != "GET":
                await self._reply(send, 405, _status_body(405, "use GET", JSON), JSON, [(b"allow", b"GET")])
            elif not self._authorized(scope):
                await self._unauthorized(send, JSON)
            else:
                snap = self.stats.snapshot()
                snap["queue_depth"] = self.pipeline.depth()
                snap["queue_capacity"] = self.pipeline.capacity
                # what the bounded caches dropped: a growing figure means more distinct calls than they hold
                snap["attribute_cache_clears"] = self.pipeline.enricher.entry_cache_clears
                snap["dedup_evictions"] = self.pipeline.enricher.enricher.dedup.evicted
                snap["pair_evictions"] = self.pipeline.enricher.enricher.pairs.evicted
                book_caches = self.pipeline.enricher.enricher.book.cache_stats()
                snap["pricing_resolve_evictions"] = book_caches.get("resolve_evictions", 0)
                snap["pricing_rates_evictions"] = book_caches.get("rates_evictions", 0)
                snap["memory_budget_bytes"] = self.budget.limit
                snap["memory_reserved_bytes"] = self.budget.used
                snap["memory_reserved_peak_bytes"] = self.budget.peak
                snap["connections_open"] = len(self.connections) if self.connections is not None else 0
                snap["log_lines_suppressed"] = self.log_limiter.suppressed
                snap["accept_errors"] = self.log_limiter.accept_errors
                await self._reply(send, 200, json.dumps(snap).encode(), JSON)
            return
        await self._reply(send, 404, _status_body(404, f"no such path {path[:200]}", JSON), JSON)

    def _authorized(self, scope: dict[str, Any]) -> bool:
        if self._token is None:
            return True
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        # Constant time in the token's content; the token itself is never logged.
        return hmac.compare_digest(given, self._token)

    async def _unauthorized(self, send: Any, ctype: str, close: bool = False) -> None:
        self.stats.add(requests_unauthorized=1)
        extra = [(b"www-authenticate", b"Bearer")]
        if close:
            extra.append((b"connection", b"close"))
        await self._reply(send, 401, _status_body(401, "missing or wrong bearer token", ctype), ctype, extra)

    @staticmethod
    async def _discard_body(receive: Any, length: int | None) -> None:
        """Read and drop a refused request's body, if it is announced and small (at most 64 KiB)."""
        if length is None or length > _DISCARD_MAX:
            return
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            more = msg.get("more_body", False)

    async def _traces(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        content_type, encoding, length = _request_headers(scope["headers"])
        reply_type = PROTOBUF if content_type == PROTOBUF else JSON
        self.stats.add(requests_received=1)

        if await self._refused_by_headers(scope, receive, send, content_type, encoding, length, reply_type):
            return
        limit = self.max_body_bytes

        # Under overload the body is read and dropped as it arrives (the connection stays usable), so a full
        # queue costs neither memory nor decoding.
        if self.pipeline.full():
            await self._drop_body(receive, limit)
            await self._overloaded(send, reply_type)
            return
        # The memory budget: this request's worst case is reserved before any of its body is read (chunk by
        # chunk without a Content-Length); what does not fit is refused now, with Retry-After.
        factor = _UPFRONT_FACTOR[content_type]
        reserved = 0
        if length is not None:
            if not self.budget.reserve(factor * max(length, 1)):
                await self._over_budget(send, reply_type)
                return
            reserved = factor * max(length, 1)
        try:
            body, reserved = await self._receive_body(receive, send, length, factor, reserved, reply_type)
            if body is None:  # answered already (413, over budget) or the client went away
                return
            try:
                if len(body) > _INLINE_DECODE_MAX:
                    self.stats.add(requests_decoded_off_loop=1)
                    decoded, extra = await asyncio.get_running_loop().run_in_executor(
                        self._decoder, self._decode, body, encoding, content_type, reserved)
                else:
                    decoded, extra = self._decode(body, encoding, content_type, reserved)
            except _OverBudget:
                await self._over_budget(send, reply_type)
                return
            except BodyTooLarge as exc:
                self.stats.add(requests_too_large=1)
                await self._error(send, 413, str(exc), reply_type)
                return
            except OTLPDecodeError as exc:
                self.stats.add(requests_bad=1)
                await self._error(send, 400, str(exc), reply_type)
                return
            reserved += extra
            accepted, rejected = decoded.accepted, decoded.rejected
            self.stats.add(spans_received=accepted + rejected)
            if accepted:
                # Shrink the reservation to what the decoded request holds until a worker is done with it; the
                # body itself stays reserved until the answer is sent (it is referenced until then).
                held = self._held_bytes(decoded, len(body), content_type)
                keep = min(held, reserved)
                if held > keep and not self.budget.reserve(held - keep, own=reserved):
                    await self._over_budget(send, reply_type)
                    return
                batch = Batch(decoded, held)
                del decoded
                if not self.pipeline.offer(batch):
                    self.budget.release(held - keep)
                    await self._overloaded(send, reply_type)
                    return
                reserved -= keep  # now the batch's, released by the worker
            self.stats.add(spans_accepted=accepted, spans_rejected=rejected)
            message = (f"{rejected} span(s) rejected: every span needs a 16-byte trace id and an 8-byte span id, "
                       "both non-zero") if rejected else ""
            await self._reply(send, 200, encode_response(reply_type, rejected, message), reply_type)
        finally:
            self.budget.release(reserved)

    async def _refused_by_headers(self, scope: dict[str, Any], receive: Any, send: Any, content_type: str,
                                  encoding: str, length: int | None, reply_type: str) -> bool:
        """Answer a request that its headers alone refuse (401, 415, 413); True when it was answered.

        These read (and discard) a small body before answering, then close the connection. Closing a socket with
        unread bytes makes the kernel send a reset, which a client can see instead of our answer; a large body is
        not worth reading, so it may still get one.
        """
        if not self._authorized(scope):
            await self._discard_body(receive, length)
            await self._unauthorized(send, reply_type, close=True)
            return True
        if content_type not in (PROTOBUF, JSON):
            self.stats.add(requests_unsupported=1)
            await self._discard_body(receive, length)
            await self._error(send, 415, f"unsupported content type {content_type or '(none)'!r}; send "
                              f"{PROTOBUF} or {JSON}", JSON, close=True)
            return True
        if encoding not in ("", "identity", "gzip"):
            self.stats.add(requests_unsupported=1)
            await self._discard_body(receive, length)
            await self._error(send, 415, f"unsupported content encoding {encoding!r}; send gzip or none",
                              reply_type, close=True)
            return True
        limit = self.max_body_bytes
        if length is not None and length > limit:
            self.stats.add(requests_too_large=1)
            await self._error(send, 413, f"body of {length} bytes exceeds the limit of {limit} bytes", reply_type,
                              close=True)
            return True
        return False

    async def _receive_body(self, receive: Any, send: Any, length: int | None, factor: int, reserved: int,
                            reply_type: str) -> tuple[bytes | None, int]:
        """Read the body, reserving budget as it arrives when its length was not announced (or is exceeded).
        Returns ``(body, reserved)``, or ``(None, reserved)`` when it answered instead (413, over budget) or the
        client went away; the caller releases ``reserved`` either way."""
        limit = self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None, reserved
            chunk = msg.get("body", b"")
            more = msg.get("more_body", False)
            if chunk:
                size += len(chunk)
                if size > limit:
                    self.stats.add(requests_too_large=1)
                    await self._error(send, 413, f"body exceeds the limit of {limit} bytes", reply_type,
                                      close=True)
                    return None, reserved
                if length is None or size > length:  # chunked: reserve as it arrives
                    if not self.budget.reserve(factor * len(chunk), own=reserved):
                        await self._over_budget(send, reply_type)
                        return None, reserved
                    reserved += factor * len(chunk)
                chunks.append(chunk)
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), reserved

    def _decode(self, body: bytes, encoding: str, content_type: str, reserved: int) -> tuple[Any, int]:
        """Decompress and decode ``body``; returns the decoded request and the bytes reserved on top of
        ``reserved`` (a gzip body's worst case grows with its decompressed size). Raises :class:`_OverBudget`,
        :class:`BodyTooLarge` or :class:`OTLPDecodeError`. Runs on the loop or on a decode thread."""
        extra = 0
        if encoding == "gzip":
            payload = gunzip(body, self.max_body_bytes)
            extra = max(0, _UPFRONT_FACTOR[content_type] * len(payload) - reserved)
            if extra and not self.budget.reserve(extra, own=reserved):
                raise _OverBudget
        else:
            payload = body
        try:
            return self.pipeline.enricher.decode(payload, content_type), extra
        except BaseException:
            self.budget.release(extra)
            raise

    def _held_bytes(self, decoded: Any, size: int, content_type: str) -> int:
        """What a decoded request holds until processed: see ``_HELD_PER_BYTE`` and ``_HELD_PER_CALL``.
        OTLP/JSON is about twice the size of the same request in protobuf."""
        per_byte = _HELD_PER_BYTE if content_type == PROTOBUF else _HELD_PER_BYTE / 2
        return int(per_byte * size) + self.held_per_call * len(decoded.calls) + 4096

    @staticmethod
    async def _drop_body(receive: Any, limit: int) -> None:
        """Read a body and throw it away as it arrives (at most ``limit`` bytes are read)."""
        size = 0
        more = True
        while more and size <= limit:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            size += len(msg.get("body", b""))
            more = msg.get("more_body", False)

    async def _over_budget(self, send: Any, reply_type: str) -> None:
        """503 + Retry-After, sent before (more of) the body is read. The connection stays open: the server
        drops the rest of the body as it arrives, without holding it (closing with unread bytes would make the
        kernel send a reset, which the client may see instead of this answer)."""
        self.stats.add(requests_over_budget=1)
        await self._error(send, 503, f"the server's memory budget ({self.budget.limit} bytes) is in use; retry "
                          "after the delay in Retry-After", reply_type, extra=[(b"retry-after", self._retry_after)])

    async def _overloaded(self, send: Any, reply_type: str) -> None:
        self.stats.add(requests_overloaded=1)
        why = "shutting down" if self.pipeline.closed else "the queue is full"
        await self._error(send, 503, f"{why}; retry after the delay in Retry-After", reply_type,
                          extra=[(b"retry-after", self._retry_after)])

    async def _error(self, send: Any, status: int, message: str, ctype: str, *, close: bool = False,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
        logger.debug("answering %d: %s", status, message)
        headers = list(extra or ())
        if close:
            headers.append((b"connection", b"close"))
        await self._reply(send, status, _status_body(status, message, ctype), ctype, headers)

    @staticmethod
    async def _reply(send: Any, status: int, body: bytes, ctype: str,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------------------- server


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"--host {host!r} cannot be resolved ({exc}); pass an address such as "
                                 "127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                                 "or stop what is using it") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CostServer:
    """One ``serve`` instance: configuration checked and resources opened at construction, served by
    :meth:`start` (background thread, for tests and embedding) or :meth:`run` (the calling thread, with
    SIGTERM/SIGINT handling, for the CLI).

    Raises :class:`ConfigurationError` (naming the fix) for bad configuration, an unusable ledger, a broken
    pricing overlay or a port that cannot be bound. Use as a context manager: leaving it stops the server and
    drains the queue.
    """

    def __init__(self, config: ServeConfig | None = None, **kwargs: Any) -> None:
        if importlib.util.find_spec("uvicorn") is None:  # fail fast, naming the fix
            raise ConfigurationError("serve needs uvicorn: pip install 'otel-costattr[serve]'")
        config = config if config is not None else ServeConfig(**kwargs)
        config.validate()
        self.config = config
        from .._capture._enrich import Enricher
        from .._errors import PricingError
        from .._pricing._book import PriceBook
        from ._codec import ProtoEnricher

        try:
            book = config.book if config.book is not None else PriceBook.load(config.pricing)
        except PricingError as exc:
            raise ConfigurationError(f"pricing overlay is invalid: {exc}") from exc
        self.stats = Stats()
        forwarder = None
        if config.forward:
            forwarder = Forwarder(config.forward_url(), config.forward_headers, timeout=config.forward_timeout,
                                  max_attempts=config.forward_max_attempts, max_elapsed=config.forward_max_elapsed)
        self.ledger = None
        if config.ledger:
            from .._ledger._store import Ledger

            self.ledger = Ledger(Path(config.ledger).expanduser(), book=book)  # ConfigurationError if unusable
        token = config.resolved_token()
        if token is None and not _is_loopback(config.host):
            logger.warning("serving on %s without a token: anyone who can reach it can send spans; set %s",
                           config.host, config.token_env or TOKEN_ENV)
        self.budget = MemoryBudget(config.max_memory)
        self.pipeline = Pipeline(enricher=ProtoEnricher(Enricher(book, langfuse=config.langfuse)),
                                 forwarder=forwarder, ledger=self.ledger, stats=self.stats,
                                 queue_size=config.queue_size, workers=config.workers, budget=self.budget)
        max_connections = fd_headroom_cap(config.max_connections)
        if max_connections < config.max_connections:
            logger.info("serving at most %d connections (not %d): the open-file limit (ulimit -n) leaves no "
                        "more; raise it to allow more", max_connections, config.max_connections)
        self.limits = ConnectionLimits(max_connections=max_connections, header_timeout=config.header_timeout,
                                       body_timeout=config.body_timeout, min_body_rate=config.min_body_rate,
                                       keep_alive_max_requests=config.keep_alive_max_requests)
        self.app = OTLPApp(self.pipeline, self.stats, token=token, max_body_bytes=config.max_body_bytes,
                           retry_after=config.retry_after, drain_retry_s=config.drain_retry_s)
        try:
            self._sock = _bind(config.host, config.port)
        except ConfigurationError:
            if self.ledger is not None:
                self.ledger.close()  # nothing will be served: release its reader connection and end its stream
            raise
        self.port: int = self._sock.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False

    # --------------------------------------------------------------------------------------- addresses

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def traces_url(self) -> str:
        return self.url + TRACES_PATH

    # --------------------------------------------------------------------------------------- lifecycle

    def _uvicorn_server(self) -> Any:
        import uvicorn

        # httptools is a C parser; h11 is pure Python and costs more per request
        if importlib.util.find_spec("httptools") is not None:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
        else:
            from uvicorn.protocols.http.h11_impl import H11Protocol as base
        # timeout_graceful_shutdown: a client still sending its body after that long at shutdown is cut off
        # (it never got a 200, so nothing it sent was accepted); everything answered 200 is drained.
        cfg = uvicorn.Config(self.app, lifespan="on", http=guarded_protocol(base, self.limits, self.stats),
                             loop="asyncio", log_config=None, access_log=False, server_header=False,
                             date_header=False, timeout_keep_alive=self.config.keep_alive_timeout, backlog=512,
                             timeout_graceful_shutdown=_GRACEFUL_TIMEOUT_S)
        server = uvicorn.Server(cfg)
        self.app.connections = server.server_state.connections
        return server

    def start(self, timeout: float = _STARTUP_TIMEOUT_S) -> CostServer:
        """Serve from a background thread; returns once the server accepts requests.

        Raises ``RuntimeError`` if it did not start in ``timeout`` seconds.
        """
        if self._thread is not None:
            raise RuntimeError("CostServer is already started")
        self.pipeline.start()
        self._server = self._uvicorn_server()

        def target() -> None:
            try:
                asyncio.run(self._server.serve(sockets=[self._sock]))
            except BaseException as exc:  # noqa: BLE001 - reported by start()/stop()
                self._error = exc

        self._thread = threading.Thread(target=target, name=f"serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"serve did not start within {timeout} s: {self._error!r}")
        logger.info("otel-costattr serve listening on %s", self.url)
        return self

    def stop(self, timeout: float | None = 120.0) -> None:
        """Stop accepting, drain the queue (forward and write everything accepted), close. Blocks. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        # a no-op when the lifespan shutdown already drained it
        self.pipeline.close_and_drain(timeout, retry_for=self.config.drain_retry_s)
        self._close_resources()

    def _close_resources(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
        if self.ledger is not None:
            self.ledger.close()

    def run(self) -> None:
        """Serve in the calling (main) thread until SIGTERM or SIGINT, then drain and return normally.

        uvicorn turns both signals into a graceful shutdown (stop accepting, finish in-flight requests, then
        the lifespan shutdown, where the queue is drained) and re-raises them once it has finished; handlers
        installed here make that re-raise a no-op, so the process exits 0 after a complete drain. A second
        signal does not cut the drain short (it is bounded by the forwarder's retry budget); SIGKILL does, and
        loses what was queued.
        """
        received: list[int] = []
        previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                    for s in (signal.SIGTERM, signal.SIGINT)}
        self.pipeline.start()
        self._server = self._uvicorn_server()
        logger.info("otel-costattr serve listening on %s (forward: %s, ledger: %s)", self.url,
                    redact_url(self.config.forward_url()) if self.config.forward else "-", self.config.ledger or "-")
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        finally:
            # Also after a forced exit (a second SIGINT makes uvicorn skip the lifespan shutdown): what was
            # accepted is delivered. Only SIGKILL abandons the queue.
            self.pipeline.close_and_drain(retry_for=self.config.drain_retry_s)
            self._closed = True
            self._close_resources()
            for s, h in previous.items():
                signal.signal(s, h)
        snap = self.stats.snapshot()
        logger.info("otel-costattr serve stopped: %d span(s) accepted, %d forwarded, %d written to the ledger, "
                    "%d dropped by the forward target", snap["spans_accepted"], snap["spans_forwarded"],
                    snap["ledger_spans_written"], snap["forward_dropped_spans"])

    def __enter__(self) -> CostServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<CostServer {self.url}>"


def serve(config: ServeConfig | None = None, **kwargs: Any) -> None:
    """Run ``otel-costattr serve`` in the calling thread until SIGTERM/SIGINT (see :meth:`CostServer.run`).

    Keyword arguments are :class:`ServeConfig` fields. Raises :class:`ConfigurationError` at start-up.
    """
    CostServer(config, **kwargs).run()
