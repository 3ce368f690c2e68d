"""A deterministic agent workload shared by the load child and the tests that check its results.

One *unit* of work is what an agent step looks like in a real trace: an ``invoke_agent`` span holding eight
LLM calls and one tool call (ten spans). Seven of the calls are priced (OpenAI ``gpt-4o-mini`` and Anthropic
``claude-haiku-4-5`` with the 5-minute / 1-hour cache-write split), the eighth alternates between a model that
is in no pricing table (``unpriced``) and a call that reported no usage (``no_usage``).

Usage figures are a pure function of ``(worker, unit, call)``, so the expected spend can be recomputed here,
independently of the library: token counts times the rates published on the vendors' price pages, in integer
pico-dollars (10^-12 USD), summed exactly and turned into a ``Decimal`` once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

SPANS_PER_UNIT = 10
CALLS_PER_UNIT = 8
PRICED_PER_UNIT = 7
CUSTOMERS = 37  # a prime, so customers do not line up with workers

# Published rates in pico-dollars per token (USD per 1M tokens x 10^6), from the vendors' price pages:
# gpt-4o-mini $0.15 in / $0.075 cached in / $0.60 out;
# claude-haiku-4-5 $1 in / $0.10 cache read / $1.25 5m write / $2 1h write / $5 out.
GPT4O_MINI = {"input": 150_000, "cache_read": 75_000, "output": 600_000}
HAIKU = {"input": 1_000_000, "cache_read": 100_000, "cache_write_5m": 1_250_000, "cache_write_1h": 2_000_000,
         "output": 5_000_000}
PICO = Decimal(10) ** 12


def _mix(*xs: int) -> int:
    """A small integer hash (splitmix-like): deterministic pseudo-random usage without random's state."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h ^= (x + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h


def customer(worker: int, unit: int) -> str:
    return f"cust-{_mix(worker, unit, 7) % CUSTOMERS:02d}"


@dataclass(frozen=True)
class Call:
    """One LLM call of a unit: the attributes its span carries and the cost it should be priced at."""

    kind: str  # "openai", "anthropic", "unpriced", "no_usage"
    start: dict = field(hash=False)  # set when the span starts (request side)
    end: dict = field(hash=False)  # set when the response arrives (usage side)
    pico: int  # expected cost in pico-dollars (0 for the calls that are not priced)


def call(worker: int, unit: int, i: int) -> Call:
    """The ``i``-th call (0..7) of ``unit`` run by ``worker``."""
    h = _mix(worker, unit, i)
    rid = f"{worker:03d}-{unit:07d}-{i}"
    if i == 7:
        if unit % 2:
            start = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "selfhosted",
                     "gen_ai.request.model": "inhouse-llm-7b", "server.address": "llm.internal"}
            end = {"gen_ai.response.model": "inhouse-llm-7b", "gen_ai.response.id": f"self-{rid}",
                   "gen_ai.usage.input_tokens": 800 + h % 500, "gen_ai.usage.output_tokens": 100 + h % 50}
            return Call("unpriced", start, end, 0)
        start = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                 "gen_ai.request.model": "gpt-4o-mini", "server.address": "api.openai.com", "gen_ai.request.stream":
                 True}
        end = {"gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.response.id": f"chatcmpl-{rid}",
               "gen_ai.response.finish_reasons": ("stop",)}
        return Call("no_usage", start, end, 0)
    if i % 2 == 0:
        uncached = 200 + h % 6000
        cached = (h >> 16) % 4096
        out = 10 + (h >> 32) % 1500
        start = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                 "gen_ai.request.model": "gpt-4o-mini", "server.address": "api.openai.com", "server.port": 443,
                 "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 2048}
        end = {"gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.response.id": f"chatcmpl-{rid}",
               "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": uncached + cached,
               "gen_ai.usage.cache_read.input_tokens": cached, "gen_ai.usage.output_tokens": out,
               "openai.response.service_tier": "default"}
        r = GPT4O_MINI
        return Call("openai", start, end, uncached * r["input"] + cached * r["cache_read"] + out * r["output"])
    uncached = 20 + h % 3000
    read = (h >> 12) % 8000
    w5 = (h >> 24) % 2000
    w1 = (h >> 36) % 1000
    out = 5 + (h >> 48) % 1200
    start = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
             "gen_ai.request.model": "claude-haiku-4-5", "server.address": "api.anthropic.com",
             "gen_ai.request.max_tokens": 1024}
    end = {"gen_ai.response.model": "claude-haiku-4-5-20251001", "gen_ai.response.id": f"msg_{rid}",
           "gen_ai.response.finish_reasons": ("end_turn",),
           "gen_ai.usage.input_tokens": uncached + read + w5 + w1, "gen_ai.usage.cache_read.input_tokens": read,
           "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": w5,
           "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": w1, "gen_ai.usage.output_tokens": out}
    r = HAIKU
    return Call("anthropic", start, end, uncached * r["input"] + read * r["cache_read"] + w5 * r["cache_write_5m"]
                + w1 * r["cache_write_1h"] + out * r["output"])


def units_of(worker: int, workers: int, units: int) -> range:
    """The units a worker runs: round-robin, so every worker has the same share (within one)."""
    return range(worker, units, workers)


@dataclass
class Expectation:
    spans: int = 0
    priced: int = 0
    unpriced: int = 0
    no_usage: int = 0
    pico: int = 0
    by_customer: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return Decimal(self.pico) / PICO

    def customer_totals(self) -> dict[str, Decimal]:
        return {k: Decimal(v) / PICO for k, v in self.by_customer.items()}


def expectation(workers: int, units: int) -> Expectation:
    """What a complete run must have stored, computed without the library."""
    e = Expectation()
    for w in range(workers):
        for u in units_of(w, workers, units):
            cust = customer(w, u)
            e.spans += SPANS_PER_UNIT
            for i in range(CALLS_PER_UNIT):
                c = call(w, u, i)
                if c.pico:
                    e.priced += 1
                    e.pico += c.pico
                    e.by_customer[cust] = e.by_customer.get(cust, 0) + c.pico
                elif c.kind == "unpriced":
                    e.unpriced += 1
                else:
                    e.no_usage += 1
    return e
