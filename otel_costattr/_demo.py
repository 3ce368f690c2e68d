"""``otel-costattr demo``: a multi-tenant agent workload, priced and attributed, in one command.

:func:`run_demo` starts the built-in fake vendor (:class:`~otel_costattr.testing.FakeVendorServer`) on loopback
and drives the **real** ``openai`` and ``anthropic`` SDKs against it, instrumented the way applications
instrument them in production:

* OpenAI and DeepSeek (an OpenAI-compatible API, through the ``openai`` SDK) under Traceloop's
  ``OpenAIInstrumentor``;
* Anthropic under the SDK's own built-in tracing *and* Traceloop's ``AnthropicInstrumentor``, so every Anthropic
  call is traced twice: the ledger keeps both spans and prices the call once.

Five customers run agent processes (claims intake, support triage, code review, research briefs, nightly evals).
Every call happens inside :func:`otel_costattr.attribution` with the whole key set, under agent and tool spans
shaped like the ones agent frameworks emit. The workload contains what real bills contain: prompt caching (OpenAI
cached tokens, Anthropic cache reads and 5-minute / 1-hour cache writes), reasoning tokens, tool calls, a retry
loop after malformed tool arguments (one tenant's spend is dominated by it), a call the SDK retries, a failed call
with a fallback, streams with and without usage, a model the pricing table does not know, and a little untagged
traffic.

Determinism: the workload is planned up front from ``random.Random(seed)`` (token counts travel to the fake vendor
in request headers), and every span is placed on a fixed simulated week (Monday 2026-11-16 to Friday 2026-11-20,
UTC) instead of the wall clock, because prices are looked up at the call's start time (effective-dated tables,
DeepSeek's peak/off-peak windows). So the ledger totals and the printed rollups are identical for the same seed
and scale, whatever the thread interleaving, the day or the hour.

Side effects, all undone when the run ends: the OpenAI and Anthropic SDK classes are instrumented (the wrappers that
Traceloop's OpenAI ``uninstrument()`` leaves behind, an upstream bug, are removed by the demo), and the first
:func:`~otel_costattr.attribution` installs the library's outbound baggage guard around the global propagator (what
keeps attribution away from the vendors). One run at a time per process: concurrent calls are serialised.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import io
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Status, StatusCode

from .testing import FakeVendorServer, Usage, fake_headers

__all__ = ["DemoResult", "run_demo", "plan_workload"]

logger = logging.getLogger(__name__)

LEDGER_NAME = "costs.duckdb"
REPORT_NAME = "report.html"
#: Beside the ledger: the files of the ledger a demo run wrote. A ledger still made of exactly those files is the
#: demo's own, and the next run replaces it; any other ledger (or one an application has written to since) is never
#: touched without ``replace``.
DEMO_MARK = ".otel-costattr-demo.json"
SERVICE_NAME = "otel-costattr-demo"

#: Monday 2026-11-16 00:00 UTC: day 0 of the simulated week every span is placed on.
WEEK_START = datetime(2026, 11, 16, tzinfo=timezone.utc)
WORKERS = 6
MAX_RETRIES = 2

# ------------------------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class CallSpec:
    """One SDK call as planned: who is called, what usage the fake vendor reports, and how it is made.

    ``usage`` follows the vendor's *native* convention (see docs/fake-vendor.md): for OpenAI and DeepSeek
    ``input`` includes cached tokens; for Anthropic ``input`` is the uncached part only.
    """

    vendor: str  # "openai" | "anthropic" | "deepseek"
    model: str
    usage: Usage
    scenario: tuple[str, ...] = ()
    stream: bool = False
    stream_usage: bool = True  # OpenAI streams: ask for the final usage chunk
    tool: str | None = None  # offer this tool; the model calls it
    cache_ttl: str | None = None  # Anthropic: cache_control TTL on the system prompt ("5m" | "1h")


@dataclass(frozen=True)
class StepPlan:
    """One agent action: an ``invoke_agent`` span around its calls (and the tools they trigger)."""

    agent_id: str
    skill_id: str
    calls: tuple[CallSpec, ...]


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    kind: str
    user_id: str
    steps: tuple[StepPlan, ...]
    idle_s: int  # simulated think/queue time before the task starts


@dataclass(frozen=True)
class RunPlan:
    """One run of a process for a customer (``customer_id is None``: untagged traffic)."""

    customer_id: str | None
    process_id: str
    process_run_id: str | None
    feature: str | None
    workload_type: str | None
    start_ns: int  # on the simulated week
    tasks: tuple[TaskPlan, ...]

    @property
    def n_calls(self) -> int:
        return sum(len(s.calls) for t in self.tasks for s in t.steps)


@dataclass(frozen=True)
class _Process:
    feature: str
    workload_type: str
    task_kind: str
    tasks: tuple[int, int]  # tasks per run (inclusive range)
    hours: tuple[int, int]  # UTC hours a run may start in (inclusive)


PROCESSES: dict[str, _Process] = {
    "claims-intake": _Process("claims-automation", "batch", "claim", (3, 4), (0, 5)),
    "support-triage": _Process("help-center-chat", "interactive", "ticket", (3, 4), (8, 18)),
    "code-review": _Process("pr-review-bot", "interactive", "pull-request", (2, 3), (9, 17)),
    "research-brief": _Process("analyst-briefs", "interactive", "brief", (2, 3), (10, 16)),
    "nightly-eval": _Process("model-quality", "eval", "eval-case", (4, 5), (21, 23)),
}

#: Customer -> (short code, {process: runs at scale 1.0}).
CUSTOMERS: dict[str, tuple[str, dict[str, int]]] = {
    "acme-retail": ("AR", {"support-triage": 4, "research-brief": 2}),
    "globex-bank": ("GB", {"claims-intake": 3, "support-triage": 1}),
    "initech": ("IN", {"code-review": 4, "nightly-eval": 1}),
    "umbrella-health": ("UH", {"claims-intake": 2, "research-brief": 1}),
    "stark-logistics": ("SL", {"support-triage": 2, "nightly-eval": 2}),
}
#: The tenant whose claims intake keeps re-asking the model after malformed tool arguments.
RETRY_HEAVY_CUSTOMER = "globex-bank"
#: An in-house model behind an OpenAI-compatible endpoint, which the shipped pricing table cannot know: priced as
#: "unpriced", never as $0. (A fine-tune such as ft:gpt-4o-mini-2024-07-18:initech::review-v2 is priced at its
#: base's fine-tune rate since issue 20.)
UNPRICED_MODEL = "initech-review-router-v2"

#: Tools the agents offer (JSON schemas: the fake vendor fills in the required properties).
TOOLS: dict[str, tuple[str, dict[str, str]]] = {
    "extract_claim_fields": ("Extract the structured fields of an insurance claim from its documents.",
                             {"claim_id": "string", "amount": "number", "incident_date": "string"}),
    "lookup_policy": ("Look up a policy and its coverage limits.", {"policy_number": "string"}),
    "lookup_order": ("Fetch an order, its items and its delivery status.", {"order_id": "string"}),
    "run_sql": ("Run a read-only SQL query on the analytics warehouse.", {"query": "string"}),
    "web_search": ("Search the web and return the top results.", {"query": "string"}),
    "apply_patch": ("Apply a unified diff to the repository.", {"path": "string", "diff": "string"}),
}


class _Planner:
    """Draws the workload from one seeded RNG, in a fixed order (so the plan depends on the seed alone)."""

    def __init__(self, seed: int, scale: float) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.task_numbers: dict[str, int] = {}

    # -- usage, in each vendor's native convention

    def _n(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def openai_usage(self, prompt: tuple[int, int], out: tuple[int, int], *, cached: float = 0.0,
                     reasoning: tuple[int, int] | None = None) -> Usage:
        """OpenAI / DeepSeek: ``input`` includes the cached prefix (cached in 128-token steps above 1024)."""
        n_in = self._n(*prompt)
        hit = int(n_in * cached * self.rng.uniform(0.7, 1.0)) if cached else 0
        hit = (hit // 128) * 128 if hit >= 1024 else 0
        n_reason = self._n(*reasoning) if reasoning else 0
        n_out = self._n(*out) + n_reason
        return Usage(input=n_in, cache_read=hit, output=n_out, reasoning=n_reason)

    def anthropic_usage(self, uncached: tuple[int, int], out: tuple[int, int], *, read: int = 0, write_5m: int = 0,
                        write_1h: int = 0) -> Usage:
        """Anthropic: ``input`` is the uncached part; reads and the 5m/1h writes are separate counters."""
        return Usage(input=self._n(*uncached), cache_read=read, cache_write_5m=write_5m, cache_write_1h=write_1h,
                     output=self._n(*out))

    # -- the plan

    def task_id(self, code: str, kind: str) -> str:
        key = f"{code}:{kind}"
        n = self.task_numbers.get(key)
        n = self._n(1000, 1900) if n is None else n + self._n(1, 40)
        self.task_numbers[key] = n
        return f"{kind}-{code}-{n}"

    def plan(self) -> list[RunPlan]:
        runs: list[RunPlan] = []
        first_of: set[str] = set()  # special events happen in the first run of a kind, at any scale
        for customer, (code, processes) in CUSTOMERS.items():
            for process_id, n_runs in processes.items():
                proc = PROCESSES[process_id]
                for r in range(max(1, round(n_runs * self.scale))):
                    day = self._n(0, 4)
                    hour = self._n(*proc.hours)
                    # Runs start before minute 45 and last under 15 simulated minutes (idle gaps plus a few real
                    # seconds), so none crosses an hour: prices with hourly windows (DeepSeek's) cannot depend on
                    # how fast this machine is.
                    minute = self._n(0, 44)
                    start = WEEK_START.timestamp() + day * 86400 + hour * 3600 + minute * 60
                    special = process_id not in first_of
                    first_of.add(process_id)
                    tasks = self._tasks(customer, code, process_id, proc, special)
                    runs.append(RunPlan(customer, process_id, f"{customer}/{process_id}/run-{r + 1:02d}",
                                        proc.feature, proc.workload_type, int(start) * 1_000_000_000, tuple(tasks)))
        runs.extend(self._untagged())
        return runs

    def _tasks(self, customer: str, code: str, process_id: str, proc: _Process, special: bool) -> list[TaskPlan]:
        build: Callable[..., tuple[StepPlan, ...]] = getattr(self, "_" + process_id.replace("-", "_"))
        out = []
        cache: set[str] = set()  # Anthropic prompt caches written earlier in this run
        for i in range(self._n(*proc.tasks)):
            kind = proc.task_kind
            user = (f"u-{code.lower()}-{self._n(100, 999)}" if proc.workload_type == "interactive"
                    else f"svc-{process_id}")
            steps = build(customer, cache, special and i == 0)
            out.append(TaskPlan(self.task_id(code, kind), kind, user, steps, idle_s=0 if i == 0 else self._n(30, 150)))
        return out

    # Each builder returns the agent steps of one task. `first` marks the task that carries the special events.

    def _claims_intake(self, customer: str, cache: set[str], first: bool) -> tuple[StepPlan, ...]:
        steps = [StepPlan("intake-planner", "triage-plan", (
            CallSpec("openai", "gpt-4o-mini", self.openai_usage((1500, 4000), (150, 400), cached=0.5)),))]
        # The extractor reads the scanned claim documents (large, uncached) against a policy manual kept in
        # Anthropic's 1-hour cache: the first claim of a run writes it, later claims read it.
        manual = self._n(18_000, 26_000)
        # The retry-heavy tenant's documents trip the model's JSON 4-7 times per claim (5-8 attempts); elsewhere a
        # malformed call is an occasional slip.
        if customer == RETRY_HEAVY_CUSTOMER:
            retries = self._n(4, 7)
        else:
            retries = 1 if first or self.rng.random() < 0.25 else 0
        calls = []
        for attempt in range(retries + 1):
            cached = "manual" in cache
            cache.add("manual")
            usage = self.anthropic_usage(
                (22_000, 38_000) if customer == RETRY_HEAVY_CUSTOMER else (6_000, 16_000), (450, 1_400),
                read=manual if cached else 0, write_1h=0 if cached else manual)
            calls.append(CallSpec("anthropic", "claude-sonnet-4-5", usage,
                                  scenario=("malformed-tool",) if attempt < retries else (),
                                  tool="extract_claim_fields", cache_ttl="1h"))
        calls.append(CallSpec("anthropic", "claude-sonnet-4-5", self.anthropic_usage(
            (800, 2_500), (250, 700), read=manual), tool="extract_claim_fields", cache_ttl="1h"))
        steps.append(StepPlan("extractor", "document-extract", tuple(calls)))
        # The validator's short-lived (5-minute) cache: written by the first claim, read by the next ones.
        rules = self._n(3_000, 6_000)
        hot = "rules" in cache
        cache.add("rules")
        steps.append(StepPlan("validator", "policy-check", (
            CallSpec("anthropic", "claude-haiku-4-5", self.anthropic_usage(
                (1_200, 3_000), (120, 300), read=rules if hot else 0, write_5m=0 if hot else rules),
                tool="lookup_policy", cache_ttl="5m"),
            CallSpec("anthropic", "claude-haiku-4-5", self.anthropic_usage((400, 1_000), (150, 400), read=rules),
                     tool="lookup_policy", cache_ttl="5m"))))
        steps.append(StepPlan("summariser", "summarise", (
            CallSpec("openai", "gpt-4o-mini", self.openai_usage((2_000, 5_000), (200, 500)), stream=True),)))
        return tuple(steps)

    def _support_triage(self, customer: str, cache: set[str], first: bool) -> tuple[StepPlan, ...]:
        persona = self._n(1_500, 2_500)
        hot = "persona" in cache
        cache.add("persona")
        # The intent classifier's request fails once with HTTP 500 in the first ticket; the SDK retries it.
        steps = [StepPlan("support-bot", "intent-classify", (
            CallSpec("anthropic", "claude-haiku-4-5", self.anthropic_usage(
                (500, 1_800), (40, 120), read=persona if hot else 0, write_5m=0 if hot else persona),
                scenario=("flaky",) if first else (), cache_ttl="5m"),))]
        if self.rng.random() < 0.6:
            steps.append(StepPlan("support-bot", "refund-policy", (
                CallSpec("anthropic", "claude-haiku-4-5", self.anthropic_usage((900, 2_500), (80, 200), read=persona),
                         tool="lookup_order", cache_ttl="5m"),
                CallSpec("anthropic", "claude-haiku-4-5", self.anthropic_usage((300, 900), (150, 450), read=persona),
                         tool="lookup_order", cache_ttl="5m"))))
        else:
            steps.append(StepPlan("sql-analyst", "sql", (
                CallSpec("openai", "gpt-4o", self.openai_usage((3_000, 9_000), (100, 300), cached=0.6),
                         tool="run_sql"),
                CallSpec("openai", "gpt-4o", self.openai_usage((3_500, 9_500), (200, 600), cached=0.6),
                         tool="run_sql"))))
        # The reply is streamed to the customer; an older widget in the first ticket forgets include_usage.
        steps.append(StepPlan("support-bot", "reply-draft", (
            CallSpec("openai", "gpt-4o-mini", self.openai_usage((1_200, 3_500), (150, 450), cached=0.4),
                     stream=True, stream_usage=not first),)))
        return tuple(steps)

    def _code_review(self, customer: str, cache: set[str], first: bool) -> tuple[StepPlan, ...]:
        # The planner reasons over the diff. In the first pull request o3 fails (HTTP 500 on every attempt) and
        # the agent falls back to Claude.
        plan_calls = [CallSpec("openai", "o3", self.openai_usage((6_000, 20_000), (300, 800), cached=0.3,
                                                                  reasoning=(1_500, 6_000)),
                               scenario=("error-500",) if first else ())]
        if first:
            plan_calls.append(CallSpec("anthropic", "claude-sonnet-4-5",
                                       self.anthropic_usage((6_000, 20_000), (600, 1_500))))
        steps = [StepPlan("planner", "review-plan", tuple(plan_calls))]
        repo = self._n(12_000, 30_000)
        hot = "repo" in cache
        cache.add("repo")
        steps.append(StepPlan("coder", "code-edit", (
            CallSpec("anthropic", "claude-sonnet-4-5", self.anthropic_usage(
                (2_000, 6_000), (400, 1_800), read=repo if hot else 0, write_5m=0 if hot else repo),
                tool="apply_patch", cache_ttl="5m"),
            CallSpec("anthropic", "claude-sonnet-4-5", self.anthropic_usage((500, 1_500), (200, 600), read=repo),
                     tool="apply_patch", cache_ttl="5m"))))
        review = [CallSpec("deepseek", "deepseek-chat", self.openai_usage((8_000, 25_000), (300, 1_200),
                                                                          cached=0.5))]
        if first or self.rng.random() < 0.4:
            # The team's fine-tuned reviewer: not in the pricing table, so the report lists it as unpriced.
            review.append(CallSpec("openai", UNPRICED_MODEL, self.openai_usage((4_000, 9_000), (200, 500))))
        steps.append(StepPlan("reviewer", "static-analysis", tuple(review)))
        return tuple(steps)

    def _research_brief(self, customer: str, cache: set[str], first: bool) -> tuple[StepPlan, ...]:
        steps = []
        for i in range(self._n(1, 2)):
            steps.append(StepPlan("researcher", "web-search", (
                CallSpec("openai", "gpt-4o", self.openai_usage((1_500, 4_000), (60, 150)), tool="web_search",
                         scenario=("flaky",) if first and i == 0 else ()),
                CallSpec("openai", "gpt-4o", self.openai_usage((6_000, 18_000), (300, 900), cached=0.2),
                         tool="web_search"))))
        steps.append(StepPlan("summariser", "summarise", (
            CallSpec("anthropic", "claude-haiku-4-5", self.anthropic_usage((8_000, 20_000), (400, 1_000)),
                     stream=True),)))
        steps.append(StepPlan("writer", "brief-write", (
            CallSpec("openai", "gpt-5", self.openai_usage((4_000, 12_000), (800, 2_000), cached=0.3,
                                                          reasoning=(1_000, 4_000))),)))
        return tuple(steps)

    def _nightly_eval(self, customer: str, cache: set[str], first: bool) -> tuple[StepPlan, ...]:
        grades = tuple(CallSpec("deepseek", "deepseek-chat", self.openai_usage((2_500, 7_000), (80, 250),
                                                                                 cached=0.7))
                       for _ in range(self._n(2, 3)))
        return (
            StepPlan("grader", "rubric-grade", grades + (
                CallSpec("openai", "gpt-4o-mini", self.openai_usage((2_000, 5_000), (100, 300), cached=0.5)),)),
            StepPlan("judge", "pairwise-judge", (
                CallSpec("openai", "gpt-5", self.openai_usage((5_000, 14_000), (200, 500), cached=0.4,
                                                              reasoning=(800, 3_000))),)),
        )

    def _untagged(self) -> list[RunPlan]:
        """Calls made outside any attribution block: a notebook experiment and a cron health check."""
        n = max(2, round(4 * self.scale))
        notebook = tuple(StepPlan("notebook", "ad-hoc", (
            CallSpec("openai", "gpt-4o", self.openai_usage((2_000, 12_000), (200, 900))),)) for _ in range(n))
        health = tuple(StepPlan("healthcheck", "ping", (
            CallSpec("anthropic", "claude-haiku-4-5", self.anthropic_usage((20, 60), (5, 20))),)) for _ in range(n))
        day = WEEK_START.timestamp() + 2 * 86400
        return [
            RunPlan(None, "notebook", None, None, None, int(day + 14 * 3600) * 1_000_000_000,
                    (TaskPlan("notebook", "notebook", "", notebook, 0),)),
            RunPlan(None, "healthcheck", None, None, None, int(day + 5 * 3600 + 600) * 1_000_000_000,
                    (TaskPlan("healthcheck", "healthcheck", "", health, 0),)),
        ]


def plan_workload(seed: int = 7, calls_scale: float = 1.0) -> list[RunPlan]:
    """The demo's workload for ``seed`` and ``calls_scale``: a pure function of its arguments.

    Every special case (retry loop, SDK retry, failed call, stream without usage, unpriced model, untagged
    traffic) is present at any scale > 0.

    Raises:
        ValueError: ``calls_scale`` is not positive.
    """
    if not calls_scale > 0:
        raise ValueError(f"calls_scale must be > 0, got {calls_scale!r}")
    return _Planner(seed, calls_scale).plan()


# ------------------------------------------------------------------------------------ simulated clock


class _RunClock:
    """Maps the real clock of one run onto the simulated week: ``virtual = real + offset``."""

    __slots__ = ("offset",)

    def __init__(self, virtual_start_ns: int) -> None:
        self.offset = virtual_start_ns - time.time_ns()

    def skip(self, seconds: int) -> None:
        """Let ``seconds`` of simulated time pass (queueing, a user typing) without waiting for them."""
        self.offset += seconds * 1_000_000_000


_CLOCK: contextvars.ContextVar[_RunClock | None] = contextvars.ContextVar("otel_costattr_demo_clock", default=None)


class _SimulatedClockProcessor(SpanProcessor):
    """Moves each span of a run onto the simulated week, before the cost processor sees it.

    Prices are looked up at a span's start time, so spans stamped with the wall clock would make the demo's
    totals depend on when it runs (DeepSeek bills peak and off-peak hours differently). The SDK has no public
    way to re-time a span, so this shifts the private ``_start_time`` (at start) and ``_end_time`` (at end, on
    the ``ReadableSpan`` that every later processor receives). It must be the provider's first processor. If
    the SDK changes those internals the spans keep their real times and a warning says so.
    """

    def __init__(self) -> None:
        self._broken = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        clock = _CLOCK.get()
        if clock is not None and not self._broken:
            try:
                span._start_time += clock.offset  # type: ignore[attr-defined]  # noqa: SLF001
            except (AttributeError, TypeError):
                self._disable()

    def on_end(self, span: ReadableSpan) -> None:
        clock = _CLOCK.get()
        if clock is not None and not self._broken:
            try:
                span._end_time += clock.offset  # type: ignore[attr-defined]  # noqa: SLF001
            except (AttributeError, TypeError):
                self._disable()

    def _disable(self) -> None:
        self._broken = True
        logger.warning("the demo cannot re-time spans with this opentelemetry-sdk; spans keep their real times, so "
                       "time-windowed prices (DeepSeek peak hours) may vary between runs")


# ------------------------------------------------------------------------------------------ instrumentation


def _resource_methods() -> dict[tuple[type, str], Any]:
    """Every attribute of every class defined in the loaded ``openai.resources`` / ``anthropic.resources``
    modules: where instrumentations install their wrappers."""
    found: dict[tuple[type, str], Any] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("openai.resources", "anthropic.resources")):
            continue
        for cls in list(vars(module).values()):
            if isinstance(cls, type) and cls.__module__ == name:
                for attr, value in list(vars(cls).items()):
                    found[(cls, attr)] = value
    return found


_RUN_LOCK = threading.Lock()


@contextlib.contextmanager
def _instrumented(provider: trace.TracerProvider) -> Iterator[None]:
    """Traceloop's OpenAI and Anthropic instrumentations reporting to ``provider`` for the block; the SDK classes
    are as they were afterwards.

    Traceloop's OpenAI ``uninstrument()`` unwraps nothing (it passes ``"Class.method"`` where the helper expects a
    module path), so the wrappers would keep emitting into this run's shut-down provider and stack up on every
    later instrumentation. So the wrappers our ``instrument()`` calls install are recorded, and after
    ``uninstrument()`` each one that is still in place (nobody wrapped on top of it) is replaced by the function
    it wraps.
    """
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from wrapt import FunctionWrapper

    before = _resource_methods()
    ours = []
    for instrumentor, what in ((OpenAIInstrumentor(), "OpenAI"), (AnthropicInstrumentor(), "Anthropic")):
        if instrumentor.is_instrumented_by_opentelemetry:
            # Instrumenting again would do nothing; the application's instrumentation gets the demo's spans.
            logger.warning("the application already instrumented %s with Traceloop; the demo's %s spans go to its "
                           "tracer provider", what, what)
            continue
        # skip_dep_check: the check reads every installed distribution's metadata (slow); the [demo] extra pins
        # the SDK versions these instrumentations support.
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
        ours.append(instrumentor)
    installed = [(cls, attr, value) for (cls, attr), value in _resource_methods().items()
                 if isinstance(value, FunctionWrapper) and before.get((cls, attr)) is not value]
    try:
        yield
    finally:
        for instrumentor in reversed(ours):  # wrappers nest: unwrap the outer layer first
            instrumentor.uninstrument()
        for cls, attr, wrapper in installed:
            if vars(cls).get(attr) is wrapper:
                setattr(cls, attr, wrapper.__wrapped__)


# ------------------------------------------------------------------------------------------ progress


class _Progress:
    """A self-drawn progress bar on a stream: redrawn in place on a terminal, as occasional lines otherwise."""

    def __init__(self, total: int, stream: TextIO | None, started: float | None = None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.started = time.monotonic() if started is None else started
        self._lock = threading.Lock()
        self._last = 0.0
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._every = 0.1 if self.tty else 2.0
        if stream is not None:  # at once: the SDK imports and instrumentation take a few seconds
            self._last = time.monotonic()
            self._draw(self._last)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.stream is not None and now - self._last >= self._every:
                self._last = now
                self._draw(now)

    def finish(self) -> None:
        with self._lock:
            if self.stream is not None:
                self._draw(time.monotonic())
                if self.tty:
                    self.stream.write("\n")
                self.stream.flush()

    def _draw(self, now: float) -> None:
        width = 30
        filled = min(width, self.done * width // self.total)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} LLM calls  "
                f"{now - self.started:5.1f}s")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))  # type: ignore[union-attr]
        self.stream.flush()  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ execution


class _Conversation:
    """A vendor-neutral message log, rendered for whichever SDK makes the next call."""

    def __init__(self, prompt: str) -> None:
        self.items: list[tuple[str, Any]] = [("user", prompt)]

    def openai(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful assistant."}]
        for kind, item in self.items:
            if kind == "user":
                out.append({"role": "user", "content": item})
            elif kind == "tool_call":
                call_id, name, args = item
                out.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
            else:
                call_id, result = item
                out.append({"role": "tool", "tool_call_id": call_id, "content": result})
        return out

    def anthropic(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kind, item in self.items:
            if kind == "user":
                out.append({"role": "user", "content": item})
            elif kind == "tool_call":
                call_id, name, args = item
                out.append({"role": "assistant", "content": [
                    {"type": "tool_use", "id": call_id, "name": name, "input": args}]})
            else:
                call_id, result = item
                out.append({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": call_id, "content": result}]})
        return out


class _Invalid(ValueError):
    """The model's tool arguments are not valid JSON for the tool's schema."""


def _parse_args(tool: str, raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise _Invalid(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise _Invalid("arguments must be a JSON object")
    missing = [k for k in TOOLS[tool][1] if k not in raw]
    if missing:
        raise _Invalid(f"missing {', '.join(missing)}")
    return raw


def _tool_result(tool: str, args: dict[str, Any]) -> str:
    """A deterministic stand-in for the tool's real work."""
    results = {
        "extract_claim_fields": {"status": "extracted", "fields": 14},
        "lookup_policy": {"coverage": "comprehensive", "limit_usd": 25000},
        "lookup_order": {"status": "delivered", "refundable": True},
        "run_sql": {"rows": 12},
        "web_search": {"results": 5},
        "apply_patch": {"applied": True, "files": 2},
    }
    return json.dumps({"tool": tool, **results[tool]})


