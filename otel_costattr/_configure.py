"""``configure()``: the whole capture pipeline in one call, from arguments or the environment.

    pipeline = otel_costattr.configure(service_name="support-agent", ledger="costs.duckdb")

builds (or extends the application's existing) ``TracerProvider`` with:

* the attribution baggage processor (allow-listed keys onto every span);
* ``CostSpanProcessor`` wrapping one ``BatchSpanProcessor`` per destination: any OTLP/HTTP endpoint (the
  standard ``OTEL_EXPORTER_OTLP_*`` variables), Langfuse (``LANGFUSE_HOST``, ``LANGFUSE_PUBLIC_KEY``,
  ``LANGFUSE_SECRET_KEY``), Jaeger (OTLP), and the local ledger (a directory of Parquet segments);
* the attribution-safe propagator, thread context propagation, and a cost-aware sampler wrapper;
* with a ledger, a SIGTERM/SIGINT handler that flushes the ledger and then chains to the handler that was there
  before (or the default action); see :func:`install_flush_on_signal`. Opt out with
  ``configure(flush_on_signal=False)`` or ``OTEL_COSTATTR_FLUSH_ON_SIGNAL=false``.

Bad configuration raises :class:`ConfigurationError` at start-up with the fix named. Secrets never appear in
messages.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from ._capture._attribution import baggage_processor, propagator, set_attribution_keys
from ._errors import ConfigurationError, PricingError
from ._pricing._book import PriceBook
from ._settings import check_environment, flag
from ._capture._processor import DEFAULT_METRIC_KEYS, CostSpanProcessor
from ._capture._sampling import CostAwareSampler

__all__ = ["Pipeline", "configure", "install_flush_on_signal"]

logger = logging.getLogger(__name__)

LANGFUSE_DEFAULT_HOST = "https://cloud.langfuse.com"
LANGFUSE_OTLP_PATH = "/api/public/otel/v1/traces"


@dataclass
class Pipeline:
    """What :func:`configure` built. ``shutdown()`` flushes and closes every exporter."""

    tracer_provider: TracerProvider
    processor: CostSpanProcessor
    destinations: list[str] = field(default_factory=list)
    exporters: dict[str, SpanExporter] = field(default_factory=dict)
    ledger: Any = None
    budgets: Any = None  # the BudgetTracker when configure(budgets=...) was given

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.processor.force_flush()
        self.processor.shutdown()


def _env(name: str, env: Mapping[str, str]) -> str | None:
    v = env.get(name)
    return v.strip() if v and v.strip() else None


def _check_url(url: str, what: str, fix: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigurationError(f"{what} must be an http(s) URL such as http://localhost:4318, got a value that is "
                                 f"not; {fix}")
    return url.rstrip("/")


def _traces_url(base: str) -> str:
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def _langfuse_settings(langfuse: bool | Mapping[str, str] | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(traces URL, Authorization header) or None. Raises with the fix when half-configured."""
    if langfuse is False:
        return None
    opts = dict(langfuse) if isinstance(langfuse, Mapping) else {}
    pk = opts.get("public_key") or _env("LANGFUSE_PUBLIC_KEY", env)
    sk = opts.get("secret_key") or _env("LANGFUSE_SECRET_KEY", env)
    host = opts.get("host") or _env("LANGFUSE_HOST", env) or _env("LANGFUSE_BASE_URL", env)
    if not pk and not sk:
        if langfuse is True or opts:
            raise ConfigurationError("Langfuse export was requested but LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY "
                                     "are not set; set both (Langfuse > Project settings > API keys)")
        return None
    if not pk or not sk:
        missing = "LANGFUSE_SECRET_KEY" if pk else "LANGFUSE_PUBLIC_KEY"
        raise ConfigurationError(f"{missing} is not set; Langfuse needs both the public and the secret key "
                                 "(Project settings > API keys)")
    if pk.startswith("sk-") or sk.startswith("pk-"):
        raise ConfigurationError("the Langfuse public and secret keys look swapped: LANGFUSE_PUBLIC_KEY starts with "
                                 "pk-lf- and LANGFUSE_SECRET_KEY with sk-lf-")
    base = _check_url(host or LANGFUSE_DEFAULT_HOST, "LANGFUSE_HOST",
                      "set it to your Langfuse base URL, e.g. http://localhost:3000")
    auth = "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()
    return base + LANGFUSE_OTLP_PATH, auth


