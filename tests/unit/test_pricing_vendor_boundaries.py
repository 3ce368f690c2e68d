"""Resolution never crosses vendors (DESIGN D8, issue 20).

Must hold: every first-party id of the nine curated vendors in the shipped tables (imported LiteLLM layer and
curated files), and every vendor-prefixed spelling of it, resolves within its vendor or is ``unpriced``; a
gateway's entry is used only when the call names the gateway; an unpriced reason names the closest entries;
the opt-in ``[[resale]]`` overlay maps a gateway to the vendor it resells.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from otel_costattr import PriceBook, PricingError
from otel_costattr._pricing._resolve import FIRST_PARTY, vendor_of

NINE = ("openai", "anthropic", "gemini", "xai", "deepseek", "mistral", "vertex_ai", "bedrock", "azure")
#: How routers and gateways spell a vendor in front of a model name (LiteLLM, OpenRouter, Vercel, Hugging Face).
SPELLINGS = {
    "openai": ("openai/",), "anthropic": ("anthropic/",), "gemini": ("gemini/", "google/"),
    "xai": ("xai/", "x-ai/", "x_ai/"), "deepseek": ("deepseek/", "deepseek-ai/"), "mistral": ("mistral/", "mistralai/"),
    "vertex_ai": ("vertex_ai/",), "bedrock": ("bedrock/",), "azure": ("azure/",),
}
# The realistic call of the issue: 10,000 input tokens of which 6,000 cache reads and 1,000 5-minute writes.
CALL = dict(input_tokens=10_000, cache_read_tokens=6_000, cache_write_tokens=1_000, output_tokens=1_000,
            at="2026-12-01T12:00:00Z")

BOOK = PriceBook.load(env=False)


def _ids(provider: str) -> list[str]:
    out: set[str] = set()
    for t in BOOK.tables():
        if t.provider == provider:
            out.update(t.index)  # ids and aliases
    return sorted(out)


def _where(model: str, provider: str | None = None) -> str | None:
    res = BOOK.resolve(model, provider)
    return None if res is None else res[0].provider


def test_the_nine_vendors_have_tables() -> None:
    counts = {p: len(_ids(p)) for p in NINE}
    assert all(n > 0 for n in counts.values()), counts
    assert sum(counts.values()) > 1000


@pytest.mark.parametrize("vendor", NINE)
def test_every_first_party_id_and_prefixed_spelling_stays_within_its_vendor(vendor: str) -> None:
    crossed: list[str] = []
    for mid in _ids(vendor):
        # A bare name with no provider: the vendor its name belongs to, else the first-party and cloud tables
        # (a cloud id such as "chat-latest" that OpenAI also lists is OpenAI's); never a gateway or host.
        family = vendor_of(mid)
        bare_ok = {vendor, family} if family is not None else set(NINE)
        where = _where(mid)
        if where is not None and where not in bare_ok:
            crossed.append(f"{mid} -> {where}")
        # named provider: its own table always has the id
        where = _where(mid, vendor)
        if where != vendor:
            crossed.append(f"{mid} (provider {vendor}) -> {where}")
        for prefix in SPELLINGS[vendor]:
            name = prefix + mid
            where = _where(name)
            if where is not None and where != vendor:
                crossed.append(f"{name} -> {where}")
            where = _where(name, vendor)
            if where is not None and where != vendor:
                crossed.append(f"{name} (provider {vendor}) -> {where}")
    assert not crossed, f"{len(crossed)} names priced from another provider: {crossed[:20]}"


@pytest.mark.parametrize("model, provider, gateway", [
    ("claude-4-opus", None, "snowflake"),
    ("claude-4-opus", "anthropic", "snowflake"),
    ("xai/grok-4", None, "replicate"),
    ("deepseek/deepseek-r1", None, "novita"),
    ("anthropic/claude-opus-4-7", None, "deepinfra"),
    ("openai/gpt-4o", None, "gmi"),
    ("deepseek/deepseek-v4-flash", None, "novita"),
])
def test_the_issue_examples_no_longer_take_a_gateway_price(model: str, provider: str | None, gateway: str) -> None:
    c = BOOK.price(model, provider=provider, **CALL)
    assert c.provider != gateway
    if c.status == "unpriced":
        assert gateway in c.reason  # named among the closest entries, not borrowed
    else:
        assert c.provider in NINE and not any(f.startswith("provider_fallback") for f in c.flags)


def test_vendor_prefix_resolves_within_the_vendor_with_its_own_rates() -> None:
    # 3,000 new x $5 + 6,000 x $0.50 + 1,000 x $6.25 + 1,000 x $25 (Anthropic's own row, not DeepInfra's)
    c = BOOK.price("anthropic/claude-opus-4-7", **CALL)
    assert (c.provider, c.model, c.total) == ("anthropic", "claude-opus-4-7", Decimal("0.04925"))
    # xai/grok-4 is xAI's grok-4 (curated), not Replicate's copy
    assert BOOK.price("xai/grok-4", **CALL).provider == "xai"
    # DeepSeek's own table keeps its peak/off-peak windows
    c = BOOK.price("deepseek/deepseek-v4-flash", input_tokens=1000, at="2026-12-05T12:00:00Z")
    assert c.provider == "deepseek" and any(f.startswith("time_window:") for f in c.flags)


def test_a_gateway_entry_is_used_when_the_call_names_the_gateway() -> None:
    for model, gateway in (("claude-4-opus", "snowflake"), ("xai/grok-4", "replicate"),
                           ("deepseek/deepseek-r1", "novita"), ("openai/gpt-4o", "gmi")):
        c = BOOK.price(model, provider=gateway, **CALL)
        assert c.status != "unpriced" and c.provider == gateway, (model, c.reason)
    # ... or when the name is routed through it
    assert BOOK.price("novita/deepseek/deepseek-r1", **CALL).provider == "novita"


def test_unpriced_reason_names_the_closest_entries() -> None:
    c = BOOK.price("claude-4-opus", **CALL)
    assert c.status == "unpriced" and c.total is None
    assert "anthropic/claude-opus-4" in c.reason  # near name in the vendor's table
    assert "snowflake/claude-4-opus" in c.reason  # same name elsewhere, not borrowed
    assert "pricing/README.md" in c.reason


def test_a_first_party_client_calling_another_vendor_is_priced_from_that_vendor() -> None:
    # The OpenAI SDK pointed at DeepSeek reports provider "openai": DeepSeek's table prices it, flagged.
    c = BOOK.price("deepseek-chat", provider="openai", input_tokens=1000, output_tokens=10)
    assert c.provider == "deepseek" and "provider_fallback:openai" in c.flags
    # but a vendor's own model missing from its own table does not fall through to a reseller
    assert BOOK.price("claude-4-opus", provider="anthropic", **CALL).status == "unpriced"
    assert "azure" not in {_where("o1-mini-2099-01-01")}


def test_a_name_no_vendor_claims_is_not_priced_from_a_gateway() -> None:
    # this llama name is listed only by a host (inferenceapis): name the host to price it
    c = BOOK.price("llama-3.3-70b-versatile", input_tokens=1000)
    assert c.status == "unpriced" and "inferenceapis/llama-3.3-70b-versatile" in c.reason
    named = BOOK.price("llama-3.3-70b-versatile", provider="inferenceapis", input_tokens=1000)
    assert named.provider == "inferenceapis"
    assert BOOK.price("inferenceapis/llama-3.3-70b-versatile", input_tokens=1000).provider == "inferenceapis"


def test_resale_overlay_maps_a_gateway_to_the_vendor_it_resells(tmp_path) -> None:
    # DeepInfra does not list this dated id; without the overlay it is unpriced, never Anthropic's price.
    model = "anthropic/claude-opus-4-20250514"
    assert BOOK.price(model, provider="deepinfra", **CALL).status == "unpriced"
    overlay = tmp_path / "resale.toml"
    overlay.write_text('[[resale]]\ngateway = "deepinfra"\nnote = "DeepInfra bills vendor list prices"\n')
    book = PriceBook.load([overlay], env=False)
    c = book.price(model, provider="deepinfra", **CALL)
    assert (c.provider, c.model) == ("anthropic", "claude-opus-4") and "resold:deepinfra" in c.flags
    # 3,000 x $15 + 6,000 x $1.50 + 1,000 x $18.75 + 1,000 x $75
    assert c.total == Decimal("0.14775")
    # a gateway reselling one vendor: the vendor is fixed
    overlay.write_text('[[resale]]\ngateway = "snowflake"\nvendor = "anthropic"\n')
    book = PriceBook.load([overlay], env=False)
    c = book.price("claude-opus-4-1", provider="snowflake", **CALL)
    assert c.provider in ("snowflake", "anthropic")
    assert c.provider == "snowflake" or "resold:snowflake" in c.flags


def test_resale_overlay_is_validated(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[resale]]\nvendor = "anthropic"\n')
    with pytest.raises(PricingError, match="gateway"):
        PriceBook.load([bad], env=False)


def test_first_party_set_is_the_six_model_makers() -> None:
    assert FIRST_PARTY == {"openai", "anthropic", "gemini", "xai", "deepseek", "mistral"}


@pytest.mark.parametrize("alias, resolves", [
    ("claude-sonnet-latest", "anthropic/claude-sonnet-5-5"), ("claude-opus-latest", "anthropic/claude-opus-5-5"),
    ("claude-haiku-latest", "anthropic/claude-haiku-5-5"), ("claude-fable-latest", "anthropic/claude-fable-5-1"),
    ("gpt-mini-latest", "openai/gpt-5.4-mini"), ("gpt-sol-latest", "openai/gpt-6.1-sol"),
    ("gpt-terra-latest", "openai/gpt-6.1-terra"), ("gpt-luna-latest", "openai/gpt-6-luna"),
    ("gpt-astra-latest", "openai/gpt-6-astra"), ("xai/grok-latest", "xai/grok-4.7"),
    ("deepseek/deepseek-flash-latest", "deepseek/deepseek-flash"),
    ("deepseek/deepseek-pro-latest", "deepseek/deepseek-v4-pro"),
])
def test_litellm_latest_aliases_resolve_to_the_curated_target(alias: str, resolves: str) -> None:
    # LiteLLM >= 1.110 writes these as alias_of entries; the importer keeps them as aliases of the target, and a
    # target we curate is priced from the curated entry.
    c = BOOK.price(alias, input_tokens=1_000)
    assert (f"{c.provider}/{c.model}", c.origin) == (resolves, "curated")