class _Executor:
    """Runs planned runs against the fake vendor with the real SDKs. One instance per demo run."""

    def __init__(self, tracer: trace.Tracer, clients: dict[str, Any], progress: _Progress) -> None:
        import anthropic
        import openai

        self.api_errors = (openai.APIError, anthropic.APIError)
        self.tracer = tracer
        self.clients = clients
        self.progress = progress
        self._keys = 0
        self._keys_lock = threading.Lock()

    def _request_key(self) -> str:
        with self._keys_lock:
            self._keys += 1
            return f"demo-{self._keys}"

    def run(self, plan: RunPlan) -> None:
        from . import attribution

        token = _CLOCK.set(_RunClock(plan.start_ns))
        try:
            if plan.customer_id is None:
                # Untagged traffic: no attribution block and no workflow span, as in a notebook or a cron script.
                for task in plan.tasks:
                    for step in task.steps:
                        self._step(step, task, None)
                return
            tags = attribution(customer_id=plan.customer_id, process_id=plan.process_id,
                               process_run_id=plan.process_run_id, feature=plan.feature,
                               workload_type=plan.workload_type)
            with tags, self.tracer.start_as_current_span(
                    f"invoke_workflow {plan.process_id}",
                    attributes={"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": plan.process_id}):
                clock = _CLOCK.get()
                for task in plan.tasks:
                    clock.skip(task.idle_s)  # type: ignore[union-attr]
                    with attribution(task_id=task.task_id, user_id=task.user_id), self.tracer.start_as_current_span(
                            f"task {task.kind}", attributes={"demo.task.kind": task.kind}):
                        for n, step in enumerate(task.steps):
                            self._step(step, task, f"{task.task_id}/{step.agent_id}#{n + 1}")
        finally:
            _CLOCK.reset(token)

    def _step(self, step: StepPlan, task: TaskPlan, agent_run_id: str | None) -> None:
        """One agent action. ``agent_run_id is None``: untagged script code, with no agent span either."""
        from . import attribution

        if agent_run_id is None:
            tags: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
            span_cm: contextlib.AbstractContextManager[Any] = contextlib.nullcontext(trace.INVALID_SPAN)
        else:
            tags = attribution(agent_id=step.agent_id, agent_run_id=agent_run_id, skill_id=step.skill_id)
            span_cm = self.tracer.start_as_current_span(
                f"invoke_agent {step.agent_id}",
                attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": step.agent_id,
                            "gen_ai.agent.id": step.agent_id})
        with tags, span_cm as agent_span:
            convo = _Conversation(f"[{task.kind} {task.task_id}] {step.skill_id}: please handle this.")
            for spec in step.calls:
                try:
                    tool_call = self._call(spec, convo)
                except self.api_errors as exc:  # the SDK gave up after its retries: fall back to the next call
                    agent_span.record_exception(exc)
                    agent_span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}; falling back"))
                    agent_span.set_attribute("error.type", type(exc).__name__)
                    continue
                finally:
                    self.progress.advance()
                if tool_call is not None:
                    self._tool(spec.tool or "", tool_call, convo)

    def _tool(self, tool: str, call: tuple[str, Any], convo: _Conversation) -> None:
        call_id, raw = call
        with self.tracer.start_as_current_span(
                f"execute_tool {tool}",
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                            "gen_ai.tool.type": "function", "gen_ai.tool.call.id": call_id},
                record_exception=False, set_status_on_exception=False) as span:
            try:
                args = _parse_args(tool, raw)
            except _Invalid as exc:
                # The tool never runs: the agent re-asks the model (the next planned call of this step).
                span.set_status(Status(StatusCode.ERROR, f"invalid tool arguments: {exc}"))
                span.set_attribute("error.type", "invalid_tool_arguments")
                convo.items.append(("user", f"Your call to {tool} had invalid arguments ({exc}). "
                                            "Call it again with valid JSON."))
                return
            convo.items.append(("tool_call", (call_id, tool, args)))
            convo.items.append(("tool_result", (call_id, _tool_result(tool, args))))

    def _call(self, spec: CallSpec, convo: _Conversation) -> tuple[str, Any] | None:
        """Make one SDK call; return ``(tool call id, raw arguments)`` when the model called a tool."""
        # A fresh dict per call: Traceloop's OpenAI instrumentation writes traceparent into extra_headers.
        headers = fake_headers(usage=spec.usage, scenario=spec.scenario or None,
                               request_key=self._request_key() if "flaky" in spec.scenario else None)
        if spec.vendor == "anthropic":
            return self._anthropic(spec, convo, headers)
        client = self.clients["deepseek" if spec.vendor == "deepseek" else "openai"]
        kwargs: dict[str, Any] = {"model": spec.model, "messages": convo.openai(), "extra_headers": headers}
        if spec.tool:
            name = spec.tool
            desc, props = TOOLS[name]
            kwargs["tools"] = [{"type": "function", "function": {
                "name": name, "description": desc,
                "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in props.items()},
                               "required": list(props)}}}]
        if spec.stream:
            kwargs["stream"] = True
            if spec.stream_usage:
                kwargs["stream_options"] = {"include_usage": True}
            for _ in client.chat.completions.create(**kwargs):
                pass
            return None
        resp = client.chat.completions.create(**kwargs)
        calls = resp.choices[0].message.tool_calls if resp.choices else None
        if calls:
            return calls[0].id, calls[0].function.arguments
        return None

    def _anthropic(self, spec: CallSpec, convo: _Conversation, headers: dict[str, str]) -> tuple[str, Any] | None:
        client = self.clients["anthropic"]
        system: dict[str, Any] = {"type": "text", "text": "You are a careful assistant. <policy manual ...>"}
        if spec.cache_ttl:
            system["cache_control"] = {"type": "ephemeral", "ttl": spec.cache_ttl}
        kwargs: dict[str, Any] = {"model": spec.model, "max_tokens": 4096, "system": [system],
                                  "messages": convo.anthropic(), "extra_headers": headers}
        if spec.tool:
            desc, props = TOOLS[spec.tool]
            kwargs["tools"] = [{"name": spec.tool, "description": desc, "input_schema": {
                "type": "object", "properties": {k: {"type": t} for k, t in props.items()}, "required": list(props)}}]
        if spec.stream:
            # create(stream=True), read to the end: Traceloop exports no span for a stream closed early.
            for _ in client.messages.create(stream=True, **kwargs):
                pass
            return None
        resp = client.messages.create(**kwargs)
        for block in resp.content:
            if block.type == "tool_use":
                return block.id, block.input
        return None


