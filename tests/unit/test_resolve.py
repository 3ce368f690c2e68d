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
