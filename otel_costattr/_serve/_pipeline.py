"""The part of ``otel-costattr serve`` behind the HTTP handler: counters, the bounded queue, the workers that
enrich each accepted batch and hand it to the forwarder and/or the ledger, and the OTLP/HTTP forwarder.

Threads: the HTTP handler (the event loop thread) calls :meth:`Pipeline.offer`, which never blocks; worker
threads (``serve-worker-N``) do everything else. :meth:`Pipeline.close_and_drain` blocks its caller until
every accepted batch has been processed.

Delivery contract: a batch accepted by :meth:`Pipeline.offer` is always processed: written to the ledger and
forwarded, with retries on 429/502/503/504 and connection errors (``Retry-After`` honoured). Retries are
bounded (attempts and elapsed time, see :class:`Forwarder`): a forward target that stays down past that budget
loses the batch *there*, and that is counted (``forward_failed_requests``, ``forward_dropped_spans``) and
logged, never silent.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import logging
import queue
import random
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ._codec import EnrichCounts, ProtoEnricher, WireRequest

__all__ = ["Batch", "Forwarder", "MemoryBudget", "Pipeline", "Stats", "redact_url"]

logger = logging.getLogger(__name__)

_RETRYABLE = frozenset({429, 502, 503, 504})
# A batch larger than this many spans goes to the ledger in slices of it: the ledger's records and rows take
# ~8 kB per span at once (578 MB for one 72,000-span request), a slice ~16 MB.
LEDGER_SLICE_SPANS = 2048
_STOP = object()


class Stats:
    """Thread-safe counters, read as a JSON-ready dict by :meth:`snapshot`. Updated once per batch, not per span."""

    _FIELDS = (
        "requests_received", "spans_received", "spans_accepted", "spans_rejected", "requests_overloaded",
        "requests_bad", "requests_unsupported", "requests_too_large", "requests_unauthorized",
        "spans_enriched", "spans_passthrough", "attributes_kept_existing", "enrich_errors",
        "requests_forwarded", "spans_forwarded", "forward_retries", "forward_failed_requests",
        "forward_dropped_spans", "ledger_spans_written", "ledger_failed_batches", "ledger_dropped_spans",
        "batches_processed", "requests_over_budget", "connections_refused", "connections_header_timeout",
        "connections_body_timeout", "connections_closed_max_requests", "requests_decoded_off_loop",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: dict[str, int] = dict.fromkeys(self._FIELDS, 0)
        self._status: dict[str, int] = {}

    def add(self, **deltas: int) -> None:
        with self._lock:
            c = self._c
            for k, v in deltas.items():
                c[k] += v

    def add_enrich(self, counts: EnrichCounts) -> None:
        with self._lock:
            self._c["spans_passthrough"] += counts.passthrough
            self._c["attributes_kept_existing"] += counts.kept_existing
            enriched = 0
            for status, n in counts.statuses.items():
                self._status[status] = self._status.get(status, 0) + n
                enriched += n
            self._c["spans_enriched"] += enriched

    def get(self, name: str) -> int:
        with self._lock:
            return self._c[name]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._c)
            out["enriched_by_status"] = dict(sorted(self._status.items()))
        return out


class MemoryBudget:
    """Bytes that requests may hold at once: bodies being received, decoded requests queued and in flight.

    Callers :meth:`reserve` an estimate before they allocate and :meth:`release` it when the memory is gone;
    a reservation that would pass ``limit`` is refused (the caller answers 503), except when nothing else is
    reserved, so that one request larger than the whole budget can still get through on its own. Thread-safe:
    the event loop reserves, the workers release.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1 byte")
        self.limit = limit
        self._used = 0
        self._peak = 0
        self._lock = threading.Lock()

    def reserve(self, n: int, own: int = 0) -> bool:
        """Reserve ``n`` more bytes; False (nothing reserved) if that would pass the limit while others hold
        some of it (``own``: what the caller already holds, which does not count as others')."""
        with self._lock:
            used = self._used
            if used > own and used + n > self.limit:
                return False
            self._used = used = used + n
            if used > self._peak:
                self._peak = used
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self._used = max(0, self._used - n)

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        return self._peak


class Batch:
    """One accepted export request: the decoded request (a ``DecodedRequest``), its span count, and the bytes
    of the :class:`MemoryBudget` it holds until a worker has finished with it (``reserved``)."""

    __slots__ = ("decoded", "reserved", "spans")

    def __init__(self, decoded: Any, reserved: int = 0) -> None:
        self.decoded = decoded
        self.spans = decoded.accepted
        self.reserved = reserved


def redact_url(url: str) -> str:
    """``url`` without user info and query, which can carry credentials: the form that may be logged."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds, fractional accepted, or an HTTP-date)."""
    if not value:
        return None
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - now
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)