# ------------------------------------------------------------------------------------------- results


@dataclass
class DemoResult:
    """What :func:`run_demo` did. ``summary`` is the deterministic part of ``output`` (same seed and scale:
    same text); ``output`` adds where the files went and how long it took."""

    seed: int
    calls_scale: float
    ledger_path: Path
    report_path: Path | None  # None when the HTML renderer is not available
    elapsed_s: float
    planned_calls: int
    total: Decimal
    report: dict[str, Any]
    vendor_costs: dict[str, Decimal]
    calls_per_task: dict[str, Decimal]
    retry_waste: dict[str, tuple[int, Decimal]]  # customer -> (rejected calls, their cost)
    vendor_requests: int
    baggage_leaks: int  # vendor requests whose baggage carried an attribution key (must be 0)
    summary: str
    output: str = ""
    requests: list[Any] = field(default_factory=list, repr=False)  # what the fake vendor saw
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (imports, calls, flush, ...)


def _money(d: Decimal | None, places: int = 4) -> str:
    if d is None:
        return "-"
    q = Decimal(1).scaleb(-places)
    return f"${d.quantize(q, rounding=ROUND_HALF_EVEN):,.{places}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int] = (0,),
           indent: str = "  ") -> str:
    """Text columns (``left``) aligned left, numbers right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return indent + "  ".join(c.ljust(w) if i in left else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), *(line(r) for r in rows)])


def _vendor_sql(ledger: Any, book: Any) -> str:
    """SQL for the vendor that bills a call.

    A DeepSeek call made through the OpenAI SDK has ``gen_ai.provider.name = "openai"`` (Traceloop names the SDK,
    not the endpoint); the pricing entry it resolved to says who bills it. The ledger keeps the entry's model
    (``pricing_model``) but not its provider, so the provider is read back from the price book here.
    """
    cols = {r[1] for r in ledger.query("PRAGMA table_info('spans')")}
    if "pricing_provider" in cols:  # a ledger that stores it needs no lookup
        return "coalesce(pricing_provider, lower(provider), 'unknown')"
    cases = []
    for model, span_provider in ledger.query(
            "SELECT DISTINCT pricing_model, lower(provider) FROM calls WHERE pricing_model IS NOT NULL ORDER BY 1, 2"):
        # Resolved the way the enricher resolved it: with the provider the span reported.
        found = book.resolve(model, span_provider)
        vendor = getattr(found[0], "provider", None) if found is not None else None
        if isinstance(vendor, str) and vendor.isidentifier() and "'" not in model + (span_provider or ""):
            cond = f"lower(provider) = '{span_provider}'" if span_provider else "provider IS NULL"
            cases.append(f"WHEN pricing_model = '{model}' AND {cond} THEN '{vendor}'")
    mapped = f"CASE {' '.join(cases)} END" if cases else "NULL"
    return f"coalesce({mapped}, lower(provider), 'unknown')"


def _summarise(ledger: Any, book: Any, report: dict[str, Any], plans: Sequence[RunPlan], requests: Sequence[Any],
               baggage_leaks: int) -> tuple[str, dict[str, Decimal], dict[str, Decimal],
                                            dict[str, tuple[int, Decimal]]]:
    """The deterministic headline text, and the figures the tests check.

    Returns ``(text, vendor_costs, calls_per_task, retry_waste)``: the cost per billing vendor, the LLM calls
    per task per customer (``"(unattributed)"`` for calls without a customer), and per customer the rejected
    calls and their cost. The text is, in order: the workload line and total, the rollup tables, the vendor
    share per workload, and where the money leaks. Same ledger and plans: same text.
    """
    per_task = {c: Decimal(n) / Decimal(t) for c, n, t in ledger.query(
        "SELECT coalesce(customer_id, '(unattributed)'), count(*), count(DISTINCT task_id) FROM calls "
        "GROUP BY 1 HAVING count(DISTINCT task_id) > 0")}
    waste = _retry_waste(ledger)
    shares, vendor_costs = _vendor_shares(ledger, book)
    text = (_headline(report, plans, requests) + _rollup_tables(ledger, report, per_task, waste) + shares
            + _leaks(ledger, report, waste, len(requests), baggage_leaks))
    return text, vendor_costs, per_task, waste


def _headline(report: dict[str, Any], plans: Sequence[RunPlan], requests: Sequence[Any]) -> str:
    """What was simulated (customers, processes, runs, tasks, calls, HTTP requests) and the total spend."""
    n_runs = sum(1 for p in plans if p.customer_id)
    n_tasks = sum(len(p.tasks) for p in plans if p.customer_id)
    return (f"Simulated week 2026-11-16 .. 2026-11-20: {len(CUSTOMERS)} customers, {len(PROCESSES)} processes, "
            f"{n_runs} runs, {n_tasks} tasks, {sum(p.n_calls for p in plans)} SDK calls "
            f"(OpenAI, Anthropic and DeepSeek through the real SDKs; {len(requests)} HTTP requests to the fake "
            "vendor).\n\n"
            "Which customer, task, agent and skill spent this money?\n\n"
            f"TOTAL SPEND  {_money(Decimal(report['total']))}   (exact: ${report['total']})   over "
            f"{report['calls']} LLM calls\n\n")


def _cost_cell(r: dict[str, Any]) -> str:
    """A rollup row's cost: money, or why there is none ("unpriced", "no usage")."""
    # A row with no priced call has no cost, which is not the same as costing nothing.
    if r["cost"] is None or (r["calls"] and r["unpriced_calls"] == r["calls"]):
        return "unpriced" if r["unpriced_calls"] else "no usage"
    if r["calls"] and r["no_usage_calls"] == r["calls"]:
        return "no usage"
    return _money(Decimal(r["cost"]))