def _otlp_exporter(endpoint: str, headers: Mapping[str, str] | None = None) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}), compression=Compression.Gzip)


def configure(*, service_name: str | None = None, otlp_endpoint: str | None = None,
              otlp_headers: Mapping[str, str] | None = None, langfuse: bool | Mapping[str, str] | None = None,
              jaeger: str | bool | None = None, ledger: str | os.PathLike[str] | None = None,
              exporters: Iterable[SpanExporter] = (), processors: Iterable[SpanProcessor] = (),
              tracer_provider: TracerProvider | None = None, sampler: Sampler | None = None,
              pricing: Sequence[str] = (), book: PriceBook | None = None,
              attribution_keys: Iterable[str] | None = None, metric_keys: Sequence[str] = DEFAULT_METRIC_KEYS,
              required_keys: Sequence[str] = ("customer_id",), strict: bool = False, meter_provider: Any = None,
              trust_inbound: bool = True, instrument_threading: bool | None = None, set_global: bool = True,
              env: Mapping[str, str] | None = None, budgets: Any = None,
              flush_on_signal: bool | None = None) -> Pipeline:
    """Build the capture pipeline. Every argument is optional; the environment fills the gaps.

    Args:
        service_name: ``service.name`` of a provider we create (default ``$OTEL_SERVICE_NAME``).
        otlp_endpoint: base URL of any OTLP/HTTP backend or collector (default ``$OTEL_EXPORTER_OTLP_ENDPOINT``
            or ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); headers from ``otlp_headers`` or the standard variables.
        langfuse: ``None`` = on when ``LANGFUSE_PUBLIC_KEY``/``LANGFUSE_SECRET_KEY`` are set; ``True`` = required;
            ``False`` = off; or a mapping with ``host``, ``public_key``, ``secret_key``.
        jaeger: Jaeger's OTLP/HTTP base URL (``True`` = ``http://localhost:4318``).
        ledger: the local ledger's path (every span, exact decimals): a directory, created if missing, that
            any number of processes may write at once (``costs.duckdb`` is a fine name). A single-file ledger of
            earlier versions must be converted once: ``otel-costattr ledger migrate PATH``.
        exporters / processors: extra exporters (each behind its own BatchSpanProcessor) or processors to wrap.
        tracer_provider: an existing provider to add to (default: the global SDK provider if there is one,
            else a new one, set as global when ``set_global``).
        sampler: the head sampler of a provider we create; wrapped in :class:`CostAwareSampler`.
        pricing / book: overlay pricing files, or a ready :class:`PriceBook`.
        attribution_keys: extra attribution keys to allow (added to the defaults of DESIGN D9).
        trust_inbound: ``False`` drops attribution keys from inbound baggage (for public edges).
        budgets: a budget file (TOML, see :mod:`otel_costattr._finance._budgets`), a list of budgets, or a ready
            ``BudgetTracker``: running totals per budget that emit the ``otel_costattr.budget.crossed`` metric and a
            log event the moment a warn threshold or limit is crossed; seeded from the ledger when one is set.
        flush_on_signal: with a ledger, flush it on SIGTERM and SIGINT, then run the handler that was installed
            before (or the default action: the process still ends). Default on (``None``), unless
            ``OTEL_COSTATTR_FLUSH_ON_SIGNAL`` is ``false``/``0``/``no``/``off``. Only from the main thread;
            see :func:`install_flush_on_signal`.

    Raises:
        ConfigurationError: bad or half-set configuration; the message names the fix.
    """
    env = os.environ if env is None else env
    check_environment(env)  # a typo'd OTEL_COSTATTR_* value fails here, before anything starts
    if attribution_keys is not None:
        set_attribution_keys(attribution_keys)
    book = _price_book(book, pricing)
    # Budgets are read (and validated) before any exporter thread starts: a bad file fails fast, leaving nothing.
    tracker = _budget_tracker(budgets, meter_provider)
    named = _named_exporters(otlp_endpoint, otlp_headers, langfuse, jaeger, exporters, env)

    downstream: list[SpanProcessor] = [BatchSpanProcessor(e) for e in named.values()]
    downstream.extend(processors)
    ledger_obj = _ledger_processor(ledger, book)
    if ledger_obj is not None:
        downstream.append(ledger_obj)
    if tracker is not None and ledger_obj is not None:
        tracker.seed(ledger_obj.ledger)
    processor = CostSpanProcessor(*downstream, book=book, meter_provider=meter_provider, metric_keys=metric_keys,
                                  required_keys=required_keys, strict=strict,
                                  cost_listeners=[tracker] if tracker is not None else ())

    provider = _tracer_provider(tracer_provider, sampler, service_name, set_global, env)
    if instrument_threading is None:
        # process-wide: only when configure() also owns the global provider
        instrument_threading = set_global
    provider.add_span_processor(baggage_processor(propagate_threads=instrument_threading))
    provider.add_span_processor(processor)
    if set_global:
        propagate.set_global_textmap(propagator(trust_inbound=trust_inbound))
    if not downstream:
        logger.info("otel-costattr: no destination configured; cost goes to metrics only. Pass ledger=..., "
                    "otlp_endpoint=..., or set LANGFUSE_* / OTEL_EXPORTER_OTLP_ENDPOINT.")
    pipeline = Pipeline(tracer_provider=provider, processor=processor, destinations=list(named) + (
        ["ledger"] if ledger_obj is not None else []), exporters=named, ledger=ledger_obj, budgets=tracker)
    if _flush_on_signal_wanted(flush_on_signal, env) and ledger_obj is not None:
        install_flush_on_signal(pipeline)
    return pipeline


