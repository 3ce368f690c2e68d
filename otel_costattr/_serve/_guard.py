"""Connection limits for ``otel-costattr serve``: a cap on open connections, a header timeout, a minimum body
rate, a keep-alive request limit, and bounded logging of what the event loop and the HTTP server complain about.

uvicorn has none of the first three (a client that sends half a header, or a body at one byte a minute, holds
its connection and its memory for ever), so :func:`guarded_protocol` wraps uvicorn's HTTP protocol class in a
subclass that only uses what every uvicorn protocol has (``asyncio.Protocol``'s callbacks, ``cycle`` for the
request in progress and its ``more_body``/``response_complete``, ``on_response_complete``), and one sweeper per
event loop checks every open connection twice a second:

* **connection cap**: past ``max_connections`` open connections a new one gets a canned ``503`` with
  ``Retry-After`` and is closed at once (counted in ``connections_refused``). The cap is kept 64 below the
  process's open-file limit; a burst far past that limit can still make ``accept()`` fail with ``EMFILE`` for
  a moment (asyncio accepts up to the backlog in one go, before any can be refused, and retries after 1 s),
  which the log limiter below reduces to one line a minute and counts (``accept_errors``).
* **header timeout**: from the first byte of a request (or from the connection's start) its header must be
  complete within ``header_timeout`` seconds; otherwise ``408`` and close (``connections_header_timeout``).
  Idle keep-alive connections are closed by uvicorn's own keep-alive timeout.
* **body progress**: while a request body is being received, every ``body_timeout`` seconds at least
  ``min_body_rate`` bytes per second must have arrived; otherwise the connection is closed
  (``connections_body_timeout``) and the handler sees a disconnect, which gives back its memory reservation.
* **keep-alive limit**: the ``keep_alive_max_requests``-th request on a connection is answered with
  ``Connection: close`` (``connections_closed_max_requests``).

Logging: :func:`install_log_limits` puts a filter on the ``asyncio`` and ``uvicorn.error`` loggers that lets
one line per kind of message through per ``interval`` seconds, without its traceback, and counts the rest (the
"socket.accept() out of system resource" error, for one, is otherwise logged with a traceback per attempt).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

__all__ = ["ConnectionLimits", "LogLimiter", "fd_headroom_cap", "guarded_protocol", "install_log_limits",
           "raise_open_file_limit"]

logger = logging.getLogger(__name__)

_SWEEP_S = 0.5
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 29\r\n"
            b"retry-after: 1\r\nconnection: close\r\n\r\ntoo many connections; retry\r\n")
_HEADER_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 24\r\n"
                   b"connection: close\r\n\r\nrequest header too slow\n")
_FD_RESERVE = 64  # descriptors kept free for the ledger, the forwarder's connections, logging, imports


@dataclass(frozen=True)
class ConnectionLimits:
    """The connection limits of one server (see the module docstring; defaults are serve's documented ones)."""

    max_connections: int = 1024
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    min_body_rate: int = 4096
    keep_alive_max_requests: int = 10_000


def fd_headroom_cap(wanted: int) -> int:
    """``wanted`` connections, lowered to what the open-file limit leaves after a reserve (but not below 16)."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - not on Linux/macOS
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return min(wanted, max(16, soft - _FD_RESERVE))


def raise_open_file_limit(wanted: int = 65536) -> int:
    """Raise this process's soft open-file limit towards its hard limit (at most ``wanted``), as servers
    commonly do at start-up (Go's runtime does it for every program). Only the serve command calls it, for its
    own process. Returns the soft limit now in force; never raises."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        return soft
    except (OSError, ValueError):  # pragma: no cover - a platform or container that refuses it
        return -1


class _Sweeper:
    """The connections of one event loop and the periodic check of their deadlines."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: ConnectionLimits, stats: Any) -> None:
        self.loop = loop
        self.limits = limits
        self.stats = stats
        self.open: set[Any] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, conn: Any) -> None:
        self.open.add(conn)
        if self._handle is None:
            self._handle = self.loop.call_later(_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        now = time.monotonic()
        lim = self.limits
        header_timeouts = body_timeouts = 0
        for conn in list(self.open):
            transport = conn.transport
            if transport is None or transport.is_closing():
                continue
            cycle = conn.cycle
            if cycle is None or cycle.response_complete:
                started = conn._oc_header_start  # noqa: SLF001
                if started is not None and now - started > lim.header_timeout:
                    header_timeouts += 1
                    transport.write(_HEADER_TIMEOUT)
                    transport.close()
            elif cycle.more_body and not cycle.disconnected:
                window = now - conn._oc_window_start  # noqa: SLF001
                if window >= lim.body_timeout:
                    if conn._oc_bytes - conn._oc_window_bytes < lim.min_body_rate * window:  # noqa: SLF001
                        body_timeouts += 1
                        transport.close()  # the handler's receive() then reports a disconnect
                    else:
                        conn._oc_window_start, conn._oc_window_bytes = now, conn._oc_bytes  # noqa: SLF001
        if header_timeouts or body_timeouts:
            self.stats.add(connections_header_timeout=header_timeouts, connections_body_timeout=body_timeouts)
        if self.open:
            self._handle = self.loop.call_later(_SWEEP_S, self._sweep)


def guarded_protocol(base: type, limits: ConnectionLimits, stats: Any) -> type:
    """A subclass of uvicorn's HTTP protocol class ``base`` that enforces ``limits`` and counts in ``stats``."""
    sweepers: weakref.WeakKeyDictionary[Any, _Sweeper] = weakref.WeakKeyDictionary()
    max_requests = limits.keep_alive_max_requests

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        _oc_refused = False
        _oc_header_start: float | None = None
        _oc_sweeper: _Sweeper | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            loop = self.loop
            sweeper = sweepers.get(loop)
            if sweeper is None:
                sweeper = sweepers[loop] = _Sweeper(loop, limits, stats)
            if len(sweeper.open) >= limits.max_connections:
                self._oc_refused = True
                stats.add(connections_refused=1)
                transport.write(_REFUSAL)
                transport.close()
                return
            now = time.monotonic()
            self._oc_header_start = now  # a connection that never sends a header is cut off like a slow one
            self._oc_bytes = 0
            self._oc_window_start, self._oc_window_bytes = now, 0
            self._oc_cycle = None
            self._oc_requests = 0
            self._oc_sweeper = sweeper
            sweeper.add(self)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._oc_sweeper is not None:
                self._oc_sweeper.open.discard(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._oc_refused:
                return
            self._oc_bytes += len(data)
            if self._oc_header_start is None:
                cycle = self.cycle
                if cycle is None or cycle.response_complete:
                    self._oc_header_start = time.monotonic()  # the first byte of the next request
            super().data_received(data)
            cycle = self.cycle
            if cycle is not self._oc_cycle and cycle is not None:
                # a header was completed just now: the body (if any) is measured from here
                self._oc_cycle = cycle
                self._oc_header_start = None
                self._oc_window_start, self._oc_window_bytes = time.monotonic(), self._oc_bytes
                self._oc_requests += 1
                if self._oc_requests >= max_requests:
                    cycle.keep_alive = False  # the handler has not answered yet: its answer says close
                    stats.add(connections_closed_max_requests=1)

        def on_response_complete(self) -> None:
            self._oc_header_start = None  # idle now: uvicorn's keep-alive timeout applies until the next byte
            super().on_response_complete()

    GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{base.__name__}"
    return GuardedProtocol


class LogLimiter(logging.Filter):
    """Lets one record per (logger, level, message template) through per ``interval`` seconds, without its
    traceback (the exception's type and text are kept in the line); counts the records it held back."""

    def __init__(self, interval: float = 60.0, max_kinds: int = 256) -> None:
        super().__init__()
        self.interval = interval
        self.max_kinds = max_kinds
        self.suppressed = 0
        self.accept_errors = 0
        self._last: dict[tuple[str, int, str], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        if template.startswith("socket.accept() out of system resource"):
            self.accept_errors += 1
        kind = (record.name, record.levelno, template[:80])
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self.suppressed += 1
                return False
            if len(self._last) >= self.max_kinds:
                self._last.clear()
            self._last[kind] = now
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is still worth a line
                text = template
            record.msg, record.args = f"{text} ({type(exc).__name__}: {exc}; one line per kind per " \
                                      f"{self.interval:g} s, tracebacks omitted)", None
            record.exc_info = record.exc_text = None
        return True


_limiter: LogLimiter | None = None
_limiter_lock = threading.Lock()
LIMITED_LOGGERS = ("asyncio", "uvicorn.error")


def install_log_limits() -> LogLimiter:
    """Install (once per process) the :class:`LogLimiter` on the ``asyncio`` and ``uvicorn.error`` loggers."""
    global _limiter
    with _limiter_lock:
        if _limiter is None:
            _limiter = LogLimiter()
            for name in LIMITED_LOGGERS:
                logging.getLogger(name).addFilter(_limiter)
        return _limiter