def _section_rows(report: dict[str, Any], section: str, extra: Callable[[dict[str, Any]], list[str]] | None = None,
                  limit: int | None = None) -> list[list[str]]:
    """Table cells ``[key, cost, share, calls, *extra(row)]`` for the first ``limit`` rows of a report section;
    the share is "-" when the cost is not money."""
    out = []
    for r in report["top"][section][:limit]:
        cost = _cost_cell(r)
        key = r["key"][section]
        share = f"{r['share']}%" if cost.startswith("$") else "-"
        out.append([f"(no {section})" if key is None else str(key), cost, share, str(r["calls"]),
                    *(extra(r) if extra else [])])
    return out


def _rollup_tables(ledger: Any, report: dict[str, Any], per_task: dict[str, Decimal],
                   waste: dict[str, tuple[int, Decimal]]) -> str:
    """The tables by customer (with calls per task and re-ask spend), top tasks, process, agent, skill, model."""
    task_customer = dict(ledger.query("SELECT task_id, any_value(customer_id) FROM calls WHERE task_id IS NOT NULL "
                                      "GROUP BY 1"))

    def cust_extra(r: dict[str, Any]) -> list[str]:
        c = r["key"]["customer_id"]
        c = "(unattributed)" if c is None else c  # the key these two queries give a missing customer_id
        pt = per_task.get(c)
        wasted = waste.get(c, (0, Decimal(0)))[1]
        return [f"{pt:.1f}" if pt is not None else "-", _money(wasted) if wasted else "-"]

    rows = functools.partial(_section_rows, report)
    out = io.StringIO()
    w = out.write
    w("By customer\n")
    w(_table(["customer", "cost", "share", "calls", "calls/task", "spent on re-asks"],
             rows("customer_id", cust_extra)) + "\n\n")
    w("Most expensive tasks\n" + _table(["task", "cost", "share", "calls", "customer"], rows(
        "task_id", lambda r: [str(task_customer.get(r["key"]["task_id"], "-"))], limit=5), left=(0, 4)) + "\n\n")
    w("By process\n" + _table(["process", "cost", "share", "calls"], rows("process_id")) + "\n\n")
    w("By agent\n" + _table(["agent", "cost", "share", "calls"], rows("agent_id")) + "\n\n")
    w("By skill\n" + _table(["skill", "cost", "share", "calls"], rows("skill_id")) + "\n\n")
    w("Top models\n" + _table(["model", "cost", "share", "calls"], rows("model")) + "\n\n")
    return out.getvalue()


