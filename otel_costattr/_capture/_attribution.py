"""Attribution: tag a unit of agent work once, and every nested span carries the tags (DESIGN D9, D10).

``attribution(customer_id="acme", task_id="t-42")`` puts allow-listed keys into W3C Baggage for the block
(or the decorated function, sync or async). :func:`baggage_processor` copies them onto every span started
inside it, through ``opentelemetry-processor-baggage``'s ``BaggageSpanProcessor``, never overwriting an
attribute the span already has and bounding every value. Asyncio tasks inherit the context natively; threads
do when ``opentelemetry-instrumentation-threading`` is on, and :func:`baggage_processor` turns it on (once per
process; ``propagate_threads=False`` opts out), so spans that libraries start on their own threads (LiteLLM's
logging thread, thread pools) carry the attribution too. Another service of yours receives the keys through the
standard W3C propagator.

Baggage is a trust boundary. Inbound, a client can claim any ``customer_id``: call :func:`strip_attribution`
(or use ``propagator(trust_inbound=False)``) at a public edge. Outbound, some SDKs inject *all* baggage into
requests to the LLM vendor (the Anthropic SDK does): the first ``attribution()`` installs a guard around the
global propagator that removes attribution keys from any request made inside a gen_ai span or to a known LLM
vendor host. Set ``OTEL_COSTATTR_OUTBOUND_ATTRIBUTION=allow`` to turn the guard off.

Never put secrets in Baggage: values travel in HTTP headers.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator, default_getter, \
    default_setter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._errors import ConfigurationError
from .._settings import choice
from ._enrich import plain_attributes
from ._layers import context_attributes as _layer_hints
from ._spanattrs import add_attributes
from ..attributes import DEFAULT_ATTRIBUTION_KEYS, MAX_VALUE_LENGTH, cut_value

__all__ = [
    "MAX_VALUE_LENGTH", "AttributionBaggageProcessor", "attribution", "attribution_keys", "baggage_processor",
    "propagate_to_threads", "propagator", "set_attribution_keys", "strip_attribution",
]

logger = logging.getLogger(__name__)

_MAX_KEYS = 64
ENV_OUTBOUND = "OTEL_COSTATTR_OUTBOUND_ATTRIBUTION"

#: Hosts of LLM vendors: attribution baggage is never injected into requests to them.
VENDOR_HOSTS = ("api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com", "api.x.ai",
                "api.deepseek.com", "api.mistral.ai", "openai.azure.com", "aiplatform.googleapis.com",
                "bedrock-runtime", "api.cohere.com", "api.groq.com", "openrouter.ai")

_keys_lock = threading.Lock()
_keys: frozenset[str] = frozenset(DEFAULT_ATTRIBUTION_KEYS)

F = TypeVar("F", bound=Callable[..., Any])


def attribution_keys() -> frozenset[str]:
    """The current allow-list of attribution keys."""
    return _keys


def set_attribution_keys(keys: Iterable[str], *, extend: bool = True) -> frozenset[str]:
    """Extend (default) or replace the allow-list. Raises :class:`ConfigurationError` on a bad key."""
    global _keys
    new = set(keys)
    for k in new:
        if not isinstance(k, str) or not k or len(k) > 128 or any(c in k for c in " ,;=\"\\"):
            raise ConfigurationError(f"attribution key {k!r} is not valid: use a short name without spaces, "
                                     "commas, semicolons, quotes or '='")
    with _keys_lock:
        _keys = frozenset(_keys | new) if extend else frozenset(new)
        if len(_keys) > _MAX_KEYS:
            raise ConfigurationError(f"at most {_MAX_KEYS} attribution keys are supported")
        return _keys


def _bounded(value: Any) -> str:
    return cut_value(value if isinstance(value, str) else str(value))


class attribution:  # noqa: N801 - used like a function: `with attribution(...)` / `@attribution(...)`
    """Set attribution keys as W3C Baggage for a block or a function (sync or async).

    ``with attribution(customer_id="acme", agent_run_id=run.id): ...`` or ``@attribution(task_id="triage")``.
    Only allow-listed keys (:func:`attribution_keys`) are accepted; values are converted to strings and cut to
    ``MAX_VALUE_LENGTH`` (:func:`~otel_costattr.attributes.cut_value`: a long value keeps a short hash).
    ``None`` values are skipped, so optional tags can be passed through.

    Raises:
        ConfigurationError: an unknown key (the message lists the allowed ones).
    """

    def __init__(self, **tags: Any) -> None:
        allowed = _keys
        unknown = sorted(k for k in tags if k not in allowed)
        if unknown:
            raise ConfigurationError(
                f"unknown attribution key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}. "
                "Add keys with otel_costattr.set_attribution_keys([...]) or configure(attribution_keys=[...]).")
        self.tags = {k: _bounded(v) for k, v in tags.items() if v is not None}
        self._tokens: list[object] = []

    def context(self, parent: Context | None = None) -> Context:
        """The context with these tags added to its baggage."""
        ctx = parent if parent is not None else context.get_current()
        for k, v in self.tags.items():
            ctx = baggage.set_baggage(k, v, context=ctx)
        return ctx

    def __enter__(self) -> "attribution":
        _install_outbound_guard()
        self._tokens.append(context.attach(self.context()))
        return self

    def __exit__(self, *exc: object) -> None:
        context.detach(self._tokens.pop())

    async def __aenter__(self) -> "attribution":
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        tags = self.tags
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with attribution(**tags):
                    return await func(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]
        if inspect.isasyncgenfunction(func):
            @functools.wraps(func)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                with attribution(**tags):
                    async for item in func(*args, **kwargs):
                        yield item
            return agen_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with attribution(**tags):
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


def strip_attribution(ctx: Context | None = None) -> Context:
    """``ctx`` (default: current) without attribution keys in its baggage.

    Use at a public edge, after extracting a client's headers, so a client cannot claim another customer::

        ctx = otel_costattr.strip_attribution(propagate.extract(request.headers))
    """
    ctx = ctx if ctx is not None else context.get_current()
    keys = _keys
    for k in list(baggage.get_all(ctx)):
        if k in keys:
            ctx = baggage.remove_baggage(k, ctx)
    return ctx


# ---------------------------------------------------------------------------------------------- baggage → span


class AttributionBaggageProcessor(BaggageSpanProcessor):
    """``BaggageSpanProcessor`` that copies only allow-listed keys, never overwrites, and bounds values.

    One bulk ``set_attributes`` call per span (the stock processor sets them one by one, each under the span's
    lock). A predicate or baggage error never reaches the application.
    """

    def __init__(self, keys: Iterable[str] | None = None, *, propagate_threads: bool = True) -> None:
        self._fixed = frozenset(keys) if keys is not None else None
        super().__init__(self._allowed)
        if propagate_threads:
            propagate_to_threads()

    def _allowed(self, key: str) -> bool:
        return key in (self._fixed if self._fixed is not None else _keys)

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        try:
            entries = baggage.get_all(parent_context)
            hints = _layer_hints()  # token-layer hints live in a context variable, never in baggage
            if not entries and not hints:
                return
            existing = plain_attributes(span)
            add = {k: v for k, v in hints.items() if k not in existing} if hints else {}
            if entries:
                allowed = self._fixed if self._fixed is not None else _keys
                for k, v in entries.items():
                    if k in allowed and k not in existing:
                        add[k] = v if type(v) is str and len(v) <= MAX_VALUE_LENGTH else _bounded(v)
                        if len(add) >= _MAX_KEYS:
                            break
            if add:
                _add_new_attributes(span, add)
        except Exception:  # noqa: BLE001 - never raise into span creation
            logger.debug("attribution baggage could not be copied", exc_info=True)


def _add_new_attributes(span: Any, add: dict[str, Any]) -> None:
    """Add attributes that the span does not have yet to a span that is starting.

    ``Span.set_attributes`` re-validates every value through generic ABC checks and costs more than the rest
    of this processor together; the values here are already plain strings (or numbers) and the keys new. So
    they go straight into the span's attribute store, under the same lock and limits the SDK applies, where
    the store has the shape that relies on (``_spanattrs``, shared with ``CostSpanProcessor``); otherwise
    through the public API. Every value is a ``str`` (a bounded baggage value) or an ``int`` (a checked layer
    hint), so the SDK's type checks are skipped (``plain``).
    """
    add_attributes(span, add, plain=True)


def baggage_processor(keys: Iterable[str] | None = None, *,
                      propagate_threads: bool = True) -> AttributionBaggageProcessor:
    """The span processor that copies attribution baggage onto every span (add it before CostSpanProcessor).

    Unless ``propagate_threads=False``, it also turns on thread context propagation for the process
    (:func:`propagate_to_threads`): emitters that start their spans on threads of their own (LiteLLM's callback
    after a stream ends, thread pools) then carry the attribution, and sit in the caller's trace.
    """
    return AttributionBaggageProcessor(keys, propagate_threads=propagate_threads)


_threads_lock = threading.Lock()


def propagate_to_threads() -> bool:
    """Turn on ``opentelemetry-instrumentation-threading`` (process-wide, once): new threads and thread pool tasks
    run in the context of the code that started them. Returns whether it is on. Never raises: if the
    instrumentation cannot be loaded, logs a warning naming what is lost."""
    try:
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor

        with _threads_lock:
            inst = ThreadingInstrumentor()
            if not inst.is_instrumented_by_opentelemetry:
                inst.instrument()
        return True
    except Exception as exc:  # noqa: BLE001 - context still flows in asyncio; say what is missing
        logger.warning("thread context propagation is off (%s); attribution will not reach spans started in new "
                       "threads. Install opentelemetry-instrumentation-threading.", exc)
        return False


# ------------------------------------------------------------------------------------------------ propagation


def _is_vendor_call(ctx: Context | None) -> bool:
    span = trace.get_current_span(ctx)
    attrs = getattr(span, "attributes", None)
    if not attrs:
        return False
    if "gen_ai.operation.name" in attrs or "gen_ai.provider.name" in attrs or "gen_ai.system" in attrs:
        return True
    host = attrs.get("server.address") or attrs.get("net.peer.name") or attrs.get("url.full") or ""
    return isinstance(host, str) and any(h in host for h in VENDOR_HOSTS)


class _AttributionBaggagePropagator(TextMapPropagator):
    """W3C Baggage, minus attribution keys towards LLM vendors (always) and from untrusted clients (optional)."""

    def __init__(self, inner: TextMapPropagator | None = None, *, trust_inbound: bool = True) -> None:
        self._inner = inner or W3CBaggagePropagator()
        self._trust_inbound = trust_inbound

    def extract(self, carrier: CarrierT, context: Context | None = None,
                getter: Getter[CarrierT] = default_getter) -> Context:
        ctx = self._inner.extract(carrier, context=context, getter=getter)
        return ctx if self._trust_inbound else strip_attribution(ctx)

    def inject(self, carrier: CarrierT, context: Context | None = None,
               setter: Setter[CarrierT] = default_setter) -> None:
        try:
            if _is_vendor_call(context):
                context = strip_attribution(context)
        except Exception:  # noqa: BLE001 - fail closed: send no baggage at all rather than leak it
            logger.debug("could not inspect the outbound span; baggage not injected", exc_info=True)
            return
        self._inner.inject(carrier, context=context, setter=setter)

    @property
    def fields(self) -> set[str]:
        return set(self._inner.fields)


def propagator(*, trust_inbound: bool = True) -> TextMapPropagator:
    """W3C trace context plus attribution-safe baggage. ``propagate.set_global_textmap(propagator())``."""
    return CompositePropagator([TraceContextTextMapPropagator(),
                                _AttributionBaggagePropagator(trust_inbound=trust_inbound)])


class _OutboundGuard(TextMapPropagator):
    """Wraps whatever global propagator is set, stripping attribution keys from vendor-bound requests."""

    def __init__(self, inner: TextMapPropagator) -> None:
        self.inner = inner

    def extract(self, carrier: CarrierT, context: Context | None = None,
                getter: Getter[CarrierT] = default_getter) -> Context:
        return self.inner.extract(carrier, context=context, getter=getter)

    def inject(self, carrier: CarrierT, context: Context | None = None,
               setter: Setter[CarrierT] = default_setter) -> None:
        try:
            if _is_vendor_call(context):
                context = strip_attribution(context)
        except Exception:  # noqa: BLE001
            return
        self.inner.inject(carrier, context=context, setter=setter)

    @property
    def fields(self) -> set[str]:
        return set(self.inner.fields)


_guard_lock = threading.Lock()
_guard_warned = False


def _install_outbound_guard() -> None:
    current = propagate.get_global_textmap()
    if isinstance(current, _OutboundGuard) or _contains_safe(current):
        return
    try:
        allow = choice(ENV_OUTBOUND, os.environ) == "allow"
    except ConfigurationError as exc:  # never raise into the app here: keep the guard (the safe side), say so once
        global _guard_warned
        if not _guard_warned:
            _guard_warned = True
            logger.warning("otel-costattr: %s; the outbound guard stays on", exc)
        allow = False
    if allow:
        return
    with _guard_lock:
        current = propagate.get_global_textmap()
        if not isinstance(current, _OutboundGuard) and not _contains_safe(current):
            propagate.set_global_textmap(_OutboundGuard(current))


def _contains_safe(p: TextMapPropagator) -> bool:
    if isinstance(p, _AttributionBaggagePropagator):
        return True
    inner = getattr(p, "_propagators", None)
    return bool(inner) and any(isinstance(x, _AttributionBaggagePropagator) for x in inner)