def _ledger_processor(ledger: str | os.PathLike[str] | None, book: PriceBook) -> Any:
    """A ``LedgerSpanProcessor`` writing to ``ledger`` (re-pricing duplicates with ``book``), or None."""
    if ledger is None:
        return None
    from ._ledger._store import LedgerSpanProcessor
    return LedgerSpanProcessor(ledger, book=book)


def _flush_on_signal_wanted(flush_on_signal: bool | None, env: Mapping[str, str]) -> bool:
    """``flush_on_signal`` if given, else on unless ``OTEL_COSTATTR_FLUSH_ON_SIGNAL`` is false/0/no/off."""
    if flush_on_signal is not None:
        return flush_on_signal
    return flag("OTEL_COSTATTR_FLUSH_ON_SIGNAL", env, True)


def _price_book(book: PriceBook | None, pricing: Sequence[str]) -> PriceBook:
    """``book`` if given, else the shipped tables with the ``pricing`` overlays.

    Raises:
        ConfigurationError: an overlay is invalid (the message carries the pricing error)."""
    try:
        return book if book is not None else PriceBook.load(pricing)
    except PricingError as exc:
        raise ConfigurationError(f"pricing overlay is invalid: {exc}") from exc


def _budget_tracker(budgets: Any, meter_provider: Any) -> Any:
    """The ``BudgetTracker`` for ``budgets`` (a TOML path, a list of budgets, or a ready tracker), or None.

    Raises:
        ConfigurationError: a bad budget file or budget (from :func:`load_budgets` / ``BudgetTracker``)."""
    if budgets is None:
        return None
    from ._finance._budgets import BudgetTracker, load_budgets
    if isinstance(budgets, BudgetTracker):
        return budgets
    return BudgetTracker(load_budgets(budgets) if isinstance(budgets, (str, os.PathLike)) else budgets,
                         meter_provider=meter_provider)