def _vendor_shares(ledger: Any, book: Any) -> tuple[str, dict[str, Decimal]]:
    """The vendor share per workload type (named workloads first, the untagged remainder last) as text, and the
    cost per billing vendor over all workloads (most expensive first)."""
    vendor = _vendor_sql(ledger, book)
    vendor_costs = {v: Decimal(c) for v, c in ledger.query(
        f"SELECT {vendor} AS v, coalesce(sum(cost_total), 0) FROM calls GROUP BY v ORDER BY 2 DESC, v")}
    out = io.StringIO()
    w = out.write
    w("Vendor share by workload type (vendor = who bills the call)\n")
    share_rows = []
    by_workload: dict[str, list[tuple[str, Decimal]]] = {}
    for wl, v, c in ledger.query(
            f"SELECT coalesce(workload_type, '(unattributed)') AS w, {vendor} AS v, coalesce(sum(cost_total), 0) "
            f"FROM calls GROUP BY w, v ORDER BY w, 3 DESC, v"):
        by_workload.setdefault(wl, []).append((v, Decimal(c)))
    # Named workloads first, the untagged remainder last.
    for wl, parts in sorted(by_workload.items(), key=lambda kv: (kv[0] == "(unattributed)", kv[0])):
        sub = sum((c for _, c in parts), Decimal(0))
        pct = ", ".join(f"{v} {(c / sub * 100 if sub else Decimal(0)):.1f}%" for v, c in parts)
        share_rows.append([wl, _money(sub), pct])
    w(_table(["workload", "cost", "vendors"], share_rows, left=(0, 2)) + "\n")
    w("  all workloads: " + ", ".join(f"{v} {_money(c)}" for v, c in vendor_costs.items()) + "\n\n")
    return out.getvalue(), vendor_costs


