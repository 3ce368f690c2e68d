"""What a price says about itself (issue 20): missing cache rates, implausible and impossible counts.

* A model without a rate for a cache class: the vendor's documented multiple of the input rate, flagged
  ``cache_multiplier:<class>``; with none documented the call is ``partial``, that share is 0 and flagged
  ``unpriced:<class>`` - never billed at the input rate.
* A count above the model's context window / output limit (else 10^8) is priced, flagged
  ``implausible:<count>`` and counted.
* NaN, inf and negative counts on a span are flagged ``bad_value:<count>`` instead of turning the call into
  ``partial`` with no flags.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from otel_costattr import PriceBook
from otel_costattr import attributes as A
from otel_costattr._capture._enrich import Enricher
from otel_costattr._pricing._book import DEFAULT_TOKEN_BOUND


@pytest.fixture()
def book() -> PriceBook:
    return PriceBook.load(env=False)


def test_anthropic_multipliers_price_a_model_without_cache_rates(tmp_path) -> None:
    overlay = tmp_path / "a.toml"
    overlay.write_text('[meta]\nprovider = "anthropic"\nversion = "t"\n\n[[model]]\nid = "claude-test"\n'
                       'source = "test"\n\n  [[model.period]]\n  effective_from = "2025-01-01"\n  input = "4"\n'
                       '  output = "20"\n')
    book = PriceBook.load([overlay], env=False)
    c = book.price("claude-test", input_tokens=10_000, cache_read_tokens=6_000, cache_write_tokens=1_000,
                   cache_write_1h_tokens=1_000, output_tokens=1_000)
    # 2,000 x $4 + 6,000 x $0.40 (0.1x) + 1,000 x $5 (1.25x) + 1,000 x $8 (2x) + 1,000 x $20
    assert c.status == "priced" and c.total == D("0.0434")
    assert c.components["cache_read"] == D("0.0024") and c.components["cache_write_1h"] == D("0.008")
    assert {"cache_multiplier:cache_read", "cache_multiplier:cache_write", "cache_multiplier:cache_write_1h"} \
        <= set(c.flags)


def test_without_a_documented_multiplier_the_cache_share_is_unpriced(book) -> None:
    # Mistral documents no cache-write multiple and codestral has no write rate: the call is partial.
    usage = dict(input_tokens=10_000, cache_write_tokens=1_000, output_tokens=1_000, at="2026-11-01T00:00:00Z")
    c = book.price("codestral", provider="mistral", **usage)
    full = book.price("codestral", provider="mistral", input_tokens=9_000, output_tokens=1_000,
                      at="2026-11-01T00:00:00Z")
    assert c.status == "partial" and "unpriced:cache_write" in c.flags
    assert c.components["cache_write"] == 0 and c.total == full.total  # not billed at the input rate
    again = book.price("codestral", provider="mistral", **usage)  # the cached fast path agrees
    assert again.to_dict() == c.to_dict()


def test_a_class_never_used_does_not_make_the_call_partial(book) -> None:
    c = book.price("codestral", provider="mistral", input_tokens=1_000, output_tokens=10)
    assert c.status == "priced" and not any(f.startswith("unpriced:") for f in c.flags)


def test_openai_cache_writes_cost_input_and_are_flagged(book) -> None:
    c = book.price("gpt-4o", input_tokens=10_000, cache_read_tokens=6_000, cache_write_tokens=1_000,
                   output_tokens=1_000, at="2026-11-01T00:00:00Z")
    # 3,000 x $2.50 + 6,000 x $1.25 + 1,000 x $2.50 (1x) + 1,000 x $10
    assert c.total == D("0.0275") and "cache_multiplier:cache_write" in c.flags


def test_counts_above_the_context_window_are_priced_flagged_and_counted(book) -> None:
    before = book.implausible_calls
    c = book.price("claude-3-opus-20240229", input_tokens=250_000, output_tokens=5_000, at="2025-01-01T00:00:00Z")
    # claude-3-opus: 200,000 context, 4,096 output. 250,000 x $15 + 5,000 x $75
    assert c.status == "priced" and c.total == D("4.125")
    assert {"implausible:input_tokens", "implausible:output_tokens"} <= set(c.flags)
    assert book.implausible_calls == before + 1
    ok = book.price("claude-3-opus-20240229", input_tokens=200_000, output_tokens=4_096, at="2025-01-01T00:00:00Z")
    assert not any(f.startswith("implausible:") for f in ok.flags)


def test_a_trillion_tokens_is_flagged_not_silently_priced(book) -> None:
    for _ in range(2):  # the second call may take the cached fast path: it must flag the same
        c = book.price("gpt-4o", input_tokens=10**12, at="2026-11-01T00:00:00Z")
        assert c.status == "priced" and "implausible:input_tokens" in c.flags
        assert c.total == D(2_500_000)  # 10^12 x $2.50 per 1M, still priced as reported


def test_a_warm_plan_flags_reasoning_above_the_output_limit_as_a_cold_price_does() -> None:
    """The plan fast path checked input, output and cache counts against the model's limits, not the reasoning
    count: once a plausible call had stored a plan, an implausible reasoning count lost its flag (found by
    test_serve_wire's property test, which compares two enrichers on one book)."""
    # gpt-4o: 16,384 output tokens at most
    kw = dict(input_tokens=1_000, output_tokens=1_000, reasoning_tokens=20_000, at="2026-11-01T00:00:00Z")
    cold = PriceBook.load().price("gpt-4o", **kw)
    assert "implausible:reasoning_tokens" in cold.flags
    warm_book = PriceBook.load()
    warm_book.price("gpt-4o", input_tokens=1_000, output_tokens=100, at="2026-11-01T00:00:00Z")  # stores a plan
    warm = warm_book.price("gpt-4o", **kw)
    assert (warm.flags, warm.total, warm.status) == (cold.flags, cold.total, cold.status)


def test_without_known_limits_the_bound_is_1e8(tmp_path) -> None:
    overlay = tmp_path / "m.toml"
    overlay.write_text('[meta]\nprovider = "selfhosted"\nversion = "t"\n\n[[model]]\nid = "my-llm"\nsource = "t"\n\n'
                       '  [[model.period]]\n  effective_from = "2025-01-01"\n  input = "1"\n  output = "1"\n')
    book = PriceBook.load([overlay], env=False, imported=False)
    assert "implausible:input_tokens" not in book.price("my-llm", input_tokens=DEFAULT_TOKEN_BOUND).flags
    assert "implausible:input_tokens" in book.price("my-llm", input_tokens=DEFAULT_TOKEN_BOUND + 1).flags


def _span(**usage: object) -> dict[str, object]:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    attrs.update({f"gen_ai.usage.{k}": v for k, v in usage.items()})
    return attrs


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5, -1.0])
def test_impossible_counts_on_a_span_are_flagged_bad_value(book, bad) -> None:
    out, status, _, _ = Enricher(book).compute_attributes(
        _span(input_tokens=bad, output_tokens=100), span_id=None, start_ns=1_790_000_000_000_000_000, end_ns=None)
    assert status == "priced", out
    assert "bad_value:input_tokens" in out[A.COST_FLAGS]
    assert out[A.COST_TOTAL] == pytest.approx(100 * 10 / 1e6)  # the output that was reported


