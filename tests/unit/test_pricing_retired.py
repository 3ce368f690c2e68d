"""Retired first-party models are priced with their price history (issue 20).

Must hold: each retired model is priced at two dates against figures computed by hand (in the comments), and
carries its retirement date where a source gives one. Calls:

* Anthropic: 10,000 input tokens of which 6,000 cache reads and 1,000 5-minute cache writes, 1,000 output
  (so 3,000 uncached input);
* OpenAI GPT-4 / GPT-3.5: 10,000 input, 1,000 output (these models have no prompt caching);
* o1 and Gemini: 10,000 input of which 6,000 cached, 1,000 output (4,000 uncached).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from otel_costattr import PriceBook

BOOK = PriceBook.load(env=False)
CLAUDE = dict(input_tokens=10_000, cache_read_tokens=6_000, cache_write_tokens=1_000, output_tokens=1_000)
PLAIN = dict(input_tokens=10_000, output_tokens=1_000)
CACHED = dict(input_tokens=10_000, cache_read_tokens=6_000, output_tokens=1_000)

# (model, usage, [(date, expected total)], (provider, id), retired)
VECTORS = [
    # 3,000 x $15 + 6,000 x $1.50 + 1,000 x $18.75 + 1,000 x $75 = 0.045 + 0.009 + 0.01875 + 0.075
    ("claude-3-opus-20240229", CLAUDE, [("2024-03-10", "0.14775"), ("2025-12-01", "0.14775")],
     ("anthropic", "claude-3-opus"), "2026-01-05"),
    # 3,000 x $3 + 6,000 x $0.30 + 1,000 x $3.75 + 1,000 x $15 = 0.009 + 0.0018 + 0.00375 + 0.015
    ("claude-3-sonnet-20240229", CLAUDE, [("2024-03-10", "0.02955"), ("2025-07-01", "0.02955")],
     ("anthropic", "claude-3-sonnet"), "2025-07-21"),
    # 3,000 x $0.25 + 6,000 x $0.03 + 1,000 x $0.30 + 1,000 x $1.25 = 0.00075 + 0.00018 + 0.0003 + 0.00125
    ("claude-3-haiku-20240307", CLAUDE, [("2024-04-01", "0.00248"), ("2025-06-01", "0.00248")],
     ("anthropic", "claude-3-haiku"), None),
    ("claude-3-5-sonnet-20240620", CLAUDE, [("2024-07-01", "0.02955"), ("2025-10-01", "0.02955")],
     ("anthropic", "claude-3-5-sonnet"), "2025-10-22"),
    ("claude-3-5-sonnet-20241022", CLAUDE, [("2024-11-01", "0.02955"), ("2025-10-21", "0.02955")],
     ("anthropic", "claude-3-5-sonnet"), "2025-10-22"),
    ("claude-3-7-sonnet-20250219", CLAUDE, [("2025-03-01", "0.02955"), ("2026-01-15", "0.02955")],
     ("anthropic", "claude-3-7-sonnet"), "2026-02-19"),
    # 3,000 x $0.80 + 6,000 x $0.08 + 1,000 x $1 + 1,000 x $4 = 0.0024 + 0.00048 + 0.001 + 0.004
    ("claude-3-5-haiku-20241022", CLAUDE, [("2024-12-01", "0.00788"), ("2026-01-01", "0.00788")],
     ("anthropic", "claude-3-5-haiku"), "2026-02-19"),
    ("claude-opus-4-20250514", CLAUDE, [("2025-06-01", "0.14775"), ("2026-06-01", "0.14775")],
     ("anthropic", "claude-opus-4"), None),
    ("claude-opus-4-1-20250805", CLAUDE, [("2025-09-01", "0.14775"), ("2026-06-01", "0.14775")],
     ("anthropic", "claude-opus-4-1"), None),
    ("claude-sonnet-4-20250514", CLAUDE, [("2025-06-01", "0.02955"), ("2026-06-01", "0.02955")],
     ("anthropic", "claude-sonnet-4"), None),
    # 10,000 x $30 + 1,000 x $60 = 0.3 + 0.06
    ("gpt-4", PLAIN, [("2023-05-01", "0.36"), ("2026-01-01", "0.36")], ("openai", "gpt-4"), "2026-10-23"),
    ("gpt-4-0613", PLAIN, [("2023-07-01", "0.36"), ("2026-10-01", "0.36")], ("openai", "gpt-4"), "2026-10-23"),
    ("gpt-4-0314", PLAIN, [("2023-04-01", "0.36"), ("2024-06-01", "0.36")], ("openai", "gpt-4-0314"), "2024-06-13"),
    # 10,000 x $60 + 1,000 x $120 = 0.6 + 0.12
    ("gpt-4-32k-0613", PLAIN, [("2023-07-01", "0.72"), ("2025-06-01", "0.72")], ("openai", "gpt-4-32k"),
     "2025-06-06"),
    # 10,000 x $10 + 1,000 x $30 = 0.1 + 0.03
    ("gpt-4-turbo-2024-04-09", PLAIN, [("2024-05-01", "0.13"), ("2026-06-01", "0.13")], ("openai", "gpt-4-turbo"),
     "2026-10-23"),
    ("gpt-4-1106-preview", PLAIN, [("2023-12-01", "0.13"), ("2025-01-01", "0.13")],
     ("openai", "gpt-4-1106-preview"), "2026-10-23"),
    ("gpt-4-turbo-preview", PLAIN, [("2024-02-01", "0.13"), ("2025-01-01", "0.13")],
     ("openai", "gpt-4-0125-preview"), None),
    ("gpt-4-vision-preview", PLAIN, [("2023-12-01", "0.13"), ("2024-12-01", "0.13")],
     ("openai", "gpt-4-vision-preview"), "2024-12-06"),
    # the undated name: 0301 $2/$2, then 0613 $1.50/$2, 1106 $1/$2, 0125 $0.50/$1.50
    ("gpt-3.5-turbo", PLAIN, [("2023-04-01", "0.022"), ("2023-08-01", "0.017"), ("2024-01-01", "0.012"),
                              ("2024-06-01", "0.0065")], ("openai", "gpt-3.5-turbo"), "2026-10-23"),
    ("gpt-3.5-turbo-0301", PLAIN, [("2023-04-01", "0.022"), ("2024-06-01", "0.022")],
     ("openai", "gpt-3.5-turbo-0301"), "2024-06-13"),
    # 10,000 x $1.50 + 1,000 x $2 = 0.015 + 0.002
    ("gpt-3.5-turbo-0613", PLAIN, [("2023-07-01", "0.017"), ("2024-06-01", "0.017")],
     ("openai", "gpt-3.5-turbo-0613"), "2024-09-13"),
    # 10,000 x $3 + 1,000 x $4 = 0.03 + 0.004
    ("gpt-3.5-turbo-16k-0613", PLAIN, [("2023-07-01", "0.034"), ("2024-06-01", "0.034")],
     ("openai", "gpt-3.5-turbo-16k"), "2026-10-23"),
    ("gpt-3.5-turbo-1106", PLAIN, [("2023-12-01", "0.012"), ("2026-01-01", "0.012")],
     ("openai", "gpt-3.5-turbo-1106"), "2026-09-28"),
    ("gpt-3.5-turbo-0125", PLAIN, [("2024-03-01", "0.0065"), ("2026-01-01", "0.0065")],
     ("openai", "gpt-3.5-turbo-0125"), "2026-10-23"),
    ("gpt-3.5-turbo-instruct", PLAIN, [("2023-10-01", "0.017"), ("2026-01-01", "0.017")],
     ("openai", "gpt-3.5-turbo-instruct"), "2026-09-28"),
    # 4,000 x $15 + 6,000 x $7.50 + 1,000 x $60 = 0.06 + 0.045 + 0.06
    ("o1-preview-2024-09-12", CACHED, [("2024-10-15", "0.165"), ("2025-06-01", "0.165")],
     ("openai", "o1-preview"), "2025-07-28"),
    # 4,000 x $3 + 6,000 x $1.50 + 1,000 x $12 = 0.033; after 2025-01-31: 4,000 x $1.10 + 6,000 x $0.55 +
    # 1,000 x $4.40 = 0.0044 + 0.0033 + 0.0044
    ("o1-mini", CACHED, [("2024-11-01", "0.033"), ("2025-03-01", "0.0121")], ("openai", "o1-mini"), "2025-10-27"),
    # 4,000 x $3.50 + 6,000 x $0.875 + 1,000 x $10.50 = 0.014 + 0.00525 + 0.0105; after the 2024-10-01 cut:
    # 4,000 x $1.25 + 6,000 x $0.3125 + 1,000 x $5 = 0.005 + 0.001875 + 0.005
    ("gemini-1.5-pro-002", CACHED, [("2024-07-01", "0.02975"), ("2025-01-01", "0.011875")],
     ("gemini", "gemini-1.5-pro"), "2025-09-24"),
    # 4,000 x $0.35 + 6,000 x $0.0875 + 1,000 x $1.05; after 2024-08-12: 4,000 x $0.075 + 6,000 x $0.01875 +
    # 1,000 x $0.30 = 0.0003 + 0.0001125 + 0.0003
    ("gemini-1.5-flash", CACHED, [("2024-07-01", "0.002975"), ("2024-09-01", "0.0007125")],
     ("gemini", "gemini-1.5-flash"), "2025-09-24"),
    # 4,000 x $0.0375 + 6,000 x $0.01 + 1,000 x $0.15 = 0.00015 + 0.00006 + 0.00015
    ("gemini-1.5-flash-8b", CACHED, [("2024-11-01", "0.00036"), ("2025-06-01", "0.00036")],
     ("gemini", "gemini-1.5-flash-8b"), "2025-09-24"),
    # fine-tuned gpt-4o: 4,000 x $3.75 + 6,000 x $1.875 (a cache read, not a write) + 1,000 x $15
    ("ft:gpt-4o-2024-11-20:initech::review-v2", CACHED, [("2025-01-01", "0.04125"), ("2026-06-01", "0.04125")],
     ("openai", "ft:gpt-4o-2024-11-20"), None),
]


@pytest.mark.parametrize("model, usage, points, resolves, retired", VECTORS, ids=[v[0] for v in VECTORS])
def test_retired_model_priced_at_two_dates(model, usage, points, resolves, retired) -> None:
    assert len(points) >= 2
    for when, total in points:
        c = BOOK.price(model, at=f"{when}T12:00:00Z", **usage)
        assert c.status == "priced", (when, c.reason, c.flags)
        assert (c.provider, c.model) == resolves
        assert c.total == D(total), (when, c.components)
        assert c.origin == "curated"
    entry = BOOK.resolve(model)[0]
    assert entry.retired == (date.fromisoformat(retired) if retired else None)
    assert entry.context_window and entry.max_output


def test_before_launch_a_retired_model_is_unpriced() -> None:
    c = BOOK.price("claude-3-opus-20240229", at="2024-01-01T00:00:00Z", **CLAUDE)
    assert c.status == "unpriced" and "no price period" in c.reason


@pytest.mark.parametrize("model, when, total", [
    # >128K prompts were billed at the higher rate on the whole request:
    # 200,000 x $7 + 1,000 x $21 = 1.4 + 0.021; after the cut 200,000 x $2.50 + 1,000 x $10 = 0.5 + 0.01
    ("gemini-1.5-pro", "2024-07-01", "1.421"),
    ("gemini-1.5-pro", "2025-01-01", "0.51"),
    # 200,000 x $0.70 + 1,000 x $2.10; after 2024-08-12: 200,000 x $0.15 + 1,000 x $0.60
    ("gemini-1.5-flash", "2024-07-01", "0.1421"),
    ("gemini-1.5-flash", "2024-09-01", "0.0306"),
    # exactly 128,000 stays in the lower tier ("prompts longer than 128k"): 128,000 x $1.25 + 1,000 x $5
    ("gemini-1.5-pro", "2025-01-01@128000", "0.165"),
])
def test_gemini_1_5_long_context_tier(model: str, when: str, total: str) -> None:
    day, _, n = when.partition("@")
    c = BOOK.price(model, input_tokens=int(n or 200_000), output_tokens=1_000, at=f"{day}T12:00:00Z")
    assert c.total == D(total), c.components
    assert ("long_context:>128000" in c.flags) == (not n)


def test_every_issue_family_is_curated() -> None:
    ids = {e.id for t in BOOK.tables(include_imported=False) if t.origin == "curated" for e in t.models.values()}
    for needed in ("claude-3-opus", "claude-3-sonnet", "claude-3-haiku", "claude-3-5-sonnet", "claude-3-5-haiku",
                   "claude-3-7-sonnet", "claude-sonnet-4", "claude-opus-4", "claude-opus-4-1", "gpt-4",
                   "gpt-4-32k", "gpt-4-turbo", "gpt-3.5-turbo", "o1-preview", "o1-mini", "gemini-1.5-pro",
                   "gemini-1.5-flash", "gemini-1.5-flash-8b"):
        assert needed in ids, needed