def _leaks(ledger: Any, report: dict[str, Any], waste: dict[str, tuple[int, Decimal]], n_requests: int,
           baggage_leaks: int) -> str:
    """"Where the money leaks": re-asks (and the retry-heavy customer's pattern), unattributed and unpriced
    spend, calls without usage, de-duplicated spans, and attribution tags that reached the vendor."""
    total = Decimal(report["total"])
    out = io.StringIO()
    w = out.write
    w("Where the money leaks\n")
    all_waste = sum((c for _, c in waste.values()), Decimal(0))
    n_waste = sum(n for n, _ in waste.values())
    heavy = waste.get(RETRY_HEAVY_CUSTOMER)
    heavy_total = next((Decimal(r["cost"] or 0) for r in report["top"]["customer_id"]
                        if r["key"]["customer_id"] == RETRY_HEAVY_CUSTOMER), Decimal(0))
    w(f"  re-asks after malformed tool arguments: {n_waste} calls whose answer was rejected, {_money(all_waste)} "
      f"({_pct(all_waste, total)} of all spend)\n")
    shape = _retry_shape(ledger, RETRY_HEAVY_CUSTOMER)
    if heavy and heavy_total and shape:
        w(f"    {RETRY_HEAVY_CUSTOMER}: {heavy[0]} rejected calls, {_money(heavy[1])} = {_pct(heavy[1], heavy_total)} "
          f"of its spend: its extractor agent re-sends a ~{shape[2] // 1000}k-token prompt, {shape[0]}-{shape[1]} "
          "attempts per claim\n")
    un = report["unattributed"]
    w(f"  unattributed (no customer_id): {_money(Decimal(un['cost']))} = {un['share']}% of spend, "
      f"{un['calls']} calls\n")
    models = ", ".join(f"{m['model']} ({m['calls']})" for m in report["unpriced_models"]) or "-"
    w(f"  unpriced calls: {report['unpriced_calls']} [{models}]: not in the pricing table, so never counted as $0; "
      "add the model with a pricing overlay\n")
    w(f"  calls without usage: {report['no_usage_calls']} (failed calls and streams without include_usage)\n")
    w(f"  de-duplicated: {report['duplicate_spans']} duplicate spans (each Anthropic call is traced by the SDK and by "
      "Traceloop), priced once\n")
    w(f"  attribution sent to vendors: {baggage_leaks} of {n_requests} requests carried customer tags "
      "(the outbound baggage guard strips them)\n")
    return out.getvalue()