def _named_exporters(otlp_endpoint: str | None, otlp_headers: Mapping[str, str] | None,
                     langfuse: bool | Mapping[str, str] | None, jaeger: str | bool | None,
                     exporters: Iterable[SpanExporter], env: Mapping[str, str]) -> dict[str, SpanExporter]:
    """The span exporters by destination name, in this order: ``otlp``, ``langfuse``, ``jaeger``, then the
    caller's as ``exporter0``, ``exporter1`` ... (the names become ``Pipeline.destinations``).

    Raises:
        ConfigurationError: a malformed URL or ``OTEL_EXPORTER_OTLP_HEADERS``; half-set Langfuse settings."""
    named: dict[str, SpanExporter] = {}
    endpoint = otlp_endpoint or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env) or _env("OTEL_EXPORTER_OTLP_ENDPOINT",
                                                                                      env)
    if endpoint:
        base = _check_url(endpoint, "the OTLP endpoint (otlp_endpoint / OTEL_EXPORTER_OTLP_ENDPOINT)",
                          "point it at your collector or backend")
        named["otlp"] = _otlp_exporter(_traces_url(base), _otlp_headers(otlp_headers, env))
    lf = _langfuse_settings(langfuse, env)
    if lf is not None:
        named["langfuse"] = _otlp_exporter(lf[0], {"Authorization": lf[1]})
    if jaeger:
        jbase = "http://localhost:4318" if jaeger is True else _check_url(
            str(jaeger), "jaeger", "pass Jaeger's OTLP/HTTP base URL, e.g. http://localhost:4318")
        named["jaeger"] = _otlp_exporter(_traces_url(jbase))
    for i, exp in enumerate(exporters):
        named[f"exporter{i}"] = exp
    return named


def _otlp_headers(otlp_headers: Mapping[str, str] | None, env: Mapping[str, str]) -> dict[str, str]:
    """``otlp_headers``, or (only when none are given) ``OTEL_EXPORTER_OTLP_HEADERS`` parsed as ``k=v,k=v``.

    Raises:
        ConfigurationError: a part of the variable without ``=``."""
    headers = dict(otlp_headers or {})
    if not headers and _env("OTEL_EXPORTER_OTLP_HEADERS", env):
        for part in env["OTEL_EXPORTER_OTLP_HEADERS"].split(","):
            if "=" not in part:
                raise ConfigurationError("OTEL_EXPORTER_OTLP_HEADERS must be comma-separated key=value pairs")
            k, v = part.split("=", 1)
            headers[k.strip()] = v.strip()
    return headers


def _tracer_provider(tracer_provider: TracerProvider | None, sampler: Sampler | None, service_name: str | None,
                     set_global: bool, env: Mapping[str, str]) -> TracerProvider:
    """``tracer_provider`` if given; else the global SDK provider if there is one; else a new provider
    (``service.name`` from ``service_name`` / ``$OTEL_SERVICE_NAME``, ``sampler`` wrapped in
    :class:`CostAwareSampler`), set as the global one when ``set_global``.

    Raises:
        ConfigurationError: a ``sampler`` while a global SDK provider already exists (its sampler is fixed)."""
    if tracer_provider is not None:
        return tracer_provider
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if sampler is not None:
            raise ConfigurationError("a global TracerProvider already exists, so configure() cannot set its "
                                     "sampler; build it with sampler=CostAwareSampler(your_sampler) instead")
        return current
    res = Resource.create({"service.name": service_name or _env("OTEL_SERVICE_NAME", env) or "unknown_service"})
    kw: dict[str, Any] = {"sampler": CostAwareSampler(sampler)} if sampler is not None else {}
    provider = TracerProvider(resource=res, **kw)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