def test_a_huge_count_on_a_span_is_priced_and_flagged_implausible(book) -> None:
    out, status, _, _ = Enricher(book).compute_attributes(
        _span(input_tokens=10**15, output_tokens=1), span_id=None, start_ns=1_790_000_000_000_000_000, end_ns=None)
    assert status == "priced" and "implausible:input_tokens" in out[A.COST_FLAGS]
    assert "bad_value:input_tokens" not in out[A.COST_FLAGS]


def test_curated_entries_carry_litellm_limits(book) -> None:
    # gpt-4o: 128,000 input / 16,384 output (copied from LiteLLM into openai.toml)
    c = book.price("gpt-4o", input_tokens=150_000, output_tokens=20_000, at="2026-11-01T00:00:00Z")
    assert {"implausible:input_tokens", "implausible:output_tokens"} <= set(c.flags)
    assert not book.price("gpt-4o", input_tokens=100_000, at="2026-11-01T00:00:00Z").flags


def test_a_long_context_tier_is_never_implausible(book) -> None:
    # Sonnet 4.5's >200K tier is served with the 1M-context beta: a 500K prompt is long, not implausible
    c = book.price("claude-sonnet-4-5", input_tokens=500_000, output_tokens=1_000)
    assert "long_context:>200000" in c.flags and not any(f.startswith("implausible") for f in c.flags)


def test_resolving_a_curated_model_does_not_load_the_imported_layer() -> None:
    book = PriceBook.load(env=False)
    # (a name that is not a curated id or alias, such as "openai/gpt-4o" or a Bedrock geo+version spelling,
    # consults the imported layer at each step before the curated stripped name: an imported exact match beats
    # a stripped guess; that order predates issue 20)
    for model in ("gpt-4o", "gpt-4.1", "claude-sonnet-4-5", "anthropic.claude-sonnet-4-5", "claude-3-opus-20240229",
                  "gemini-1.5-pro-002"):
        assert book.price(model, input_tokens=1_000).status == "priced"
    assert book._imported_doc is None  # noqa: SLF001 - the lazy layer stays unloaded (start-up time, memory)


def test_bedrock_namespaces_cover_the_shipped_tables() -> None:
    from otel_costattr._pricing._resolve import BEDROCK_NAMESPACES, GEO_PREFIXES

    book = PriceBook.load(env=False)
    seen = {n.partition(".")[0] for t in book.tables() if t.provider == "bedrock" for n in t.index
            if "." in n and "/" not in n.partition(".")[0]}
    assert seen - set(GEO_PREFIXES) - {"in"} <= BEDROCK_NAMESPACES  # "in." is a geo the resolver keeps