def _pct(part: Decimal, whole: Decimal) -> str:
    return f"{(part / whole * 100):.1f}%" if whole else "0.0%"


# LLM calls whose tool call was rejected: the next event under the same agent step (same parent span) is a failed
# execute_tool span. Start times order the events (one run's spans share one simulated clock).
_REJECTED_SQL = """
WITH ev AS (
  SELECT trace_id, parent_span_id, start_ns, span_id, 'llm' AS k, cost_total, input_tokens, customer_id, NULL AS st
  FROM calls WHERE parent_span_id IS NOT NULL
  UNION ALL
  SELECT trace_id, parent_span_id, start_ns, span_id, 'tool', NULL, NULL, NULL, status_code
  FROM spans WHERE operation = 'execute_tool'
), seq AS (
  SELECT *, lead(k) OVER w AS next_k, lead(st) OVER w AS next_st FROM ev
  WINDOW w AS (PARTITION BY trace_id, parent_span_id ORDER BY start_ns, span_id)
), rejected AS (
  SELECT * FROM seq WHERE k = 'llm' AND next_k = 'tool' AND next_st = 'ERROR'
)
"""


def _retry_waste(ledger: Any) -> dict[str, tuple[int, Decimal]]:
    """Per customer: how many LLM calls had their tool call rejected, and what they cost."""
    rows = ledger.query(_REJECTED_SQL + "SELECT coalesce(customer_id, '(unattributed)'), count(*), "
                        "coalesce(sum(cost_total), 0) FROM rejected GROUP BY 1 ORDER BY 1")
    return {c: (int(n), Decimal(s)) for c, n, s in rows}


def _retry_shape(ledger: Any, customer: str) -> tuple[int, int, int] | None:
    """For one customer: (fewest, most) attempts in an agent step that had rejections, and the mean prompt size
    (input tokens) of a rejected call."""
    row = ledger.query(_REJECTED_SQL + """
        SELECT min(n) + 1, max(n) + 1, (SELECT round(avg(input_tokens)) FROM rejected WHERE customer_id = $1)
        FROM (SELECT count(*) AS n FROM rejected WHERE customer_id = $1 GROUP BY trace_id, parent_span_id)""",
                       [customer])
    if not row or row[0][0] is None:
        return None
    lo, hi, avg = row[0]
    return int(lo), int(hi), int(avg or 0)


# ------------------------------------------------------------------------------------------------ run


def run_demo(*, seed: int = 7, out_dir: Path = Path("."), calls_scale: float = 1.0, progress: bool = True,
             stream: TextIO = sys.stdout, replace: bool = False) -> DemoResult:
    """Run the demo workload and write ``<out_dir>/costs.duckdb`` (and ``report.html`` when the HTML renderer
    is installed); print the headline rollups to ``stream`` and a progress bar to stderr. ``out_dir`` is created
    if missing.

    The same ``seed`` and ``calls_scale`` give the same ledger totals and the same ``summary`` text. An existing
    ``costs.duckdb`` in ``out_dir`` is never touched unless it is exactly the ledger an earlier demo run left there
    (recorded in ``.otel-costattr-demo.json``), or ``replace`` is true (the CLI's ``--force``): it may be the
    user's own ledger.

    Raises:
        ConfigurationError: ``out_dir`` cannot be created or written; ``costs.duckdb`` is already there and
            ``replace`` is false; or the ledger there cannot be removed.
        ImportError: the ``openai`` / ``anthropic`` SDKs or their instrumentations are not installed
            (``pip install 'otel-costattr[demo]'``).
        ValueError: ``calls_scale`` is not positive.
    """
    started = time.monotonic()  # before the SDK imports: they are part of what the user waits for
    plans = plan_workload(seed, calls_scale)
    out_dir = Path(out_dir)
    with _RUN_LOCK, _global_propagator_restored():
        return _run_locked(seed, out_dir, calls_scale, plans, started, progress, stream, replace)


@contextlib.contextmanager
def _global_propagator_restored() -> Iterator[None]:
    """Undo the outbound baggage guard that the demo's first ``attribution()`` may install globally.

    Only a guard put around the propagator that was there before is removed: one the application had already
    installed stays.
    """
    from opentelemetry import propagate

    prior = propagate.get_global_textmap()
    try:
        yield
    finally:
        current = propagate.get_global_textmap()
        if current is not prior and getattr(current, "inner", None) is prior:
            propagate.set_global_textmap(prior)


class _Phases:
    """Seconds per named phase of a demo run, each measured from the end of the previous one (the first from
    ``started``); for the debug log and :attr:`DemoResult.phases`."""

    def __init__(self, started: float) -> None:
        self.seconds: dict[str, float] = {}
        self._last = started

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = now - self._last
        self._last = now


class _Rollups(NamedTuple):
    """What :func:`_rollups` read back from the written ledger (see there)."""

    report: dict[str, Any]
    summary: str
    vendor_costs: dict[str, Decimal]
    per_task: dict[str, Decimal]
    waste: dict[str, tuple[int, Decimal]]
    n_spans: int
    leaks: int


def _run_locked(seed: int, out_dir: Path, calls_scale: float, plans: list[RunPlan], started: float,
                progress: bool, stream: TextIO, replace: bool) -> DemoResult:
    """The body of :func:`run_demo`, under its lock: replace the ledger, make the calls, read the rollups back,
    write the HTML report, print the summary and the footer to ``stream``. Same contract and errors as
    :func:`run_demo`."""
    phases = _Phases(started)
    ledger_path = _fresh_ledger_path(out_dir, replace)
    planned = sum(p.n_calls for p in plans)
    bar = _Progress(planned, sys.stderr if progress else None, started)
    book, requests = _drive(seed, plans, ledger_path, bar, phases.mark)
    r = _rollups(ledger_path, book, plans, requests)
    phases.mark("rollups")
    report_path = _write_html(r.report, out_dir)
    _mark_as_demo(out_dir)
    phases.mark("html")
    elapsed = time.monotonic() - started
    logger.debug("demo phases: %s", ", ".join(f"{k} {v:.2f}s" for k, v in phases.seconds.items()))

    output = r.summary + _footer(ledger_path, r.n_spans, report_path, elapsed)
    stream.write(output)
    stream.flush()
    return DemoResult(seed=seed, calls_scale=calls_scale, ledger_path=ledger_path, report_path=report_path,
                      elapsed_s=elapsed, planned_calls=planned, total=Decimal(r.report["total"]), report=r.report,
                      vendor_costs=r.vendor_costs, calls_per_task=r.per_task, retry_waste=r.waste,
                      vendor_requests=len(requests), baggage_leaks=r.leaks, summary=r.summary, output=output,
                      requests=requests, phases=phases.seconds)


