"""The ``otel-costattr serve`` subcommand: its arguments and its handler (wired into ``_cli.py``).

Kept apart from ``_serve.py`` so that building the CLI parser imports neither uvicorn nor protobuf.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = ["add_serve_parser", "cmd_serve"]


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. 'Authorization=Basic cGs6c2s=')")
    return name.strip(), value.strip()


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


_UNITS = {"": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def _bytes(text: str) -> int:
    """A size in bytes: a whole number, optionally with a unit (KB, KiB, MB, MiB, GB, GiB)."""
    raw = text.strip().replace("_", "").lower()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits):].strip()
    try:
        return int(digits.strip()) * _UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 268435456, 256MiB, 1GiB)") from None


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None


# The connection limits (enforced in _guard): flag, parser, default, metavar, help without its default.
_CONNECTION_LIMITS: tuple[tuple[str, Any, Any, str, str], ...] = (
    ("--max-connections", _int, 1024, "N",
     "open connections at most (lowered to fit ulimit -n); further ones get 503 and are closed"),
    ("--header-timeout", _seconds, 10.0, "SECONDS", "time a client has to send a request header"),
    ("--body-timeout", _seconds, 10.0, "SECONDS", "window over which a request body must arrive at --min-body-rate"),
    ("--min-body-rate", _bytes, 4096, "BYTES",
     "slowest body accepted, in bytes per second; slower clients are disconnected"),
    ("--keep-alive-timeout", _seconds, 30.0, "SECONDS", "idle time before a keep-alive connection is closed"),
    ("--keep-alive-max-requests", _int, 10_000, "N",
     "requests per connection; the last one is answered with Connection: close"),
)


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subparser to ``sub`` (the CLI's subparsers action)."""
    from ._app import DEFAULT_PORT, TOKEN_ENV

    p = sub.add_parser(
        "serve", help="OTLP/HTTP endpoint that prices gen_ai spans from any language, then forwards or stores them",
        description="Receive OTLP/HTTP traces (POST /v1/traces, protobuf or JSON, gzip ok), add gen_ai.cost.* to "
        "every LLM span, then forward them (gzip protobuf, retries) to --forward and/or write them to --ledger. "
        "GET /healthz and GET /metrics report readiness and counters. SIGTERM/SIGINT: stop accepting, drain "
        "the queue, exit.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_int, default=DEFAULT_PORT, help="port (default: %(default)s; 0 picks one)")
    p.add_argument("--forward", metavar="URL", help="OTLP/HTTP traces endpoint to forward enriched spans to; "
                   "/v1/traces is appended to a base URL")
    p.add_argument("--forward-header", type=_header, action="append", default=[], metavar="NAME=VALUE",
                   help="header sent with every forward (repeatable), e.g. 'Authorization=Basic ...'")
    p.add_argument("--ledger", metavar="PATH", help="ledger directory to write every span to (created if missing; other processes may write it too)")
    p.add_argument("--pricing", nargs="+", action="extend", default=[], metavar="FILE",
                   help="overlay pricing file(s); they win over the shipped tables")
    p.add_argument("--token-env", default=TOKEN_ENV, metavar="NAME",
                   help="environment variable holding the bearer token clients must send (default: %(default)s; "
                   "no token there means no authentication)")
    p.add_argument("--queue-size", type=_int, default=64, metavar="N",
                   help="export requests held between the handler and the workers; beyond it clients get 503 "
                   "with Retry-After (default: %(default)s)")
    p.add_argument("--max-memory", type=_bytes, default=256 * 1024 * 1024, metavar="BYTES",
                   help="memory budget for bodies being received, requests queued and requests in flight (e.g. "
                   "512MiB); past it clients get 503 with Retry-After before their body is read (default: 256MiB)")
    p.add_argument("--max-body-bytes", type=_bytes, default=20 * 1024 * 1024, metavar="N",
                   help="largest request body, compressed or not; larger ones get 413 (default: %(default)s)")
    for flag, kind, default, metavar, text in _CONNECTION_LIMITS:
        p.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{text} (default: %(default)s)")
    p.add_argument("--workers", type=_int, default=2, metavar="N", help="worker threads (default: %(default)s)")
    p.add_argument("--retry-after", type=_int, default=1, metavar="SECONDS",
                   help="Retry-After sent with 503 when the queue is full (default: %(default)s)")
    p.add_argument("--drain-retry", type=float, default=30.0, metavar="SECONDS",
                   help="at shutdown every queued batch is still sent; forward retries stop this long into the "
                   "drain (default: %(default)s)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM/SIGINT; 0 after a clean drain. ConfigurationError propagates (exit 2)."""
    from ._allocator import tune_for_serving
    from ._guard import raise_open_file_limit
    from ._app import ServeConfig, serve

    tune_for_serving()  # this process is serve's own: see _allocator
    raise_open_file_limit()  # ... and so are its descriptors: room for --max-connections
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServeConfig(host=args.host, port=args.port, forward=args.forward,
                         forward_headers=dict(args.forward_header), ledger=args.ledger, pricing=args.pricing,
                         token_env=args.token_env, queue_size=args.queue_size, max_body_bytes=args.max_body_bytes,
                         max_memory=args.max_memory, max_connections=args.max_connections,
                         header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                         min_body_rate=args.min_body_rate, keep_alive_timeout=args.keep_alive_timeout,
                         keep_alive_max_requests=args.keep_alive_max_requests,
                         workers=args.workers, retry_after=args.retry_after, drain_retry_s=args.drain_retry)
    serve(config)
    return 0