class Forwarder:
    """POSTs gzip-compressed protobuf ``ExportTraceServiceRequest`` bodies to one OTLP/HTTP traces URL.

    Retries 429, 502, 503, 504, timeouts and connection errors: it waits ``Retry-After`` when the target
    sends one (capped at ``max_backoff``), else an exponential back-off with jitter; at most ``max_attempts``
    attempts and ``max_elapsed`` seconds per batch. Other statuses are final. Headers (which usually hold
    credentials) are never logged.

    Thread-safe: each calling thread gets its own HTTP session (keep-alive connection).
    """

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, *, timeout: float = 10.0,
                 max_attempts: int = 6, max_elapsed: float = 60.0, initial_backoff: float = 0.5,
                 max_backoff: float = 30.0, compresslevel: int = 1) -> None:
        self.headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
                        "User-Agent": "otel-costattr-serve", **dict(headers or {})}
        parts = urlsplit(url)
        if parts.username is not None:
            # Credentials in the URL become a Basic Authorization header, unless one is given explicitly (the
            # HTTP client would otherwise let the URL's silently replace it).
            if not any(k.lower() == "authorization" for k in self.headers):
                user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                self.headers["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()
            url = redact_url(url) + (f"?{parts.query}" if parts.query else "")
        self.url = url
        self._log_url = redact_url(url)
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.max_elapsed = max_elapsed
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        # Level 1: OTLP compresses well at any level, and level 6 costs several times the CPU per span.
        self.compresslevel = compresslevel
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._sessions_lock = threading.Lock()
        self._deadline: float | None = None

    def _session(self) -> Any:
        s = getattr(self._local, "session", None)
        if s is None:
            import requests

            s = requests.Session()
            s.trust_env = False  # a proxy from the environment must not capture spans meant for the target
            self._local.session = s
            with self._sessions_lock:
                self._sessions.append(s)
        return s

    def encode(self, data: bytes) -> bytes:
        """The request body for the serialized request ``data``: gzipped."""
        return gzip.compress(data, compresslevel=self.compresslevel, mtime=0)

    def stop_retrying_at(self, deadline: float) -> None:
        """From ``deadline`` (a ``time.monotonic()`` value) on, no retry waits: each batch gets its attempt.

        Used when draining at shutdown; it also cuts short a back-off already under way. Any thread.
        """
        self._deadline = deadline

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless that would go past the retry deadline (then return False at once)."""
        end = time.monotonic() + seconds
        while True:
            deadline = self._deadline
            if deadline is not None and end > deadline:
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))  # short slices: a drain that starts now is noticed within 50 ms

    def send(self, body: bytes, stats: Stats) -> bool:
        """POST ``body`` with bounded retries; True when the target accepted it. Blocks; never raises."""
        import requests

        session = self._session()
        start = time.monotonic()
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                resp = session.post(self.url, data=body, headers=self.headers, timeout=self.timeout)
            except requests.RequestException as exc:
                outcome = f"{type(exc).__name__}"
            else:
                status = resp.status_code
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                if 200 <= status < 300:
                    return True
                if status not in _RETRYABLE:
                    logger.warning("forward target %s answered %d; the batch is not retried (only 429, 502, 503 "
                                   "and 504 are)", self._log_url, status)
                    return False
                outcome = f"HTTP {status}"
                wait = _retry_after(retry_after, time.time())
            if wait is None:
                wait = min(self.initial_backoff * 2 ** (attempt - 1), self.max_backoff) * random.uniform(0.8, 1.2)
            wait = min(wait, self.max_backoff)
            elapsed = time.monotonic() - start
            if attempt == self.max_attempts or elapsed + wait > self.max_elapsed or not self._pause(wait):
                logger.warning("forward to %s failed after %d attempt(s) in %.1f s (last: %s)", self._log_url, attempt,
                               time.monotonic() - start, outcome)
                return False
            stats.add(forward_retries=1)
            logger.debug("forward attempt %d to %s: %s; retried after %.2f s", attempt, self._log_url, outcome, wait)
        return False  # pragma: no cover - the loop returns

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            try:
                s.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


class Pipeline:
    """A bounded queue of accepted batches and the worker threads that drain it.

    ``queue_size`` counts export requests (batches), as the OpenTelemetry Collector's sending queue does.
    """

    def __init__(self, *, enricher: ProtoEnricher, forwarder: Forwarder | None, ledger: Any, stats: Stats,
                 queue_size: int = 64, workers: int = 2, budget: MemoryBudget | None = None) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.enricher = enricher
        self.forwarder = forwarder
        self.ledger = ledger
        self.stats = stats
        self.capacity = queue_size
        # bytes held by queued and in-flight batches (Batch.reserved), released as each one is done
        self.budget = budget if budget is not None else MemoryBudget(1 << 62)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._n_workers = workers
        self._warned_enrich = False
        self._warned_ledger = False
        self._warned_ledger_span = False

    # -------------------------------------------------------------------------------------- producer side

    def start(self) -> None:
        """Start the worker threads. Call once."""
        for i in range(self._n_workers):
            t = threading.Thread(target=self._work, name=f"serve-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def closed(self) -> bool:
        return self._closed

    def full(self) -> bool:
        """True when an offer would be refused now (a cheap check before decoding a body)."""
        return self._closed or self._queue.full()

    def depth(self) -> int:
        return self._queue.qsize()

    def offer(self, batch: Batch) -> bool:
        """Queue ``batch`` for processing; False (nothing queued) when the queue is full or closed. Never blocks.

        True means the batch *will* be processed, even if :meth:`close_and_drain` is called right after.
        """
        with self._lock:
            if self._closed:
                return False
            try:
                self._queue.put_nowait(batch)
            except queue.Full:
                return False
        return True

    def close_and_drain(self, timeout: float | None = None, retry_for: float | None = None) -> bool:
        """Refuse new batches, process every queued one, stop the workers. Blocks; True if all finished in time.

        Every queued batch is still written and forwarded; ``retry_for`` seconds from now, forward retries stop
        (each remaining batch then gets one attempt), so that a target that is down cannot hold the shutdown
        for the whole retry budget of every queued batch. Safe to call more than once, from any thread but a
        worker.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
            if first and retry_for is not None and self.forwarder is not None:
                self.forwarder.stop_retrying_at(time.monotonic() + retry_for)
        if first:
            pending = self._queue.qsize()
            if pending:
                logger.info("draining %d queued batch(es) before exit", pending)
            for _ in self._threads:
                self._queue.put(_STOP)  # blocks while full; the workers are draining it
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done and self.forwarder is not None:
            self.forwarder.close()
        return done

    # -------------------------------------------------------------------------------------- worker side

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._process(item)
            except Exception:  # noqa: BLE001 - a worker must survive anything one batch does
                logger.exception("unexpected error while processing a batch of %d span(s)", item.spans)
            finally:
                item.decoded = None  # the message is garbage before its bytes are given back to the budget
                self.budget.release(item.reserved)

    def _process(self, batch: Batch) -> None:
        decoded = batch.decoded
        try:
            self.stats.add_enrich(self.enricher.enrich(decoded))
        except Exception:  # noqa: BLE001 - forward what we have: an accepted span is never dropped for this
            self.stats.add(enrich_errors=1)
            if not self._warned_enrich:
                self._warned_enrich = True
                logger.exception("enrichment failed for a batch; it is forwarded as it is (logged once, counted "
                                 "in enrich_errors)")
        request = decoded.request
        # serialized once, for the ledger and the forward target alike (a large batch goes to the ledger in slices)
        data = (request.SerializeToString() if self.forwarder is not None or batch.spans <= LEDGER_SLICE_SPANS
                else b"")
        if self.ledger is not None:
            self._write_ledger(request, data, batch.spans)
        if self.forwarder is not None:
            body = self.forwarder.encode(data)
            if self.forwarder.send(body, self.stats):
                self.stats.add(requests_forwarded=1, spans_forwarded=batch.spans)
            else:
                self.stats.add(forward_failed_requests=1, forward_dropped_spans=batch.spans)
                logger.error("dropped %d span(s): the forward target did not accept them within the retry budget",
                             batch.spans)
        self.stats.add(batches_processed=1)

    def _write_ledger(self, request: Any, data: bytes, spans: int) -> None:
        """Write a batch to the ledger: one transaction, or one per slice of ``LEDGER_SLICE_SPANS`` spans for a
        larger batch (so its memory stays bounded; a failed slice is counted on its own)."""
        from .._ledger._otlp import records_from_proto

        bad: list[str] = []
        written = 0
        parts = [(data, spans)] if spans <= LEDGER_SLICE_SPANS else _slices(request, LEDGER_SLICE_SPANS)
        for part, n in parts:
            try:
                # A span the ledger cannot hold (a time beyond int64 nanoseconds) is skipped and counted; the
                # rest of the batch is still stored.
                written += self.ledger.write_records(records_from_proto(part, bad))
            except Exception as exc:  # noqa: BLE001 - counted and logged; forwarding goes on
                self.stats.add(ledger_failed_batches=1, ledger_dropped_spans=n)
                if not self._warned_ledger:
                    self._warned_ledger = True
                    logger.error("ledger write failed (%s: %s); %d span(s) not stored. Further failures are only "
                                 "counted.", type(exc).__name__, exc, n)
        self.stats.add(ledger_spans_written=written)
        if bad:
            self.stats.add(ledger_dropped_spans=len(bad))
            if not self._warned_ledger_span:
                self._warned_ledger_span = True
                logger.warning("%d span(s) not stored in the ledger: %s. Further ones are only counted.", len(bad),
                               bad[0])


def _slices(request: Any, size: int) -> Any:
    """Yield ``(serialized request, spans)`` for consecutive slices of at most ``size`` spans of ``request`` (a
    :data:`~otel_costattr._serve._codec.WireRequest`), each with its resource and scope."""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            spans = ss.spans
            for i in range(0, len(spans), size):
                part = WireRequest()
                prs = part.resource_spans.add()
                prs.resource.CopyFrom(rs.resource)
                prs.schema_url = rs.schema_url
                pss = prs.scope_spans.add()
                pss.scope.CopyFrom(ss.scope)
                pss.schema_url = ss.schema_url
                chunk = spans[i:i + size]
                pss.spans.extend(chunk)
                yield part.SerializeToString(), len(chunk)
