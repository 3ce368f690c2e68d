"""Fixtures for driving the real OpenAI/Anthropic SDKs, under real instrumentations, at the fake vendor.

* ``vendor``: the session's :class:`FakeVendorServer`, reset before every test.
* ``telemetry``: a :class:`Telemetry` with its own ``TracerProvider`` + ``InMemorySpanExporter``.
  Tests call ``telemetry.instrument(...)`` by emitter name and get SDK clients from it; at teardown
  clients are closed, instrumentors are uninstrumented in reverse order (wrapt wrappers nest, so
  any other order unwraps the wrong layer) and every SDK resource method is checked against a
  snapshot taken before the test. Leftover wrappers are put back from the snapshot, so no test
  leaks an instrumentor into the next; a leak fails the test unless the emitter is a known
  offender (:data:`LEAKY_UNINSTRUMENT`).

* ``receiver`` / ``make_server``: a real OTLP/HTTP receiver, and ``otel-costattr serve`` in this process
  forwarding to it (stopped at teardown); :func:`serve_process` runs ``serve`` as a process of its own.

The global ``TracerProvider`` is never set: it can be set only once per process, so every
emitter gets this test's provider explicitly (instrumentors via ``tracer_provider=``, the
Anthropic SDK's built-in tracing via ``open_telemetry={"tracer_provider": ...}``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import pkgutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_costattr.testing import DEFAULT_USAGE, FakeVendorServer
from otel_costattr.testing._otlp_receiver import OTLPReceiver

# Instrumentor import paths by emitter name. "anthropic-sdk" (the SDK's own tracing) is a client
# option, not an instrumentor; see Telemetry.anthropic.
INSTRUMENTORS: dict[str, tuple[str, str]] = {
    "traceloop-openai": ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
    "genai-openai": ("opentelemetry.instrumentation.genai.openai", "OpenAIInstrumentor"),
    "traceloop-anthropic": ("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor"),
    "genai-anthropic": ("opentelemetry.instrumentation.genai.anthropic", "AnthropicInstrumentor"),
    "openinference-openai": ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
    "openinference-anthropic": ("openinference.instrumentation.anthropic", "AnthropicInstrumentor"),
    "openinference-bedrock": ("openinference.instrumentation.bedrock", "BedrockInstrumentor"),
    "openinference-agents": ("openinference.instrumentation.openai_agents", "OpenAIAgentsInstrumentor"),
    "botocore": ("opentelemetry.instrumentation.botocore", "BotocoreInstrumentor"),
}
# Arguments some instrumentors need here: the agents bridge replaces the Agents SDK's default trace processor
# (which would upload traces to the vendor) instead of adding to it.
INSTRUMENT_KWARGS: dict[str, dict[str, Any]] = {"openinference-agents": {"exclusive_processor": True}}

# Import everything an instrumentor may wrap before the first snapshot: the SDKs import resource
# modules lazily, and a class first imported by instrument() would be missing from the snapshot,
# so a wrapper that uninstrument() forgot there could not be detected or removed.
for _module, _ in INSTRUMENTORS.values():
    importlib.import_module(_module)
importlib.import_module("opentelemetry.instrumentation.openai.v1")
for _package in (openai, anthropic):
    for _info in pkgutil.walk_packages(_package.resources.__path__, f"{_package.__name__}.resources."):
        try:
            importlib.import_module(_info.name)
        except ImportError:  # an optional extra of the SDK; nothing there to wrap
            pass


_RESOURCE_BASES = tuple(
    getattr(importlib.import_module(f"{sdk}._resource"), base)
    for sdk in ("openai", "anthropic")
    for base in ("SyncAPIResource", "AsyncAPIResource")
)


def _resource_classes() -> list[type]:
    classes: dict[int, type] = {}
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith(("openai.resources", "anthropic.resources")):
            for cls in vars(module).values():
                if inspect.isclass(cls) and issubclass(cls, _RESOURCE_BASES):
                    classes[id(cls)] = cls
    return list(classes.values())


_RESOURCE_CLASSES = _resource_classes()  # after the imports above, so this is every resource class


def _sdk_methods() -> dict[tuple[type, str], Any]:
    """Every method of every SDK resource class (what instrumentors wrap), by identity."""
    return {
        (cls, attr): value
        for cls in _RESOURCE_CLASSES
        for attr, value in vars(cls).items()
        if not attr.startswith("__")
    }


# opentelemetry-instrumentation-openai 0.62.4 (Traceloop) calls
# unwrap("openai.resources.chat.completions", "Completions.create"): the helper splits the *first*
# argument at its last dot and looks the dotted attribute up with getattr, which finds nothing, so
# uninstrument() silently leaves every wrapper in place (and they keep emitting spans). The
# fixture restores those methods itself; any other emitter that leaks fails the test.
LEAKY_UNINSTRUMENT = {"traceloop-openai": "openai."}


class Telemetry:
    """A tracer provider with an in-memory exporter, instrumentors, and SDK clients for one test."""

    def __init__(self, vendor: FakeVendorServer) -> None:
        self.vendor = vendor
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self._instrumentors: list[tuple[str, Any]] = []
        self._clients: list[Any] = []
        self._baseline = _sdk_methods()

    def instrument(self, *names: str) -> None:
        """Instrument the SDKs with the named emitters, in the order given."""
        for name in names:
            module, attr = INSTRUMENTORS[name]
            instrumentor = getattr(importlib.import_module(module), attr)()
            instrumentor.instrument(tracer_provider=self.provider, **INSTRUMENT_KWARGS.get(name, {}))
            self._instrumentors.append((name, instrumentor))

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` client for the fake vendor; closed at teardown."""
        options: dict[str, Any] = {"max_retries": 2, "timeout": 10.0, "api_key": "test-key"}
        options.update(kwargs)
        client = openai.OpenAI(base_url=self.vendor.openai_base_url, **options)
        self._clients.append(client)
        return client

    def bedrock(self, headers: dict[str, str] | None = None) -> Any:
        """A boto3 ``bedrock-runtime`` client for the fake vendor (create it after instrumenting: OpenInference's
        Bedrock instrumentor wraps clients as they are created). ``headers`` (the fake's control headers) are
        added to every request."""
        import boto3

        client = boto3.client("bedrock-runtime", endpoint_url=self.vendor.bedrock_endpoint_url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        if headers:
            def add_headers(request: Any, **_: Any) -> None:
                for name, value in headers.items():
                    request.headers[name] = value
            client.meta.events.register("before-sign.bedrock-runtime.*", add_headers)
        self._clients.append(client)
        return client

    def anthropic(self, *, sdk_tracing: bool = False, propagation: bool = True, **kwargs: Any) -> anthropic.Anthropic:
        """An ``anthropic.Anthropic`` client for the fake vendor; closed at teardown.

        With ``sdk_tracing`` the SDK's built-in tracing reports to this provider; without it the
        SDK's tracing is switched off, so only instrumentor spans are exported. (The SDK default,
        tracing on via the global provider, would export nothing here: no global provider is set.)
        """
        option: Any = {"tracer_provider": self.provider, "propagation": propagation} if sdk_tracing else False
        options: dict[str, Any] = {"max_retries": 2, "timeout": 10.0, "api_key": "test-key", "open_telemetry": option}
        options.update(kwargs)
        client = anthropic.Anthropic(base_url=self.vendor.anthropic_base_url, **options)
        self._clients.append(client)
        return client

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in end order."""
        return list(self.exporter.get_finished_spans())

    def only_span(self) -> ReadableSpan:
        """The single finished span; fails the test if there is not exactly one."""
        spans = self.spans()
        assert len(spans) == 1, [span.name for span in spans]
        return spans[0]

    def clear(self) -> None:
        """Forget the spans exported so far."""
        self.exporter.clear()

    def close(self) -> None:
        """Close clients, uninstrument in reverse order, and check that the SDK classes are restored.

        Methods an instrumentor failed to unwrap are put back from the snapshot taken before the
        test, so the next test starts clean; that is tolerated only for :data:`LEAKY_UNINSTRUMENT`.
        """
        for client in self._clients:
            client.close()

        names = [name for name, _ in self._instrumentors]
        while self._instrumentors:
            _, instrumentor = self._instrumentors.pop()
            instrumentor.uninstrument()
        self.provider.shutdown()
        after = _sdk_methods()
        leaked = [(cls, attr) for (cls, attr), value in self._baseline.items() if after.get((cls, attr)) is not value]
        for cls, attr in leaked:
            setattr(cls, attr, self._baseline[(cls, attr)])
        tolerated = tuple(LEAKY_UNINSTRUMENT[name] for name in names if name in LEAKY_UNINSTRUMENT)
        unexpected = sorted(
            f"{cls.__module__}.{cls.__qualname__}.{attr}"
            for cls, attr in leaked
            if not (tolerated and cls.__module__.startswith(tolerated))
        )
        assert not unexpected, f"SDK methods not restored by uninstrument() of {names}: {unexpected}"


@pytest.fixture(scope="session")
def _vendor_session() -> Iterator[FakeVendorServer]:
    with FakeVendorServer(seed=20261122) as server:
        yield server


@pytest.fixture
def vendor(_vendor_session: FakeVendorServer) -> Iterator[FakeVendorServer]:
    """The shared fake vendor, with its records, attempt counters, hook and default usage reset."""
    _vendor_session.reset()
    _vendor_session.on_request(None)
    _vendor_session.default_usage = DEFAULT_USAGE
    yield _vendor_session
    _vendor_session.on_request(None)
    _vendor_session.default_usage = DEFAULT_USAGE


@pytest.fixture
def telemetry(vendor: FakeVendorServer) -> Iterator[Telemetry]:
    """A fresh :class:`Telemetry` whose instrumentors and clients are torn down after the test."""
    session = Telemetry(vendor)
    try:
        yield session
    finally:
        session.close()


# ---------------------------------------------------------------------------------------------
# The same, with otel-costattr in the pipeline: spans are priced before they reach the exporter.


class CostTelemetry(Telemetry):
    """Telemetry whose provider prices spans: baggage processor, then CostSpanProcessor(exporter)."""

    def __init__(self, vendor: FakeVendorServer) -> None:
        import otel_costattr as oc

        from opentelemetry.sdk.resources import Resource

        super().__init__(vendor)
        # the project resource attribute routes spans in Phoenix (tests that export there read it back)
        self.provider = TracerProvider(resource=Resource.create({"service.name": "otel-costattr-tests",
                                                                 "openinference.project.name": "costattr-e2e"}))
        self.exporter = InMemorySpanExporter()
        self.book = oc.PriceBook.load(env=False)
        self.cost = oc.CostSpanProcessor(SimpleSpanProcessor(self.exporter), book=self.book)
        self.provider.add_span_processor(oc.baggage_processor())
        self.provider.add_span_processor(self.cost)
        self.tracer = self.provider.get_tracer("app")


@pytest.fixture
def priced(vendor: FakeVendorServer) -> Iterator[CostTelemetry]:
    """A :class:`CostTelemetry` torn down like ``telemetry``."""
    session = CostTelemetry(vendor)
    try:
        yield session
    finally:
        session.close()


# ---------------------------------------------------------------------------------------------
# otel-costattr serve, in this process or as a process of its own, forwarding to a real receiver.


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rcv:
        yield rcv


@pytest.fixture
def make_server(receiver: OTLPReceiver) -> Iterator[Any]:
    """``make(**ServeConfig fields)`` starts a :class:`CostServer` on a free port forwarding to ``receiver``
    (unless told otherwise); every server is stopped, and the receiver's faults reset, at teardown."""
    from otel_costattr._serve._app import CostServer, ServeConfig

    servers: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("forward", receiver.traces_url)
        kwargs.setdefault("port", 0)
        kwargs.setdefault("token_env", None)
        srv = CostServer(ServeConfig(**kwargs)).start()
        servers.append(srv)
        return srv

    yield make
    receiver.reset_faults()
    for srv in servers:
        srv.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m otel_costattr serve --port <free> *args`` as a process of its own, without the caller's
    ``OTEL_*`` environment; yields ``(process, base url)`` once ``/healthz`` answers 200, and kills it at exit if
    the caller has not stopped it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.Popen([sys.executable, "-m", "otel_costattr", "serve", "--port", str(port), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "serve did not become healthy"
            time.sleep(0.05)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
