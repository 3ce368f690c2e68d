"""Deterministic model-name resolution (DESIGN D8): no fuzzy or prefix matching."""

from __future__ import annotations

import pytest

from otel_costattr._pricing._resolve import candidates


def names(model: str) -> list[tuple[str, str, str | None]]:
    return [(c.name, c.step, c.geo) for c in candidates(model)]


def test_exact_first_then_prefix_then_suffixes() -> None:
    assert names("openai/gpt-4o-2024-08-06") == [
        ("openai/gpt-4o-2024-08-06", "exact", None),
        ("gpt-4o-2024-08-06", "prefix", None),
        ("gpt-4o", "suffix", None),
    ]


def test_bedrock_geo_and_version() -> None:
    got = names("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert got[:2] == [("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "exact", None),
                       ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "prefix", None)]
    assert ("anthropic.claude-sonnet-4-5-20250929", "geo", "us") in got
    assert got[-1] == ("anthropic.claude-sonnet-4-5", "geo", "us")
    assert candidates("bedrock/x")[1].provider_hint == "bedrock"


def test_vertex_at_date() -> None:
    assert ("claude-sonnet-4-5", "suffix", None) in names("claude-sonnet-4-5@20250929")


@pytest.mark.parametrize("model", ["gpt-5.7", "claude-v2", "titan-embed-text-v2", "mistral-large-2411",
                                   "gpt-4o-mini-tts", "o3-pro"])
def test_no_fuzzy_stripping(model: str) -> None:
    # Only the exact name is tried: nothing that looks like a family sibling is invented.
    assert names(model) == [(model, "exact", None)]


def test_unknown_routing_prefix_is_not_stripped() -> None:
    assert names("myorg/gpt-4o") == [("myorg/gpt-4o", "exact", None)]


def test_fine_tune_ids_with_org_and_suffix_resolve_to_the_base_fine_tune() -> None:
    got = names("ft:gpt-4o-mini-2024-07-18:initech::review-v2")
    assert got[0] == ("ft:gpt-4o-mini-2024-07-18:initech::review-v2", "exact", None)
    assert ("ft:gpt-4o-mini-2024-07-18", "finetune", None) in got
    # never the base model's own (non fine-tune) rate
    assert all(not n.startswith("gpt-4o-mini") for n, _, _ in got)


def test_vendor_of_names() -> None:
    from otel_costattr._pricing._resolve import vendor_of

    ns = frozenset({"anthropic", "amazon"})
    assert vendor_of("claude-4-opus") == "anthropic"
    assert vendor_of("gpt-4o") == vendor_of("o1-mini") == vendor_of("ft:gpt-4o-2024-11-20:acme::x") == "openai"
    assert vendor_of("gemini-1.5-pro") == "gemini" and vendor_of("grok-4") == "xai"
    assert vendor_of("deepseek-r1") == "deepseek" and vendor_of("codestral-2508") == "mistral"
    assert vendor_of("us.anthropic.claude-3-haiku-20240307-v1:0", ns) == "bedrock"
    assert vendor_of("amazon.nova-pro-v1:0", ns) == "bedrock"
    assert vendor_of("claude-3-opus@20240229") == "vertex_ai"
    # names no vendor claims: decided by the tables, never guessed
    assert vendor_of("llama-3.3-70b") is None and vendor_of("omni-router") is None and vendor_of("o") is None
