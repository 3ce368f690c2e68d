"""Vendor price vectors against the REAL shipped tables (``pricing/*.toml``).

Every expected dollar figure below was worked out by hand from the vendors' published prices (the vendor pricing
pages, openai.com/api-priority-processing, and the figures quoted with their sources in the research notes,
§2), never read back from our TOML files: a test that copies the table cannot fail. Each case carries the
arithmetic in a comment. Rates are USD per 1M tokens unless a figure says otherwise (per-call fees are per call).

Counts follow the OTel GenAI convention: ``input`` includes cache reads and both kinds of cache writes (and audio
input); ``output`` includes reasoning. In the comments, ``in 10,000 = 6,000 new + 4,000 read`` spells out the
disjoint buckets the vendor bills.

Every case pins ``at=`` so nothing depends on today's date, asserts the resolved provider/model, and checks that
the components sum exactly to the total.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from otel_costattr import Cost, PriceBook

D = Decimal

#: Curated tables only: the imported LiteLLM layer must not be able to make a vector pass.
BOOK = PriceBook.load(imported=False, env=False)

NOW = "2026-11-20T12:00:00Z"  # a Friday; every model below is in its current period

_USAGE_NAMES = {
    "inp": "input_tokens", "out": "output_tokens", "read": "cache_read_tokens", "w5m": "cache_write_tokens",
    "w1h": "cache_write_1h_tokens", "reasoning": "reasoning_tokens", "audio_in": "input_audio_tokens",
    "audio_out": "output_audio_tokens", "image_in": "input_image_tokens", "image_out": "output_image_tokens",
    "searches": "web_search_calls",
}


@dataclass(frozen=True)
class V:
    """One price vector."""

    model: str
    total: str  # hand-computed USD
    resolves: str  # "provider/model-id" the name must resolve to
    at: str = NOW
    provider: str | None = None
    tier: str | None = None
    region: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    parts: dict[str, str] | None = None  # the non-zero components, when the split itself is under test
    flags: tuple[str, ...] = ()  # flags that must be present
    no_flags: tuple[str, ...] = ()  # flag prefixes that must be absent
    since: str | None = None  # expected effective_from (date prefix)

    def price(self, book: PriceBook) -> Cost:
        return book.price(self.model, provider=self.provider, service_tier=self.tier, region=self.region,
                          at=self.at, **self.usage)


def v(case_id: str, model: str, total: str, resolves: str, **kw: Any) -> Any:
    usage = {_USAGE_NAMES[k]: kw.pop(k) for k in list(kw) if k in _USAGE_NAMES}
    return pytest.param(V(model, total, resolves, usage=usage, **kw), id=case_id)


def check(vec: V, book: PriceBook = BOOK) -> Cost:
    c = vec.price(book)
    assert c.status == "priced", c.reason
    assert c.total == D(vec.total), (c.total, c.components, c.flags)
    # rule 11: the components are disjoint and add up to the total, to the last digit
    assert sum(c.components.values(), D(0)) == c.total
    assert all(x >= 0 for x in c.components.values())
    assert f"{c.provider}/{c.model}" == vec.resolves
    if vec.parts is not None:
        assert {k: x for k, x in c.components.items() if x} == {k: D(x) for k, x in vec.parts.items()}
    for f in vec.flags:
        assert f in c.flags, c.flags
    for f in vec.no_flags:
        assert not [x for x in c.flags if x.startswith(f)], c.flags
    if vec.since is not None:
        assert c.effective_from is not None and c.effective_from.isoformat().startswith(vec.since)
    return c


# ------------------------------------------------------------------------------------------------------- OpenAI
# developers.openai.com/api/docs/pricing; openai.com/api-priority-processing; model pages (gpt-5.4: ">272K input
# tokens are priced at 2x input and 1.5x output for the full session for standard, batch, and flex"; "Regional
# processing (data residency) endpoints are charged a 10% uplift").

OPENAI = [
    # gpt-4o $2.50 / cached $1.25 (0.5x) / $10. in 10,000 = 6,000 new + 4,000 read; out 1,000
    # 6,000 x $2.50 + 4,000 x $1.25 + 1,000 x $10 = 0.015 + 0.005 + 0.01
    v("gpt-4o-cached-half", "gpt-4o", "0.03", "openai/gpt-4o", provider="openai", inp=10_000, read=4_000,
      out=1_000, parts={"input": "0.015", "cache_read": "0.005", "output": "0.01"}),
    # gpt-4o-mini $0.15 / $0.075 (0.5x) / $0.60. in 100,000 = 40,000 new + 60,000 read; out 2,000
    # 40,000 x $0.15 + 60,000 x $0.075 + 2,000 x $0.60 = 0.006 + 0.0045 + 0.0012
    v("gpt-4o-mini-cached-half", "gpt-4o-mini", "0.0117", "openai/gpt-4o-mini", inp=100_000, read=60_000,
      out=2_000, parts={"input": "0.006", "cache_read": "0.0045", "output": "0.0012"}),
    # gpt-5 $1.25 / $0.125 (0.1x) / $10, reasoning billed as output. in 20,000 = 2,000 new + 18,000 read;
    # out 5,000 = 2,000 text + 3,000 reasoning
    # 2,000 x $1.25 + 18,000 x $0.125 + 2,000 x $10 + 3,000 x $10 = 0.0025 + 0.00225 + 0.02 + 0.03
    v("gpt-5-cached-tenth-reasoning-as-output", "gpt-5", "0.05475", "openai/gpt-5", inp=20_000, read=18_000,
      out=5_000, reasoning=3_000,
      parts={"input": "0.0025", "cache_read": "0.00225", "output": "0.02", "reasoning": "0.03"}),
    # gpt-4.1 $2 / $0.50 (0.25x) / $8. in 8,000 = 6,000 new + 2,000 read; out 500
    # 6,000 x $2 + 2,000 x $0.50 + 500 x $8 = 0.012 + 0.001 + 0.004
    v("gpt-4.1-cached-quarter", "gpt-4.1", "0.017", "openai/gpt-4.1", inp=8_000, read=2_000, out=500,
      parts={"input": "0.012", "cache_read": "0.001", "output": "0.004"}),
    # o3 after the cut: $2 / $8, reasoning at the output rate. in 1,000; out 10,000 = 1,000 text + 9,000 reasoning
    # 1,000 x $2 + 1,000 x $8 + 9,000 x $8 = 0.002 + 0.008 + 0.072
    v("o3-reasoning-at-output-rate", "o3", "0.082", "openai/o3", at="2025-07-01T12:00:00Z", inp=1_000,
      out=10_000, reasoning=9_000, parts={"input": "0.002", "output": "0.008", "reasoning": "0.072"}),
    # gpt-5.6-sol at GA (OpenAI's launch statement: $5 / $30, reads 90% off = $0.50, cache writes 1.25x input =
    # $6.25; 12-hour write 2.5x input = $12.50, research notes §2.1).
    # in 10,000 = 4,000 new + 2,000 read + 3,000 write + 1,000 12h-write; out 1,000
    # 4,000 x $5 + 2,000 x $0.50 + 3,000 x $6.25 + 1,000 x $12.50 + 1,000 x $30
    #   = 0.02 + 0.001 + 0.01875 + 0.0125 + 0.03
    v("gpt-5.6-sol-cache-writes-launch", "gpt-5.6-sol", "0.08225", "openai/gpt-5.6-sol",
      at="2026-07-15T12:00:00Z", inp=10_000, read=2_000, w5m=3_000, w1h=1_000, out=1_000, since="2026-07-09",
      parts={"input": "0.02", "cache_read": "0.001", "cache_write": "0.01875", "cache_write_1h": "0.0125",
             "output": "0.03"}),
    # same call in the promotion from 2026-08-21 (model page: $4 / $0.40 / $20; writes 1.25x = $5, 12h 2.5x = $10)
    # 4,000 x $4 + 2,000 x $0.40 + 3,000 x $5 + 1,000 x $10 + 1,000 x $20 = 0.016 + 0.0008 + 0.015 + 0.01 + 0.02
    v("gpt-5.6-sol-cache-writes-promo", "gpt-5.6-sol", "0.0618", "openai/gpt-5.6-sol",
      at="2026-09-01T12:00:00Z", inp=10_000, read=2_000, w5m=3_000, w1h=1_000, out=1_000, since="2026-08-21"),
    # gpt-5.4 $2.50 / $0.25 / $15; >272K whole request: $5 / $0.50 / $22.50. in = N incl. 100,000 read; out 10,000
    # 171,999 x $2.50 + 100,000 x $0.25 + 10,000 x $15 = 0.4299975 + 0.025 + 0.15
    v("gpt-5.4-271999-low", "gpt-5.4", "0.6049975", "openai/gpt-5.4", inp=271_999, read=100_000, out=10_000,
      no_flags=("long_context",)),
    # 172,000 x $2.50 + 100,000 x $0.25 + 10,000 x $15 = 0.43 + 0.025 + 0.15  (272,000 is not > 272K)
    v("gpt-5.4-272000-low", "gpt-5.4", "0.605", "openai/gpt-5.4", inp=272_000, read=100_000, out=10_000,
      no_flags=("long_context",)),
    # 172,001 x $5 + 100,000 x $0.50 + 10,000 x $22.50 = 0.860005 + 0.05 + 0.225  (every class re-priced)
    v("gpt-5.4-272001-high", "gpt-5.4", "1.135005", "openai/gpt-5.4", inp=272_001, read=100_000, out=10_000,
      flags=("long_context:>272000",),
      parts={"input": "0.860005", "cache_read": "0.05", "output": "0.225"}),
    # batch above 272K ("for standard, batch, and flex"): 272,001 x $5 x 0.5 + 10,000 x $22.50 x 0.5
    #   = 0.6800025 + 0.1125
    v("gpt-5.4-272001-batch", "gpt-5.4", "0.7925025", "openai/gpt-5.4", tier="batch", inp=272_001, out=10_000),
    # data residency +10%: 1,000 x $2.50 x 1.1 + 1,000 x $15 x 1.1 = 0.00275 + 0.0165
    v("gpt-5.4-region-eu", "gpt-5.4", "0.01925", "openai/gpt-5.4", region="eu", inp=1_000, out=1_000,
      flags=("region:eu",)),
    # both: 272,001 x $5 x 1.1 = 1.4960055
    v("gpt-5.4-region-eu-272001", "gpt-5.4", "1.4960055", "openai/gpt-5.4", region="eu", inp=272_001),
    # batch 50% (gpt-5 batch $0.625 / $0.0625 / $5). in 10,000 = 5,000 new + 5,000 read; out 2,000
    # 5,000 x $0.625 + 5,000 x $0.0625 + 2,000 x $5 = 0.003125 + 0.0003125 + 0.01
    v("gpt-5-batch", "gpt-5", "0.0134375", "openai/gpt-5", tier="batch", inp=10_000, read=5_000, out=2_000,
      flags=("service_tier:batch",)),
    # flex is priced at batch rates: same figures
    v("gpt-5-flex", "gpt-5", "0.0134375", "openai/gpt-5", tier="flex", inp=10_000, read=5_000, out=2_000,
      flags=("service_tier:flex",)),
    # gpt-4o batch $1.25 / $5: 10,000 x $1.25 + 1,000 x $5 = 0.0125 + 0.005
    v("gpt-4o-batch", "gpt-4o", "0.0175", "openai/gpt-4o", tier="batch", inp=10_000, out=1_000),
    # priority (openai.com/api-priority-processing). in 10,000 = 6,000 new + 4,000 read; out 1,000
    # GPT-5 $2.50 / $0.25 / $20: 6,000 x $2.50 + 4,000 x $0.25 + 1,000 x $20 = 0.015 + 0.001 + 0.02
    v("gpt-5-priority", "gpt-5", "0.036", "openai/gpt-5", tier="priority", inp=10_000, read=4_000, out=1_000,
      flags=("service_tier:priority",)),
    # GPT-4.1 $3.50 / $0.875 / $14: 6,000 x $3.50 + 4,000 x $0.875 + 1,000 x $14 = 0.021 + 0.0035 + 0.014
    v("gpt-4.1-priority", "gpt-4.1", "0.0385", "openai/gpt-4.1", tier="priority", inp=10_000, read=4_000,
      out=1_000),
    # GPT-4o $4.25 / $2.125 / $17: 6,000 x $4.25 + 4,000 x $2.125 + 1,000 x $17 = 0.0255 + 0.0085 + 0.017
    v("gpt-4o-priority", "gpt-4o", "0.051", "openai/gpt-4o", tier="priority", inp=10_000, read=4_000, out=1_000),
    # GPT-5.4 $5 / $0.50 / $30: 6,000 x $5 + 4,000 x $0.50 + 1,000 x $30 = 0.03 + 0.002 + 0.03
    v("gpt-5.4-priority", "gpt-5.4", "0.062", "openai/gpt-5.4", tier="priority", inp=10_000, read=4_000,
      out=1_000),
    # o3 price cut on 2025-06-10. in 10,000 = 8,000 new + 2,000 read; out 5,000 = 1,000 text + 4,000 reasoning
    # before: 8,000 x $10 + 2,000 x $2.50 + 1,000 x $40 + 4,000 x $40 = 0.08 + 0.005 + 0.04 + 0.16
    v("o3-before-cut", "o3", "0.285", "openai/o3", at="2025-06-09T23:59:59Z", inp=10_000, read=2_000,
      out=5_000, reasoning=4_000, since="2025-04-16"),
    v("o3-launch-dated-id", "o3-2025-04-16", "0.285", "openai/o3", at="2025-05-01T12:00:00Z", inp=10_000,
      read=2_000, out=5_000, reasoning=4_000, since="2025-04-16"),
    # after: 8,000 x $2 + 2,000 x $0.50 + 1,000 x $8 + 4,000 x $8 = 0.016 + 0.001 + 0.008 + 0.032
    v("o3-after-cut", "o3", "0.057", "openai/o3", at="2025-06-10T00:00:00Z", inp=10_000, read=2_000,
      out=5_000, reasoning=4_000, since="2025-06-10"),
    v("o3-after-cut-later", "o3", "0.057", "openai/o3", at="2025-06-11T12:00:00Z", inp=10_000, read=2_000,
      out=5_000, reasoning=4_000, since="2025-06-10"),
    # gpt-4o-2024-05-13 kept $5 / $15 as its own id: 10,000 x $5 + 1,000 x $15 = 0.05 + 0.015
    v("gpt-4o-2024-05-13-own-price", "gpt-4o-2024-05-13", "0.065", "openai/gpt-4o-2024-05-13", inp=10_000,
      out=1_000),
    # ... while gpt-4o today is $2.50 / $10: 10,000 x $2.50 + 1,000 x $10 = 0.025 + 0.01
    v("gpt-4o-same-call-today", "gpt-4o", "0.035", "openai/gpt-4o", inp=10_000, out=1_000),
    # the floating alias served the 2024-05-13 snapshot at $5 / $15 in July 2024 (same arithmetic as above)
    v("gpt-4o-alias-july-2024", "gpt-4o", "0.065", "openai/gpt-4o", at="2024-07-01T12:00:00Z", inp=10_000,
      out=1_000, since="2024-05-13"),
    # gpt-4o-2024-08-06 shipped at $2.50 / $10: 0.025 + 0.01
    v("gpt-4o-2024-08-06-sept-2024", "gpt-4o-2024-08-06", "0.035", "openai/gpt-4o-2024-08-06",
      at="2024-09-01T12:00:00Z", inp=10_000, out=1_000),
    # web search is its own component: gpt-5 "Web search $10.00 / 1K calls"
    # 1,000 x $1.25 + 100 x $10 + 3 x $10/1,000 = 0.00125 + 0.001 + 0.03
    v("gpt-5-web-search-fee", "gpt-5", "0.03225", "openai/gpt-5", inp=1_000, out=100, searches=3,
      flags=("web_search",), parts={"input": "0.00125", "output": "0.001", "web_search": "0.03"}),
    # gpt-realtime: text $4 / $16, audio in $32, audio out $64. in 10,000 = 2,000 text + 8,000 audio;
    # out 3,000 = 500 text + 2,500 audio
    # 2,000 x $4 + 8,000 x $32 + 500 x $16 + 2,500 x $64 = 0.008 + 0.256 + 0.008 + 0.16
    v("gpt-realtime-audio", "gpt-realtime-2025-08-28", "0.432", "openai/gpt-realtime", inp=10_000,
      audio_in=8_000, out=3_000, audio_out=2_500,
      parts={"input": "0.008", "input_audio": "0.256", "output": "0.008", "output_audio": "0.16"}),
    # gpt-image-1: text in $5, image in $10, image out $40. in 1,500 = 1,000 text + 500 image; out 4,000 image
    # 1,000 x $5 + 500 x $10 + 4,000 x $40 = 0.005 + 0.005 + 0.16
    v("gpt-image-1-image-tokens", "gpt-image-1", "0.17", "openai/gpt-image-1", inp=1_500, image_in=500,
      out=4_000, image_out=4_000, parts={"input": "0.005", "input_image": "0.005", "output_image": "0.16"}),
    # dated ids and the openai/ prefix resolve to the base entry
    # gpt-4.1 1,000 x $2 + 1,000 x $8 = 0.002 + 0.008
    v("dated-gpt-4.1-2025-04-14", "gpt-4.1-2025-04-14", "0.01", "openai/gpt-4.1", inp=1_000, out=1_000),
    # gpt-5 1,000 x $1.25 + 1,000 x $10 = 0.00125 + 0.01
    v("prefix-openai/gpt-5", "openai/gpt-5", "0.01125", "openai/gpt-5", inp=1_000, out=1_000),
    v("prefix-and-date-openai/gpt-5-2025-08-07", "openai/gpt-5-2025-08-07", "0.01125", "openai/gpt-5",
      inp=1_000, out=1_000),
    # gpt-4o-mini dated id: 1,000 x $0.15 + 1,000 x $0.60 = 0.00015 + 0.0006
    v("dated-gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18", "0.00075", "openai/gpt-4o-mini", inp=1_000,
      out=1_000),
    # gpt-5-mini $0.25 / $2, name in mixed case: 1,000 x $0.25 + 1,000 x $2 = 0.00025 + 0.002
    v("prefix-mixed-case-gpt-5-mini", "OpenAI/GPT-5-mini-2025-08-07", "0.00225", "openai/gpt-5-mini",
      inp=1_000, out=1_000),
]


@pytest.mark.parametrize("vec", OPENAI)
def test_openai(vec: V) -> None:
    check(vec)


# ---------------------------------------------------------------------------------------------------- Anthropic
# platform.claude.com/docs/en/about-claude/pricing: 5m write 1.25x, 1h write 2x, read 0.1x of base input; Batch
# 50% on every class (caching multipliers stack); Sonnet 4/4.5 with 1M context: prompt (incl. cache reads and
# writes) > 200K => $6 / $22.50, read $0.60, 5m $7.50, 1h $12 on the whole request; web search $10 / 1K.

ANTHROPIC = [
    # the semconv §3 example: Sonnet 4.5, in 3,050 = 50 new + 1,000 read + 1,500 5m-write + 500 1h-write; out 300
    # 50 x $3 + 1,000 x $0.30 + 1,500 x $3.75 + 500 x $6 + 300 x $15 = 0.00015 + 0.0003 + 0.005625 + 0.003 + 0.0045
    v("semconv-sonnet-4.5", "claude-sonnet-4-5", "0.013575", "anthropic/claude-sonnet-4-5", provider="anthropic",
      inp=3_050, read=1_000, w5m=1_500, w1h=500, out=300,
      parts={"input": "0.00015", "cache_read": "0.0003", "cache_write": "0.005625", "cache_write_1h": "0.003",
             "output": "0.0045"}),
    # Opus 4.5 $5 / $25 (5m $6.25, 1h $10, read $0.50), same usage
    # 50 x $5 + 1,000 x $0.50 + 1,500 x $6.25 + 500 x $10 + 300 x $25 = 0.00025 + 0.0005 + 0.009375 + 0.005 + 0.0075
    v("opus-4.5-cache-classes", "claude-opus-4-5", "0.022625", "anthropic/claude-opus-4-5", inp=3_050,
      read=1_000, w5m=1_500, w1h=500, out=300),
    # Opus 4.1 $15 / $75 (5m $18.75, 1h $30, read $1.50), same usage
    # 50 x $15 + 1,000 x $1.50 + 1,500 x $18.75 + 500 x $30 + 300 x $75 = 0.00075 + 0.0015 + 0.028125 + 0.015 + 0.0225
    v("opus-4.1-cache-classes", "claude-opus-4-1", "0.067875", "anthropic/claude-opus-4-1", inp=3_050,
      read=1_000, w5m=1_500, w1h=500, out=300),
    # Haiku 4.5 $1 / $5 (5m $1.25, 1h $2, read $0.10), same usage
    # 50 x $1 + 1,000 x $0.10 + 1,500 x $1.25 + 500 x $2 + 300 x $5 = 0.00005 + 0.0001 + 0.001875 + 0.001 + 0.0015
    v("haiku-4.5-cache-classes", "claude-haiku-4-5", "0.004525", "anthropic/claude-haiku-4-5", inp=3_050,
      read=1_000, w5m=1_500, w1h=500, out=300),
    # Sonnet 4.5 at exactly 200,000 prompt tokens (low): in = 20,000 new + 150,000 read + 20,000 5m + 10,000 1h
    # 20,000 x $3 + 150,000 x $0.30 + 20,000 x $3.75 + 10,000 x $6 + 1,000 x $15 = 0.06 + 0.045 + 0.075 + 0.06 + 0.015
    v("sonnet-4.5-200000-low", "claude-sonnet-4-5", "0.255", "anthropic/claude-sonnet-4-5", inp=200_000,
      read=150_000, w5m=20_000, w1h=10_000, out=1_000, no_flags=("long_context",)),
    # 200,001 (one more uncached token): every class re-priced
    # 20,001 x $6 + 150,000 x $0.60 + 20,000 x $7.50 + 10,000 x $12 + 1,000 x $22.50
    #   = 0.120006 + 0.09 + 0.15 + 0.12 + 0.0225
    v("sonnet-4.5-200001-high", "claude-sonnet-4-5", "0.502506", "anthropic/claude-sonnet-4-5", inp=200_001,
      read=150_000, w5m=20_000, w1h=10_000, out=1_000, flags=("long_context:>200000",),
      parts={"input": "0.120006", "cache_read": "0.09", "cache_write": "0.15", "cache_write_1h": "0.12",
             "output": "0.0225"}),
    # cache reads count toward the threshold: 200,000 reads alone stay low: 200,000 x $0.30
    v("sonnet-4.5-200000-all-reads-low", "claude-sonnet-4-5", "0.06", "anthropic/claude-sonnet-4-5",
      inp=200_000, read=200_000),
    # ... and 1 new token + 200,000 reads crosses it: 1 x $6 + 200,000 x $0.60 = 0.000006 + 0.12
    v("sonnet-4.5-1-new-plus-200000-reads-high", "claude-sonnet-4-5", "0.120006", "anthropic/claude-sonnet-4-5",
      inp=200_001, read=200_000, flags=("long_context:>200000",)),
    # batch 50%, caching multipliers stack ($1.50 / $7.50, read $0.15, 5m $1.875).
    # in 10,000 = 7,000 new + 2,000 read + 1,000 5m; out 2,000
    # 7,000 x $1.50 + 2,000 x $0.15 + 1,000 x $1.875 + 2,000 x $7.50 = 0.0105 + 0.0003 + 0.001875 + 0.015
    v("sonnet-4.5-batch", "claude-sonnet-4-5", "0.027675", "anthropic/claude-sonnet-4-5", tier="batch",
      inp=10_000, read=2_000, w5m=1_000, out=2_000, flags=("service_tier:batch",)),
    # batch on top of long context: 200,001 x $6 x 0.5 = 0.600003
    v("sonnet-4.5-batch-200001", "claude-sonnet-4-5", "0.600003", "anthropic/claude-sonnet-4-5", tier="batch",
      inp=200_001, flags=("long_context:>200000", "service_tier:batch")),
    # Sonnet 4 has the same long-context rule: 200,001 x $6 + 1,000 x $22.50 = 1.200006 + 0.0225
    v("sonnet-4-200001-high", "claude-sonnet-4-20250514", "1.222506", "anthropic/claude-sonnet-4", inp=200_001,
      out=1_000, flags=("long_context:>200000",)),
    # Sonnet 4.6: 1M context at the flat $3 / $15: 500,000 x $3 + 1,000 x $15 = 1.5 + 0.015
    v("sonnet-4.6-500k-no-premium", "claude-sonnet-4-6", "1.515", "anthropic/claude-sonnet-4-6",
      inp=500_000, out=1_000, no_flags=("long_context",)),
    # Opus 4.6: flat $5 / $25: 900,000 x $5 + 10,000 x $25 = 4.5 + 0.25
    v("opus-4.6-900k-no-premium", "claude-opus-4-6", "4.75", "anthropic/claude-opus-4-6", inp=900_000,
      out=10_000, no_flags=("long_context",)),
    # inference_geo=us on Opus 4.6 is 1.1x: 1,000 x $5.50 + 1,000 x $27.50 = 0.0055 + 0.0275
    v("opus-4.6-inference-geo-us", "claude-opus-4-6", "0.033", "anthropic/claude-opus-4-6", region="us",
      inp=1_000, out=1_000, flags=("region:us",)),
    # thinking billed as output: in 1,000; out 2,000 = 500 text + 1,500 thinking
    # 1,000 x $3 + 500 x $15 + 1,500 x $15 = 0.003 + 0.0075 + 0.0225
    v("sonnet-4.5-thinking-as-output", "claude-sonnet-4-5", "0.033", "anthropic/claude-sonnet-4-5", inp=1_000,
      out=2_000, reasoning=1_500, parts={"input": "0.003", "output": "0.0075", "reasoning": "0.0225"}),
    # web search $10 / 1,000 searches: 1,000 x $3 + 500 x $15 + 5 x $0.01 = 0.003 + 0.0075 + 0.05
    v("sonnet-4.5-web-search", "claude-sonnet-4-5", "0.0605", "anthropic/claude-sonnet-4-5", inp=1_000, out=500,
      searches=5, parts={"input": "0.003", "output": "0.0075", "web_search": "0.05"}),
    # dated alias and the anthropic/ prefix: 1,000 x $3 + 1,000 x $15 = 0.003 + 0.015
    v("dated-claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", "0.018", "anthropic/claude-sonnet-4-5",
      inp=1_000, out=1_000),
    v("prefix-anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5-20250929", "0.018",
      "anthropic/claude-sonnet-4-5", inp=1_000, out=1_000),
    # Haiku 4.5: 1,000 x $1 + 1,000 x $5 = 0.001 + 0.005
    v("prefix-anthropic/claude-haiku-4-5-20251001", "anthropic/claude-haiku-4-5-20251001", "0.006",
      "anthropic/claude-haiku-4-5", inp=1_000, out=1_000),
]


@pytest.mark.parametrize("vec", ANTHROPIC)
def test_anthropic(vec: V) -> None:
    check(vec)


# ------------------------------------------------------------------------------------------------------ Bedrock
# aws.amazon.com/bedrock/pricing (Sonnet 4.5): global. $3 / $15 (read $0.30, 5m $3.75, 1h $6); geographic
# profiles (us., eu. ...) 10% dearer: $3.30 / $16.50 (read $0.33, 5m $4.125, 1h $6.60); > 200K: $6 / $22.50
# global, $6.60 / $24.75 us.; batch inference 50%.

BEDROCK = [
    # in 10,000 = 6,000 new + 2,000 read + 1,000 5m + 1,000 1h; out 1,000
    # 6,000 x $3 + 2,000 x $0.30 + 1,000 x $3.75 + 1,000 x $6 + 1,000 x $15 = 0.018 + 0.0006 + 0.00375 + 0.006 + 0.015
    v("global-sonnet-4.5", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "0.04335",
      "bedrock/anthropic.claude-sonnet-4-5", provider="aws.bedrock", inp=10_000, read=2_000, w5m=1_000,
      w1h=1_000, out=1_000, flags=("geo:global",)),
    # 6,000 x $3.30 + 2,000 x $0.33 + 1,000 x $4.125 + 1,000 x $6.60 + 1,000 x $16.50
    #   = 0.0198 + 0.00066 + 0.004125 + 0.0066 + 0.0165
    v("us-sonnet-4.5-plus-10pct", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "0.047685",
      "bedrock/anthropic.claude-sonnet-4-5", provider="aws.bedrock", inp=10_000, read=2_000, w5m=1_000,
      w1h=1_000, out=1_000, flags=("geo:us",),
      parts={"input": "0.0198", "cache_read": "0.00066", "cache_write": "0.004125", "cache_write_1h": "0.0066",
             "output": "0.0165"}),
    # the bedrock/ routing prefix, with and without the provider name (same arithmetic)
    v("prefix-bedrock/us-with-provider", "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "0.047685",
      "bedrock/anthropic.claude-sonnet-4-5", provider="aws.bedrock", inp=10_000, read=2_000, w5m=1_000,
      w1h=1_000, out=1_000),
    v("prefix-bedrock/us-no-provider", "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "0.047685",
      "bedrock/anthropic.claude-sonnet-4-5", inp=10_000, read=2_000, w5m=1_000, w1h=1_000, out=1_000),
    # us. at exactly 200,000 (low): 200,000 x $3.30 + 1,000 x $16.50 = 0.66 + 0.0165
    v("us-200000-low", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "0.6765",
      "bedrock/anthropic.claude-sonnet-4-5", provider="aws.bedrock", inp=200_000, out=1_000,
      no_flags=("long_context",)),
    # us. above 200K: 200,001 x $6.60 + 1,000 x $24.75 = 1.3200066 + 0.02475
    v("us-200001-high", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "1.3447566",
      "bedrock/anthropic.claude-sonnet-4-5", provider="aws.bedrock", inp=200_001, out=1_000,
      flags=("long_context:>200000", "geo:us")),
    # global. above 200K: 200,001 x $6 + 1,000 x $22.50 = 1.200006 + 0.0225
    v("global-200001-high", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "1.222506",
      "bedrock/anthropic.claude-sonnet-4-5", provider="aws.bedrock", inp=200_001, out=1_000),
    # batch 50% on global.: 10,000 x $1.50 + 1,000 x $7.50 = 0.015 + 0.0075
    v("global-batch", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "0.0225",
      "bedrock/anthropic.claude-sonnet-4-5", provider="aws.bedrock", tier="batch", inp=10_000, out=1_000),
    # Haiku 4.5 on an eu. profile: $1 / $5 x 1.1 => 1,000 x $1.10 + 1,000 x $5.50 = 0.0011 + 0.0055
    v("eu-haiku-4.5", "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "0.0066",
      "bedrock/anthropic.claude-haiku-4-5", provider="aws.bedrock", inp=1_000, out=1_000, flags=("geo:eu",)),
]


@pytest.mark.parametrize("vec", BEDROCK)
def test_bedrock(vec: V) -> None:
    check(vec)


# ---------------------------------------------------------------------------------------------------- Vertex AI
# cloud.google.com/vertex-ai/generative-ai/pricing: Claude at Anthropic's list price on the global endpoint,
# regional endpoints +10% (Claude 4.5+; Gemini 3.1 Flash-Lite). Gemini 3.1 Flash-Lite $0.25 / cached $0.025 /
# $1.50; Gemini 2.5 Pro as on AI Studio.

VERTEX = [
    # the semconv example on Vertex's global endpoint: same figures as first party (0.013575, see Anthropic)
    v("claude-sonnet-4-5@20250929-global", "claude-sonnet-4-5@20250929", "0.013575",
      "vertex_ai/claude-sonnet-4-5", provider="gcp.vertex_ai", inp=3_050, read=1_000, w5m=1_500, w1h=500,
      out=300),
    # a regional endpoint is 1.1x: 50 x $3.30 + 1,000 x $0.33 + 1,500 x $4.125 + 500 x $6.60 + 300 x $16.50
    #   = 0.000165 + 0.00033 + 0.0061875 + 0.0033 + 0.00495
    v("claude-sonnet-4-5@20250929-regional-us", "claude-sonnet-4-5@20250929", "0.0149325",
      "vertex_ai/claude-sonnet-4-5", provider="gcp.vertex_ai", region="us", inp=3_050, read=1_000, w5m=1_500,
      w1h=500, out=300, flags=("region:us",)),
    # regional and above 200K: 200,001 x $6 x 1.1 = 1.3200066
    v("claude-sonnet-4-5@20250929-regional-200001", "claude-sonnet-4-5@20250929", "1.3200066",
      "vertex_ai/claude-sonnet-4-5", provider="gcp.vertex_ai", region="regional", inp=200_001,
      flags=("long_context:>200000", "region:regional")),
    # Gemini 3.1 Flash-Lite, global. in 100,000 = 60,000 new + 40,000 read; out 10,000
    # 60,000 x $0.25 + 40,000 x $0.025 + 10,000 x $1.50 = 0.015 + 0.001 + 0.015
    v("gemini-3.1-flash-lite-global", "gemini-3.1-flash-lite", "0.031", "vertex_ai/gemini-3.1-flash-lite",
      provider="gcp.vertex_ai", region="global", inp=100_000, read=40_000, out=10_000),
    # regional 1.1x: 60,000 x $0.275 + 40,000 x $0.0275 + 10,000 x $1.65 = 0.0165 + 0.0011 + 0.0165
    v("gemini-3.1-flash-lite-regional", "gemini-3.1-flash-lite", "0.0341", "vertex_ai/gemini-3.1-flash-lite",
      provider="gcp.vertex_ai", region="regional", inp=100_000, read=40_000, out=10_000,
      flags=("region:regional",)),
    # Gemini 2.5 Pro on Vertex above 200K: 200,001 x $2.50 + 1,000 x $15 = 0.5000025 + 0.015
    v("gemini-2.5-pro-200001", "vertex_ai/gemini-2.5-pro", "0.5150025", "vertex_ai/gemini-2.5-pro",
      provider="gcp.vertex_ai", inp=200_001, out=1_000, flags=("long_context:>200000",)),
]


@pytest.mark.parametrize("vec", VERTEX)
def test_vertex_ai(vec: V) -> None:
    check(vec)


# ------------------------------------------------------------------------------------------ Gemini (AI Studio)
# ai.google.dev/gemini-api/docs/pricing: 2.5 Pro $1.25 / $10 (incl. thinking), cache $0.125 for prompts <= 200K;
# $2.50 / $15, cache $0.25 above; Batch $0.625 / $5 and $1.25 / $7.50. 2.5 Flash $0.30 text / $1.00 audio input,
# $2.50 output; Batch / Flex 50% ($0.15 / $0.50 audio / $1.25). 3.1 Pro preview $2 / $12 / $0.20, above 200K
# $4 / $18 / $0.40. 3.1 Flash-Lite batch $0.125 / $0.75. Priority 2.5 Pro $2.25 / $18 (LiteLLM's 1.8x).

GEMINI = [
    # 2.5 Pro at exactly 200,000 (low): in = 150,000 new + 50,000 cached; out 2,000 = 500 text + 1,500 thinking
    # 150,000 x $1.25 + 50,000 x $0.125 + 500 x $10 + 1,500 x $10 = 0.1875 + 0.00625 + 0.005 + 0.015
    v("2.5-pro-200000-low", "gemini-2.5-pro", "0.21375", "gemini/gemini-2.5-pro", provider="gcp.gemini",
      inp=200_000, read=50_000, out=2_000, reasoning=1_500, no_flags=("long_context",)),
    # 200,001: 150,001 x $2.50 + 50,000 x $0.25 + 500 x $15 + 1,500 x $15 = 0.3750025 + 0.0125 + 0.0075 + 0.0225
    v("2.5-pro-200001-high", "gemini-2.5-pro", "0.4175025", "gemini/gemini-2.5-pro", provider="gcp.gemini",
      inp=200_001, read=50_000, out=2_000, reasoning=1_500, flags=("long_context:>200000",),
      parts={"input": "0.3750025", "cache_read": "0.0125", "output": "0.0075", "reasoning": "0.0225"}),
    # 2.5 Pro batch (low): 100,000 x $0.625 + 1,000 x $5 = 0.0625 + 0.005
    v("2.5-pro-batch-low", "gemini-2.5-pro", "0.0675", "gemini/gemini-2.5-pro", tier="batch", inp=100_000,
      out=1_000),
    # 2.5 Pro batch (high): 200,001 x $1.25 + 1,000 x $7.50 = 0.25000125 + 0.0075
    v("2.5-pro-batch-200001", "gemini-2.5-pro", "0.25750125", "gemini/gemini-2.5-pro", tier="batch",
      inp=200_001, out=1_000),
    # 2.5 Pro priority: 10,000 x $2.25 + 1,000 x $18 = 0.0225 + 0.018
    v("2.5-pro-priority", "gemini-2.5-pro", "0.0405", "gemini/gemini-2.5-pro", tier="priority", inp=10_000,
      out=1_000),
    # 2.5 Flash audio input: in 10,000 = 6,000 text + 4,000 audio; out 1,000
    # 6,000 x $0.30 + 4,000 x $1.00 + 1,000 x $2.50 = 0.0018 + 0.004 + 0.0025
    v("2.5-flash-audio-input", "gemini-2.5-flash", "0.0083", "gemini/gemini-2.5-flash", provider="gcp.gemini",
      inp=10_000, audio_in=4_000, out=1_000,
      parts={"input": "0.0018", "input_audio": "0.004", "output": "0.0025"}),
    # 2.5 Flash batch: 10,000 x $0.15 + 1,000 x $1.25 = 0.0015 + 0.00125
    v("2.5-flash-batch", "gemini-2.5-flash", "0.00275", "gemini/gemini-2.5-flash", tier="batch", inp=10_000,
      out=1_000),
    # flex is the same 50%
    v("2.5-flash-flex", "gemini-2.5-flash", "0.00275", "gemini/gemini-2.5-flash", tier="flex", inp=10_000,
      out=1_000),
    # batch audio: 6,000 x $0.15 + 4,000 x $0.50 + 1,000 x $1.25 = 0.0009 + 0.002 + 0.00125
    v("2.5-flash-batch-audio", "gemini-2.5-flash", "0.00415", "gemini/gemini-2.5-flash", tier="batch",
      inp=10_000, audio_in=4_000, out=1_000),
    # 3.1 Pro preview at 200,000 (low): in = 100,000 new + 100,000 cached; out 1,000
    # 100,000 x $2 + 100,000 x $0.20 + 1,000 x $12 = 0.2 + 0.02 + 0.012
    v("3.1-pro-200000-low", "gemini-3.1-pro-preview", "0.232", "gemini/gemini-3.1-pro-preview", inp=200_000,
      read=100_000, out=1_000),
    # 200,001: 100,001 x $4 + 100,000 x $0.40 + 1,000 x $18 = 0.400004 + 0.04 + 0.018
    v("3.1-pro-200001-high", "gemini-3.1-pro-preview", "0.458004", "gemini/gemini-3.1-pro-preview",
      inp=200_001, read=100_000, out=1_000),
    # 3.1 Flash-Lite batch: 10,000 x $0.125 + 1,000 x $0.75 = 0.00125 + 0.00075
    v("3.1-flash-lite-batch", "google/gemini-3.1-flash-lite-preview", "0.002", "gemini/gemini-3.1-flash-lite",
      tier="batch", inp=10_000, out=1_000),
    # gemini/ prefix: 2.5 Pro low, 10,000 x $1.25 + 1,000 x $10 = 0.0125 + 0.01
    v("prefix-gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro", "0.0225", "gemini/gemini-2.5-pro", inp=10_000,
      out=1_000),
]


@pytest.mark.parametrize("vec", GEMINI)
def test_gemini(vec: V) -> None:
    check(vec)


# ---------------------------------------------------------------------------------------------------------- xAI
# docs.x.ai: grok-4.3 $1.25 / cached $0.20 / $2.50; prompts of 200K "and above": $2.50 / $0.40 / $5.00 on the
# whole request; batch $1.00 / $2.00 (80%). grok-4.7 $2 / $0.50 / $6, >= 200K $4 / $1 / $12. Caching is automatic
# with no write fee (written tokens are ordinary input).

XAI = [
    # 199,999 (low): in = 149,999 new + 50,000 cached; out 1,000
    # 149,999 x $1.25 + 50,000 x $0.20 + 1,000 x $2.50 = 0.18749875 + 0.01 + 0.0025
    v("grok-4.3-199999-low", "grok-4.3", "0.19999875", "xai/grok-4.3", provider="x_ai", inp=199_999,
      read=50_000, out=1_000, no_flags=("long_context",)),
    # exactly 200,000 is already high: 150,000 x $2.50 + 50,000 x $0.40 + 1,000 x $5 = 0.375 + 0.02 + 0.005
    v("grok-4.3-200000-high", "grok-4.3", "0.4", "xai/grok-4.3", provider="x_ai", inp=200_000, read=50_000,
      out=1_000, flags=("long_context:>=200000",),
      parts={"input": "0.375", "cache_read": "0.02", "output": "0.005"}),
    # batch 0.8x: 10,000 x $1.00 + 1,000 x $2.00 = 0.01 + 0.002
    v("grok-4.3-batch", "grok-4.3", "0.012", "xai/grok-4.3", provider="x_ai", tier="batch", inp=10_000,
      out=1_000),
    # no write fee (xAI meta cache_multipliers: cache_write 1x): 10,000 = 7,000 new + 3,000 "written", both at input
    # 7,000 x $1.25 + 3,000 x $1.25 = 0.00875 + 0.00375
    v("grok-4.3-cache-write-at-input-rate", "grok-4.3", "0.0125", "xai/grok-4.3", provider="x_ai",
      inp=10_000, w5m=3_000, flags=("cache_multiplier:cache_write",),
      parts={"input": "0.00875", "cache_write": "0.00375"}),
    # grok-4.7 at 199,999: 99,999 x $2 + 100,000 x $0.50 + 2,000 x $6 = 0.199998 + 0.05 + 0.012
    v("grok-4.7-199999-low", "grok-4.7", "0.261998", "xai/grok-4.7", inp=199_999, read=100_000, out=2_000),
    # grok-4.7 at 200,000: 100,000 x $4 + 100,000 x $1 + 2,000 x $12 = 0.4 + 0.1 + 0.024
    v("grok-4.7-200000-high", "grok-4.7", "0.524", "xai/grok-4.7", inp=200_000, read=100_000, out=2_000),
    # xai/ prefix: 10,000 x $1.25 + 1,000 x $2.50 = 0.0125 + 0.0025
    v("prefix-xai/grok-4.3", "xai/grok-4.3", "0.015", "xai/grok-4.3", inp=10_000, out=1_000),
]


@pytest.mark.parametrize("vec", XAI)
def test_xai(vec: V) -> None:
    check(vec)


# ----------------------------------------------------------------------------------------------------- DeepSeek
# api-docs.deepseek.com/quick_start/pricing (Nov 2026): deepseek-flash (V4.1-Flash) peak $0.30 miss / $0.006 hit /
# $1.20; deepseek-v4-pro peak $1.32 / $0.044 / $3.96; off-peak exactly half. Peak = Mon-Fri 01:00-04:00 and
# 06:00-10:00 UTC (Beijing 09-12, 14-18), end exclusive; weekends off-peak. Cache writes free.
# deepseek-chat history (SOURCES.md): V3.1 $0.56 / $0.07 / $1.68 from 2025-09-05 16:00 UTC; V3.2 $0.28 / $0.028 /
# $0.42 from 2025-09-29; V4-Flash $0.14 / $0.0028 / $0.28 from 2026-04-24; V4-Flash peak $0.44 / $0.014 / $1.32
# from 2026-08-16 16:00 UTC; V4.1-Flash from 2026-09-10 04:00 UTC.

# in 1,000,000 = 600,000 miss + 400,000 hit; out 100,000
_DS = dict(inp=1_000_000, read=400_000, out=100_000)
# peak:     600,000 x $0.30 + 400,000 x $0.006 + 100,000 x $1.20 = 0.18 + 0.0024 + 0.12 = 0.3024
# off-peak: 600,000 x $0.15 + 400,000 x $0.003 + 100,000 x $0.60 = 0.09 + 0.0012 + 0.06 = 0.1512
_PEAK, _OFF = "0.3024", "0.1512"

DEEPSEEK = [
    v("flash-mon-0230-peak", "deepseek-flash", _PEAK, "deepseek/deepseek-flash", provider="deepseek",
      at="2026-11-16T02:30:00Z", flags=("time_window:peak",), **_DS),
    v("flash-mon-0100-peak-start", "deepseek-flash", _PEAK, "deepseek/deepseek-flash",
      at="2026-11-16T01:00:00Z", **_DS),
    v("flash-mon-005959-off", "deepseek-flash", _OFF, "deepseek/deepseek-flash", at="2026-11-16T00:59:59Z",
      **_DS),
    v("flash-mon-035959-peak", "deepseek-flash", _PEAK, "deepseek/deepseek-flash", at="2026-11-16T03:59:59Z",
      **_DS),
    v("flash-mon-0400-off-end-exclusive", "deepseek-flash", _OFF, "deepseek/deepseek-flash",
      at="2026-11-16T04:00:00Z", flags=("time_window:off_peak",), **_DS),
    v("flash-mon-055959-off", "deepseek-flash", _OFF, "deepseek/deepseek-flash", at="2026-11-16T05:59:59Z",
      **_DS),
    v("flash-mon-0600-peak", "deepseek-flash", _PEAK, "deepseek/deepseek-flash", at="2026-11-16T06:00:00Z",
      **_DS),
    v("flash-mon-095959-peak", "deepseek-flash", _PEAK, "deepseek/deepseek-flash", at="2026-11-16T09:59:59Z",
      **_DS),
    v("flash-mon-1000-off", "deepseek-flash", _OFF, "deepseek/deepseek-flash", at="2026-11-16T10:00:00Z", **_DS),
    v("flash-fri-0930-peak", "deepseek-flash", _PEAK, "deepseek/deepseek-flash", at="2026-11-20T09:30:00Z",
      **_DS),
    v("flash-sat-0230-off", "deepseek-flash", _OFF, "deepseek/deepseek-flash", at="2026-11-21T02:30:00Z", **_DS),
    v("flash-sun-0800-off", "deepseek-flash", _OFF, "deepseek/deepseek-flash", at="2026-11-22T08:00:00Z", **_DS),
    # cache writes are free: in 1,000 = 500 miss + 500 written; 500 x $0.30 + 500 x $0 = 0.00015
    v("flash-cache-write-free", "deepseek-flash", "0.00015", "deepseek/deepseek-flash",
      at="2026-11-16T02:30:00Z", inp=1_000, w5m=500, parts={"input": "0.00015"}, no_flags=("fallback",)),
    # v4-pro, in 1,000,000 miss; out 100,000. peak: 1,000,000 x $1.32 + 100,000 x $3.96 = 1.32 + 0.396
    v("v4-pro-peak", "deepseek-v4-pro", "1.716", "deepseek/deepseek-v4-pro", at="2026-11-16T02:30:00Z",
      inp=1_000_000, out=100_000),
    # off-peak: 1,000,000 x $0.66 + 100,000 x $1.98 = 0.66 + 0.198
    v("v4-pro-sat-off", "deepseek-v4-pro", "0.858", "deepseek/deepseek-v4-pro", at="2026-11-21T02:30:00Z",
      inp=1_000_000, out=100_000),
    # deepseek-chat history, same usage as _DS:
    # V3.1 (Wed 2025-09-10): 600,000 x $0.56 + 400,000 x $0.07 + 100,000 x $1.68 = 0.336 + 0.028 + 0.168
    v("chat-v3.1", "deepseek-chat", "0.532", "deepseek/deepseek-chat", at="2025-09-10T02:30:00Z",
      since="2025-09-05T16:00", **_DS),
    # V3.2 (Wed 2025-10-15): 600,000 x $0.28 + 400,000 x $0.028 + 100,000 x $0.42 = 0.168 + 0.0112 + 0.042
    v("chat-v3.2", "deepseek-chat", "0.2212", "deepseek/deepseek-chat", at="2025-10-15T02:30:00Z", **_DS),
    # V4-Flash flat (Fri 2026-05-15, no peak rule yet): 600,000 x $0.14 + 400,000 x $0.0028 + 100,000 x $0.28
    #   = 0.084 + 0.00112 + 0.028
    v("chat-v4-flash-flat", "deepseek-chat", "0.11312", "deepseek/deepseek-chat", at="2026-05-15T02:30:00Z",
      no_flags=("time_window",), **_DS),
    # V4-Flash peak (Thu 2026-08-20 02:30): 600,000 x $0.44 + 400,000 x $0.014 + 100,000 x $1.32
    #   = 0.264 + 0.0056 + 0.132
    v("chat-v4-flash-peak", "deepseek-chat", "0.4016", "deepseek/deepseek-chat", at="2026-08-20T02:30:00Z",
      **_DS),
    # off-peak half: 0.132 + 0.0028 + 0.066
    v("reasoner-v4-flash-off", "deepseek-reasoner", "0.2008", "deepseek/deepseek-chat",
      at="2026-08-20T12:00:00Z", **_DS),
    # V4.1-Flash switch on Thu 2026-09-10 04:00 UTC: 03:59:59 is V4-Flash peak (0.4016), 04:00 is V4.1 off-peak
    v("chat-2026-09-10-035959-v4-peak", "deepseek-chat", "0.4016", "deepseek/deepseek-chat",
      at="2026-09-10T03:59:59Z", **_DS),
    v("chat-2026-09-10-0400-v4.1-off", "deepseek-chat", _OFF, "deepseek/deepseek-chat",
      at="2026-09-10T04:00:00Z", since="2026-09-10T04:00", **_DS),
    v("chat-now-peak", "deepseek-chat", _PEAK, "deepseek/deepseek-chat", at="2026-11-16T02:30:00Z", **_DS),
]


@pytest.mark.parametrize("vec", DEEPSEEK)
def test_deepseek(vec: V) -> None:
    check(vec)


# ------------------------------------------------------------------------------------------------------ Mistral
# mistral.ai/pricing (as in the research notes §2.6): Large 3 $0.50 / $1.50, cached $0.05; Medium 3.5 $1.50 /
# $7.50, cached $0.15; Small $0.15 / $0.60; Medium 3 (May 2025) $0.40 / $2; Batch API 50% off.

MISTRAL = [
    # in 10,000 = 8,000 new + 2,000 cached; out 1,000
    # 8,000 x $0.50 + 2,000 x $0.05 + 1,000 x $1.50 = 0.004 + 0.0001 + 0.0015
    v("large-latest", "mistral-large-latest", "0.0056", "mistral/mistral-large-3", provider="mistral_ai",
      inp=10_000, read=2_000, out=1_000),
    # 8,000 x $1.50 + 2,000 x $0.15 + 1,000 x $7.50 = 0.012 + 0.0003 + 0.0075
    v("medium-latest", "mistral-medium-latest", "0.0198", "mistral/mistral-medium-3-5", provider="mistral_ai",
      inp=10_000, read=2_000, out=1_000),
    # 10,000 x $0.15 + 1,000 x $0.60 = 0.0015 + 0.0006
    v("small-latest", "mistral-small-latest", "0.0021", "mistral/mistral-small-4", provider="mistral_ai",
      inp=10_000, out=1_000),
    # Medium 3 keeps its own price: 10,000 x $0.40 + 1,000 x $2 = 0.004 + 0.002
    v("medium-2505", "mistral-medium-2505", "0.006", "mistral/mistral-medium-3", inp=10_000, out=1_000),
    # batch 50%: 10,000 x $0.25 + 1,000 x $0.75 = 0.0025 + 0.00075
    v("large-batch", "mistral/mistral-large-2512", "0.00325", "mistral/mistral-large-3", tier="batch",
      inp=10_000, out=1_000),
]


@pytest.mark.parametrize("vec", MISTRAL)
def test_mistral(vec: V) -> None:
    check(vec)


# -------------------------------------------------------------------------------------------------------- Azure
# azure.microsoft.com/.../openai-service: Global Standard gpt-4o $2.50 / $1.25 / $10; Data Zone (us/eu) +10%:
# $2.75 / $1.375 / $11. gpt-5.1 global $1.25 / $0.125 / $10, eu $1.375 / $0.1375 / $11.

AZURE = [
    # in 10,000 = 6,000 new + 4,000 cached; out 1,000
    # 6,000 x $2.50 + 4,000 x $1.25 + 1,000 x $10 = 0.015 + 0.005 + 0.01
    v("gpt-4o-global", "gpt-4o", "0.03", "azure/gpt-4o", provider="azure.ai.openai", inp=10_000, read=4_000,
      out=1_000),
    # 6,000 x $2.75 + 4,000 x $1.375 + 1,000 x $11 = 0.0165 + 0.0055 + 0.011
    v("gpt-4o-datazone", "gpt-4o", "0.033", "azure/gpt-4o", provider="azure.ai.openai", region="datazone",
      inp=10_000, read=4_000, out=1_000, flags=("region:datazone",)),
    v("gpt-4o-eu", "gpt-4o-2024-11-20", "0.033", "azure/gpt-4o", provider="azure.ai.openai", region="eu",
      inp=10_000, read=4_000, out=1_000),
    # 6,000 x $1.25 + 4,000 x $0.125 + 1,000 x $10 = 0.0075 + 0.0005 + 0.01
    v("gpt-5.1-global", "gpt-5.1", "0.018", "azure/gpt-5.1", provider="azure.ai.openai", inp=10_000, read=4_000,
      out=1_000),
    # 6,000 x $1.375 + 4,000 x $0.1375 + 1,000 x $11 = 0.00825 + 0.00055 + 0.011
    v("gpt-5.1-eu", "azure/gpt-5.1", "0.0198", "azure/gpt-5.1", region="eu", inp=10_000, read=4_000, out=1_000),
]


@pytest.mark.parametrize("vec", AZURE)
def test_azure(vec: V) -> None:
    check(vec)


def test_azure_gpt_4o_2024_05_13_keeps_its_launch_price() -> None:
    # Azure lists gpt-4o 2024-05-13 at $5 / $15 (as OpenAI does): 10,000 x $5 + 1,000 x $15 = 0.05 + 0.015
    c = BOOK.price("gpt-4o-2024-05-13", provider="azure.ai.openai", input_tokens=10_000, output_tokens=1_000,
                   at=NOW)
    assert c.status == "priced" and c.provider == "azure"
    assert c.total == D("0.065"), (c.model, c.total)


def test_azure_deployment_overlay_with_negotiated_discount(tmp_path: Path) -> None:
    overlay = tmp_path / "contoso.toml"
    overlay.write_text(
        '[[deployment]]\nprovider = "azure"\nname = "prod-gpt4o"\nmodel = "gpt-4o"\nregion = "eu"\n\n'
        '[[discount]]\nprovider = "azure"\nmodel = "gpt-4o"\npercent = "15"\n')
    book = PriceBook.load([overlay], imported=False, env=False)
    usage = dict(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=1_000, at=NOW)
    c = book.price("prod-gpt4o", provider="azure.ai.openai", **usage)
    assert c.status == "priced", c.reason
    assert (c.provider, c.model) == ("azure", "gpt-4o")
    # list (eu data zone, 1.1x): 6,000 x $2.75 + 4,000 x $1.375 + 1,000 x $11 = 0.0165 + 0.0055 + 0.011 = 0.033
    assert c.list_total == D("0.033")
    # net 85%: 0.0165 x 0.85 + 0.0055 x 0.85 + 0.011 x 0.85 = 0.014025 + 0.004675 + 0.00935 = 0.02805
    assert c.total == D("0.02805")
    assert {k: x for k, x in c.components.items() if x} == {
        "input": D("0.014025"), "cache_read": D("0.004675"), "output": D("0.00935")}
    assert sum(c.components.values(), D(0)) == c.total
    assert c.discount_percent == D("15")
    assert "deployment:prod-gpt4o" in c.flags and "region:eu" in c.flags and "discount:15%" in c.flags
    # the deployment name also resolves when the span carries no provider name
    same = book.price("prod-gpt4o", **usage)
    assert same.total == D("0.02805") and same.list_total == D("0.033")
    # the discount is Azure's: OpenAI's own gpt-4o in the same book stays at list, 0.015 + 0.005 + 0.01
    openai = book.price("gpt-4o", provider="openai", **usage)
    assert openai.total == D("0.03") and openai.list_total is None and openai.provider == "openai"
    # and a plain Azure gpt-4o (no deployment, so no region) is discounted but not uplifted: 0.03 x 0.85
    plain = book.price("gpt-4o", provider="azure.ai.openai", **usage)
    assert plain.total == D("0.0255") and plain.list_total == D("0.03")


# -------------------------------------------------------------------------------------- unknown stays unpriced

UNPRICED = [
    pytest.param("gpt-5.99", None, NOW, None, {}, id="gpt-5.99"),
    pytest.param("openai/gpt-5.99-2026-01-01", None, NOW, None, {}, id="openai/gpt-5.99-dated"),
    pytest.param("gpt-4o-mini-2", None, NOW, None, {}, id="gpt-4o-mini-2"),
    pytest.param("claude-sonnet-9", None, NOW, None, {}, id="claude-sonnet-9"),
    pytest.param("claude-sonnet-9-20301231", "anthropic", NOW, None, {}, id="claude-sonnet-9-dated"),
    pytest.param("us.anthropic.claude-sonnet-9-v1:0", "aws.bedrock", NOW, None, {}, id="bedrock-sonnet-9"),
    pytest.param("claude-sonnet-9@20301231", "gcp.vertex_ai", NOW, None, {}, id="vertex-sonnet-9"),
    pytest.param("gemini-9.9-pro", "gcp.gemini", NOW, None, {}, id="gemini-9.9-pro"),
    pytest.param("grok-9", "x_ai", NOW, None, {}, id="grok-9"),
    pytest.param("deepseek-v9", "deepseek", NOW, None, {}, id="deepseek-v9"),
    pytest.param("mistral-large-9", "mistral_ai", NOW, None, {}, id="mistral-large-9"),
    pytest.param("gpt-5.99", "azure.ai.openai", NOW, None, {}, id="azure-gpt-5.99"),
    # a known model before its first price period, or in a tier / with a fee the vendor does not offer
    pytest.param("gpt-5", "openai", "2025-08-06T23:59:59Z", None, {}, id="gpt-5-before-launch"),
    pytest.param("deepseek-chat", "deepseek", "2025-09-05T15:59:59Z", None, {}, id="deepseek-chat-before-v3.1"),
    pytest.param("gpt-4o", "openai", NOW, "flex", {}, id="gpt-4o-has-no-flex"),
    pytest.param("grok-4", "x_ai", NOW, "batch", {}, id="grok-4-no-batch-rate"),
    pytest.param("deepseek-flash", "deepseek", NOW, None, {"web_search_calls": 1}, id="deepseek-no-search-fee"),
]


@pytest.mark.parametrize(("model", "provider", "at", "tier", "extra"), UNPRICED)
def test_unknown_or_unoffered_stays_unpriced(model: str, provider: str | None, at: str, tier: str | None,
                                             extra: dict[str, int]) -> None:
    c = BOOK.price(model, provider=provider, at=at, service_tier=tier, input_tokens=1_000, output_tokens=100,
                   **extra)
    assert c.status == "unpriced"
    assert c.total is None and c.components == {} and c.reason


# ------------------------------------------------------------------------------------- cache and order safety

ALL = [p.values[0] for p in OPENAI + ANTHROPIC + BEDROCK + VERTEX + GEMINI + XAI + DEEPSEEK + MISTRAL + AZURE]


def test_every_vector_again_in_reverse_order_on_a_fresh_book() -> None:
    """The engine caches resolutions and per-model rate plans; no vector may depend on what was priced before."""
    book = PriceBook.load(imported=False, env=False)
    for vec in reversed(ALL):
        check(vec, book)
    for vec in ALL:  # now every plan is warm
        check(vec, book)


# ------------------------------------------------------------------------------------------------- CLI contract

CLI = [
    # the semconv example (0.013575, worked out in ANTHROPIC)
    pytest.param(["claude-sonnet-4-5", "--input", "3050", "--cache-read", "1000", "--cache-write", "1500",
                  "--cache-write-1h", "500", "--output", "300"],
                 "anthropic", "claude-sonnet-4-5", "0.013575", "2025-09-29",
                 {"input": "0.00015", "cache_read": "0.0003", "cache_write": "0.005625", "cache_write_1h": "0.003",
                  "output": "0.0045"}, id="semconv-sonnet-4.5"),
    # us. Bedrock profile above 200K (1.3447566, worked out in BEDROCK)
    pytest.param(["us.anthropic.claude-sonnet-4-5-20250929-v1:0", "--provider", "aws.bedrock", "--input",
                  "200001", "--output", "1000"],
                 "bedrock", "anthropic.claude-sonnet-4-5", "1.3447566", "2025-09-29",
                 {"input": "1.3200066", "output": "0.02475"}, id="bedrock-us-200001"),
]


@pytest.mark.parametrize(("args", "provider", "model", "total", "since", "parts"), CLI)
def test_cli_price_json(args: list[str], provider: str, model: str, total: str, since: str,
                        parts: dict[str, str]) -> None:
    r = subprocess.run([sys.executable, "-m", "otel_costattr", "price", *args, "--at", NOW, "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "priced" and out["currency"] == "USD"
    assert (out["provider"], out["model"]) == (provider, model)
    assert out["total"] == total  # exact decimal string, no float formatting
    assert {k: x for k, x in out["components"].items() if D(x)} == parts
    assert sum(D(x) for x in out["components"].values()) == D(out["total"])
    assert out["effective_from"].startswith(since)
    assert out["pricing_version"] and out["origin"] == "curated" and out["source"].startswith("https://")