# ------------------------------------------------------------------------------------------ signals

#: Pipelines flushed by the signal handler (weak: a pipeline that is gone is skipped).
_FLUSH_ON_SIGNAL: list[weakref.ref[Pipeline]] = []
#: How long the handler waits for the flush before it goes on to the previous handler (container runtimes
#: usually allow 10-30 s between SIGTERM and SIGKILL).
SIGNAL_FLUSH_TIMEOUT_S = 5.0


class _FlushThenChain:
    """A signal handler: flush every registered pipeline's ledger (then its other exporters), then do what the
    handler installed before would have done."""

    _otel_costattr_flush = True

    def __init__(self, signum: int, previous: Any) -> None:
        self.signum = signum
        self.previous = previous

    def __call__(self, signum: int, frame: Any) -> Any:
        try:
            _flush_all(SIGNAL_FLUSH_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the previous handler / default action must still happen
            logger.debug("flush on signal failed", exc_info=True)
        prev = self.previous
        if callable(prev):
            return prev(signum, frame)  # SIGINT's default is Python's KeyboardInterrupt handler: callable
        if prev == signal.SIG_IGN:
            return None
        # SIG_DFL, or a handler installed outside Python (None): the default action, as if we were not here.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return None


def _flush_all(timeout_s: float) -> None:
    """Flush on a helper thread and wait at most ``timeout_s``: the interrupted main thread may hold a lock the
    flush needs (an exporter's, the SDK's); waiting on it forever would hang the shutdown."""
    pipelines = [p for p in (r() for r in _FLUSH_ON_SIGNAL) if p is not None]
    if not pipelines:
        return

    def run() -> None:
        for p in pipelines:  # the ledger first: local, fast, and the record of spend
            if p.ledger is not None:
                p.ledger.force_flush(int(timeout_s * 1000))
        for p in pipelines:
            p.processor.force_flush(int(timeout_s * 1000))

    t = threading.Thread(target=run, name="otel-costattr-signal-flush", daemon=True)
    t.start()
    t.join(timeout_s)


def install_flush_on_signal(pipeline: Pipeline, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> bool:
    """Flush ``pipeline`` when the process gets SIGTERM or SIGINT, then chain to the previous handler.

    Contract: the handler that was installed before (the application's, a framework's, or Python's default
    ``KeyboardInterrupt`` for SIGINT) still runs, after the flush; with none (``SIG_DFL``) the default action
    follows (the process ends by that signal, as it would have); ``SIG_IGN`` stays ignored. A handler the
    application installs later replaces ours, as any handler does: it should call ``pipeline.force_flush()``
    or ``pipeline.shutdown()`` itself. The flush waits at most :data:`SIGNAL_FLUSH_TIMEOUT_S`. Signal handlers
    can only be set from the main thread: from another thread this does nothing and returns False.
    """
    _FLUSH_ON_SIGNAL[:] = [r for r in _FLUSH_ON_SIGNAL if r() is not None]
    if not any(r() is pipeline for r in _FLUSH_ON_SIGNAL):
        _FLUSH_ON_SIGNAL.append(weakref.ref(pipeline))
    if threading.current_thread() is not threading.main_thread():
        logger.info("otel-costattr: configure() ran outside the main thread, so it cannot install its SIGTERM/SIGINT "
                    "flush; call pipeline.shutdown() when your application stops")
        return False
    for sig in signals:
        try:
            previous = signal.getsignal(sig)
            if getattr(previous, "_otel_costattr_flush", False):
                continue  # ours already (configure() called twice): one flush, one chain
            signal.signal(sig, _FlushThenChain(sig, previous))
        except (ValueError, OSError) as exc:  # pragma: no cover - embedded interpreters without signals
            logger.info("otel-costattr: cannot install the flush handler for %s (%s)", sig, exc)
            return False
    return True