def _ledger_files(out_dir: Path) -> list[str]:
    """Every file under ``<out_dir>/costs.duckdb`` (or the file itself), relative, with its size, sorted."""
    root = out_dir / LEDGER_NAME
    if root.is_file():
        return [f"{LEDGER_NAME} {root.stat().st_size}"]
    return sorted(f"{p.relative_to(out_dir).as_posix()} {p.stat().st_size}" for p in root.rglob("*") if p.is_file())


def is_demo_ledger(out_dir: Path) -> bool:
    """True when ``<out_dir>/costs.duckdb`` is exactly what a demo run left there: the same files, the same sizes."""
    try:
        recorded = json.loads((out_dir / DEMO_MARK).read_text()).get("files")
        return isinstance(recorded, list) and bool(recorded) and recorded == _ledger_files(out_dir)
    except (OSError, ValueError, AttributeError):
        return False


def _mark_as_demo(out_dir: Path) -> None:
    """Record the finished demo ledger's files (best effort: without the record, the next run refuses instead)."""
    try:
        (out_dir / DEMO_MARK).write_text(json.dumps({"files": _ledger_files(out_dir)}, indent=1) + "\n")
    except OSError as exc:
        logger.warning("could not write %s (%s): the next demo run in %s will ask for --force", DEMO_MARK, exc,
                       out_dir)


def _fresh_ledger_path(out_dir: Path, replace: bool) -> Path:
    """Create ``out_dir`` if missing and, with ``replace``, remove a previous ledger (and its WAL) there; returns
    the path.

    Raises:
        ConfigurationError: a ledger is there and ``replace`` is false; the directory cannot be created or the old
            ledger cannot be removed (in use).
    """
    from ._errors import ConfigurationError

    existing = out_dir / LEDGER_NAME
    if not replace and (existing.exists() or existing.is_symlink()) and not is_demo_ledger(out_dir):
        raise ConfigurationError(f"{existing} already exists and is not the ledger an earlier demo run left there; "
                                 "the demo never replaces a ledger silently: choose another --out-dir, or pass --force "
                                 "(run_demo(replace=True)) to replace it")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create --out-dir {out_dir}: {exc}") from None
    ledger_path = out_dir / LEDGER_NAME
    (out_dir / DEMO_MARK).unlink(missing_ok=True)  # this run's ledger is the demo's once it is finished
    for stale in (ledger_path, ledger_path.with_name(LEDGER_NAME + ".wal")):
        try:
            if (stale / "otel-costattr-ledger.json").is_file():  # a ledger directory (the demo's, or --force)
                import shutil
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot replace {stale}: {exc}. Close whatever has it open, or pass another "
                                     "--out-dir") from None
    return ledger_path


def _drive(seed: int, plans: Sequence[RunPlan], ledger_path: Path, bar: _Progress,
           mark: Callable[[str], None]) -> tuple[Any, list[Any]]:
    """Make every planned call through the real SDKs against a fake vendor, into a pipeline writing
    ``ledger_path``; returns the price book the pipeline used and the requests the vendor saw.

    The ledger is flushed and the pipeline shut down when this returns (or raises). Marks the phases imports,
    configure, instrument, calls, flush.
    """
    import anthropic
    import openai
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor  # noqa: F401 - imported inside timing
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor  # noqa: F401
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from ._configure import configure

    mark("imports")

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(_SimulatedClockProcessor())  # first: the cost processor prices the re-timed span
    # env={}: the user's OTEL_* / LANGFUSE_* variables must not send the demo's spans anywhere.
    pipeline = configure(ledger=ledger_path, tracer_provider=provider, set_global=False, env={}, langfuse=False,
                         instrument_threading=False)
    tracer = provider.get_tracer("otel_costattr.demo")
    vendor = FakeVendorServer(seed=seed, max_recorded=100_000)
    mark("configure")
    with vendor, _instrumented(provider):
        common: dict[str, Any] = {"api_key": "demo-key", "max_retries": MAX_RETRIES, "timeout": 20.0}
        clients = {
            "openai": openai.OpenAI(base_url=vendor.openai_base_url, **common),
            # DeepSeek is OpenAI-compatible: same SDK, its own base URL (here the same fake vendor).
            "deepseek": openai.OpenAI(base_url=vendor.openai_base_url, **common),
            "anthropic": anthropic.Anthropic(base_url=vendor.anthropic_base_url,
                                             open_telemetry={"tracer_provider": provider}, **common),
        }
        mark("instrument")
        try:
            executor = _Executor(tracer, clients, bar)
            # Heaviest runs first, so the pool does not end waiting on one long run.
            order = sorted(plans, key=lambda p: -p.n_calls)
            with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="otel-costattr-demo") as pool:
                for fut in [pool.submit(executor.run, p) for p in order]:
                    fut.result()
            mark("calls")
        finally:
            for c in clients.values():
                c.close()
            pipeline.shutdown()  # flushes the ledger
            provider.shutdown()
        requests = vendor.requests
    bar.finish()
    mark("flush")
    return pipeline.processor.book, requests


def _rollups(ledger_path: Path, book: Any, plans: Sequence[RunPlan], requests: list[Any]) -> _Rollups:
    """Read the written ledger back: the report (by customer, all sections), the summary text and its figures,
    the span count, and how many vendor requests carried an attribution key in their baggage (must be 0)."""
    from ._ledger._store import Ledger
    from ._analysis._rollup import build_report
    from ._capture._attribution import attribution_keys

    keys = attribution_keys()
    leaks = sum(1 for r in requests if any(f"{k}=" in r.headers.get("baggage", "") for k in keys))
    ledger = Ledger(ledger_path, read_only=True)
    try:
        report = build_report(ledger, by=["customer_id"], top=None, sections=True)
        summary, vendor_costs, per_task, waste = _summarise(ledger, book, report, plans, requests, leaks)
        n_spans = ledger.count()
    finally:
        ledger.close()
    return _Rollups(report, summary, vendor_costs, per_task, waste, n_spans, leaks)


def _write_html(report: dict[str, Any], out_dir: Path) -> Path | None:
    """Write ``<out_dir>/report.html``; None (and an info log) when this build has no HTML renderer."""
    if importlib.util.find_spec("otel_costattr._report._html") is None:
        logger.info("the HTML report renderer is not available; report.html not written")
        return None
    from ._report._render import render, write_output
    report_path = out_dir / REPORT_NAME
    write_output(render(report, "html"), str(report_path))
    return report_path


def _footer(ledger_path: Path, n_spans: int, report_path: Path | None, elapsed: float) -> str:
    """Where the files went, the next commands to try, and how long the run took (not deterministic)."""
    footer = io.StringIO()
    footer.write(f"\nWrote {ledger_path} (the ledger: {n_spans} spans, exact decimals)")
    footer.write(f" and {report_path}\n" if report_path else "; report.html skipped: this build has no HTML renderer\n")
    footer.write("Next:\n")
    footer.write(f"  otel-costattr report --db {ledger_path} --by task_id,agent_id --top 15\n")
    footer.write(f"  otel-costattr report --db {ledger_path} --by customer_id,skill_id\n")
    if report_path:
        footer.write(f"  open {report_path}\n")
    footer.write(f"Done in {elapsed:.1f} s.\n")
    return footer.getvalue()
