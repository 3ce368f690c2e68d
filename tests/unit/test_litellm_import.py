"""Tests for the LiteLLM importer (otel_costattr._pricing._litellm).

Most tests convert small hand-written LiteLLM-shaped entries. One group converts the real reference
snapshot (``$OTEL_COSTATTR_LITELLM_REFERENCE``; skipped when absent) and checks that the committed
``pricing/imported/litellm.json`` is exactly what the importer produces from it. The last group loads
that file with the pricing engine, where the engine modules exist, and prices calls end to end.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_costattr._pricing._litellm import (
    ImportReport,
    _per_million,
    convert_litellm,
    dumps,
    import_litellm_file,
)

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "pricing" / "imported" / "litellm.json"
_REF_NAME = "litellm-1.109.1-model_prices_and_context_window.json"
# CI checks out the repository with the team's shared/ folder beside it.
REFERENCE = Path(os.environ.get("OTEL_COSTATTR_LITELLM_REFERENCE", "")) if os.environ.get(
    "OTEL_COSTATTR_LITELLM_REFERENCE") else next(
    (p for p in (REPO.parent / "shared" / "reference" / _REF_NAME, Path("/work/shared/reference") / _REF_NAME)
     if p.is_file()), REPO.parent / "shared" / "reference" / _REF_NAME)
SOURCE = "litellm-9.9.9-test.json"
RATE = re.compile(r"^(0|[1-9]\d*)(\.\d*[1-9])?$")
# The token classes written out here on purpose, not imported: the test at the end holds the importer's
# CLASSES and the price book's TOKEN_CLASSES to this list, so a class dropped from either one fails.
CLASSES = (
    "input",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "output",
    "reasoning",
    "input_audio",
    "output_audio",
    "input_image",
    "output_image",
)


def convert(entries: dict) -> tuple[dict, ImportReport]:
    return convert_litellm(entries, source_name=SOURCE, source_sha256="ab" * 32, imported_at="2026-01-01")


def models(doc: dict, provider: str) -> dict[str, dict]:
    return {m["id"]: m for m in doc["providers"][provider]["model"]}


def period(doc: dict, provider: str, model_id: str) -> dict:
    (only,) = models(doc, provider)[model_id]["period"]
    return only


def note(doc: dict, provider: str, model_id: str) -> str:
    return models(doc, provider)[model_id]["note"]


def chat(provider: str = "openai", **prices) -> dict:
    return {"litellm_provider": provider, "mode": "chat", **prices}


# ---------------------------------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_token", "per_million"),
    [
        (1.25e-07, "0.125"),
        (3e-06, "3"),
        (1e-05, "10"),
        (1.5e-05, "15"),
        (2.5e-06, "2.5"),
        (6e-09, "0.006"),
        (1.3e-07, "0.13"),
        (0.0, "0"),
        (0, "0"),
        (2, "2000000"),
        # Not a "nice" number: the float's shortest repr is kept exactly, never rounded.
        (1.0000000000000001e-07, "0.10000000000000001"),
        (1.848e-06, "1.848"),
    ],
)
def test_money_is_exact_decimal_per_million(per_token, per_million):
    assert _per_million(per_token) == per_million
    doc, _ = convert({"m": chat(input_cost_per_token=per_token)})
    assert period(doc, "openai", "m")["input"] == per_million


@settings(max_examples=500)
@given(st.floats(min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False))
def test_money_conversion_round_trips_for_any_positive_float(value):
    text = _per_million(value)
    assert "e" not in text.lower() and RATE.match(text), text
    back = Decimal(text) / Decimal(1_000_000)
    assert back == Decimal(repr(value))
    assert float(back) == value


def test_per_call_fee_is_per_thousand_calls():
    entry = chat(
        input_cost_per_token=1e-06,
        search_context_cost_per_query={
            "search_context_size_low": 0.005,
            "search_context_size_medium": 0.014,
            "search_context_size_high": 0.02,
        },
    )
    doc, _ = convert({"m": entry})
    assert period(doc, "openai", "m")["per_1k_calls"] == {"web_search": "14"}
    assert "medium context size" in note(doc, "openai", "m")


# ---------------------------------------------------------------------------------------------------
# Providers and ids
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("litellm_provider", "key", "provider", "model_id", "names"),
    [
        ("openai", "gpt-4o", "openai", "gpt-4o", ["openai"]),
        ("openai", "openai/gpt-4o", "openai", "gpt-4o", ["openai"]),
        ("text-completion-openai", "gpt-3.5-turbo-instruct", "openai", "gpt-3.5-turbo-instruct", ["openai"]),
        ("anthropic", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5", ["anthropic"]),
        ("gemini", "gemini/gemini-2.5-pro", "gemini", "gemini-2.5-pro", ["gcp.gemini", "gemini", "gcp.gen_ai"]),
        ("azure", "azure/gpt-4o", "azure", "gpt-4o", ["azure.ai.openai", "azure"]),
        ("azure_ai", "azure_ai/deepseek-r1", "azure_ai", "deepseek-r1", ["azure_ai"]),
        ("xai", "xai/grok-4", "xai", "grok-4", ["x_ai", "xai"]),
        ("deepseek", "deepseek/deepseek-chat", "deepseek", "deepseek-chat", ["deepseek"]),
        ("mistral", "mistral/Mistral-Large-Latest", "mistral", "mistral-large-latest", ["mistral_ai", "mistral"]),
        (
            "vertex_ai-anthropic_models",
            "vertex_ai/claude-sonnet-4-5",
            "vertex_ai",
            "claude-sonnet-4-5",
            ["gcp.vertex_ai", "vertex_ai"],
        ),
        ("vertex_ai-language-models", "gemini-2.5-pro", "vertex_ai", "gemini-2.5-pro", ["gcp.vertex_ai", "vertex_ai"]),
        # A path segment that names an organisation carries meaning and stays.
        ("vertex_ai-llama_models", "vertex_ai/meta/llama-4-scout", "vertex_ai", "meta/llama-4-scout", None),
        ("bedrock_converse", "anthropic.claude-sonnet-4-6", "bedrock", "anthropic.claude-sonnet-4-6", None),
        ("bedrock", "bedrock/invoke/anthropic.claude-v2", "bedrock", "anthropic.claude-v2", ["aws.bedrock", "bedrock"]),
        ("together_ai", "together_ai/meta-llama/Llama-3-70b", "together_ai", "meta-llama/llama-3-70b", ["together_ai"]),
        ("amazon_nova", "amazon-nova/nova-pro-v1", "amazon_nova", "nova-pro-v1", ["amazon_nova"]),
    ],
)
def test_provider_mapping_and_prefix_stripping(litellm_provider, key, provider, model_id, names):
    doc, report = convert({key: chat(litellm_provider, input_cost_per_token=1e-06)})
    assert list(doc["providers"]) == [provider]
    assert list(models(doc, provider)) == [model_id]
    meta = doc["providers"][provider]["meta"]
    assert meta["provider"] == provider and meta["currency"] == "USD"
    assert meta["version"] == "litellm-9.9.9+" + "ab" * 6
    if names is not None:
        assert meta["provider_names"] == names
    assert dict(report.per_provider) == {provider: 1}


def test_model_entry_carries_source_note_and_open_ended_period():
    doc, _ = convert(
        {
            "with-source": chat(input_cost_per_token=1e-06, source="https://vendor.example/pricing"),
            "without-source": chat(input_cost_per_token=1e-06),
        }
    )
    found = models(doc, "openai")
    assert found["with-source"]["source"] == "https://vendor.example/pricing"
    assert found["without-source"]["source"] == "litellm:without-source"
    for entry in found.values():
        assert entry["aliases"] == []
        assert entry["note"].startswith("imported from LiteLLM 9.9.9 (sha256 abababababab), no price history")
        assert entry["period"][0]["effective_from"] == "1970-01-01"


def test_duplicate_id_keeps_the_first_and_notes_different_prices():
    doc, report = convert(
        {
            "deepseek-chat": chat("deepseek", input_cost_per_token=2.8e-07),
            "deepseek/deepseek-chat": chat("deepseek", input_cost_per_token=5.6e-07),
            "deepseek/DeepSeek-Chat": chat("deepseek", input_cost_per_token=2.8e-07),
        }
    )
    assert period(doc, "deepseek", "deepseek-chat")["input"] == "0.28"
    assert dict(report.skipped)["duplicate_id"] == 2
    text = note(doc, "deepseek", "deepseek-chat")
    assert "'deepseek/deepseek-chat' gives this id other prices" in text
    assert "DeepSeek-Chat" not in text  # same prices: nothing to say


# ---------------------------------------------------------------------------------------------------
# Token classes
# ---------------------------------------------------------------------------------------------------


def test_every_token_field_maps_to_its_class():
    entry = chat(
        input_cost_per_token=4e-06,
        output_cost_per_token=1.6e-05,
        output_cost_per_reasoning_token=2e-05,
        cache_read_input_token_cost=4e-07,
        cache_creation_input_token_cost=5e-06,
        cache_creation_input_token_cost_above_1hr=8e-06,
        input_cost_per_audio_token=3.2e-05,
        output_cost_per_audio_token=6.4e-05,
        input_cost_per_image_token=5e-06,
        output_cost_per_image_token=4e-05,
    )
    doc, report = convert({"m": entry})
    assert period(doc, "openai", "m") == {
        "effective_from": "1970-01-01",
        "input": "4",
        "output": "16",
        "reasoning": "20",
        "cache_read": "0.4",
        "cache_write": "5",
        "cache_write_1h": "8",
        "input_audio": "32",
        "output_audio": "64",
        "input_image": "5",
        "output_image": "40",
    }
    assert report.skipped_fields == ()


@pytest.mark.parametrize(
    ("fields", "expected", "noted"),
    [
        # DeepSeek's older name for the cache-hit rate.
        ({"input_cost_per_token_cache_hit": 2.8e-08}, {"cache_read": "0.028"}, False),
        (
            {"input_cost_per_token_cache_hit": 2.8e-08, "cache_read_input_token_cost": 2.8e-08},
            {"cache_read": "0.028"},
            False,
        ),
        (
            {"input_cost_per_token_cache_hit": 1e-08, "cache_read_input_token_cost": 2.8e-08},
            {"cache_read": "0.028"},
            True,
        ),
        # OpenAI's 12-hour cache write is our long-TTL write.
        ({"cache_creation_input_token_cost_above_12hr": 5e-06}, {"cache_write_1h": "5"}, False),
    ],
)
def test_alias_fields(fields, expected, noted):
    doc, report = convert({"m": chat(input_cost_per_token=2.8e-07, **fields)})
    got = period(doc, "openai", "m")
    assert {k: got[k] for k in expected} == expected
    assert ("differs from" in note(doc, "openai", "m")) is noted
    assert bool(report.skipped_fields) is noted


def test_unrepresentable_price_fields_are_reported():
    entry = chat(
        input_cost_per_token=1e-06,
        output_cost_per_image=0.04,
        input_cost_per_token_ultrafast=2e-06,
        google_maps_grounding_cost_per_query=0.025,
        provider_specific_entry={"fast": 2.0},
    )
    doc, report = convert({"m": entry})
    assert dict(report.skipped_fields) == {
        "google_maps_grounding_cost_per_query": 1,
        "input_cost_per_token_ultrafast": 1,
        "output_cost_per_image": 1,
        "provider_specific_entry.fast": 1,
    }
    assert "not imported: google_maps_grounding_cost_per_query, input_cost_per_token_ultrafast" in note(
        doc, "openai", "m"
    )


# ---------------------------------------------------------------------------------------------------
# Long context
# ---------------------------------------------------------------------------------------------------


def test_long_context_tier_reprices_every_class_with_base_fallback():
    entry = chat(
        "vertex_ai-anthropic_models",
        input_cost_per_token=3e-06,
        output_cost_per_token=1.5e-05,
        cache_read_input_token_cost=3e-07,
        cache_creation_input_token_cost=3.75e-06,
        input_cost_per_audio_token=1e-05,
        input_cost_per_token_above_200k_tokens=6e-06,
        output_cost_per_token_above_200k_tokens=2.25e-05,
        cache_read_input_token_cost_above_200k_tokens=6e-07,
    )
    doc, _ = convert({"vertex_ai/claude-x": entry})
    got = period(doc, "vertex_ai", "claude-x")
    assert got["long_context"] == [
        {
            "threshold": 200000,
            "comparator": ">",
            "input": "6",
            "output": "22.5",
            "cache_read": "0.6",
            "cache_write": "3.75",  # no _above_200k key: LiteLLM keeps the base rate
            "input_audio": "10",
        }
    ]
    assert "above 200000 tokens LiteLLM has no rate for cache_write, input_audio" in note(doc, "vertex_ai", "claude-x")


@pytest.mark.parametrize(("provider", "comparator"), [("xai", ">="), ("gemini", ">"), ("openai", ">")])
def test_long_context_comparator(provider, comparator):
    entry = chat(provider, input_cost_per_token=1e-06, input_cost_per_token_above_128k_tokens=2e-06)
    doc, _ = convert({"m": entry})
    (tier,) = period(doc, provider, "m")["long_context"]
    assert tier == {"threshold": 128000, "comparator": comparator, "input": "2"}


def test_long_context_tiers_are_sorted_and_need_the_input_key():
    entry = chat(
        input_cost_per_token=1e-06,
        output_cost_per_token=2e-06,
        input_cost_per_token_above_512k_tokens=4e-06,
        input_cost_per_token_above_128k_tokens=2e-06,
        output_cost_per_token_above_128k_tokens=3e-06,
        # LiteLLM finds tiers only through the input key, so this one is never used.
        output_cost_per_token_above_64k_tokens=9e-06,
    )
    doc, report = convert({"m": entry})
    tiers = period(doc, "openai", "m")["long_context"]
    assert [(t["threshold"], t["input"], t["output"]) for t in tiers] == [(128000, "2", "3"), (512000, "4", "2")]
    assert dict(report.skipped_fields) == {"output_cost_per_token_above_64k_tokens": 1}


def test_tiered_pricing_ranges_become_long_context_tiers():
    entry = {
        "litellm_provider": "dashscope",
        "tiered_pricing": [
            {
                "range": [0, 32000.0],
                "input_cost_per_token": 3e-07,
                "output_cost_per_token": 1.2e-06,
                "output_cost_per_reasoning_token": 3e-06,
            },
            {"range": [32000.0, 128000.0], "input_cost_per_token": 6e-07, "output_cost_per_token": 2.4e-06},
            {
                "range": [128000.0, 256000.0],
                "input_cost_per_token": 1.2e-06,
                "output_cost_per_token": 4.8e-06,
                "cache_read_input_token_cost": 2.4e-07,
            },
        ],
    }
    doc, _ = convert({"dashscope/qwen-x": entry})
    got = period(doc, "dashscope", "qwen-x")
    # Classes a range does not price fall back as in LiteLLM: reasoning -> output, cache -> input.
    assert {k: got[k] for k in ("input", "output", "reasoning", "cache_read")} == {
        "input": "0.3",
        "output": "1.2",
        "reasoning": "3",
        "cache_read": "0.3",
    }
    assert got["long_context"] == [
        {
            "threshold": 32000,
            "comparator": ">",
            "input": "0.6",
            "output": "2.4",
            "reasoning": "2.4",
            "cache_read": "0.6",
        },
        {
            "threshold": 128000,
            "comparator": ">",
            "input": "1.2",
            "output": "4.8",
            "reasoning": "4.8",
            "cache_read": "0.24",
        },
    ]


def test_tiered_pricing_with_a_gap_is_unmappable():
    entry = {
        "litellm_provider": "dashscope",
        "tiered_pricing": [
            {"range": [0, 32000], "input_cost_per_token": 3e-07},
            {"range": [64000, 128000], "input_cost_per_token": 6e-07},
        ],
    }
    doc, report = convert({"dashscope/qwen-x": entry})
    assert doc["providers"] == {}
    assert dict(report.skipped)["unmappable_field"] == 1
    assert report.skip_details == (("dashscope/qwen-x", "tiered_pricing ranges are not contiguous from 0"),)
    assert "skipped dashscope/qwen-x: tiered_pricing ranges are not contiguous" in str(report)


# ---------------------------------------------------------------------------------------------------
# Service tiers
# ---------------------------------------------------------------------------------------------------

GPT5 = chat(
    input_cost_per_token=1.25e-06,
    output_cost_per_token=1e-05,
    cache_read_input_token_cost=1.25e-07,
    input_cost_per_token_flex=6.25e-07,
    output_cost_per_token_flex=5e-06,
    cache_read_input_token_cost_flex=6.25e-08,
    input_cost_per_token_priority=2.5e-06,
    output_cost_per_token_priority=2e-05,
    cache_read_input_token_cost_priority=2.5e-07,
    input_cost_per_token_batches=6.25e-07,
    output_cost_per_token_batches=5e-06,
)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # One constant multiple of every standard rate: a multiplier (batch's missing cache_read
        # falls back to half, which is the same constant).
        (GPT5, {"batch": {"multiplier": "0.5"}, "flex": {"multiplier": "0.5"}, "priority": {"multiplier": "2"}}),
        # Batch rates that are not half (xAI bills 80%): explicit, with LiteLLM's half for the rest.
        (
            chat(
                input_cost_per_token=1.25e-06,
                output_cost_per_token=2.5e-06,
                input_cost_per_image_token=1.25e-06,
                input_cost_per_token_batches=1e-06,
                output_cost_per_token_batches=2e-06,
            ),
            {"batch": {"input": "1", "output": "2", "multiplier": "0.5"}},
        ),
        # Flex that discounts only some classes: the others fall back to the standard rate.
        (
            chat(
                input_cost_per_token=1.25e-06,
                output_cost_per_token=1e-05,
                cache_read_input_token_cost=1.25e-07,
                input_cost_per_token_flex=6.25e-07,
                output_cost_per_token_flex=5e-06,
            ),
            {"flex": {"input": "0.625", "output": "5", "multiplier": "1"}},
        ),
        # Every class explicit: no multiplier needed.
        (
            chat(
                input_cost_per_token=1.25e-06,
                output_cost_per_token=1e-05,
                input_cost_per_token_priority=2.25e-06,
                output_cost_per_token_priority=2e-05,
            ),
            {"priority": {"input": "2.25", "output": "20"}},
        ),
    ],
)
def test_service_tiers(entry, expected):
    doc, _ = convert({"m": entry})
    assert period(doc, "openai", "m")["service_tiers"] == expected


def test_service_tier_multiplier_holds_across_long_context():
    entry = chat(
        "gemini",
        input_cost_per_token=1.25e-06,
        output_cost_per_token=1e-05,
        input_cost_per_token_above_200k_tokens=2.5e-06,
        output_cost_per_token_above_200k_tokens=1.5e-05,
        input_cost_per_token_priority=2.25e-06,
        output_cost_per_token_priority=1.8e-05,
        input_cost_per_token_above_200k_tokens_priority=4.5e-06,
        output_cost_per_token_above_200k_tokens_priority=2.7e-05,
        input_cost_per_token_flex=6.25e-07,
        output_cost_per_token_flex=5e-06,
    )
    doc, _ = convert({"gemini/m": entry})
    got = period(doc, "gemini", "m")
    assert got["service_tiers"] == {"flex": {"input": "0.625", "output": "5"}, "priority": {"multiplier": "1.8"}}
    # LiteLLM's long-context flex falls back to the standard long-context rate, which no single set of
    # explicit rates can express at both lengths: the long-context tier carries its own service tiers.
    (tier,) = got["long_context"]
    assert tier["service_tiers"] == {"flex": {"multiplier": "1"}, "priority": {"multiplier": "1.8"}}


def test_long_context_service_tiers_only_when_needed():
    doc, _ = convert(
        {
            "m": chat(
                input_cost_per_token=1e-06,
                input_cost_per_token_above_200k_tokens=2e-06,
                input_cost_per_token_batches=5e-07,
            )
        }
    )
    got = period(doc, "openai", "m")
    assert got["service_tiers"] == {"batch": {"multiplier": "0.5"}}
    assert "service_tiers" not in got["long_context"][0]  # the multiplier holds at every length


def test_long_context_service_tier_rates_that_differ_only_in_some_classes():
    entry = chat(
        "xai",
        input_cost_per_token=1.25e-06,
        output_cost_per_token=2.5e-06,
        cache_read_input_token_cost=2e-07,
        input_cost_per_token_above_200k_tokens=2.5e-06,
        output_cost_per_token_above_200k_tokens=5e-06,
        cache_read_input_token_cost_above_200k_tokens=4e-07,
        input_cost_per_token_batches=1e-06,
        output_cost_per_token_batches=2e-06,
        cache_read_input_token_cost_batches=1.6e-07,
        input_cost_per_token_above_200k_tokens_batches=2e-06,
    )
    doc, _ = convert({"xai/m": entry})
    got = period(doc, "xai", "m")
    # 80% of standard at the base length (the classes LiteLLM names)...
    assert got["service_tiers"] == {"batch": {"input": "1", "cache_read": "0.16", "output": "2"}}
    # ...but above 200k only input has a batch key, and LiteLLM halves the rest.
    assert got["long_context"][0]["service_tiers"] == {"batch": {"input": "2", "multiplier": "0.5"}}


# ---------------------------------------------------------------------------------------------------
# Off-peak windows
# ---------------------------------------------------------------------------------------------------

DEEPSEEK_WINDOWS = [
    {"hours_utc": ["00:00-01:00", "04:00-06:00", "10:00-00:00"], "weekdays": [1, 2, 3, 4, 5]},
    {"hours_utc": "00:00-00:00", "weekdays": [6, 7]},
]


def deepseek(off_peak: dict) -> dict:
    return chat(
        "deepseek",
        input_cost_per_token=3e-07,
        output_cost_per_token=1.2e-06,
        cache_read_input_token_cost=6e-09,
        cache_creation_input_token_cost=0.0,
        off_peak_pricing=off_peak,
    )


HALF_RATES = {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07, "cache_read_input_token_cost": 3e-09}
PEAK_THEN_OFF_PEAK = [
    {"name": "peak", "days": ["mon", "tue", "wed", "thu", "fri"], "hours_utc": [[1, 4], [6, 10]], "multiplier": "1"},
    {"name": "off_peak", "multiplier": "0.5"},
]


@pytest.mark.parametrize(
    ("off_peak", "expected"),
    [
        # The DeepSeek schedule: peak 01-04 and 06-10 UTC on weekdays, everything else half price.
        ({**HALF_RATES, "windows": DEEPSEEK_WINDOWS}, PEAK_THEN_OFF_PEAK),
        # Read on the Beijing calendar the weekday boundary moves to 16:00 UTC, but both sides of it
        # are off-peak, so the windows are the same.
        ({**HALF_RATES, "windows": DEEPSEEK_WINDOWS, "weekday_timezone": "Asia/Shanghai"}, PEAK_THEN_OFF_PEAK),
        # Flat every-day hours (wrapping past midnight): listing the off-peak hours is shorter.
        (
            {**HALF_RATES, "hours_utc": "16:00-01:00"},
            [
                {"name": "peak", "hours_utc": [[1, 16]], "multiplier": "1"},
                {"name": "off_peak", "multiplier": "0.5"},
            ],
        ),
        (
            {**HALF_RATES, "windows": [{"hours_utc": "22:00-02:00", "weekdays": ["sat"]}]},
            [
                {"name": "off_peak", "days": ["sat"], "hours_utc": [[0, 2], [22, 24]], "multiplier": "0.5"},
                {"name": "peak", "multiplier": "1"},
            ],
        ),
        # Off-peak rates that are not one multiple of the standard rates stay explicit.
        (
            {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 3e-07, "windows": DEEPSEEK_WINDOWS},
            [PEAK_THEN_OFF_PEAK[0], {"name": "off_peak", "input": "0.15", "output": "0.3", "multiplier": "1"}],
        ),
    ],
)
def test_off_peak_windows(off_peak, expected):
    doc, _ = convert({"deepseek-x": deepseek(off_peak)})
    assert period(doc, "deepseek", "deepseek-x")["time_windows"] == expected


@pytest.mark.parametrize(
    "off_peak",
    [
        {**HALF_RATES, "hours_utc": "16:30-00:30"},  # minute precision
        # New York's midnight is 05:00 UTC in winter and 04:00 UTC in summer.
        {
            **HALF_RATES,
            "windows": [{"hours_utc": "00:00-00:00", "weekdays": [6]}],
            "weekday_timezone": "America/New_York",
        },
        {**HALF_RATES, "windows": [{"hours_utc": "late", "weekdays": [6]}]},
    ],
)
def test_off_peak_that_cannot_be_represented_skips_the_entry(off_peak):
    doc, report = convert({"deepseek-x": deepseek(off_peak)})
    assert doc["providers"] == {}
    assert dict(report.skipped)["unmappable_field"] == 1


# ---------------------------------------------------------------------------------------------------
# Regions and geo copies
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("litellm_provider", "fields", "expected"),
    [
        (
            "openai",
            {"regional_processing_uplift_multiplier_eu": 1.1, "regional_processing_uplift_multiplier_us": 1.1},
            {"eu": "1.1", "us": "1.1"},
        ),
        ("vertex_ai-anthropic_models", {"regional_endpoint_uplift_multiplier": 1.1}, {"regional": "1.1"}),
        ("anthropic", {"provider_specific_entry": {"us": 1.1, "fast": 2.0}}, {"us": "1.1"}),
    ],
)
def test_region_multipliers(litellm_provider, fields, expected):
    doc, _ = convert({"m": chat(litellm_provider, input_cost_per_token=1e-06, **fields)})
    (provider,) = doc["providers"]
    assert period(doc, provider, "m")["region_multipliers"] == expected


def azure(input_rate: float, output_rate: float, **extra) -> dict:
    return chat("azure", input_cost_per_token=input_rate, output_cost_per_token=output_rate, **extra)


def test_azure_data_zones_fold_into_region_multipliers_when_exact():
    doc, report = convert(
        {
            "azure/gpt-5.1": azure(1.25e-06, 1e-05, input_cost_per_token_batches=6.25e-07),
            "azure/eu/gpt-5.1": azure(1.375e-06, 1.1e-05, input_cost_per_token_batches=6.875e-07),
            "azure/global/gpt-5.1": azure(1.25e-06, 1e-05, input_cost_per_token_batches=6.25e-07),
            # Rounded by the vendor: not an exact multiple, so it keeps its own id.
            "azure/us/gpt-5.1": azure(1.375e-06, 1.11e-05, input_cost_per_token_batches=6.875e-07),
            # No base model to fold into.
            "azure/eu/gpt-9": azure(1e-06, 2e-06),
        }
    )
    found = models(doc, "azure")
    assert sorted(found) == ["eu/gpt-9", "gpt-5.1", "us/gpt-5.1"]
    assert period(doc, "azure", "gpt-5.1")["region_multipliers"] == {"eu": "1.1", "global": "1"}
    assert "azure/eu/gpt-5.1 (region eu x1.1)" in found["gpt-5.1"]["note"]
    assert "not folded into gpt-5.1" in found["us/gpt-5.1"]["note"]
    assert (report.folded_region, report.unfolded_copies, report.converted) == (2, 2, 3)


def test_bedrock_regional_keys_fold_by_aws_region():
    doc, report = convert(
        {
            "meta.llama3-70b-instruct-v1:0": chat(
                "bedrock", input_cost_per_token=2.65e-06, output_cost_per_token=3.5e-06
            ),
            "bedrock/eu-west-2/meta.llama3-70b-instruct-v1:0": chat(
                "bedrock", input_cost_per_token=3.18e-06, output_cost_per_token=4.2e-06
            ),
        }
    )
    assert list(models(doc, "bedrock")) == ["meta.llama3-70b-instruct-v1:0"]
    assert period(doc, "bedrock", "meta.llama3-70b-instruct-v1:0")["region_multipliers"] == {"eu-west-2": "1.2"}
    assert report.folded_region == 1


def claude(scale: str, **extra) -> dict:
    s = Decimal(scale)
    return chat(
        "bedrock_converse",
        input_cost_per_token=float(Decimal("3e-06") * s),
        output_cost_per_token=float(Decimal("1.5e-05") * s),
        cache_read_input_token_cost=float(Decimal("3e-07") * s),
        **extra,
    )


def test_bedrock_geo_copies_fold_into_geo_multipliers():
    web = {"search_context_cost_per_query": {"search_context_size_medium": 0.01}}
    doc, report = convert(
        {
            "anthropic.claude-a": claude("1", **web),
            "us.anthropic.claude-a": claude("1.1"),  # LiteLLM omits the search fee on copies: still folds
            "global.anthropic.claude-a": claude("1", **web),
            "jp.anthropic.claude-a": claude("1.1"),
            "in.anthropic.claude-a": claude("1.1"),  # a prefix the resolver does not strip: kept
            "anthropic.claude-b": claude("1"),
            "us.anthropic.claude-b": claude("1"),
            "global.anthropic.claude-b": claude("1"),
            "eu.anthropic.claude-b": claude("1.3", input_cost_per_token_batches=1e-06),  # other structure: kept
            "anthropic.claude-c": claude("1"),
        }
    )
    meta = doc["providers"]["bedrock"]["meta"]
    # "global" and "jp" are the same for every folded model, "us" is not: only those are provider-wide.
    assert meta["geo_multipliers"] == {"global": "1", "jp": "1.1"}
    assert period(doc, "bedrock", "anthropic.claude-a")["geo_multipliers"] == {"global": "1", "jp": "1.1", "us": "1.1"}
    assert period(doc, "bedrock", "anthropic.claude-b")["geo_multipliers"] == {"global": "1", "jp": "1.1", "us": "1"}
    assert "geo_multipliers" not in period(doc, "bedrock", "anthropic.claude-c")  # inherits the provider's
    assert sorted(models(doc, "bedrock")) == [
        "anthropic.claude-a",
        "anthropic.claude-b",
        "anthropic.claude-c",
        "eu.anthropic.claude-b",
        "in.anthropic.claude-a",
    ]
    assert (report.folded_geo, report.unfolded_copies) == (5, 2)
    assert "the resolver does not strip the in. prefix" in note(doc, "bedrock", "in.anthropic.claude-a")
    assert "not folded into anthropic.claude-b" in note(doc, "bedrock", "eu.anthropic.claude-b")


def test_inexact_geo_ratio_is_not_folded():
    # 3e-06 / 3.3e-06 = 0.90909...: no exact decimal multiplier exists.
    doc, report = convert({"moonshotai.kimi-k3": claude("1.1"), "global.moonshotai.kimi-k3": claude("1")})
    assert sorted(models(doc, "bedrock")) == ["global.moonshotai.kimi-k3", "moonshotai.kimi-k3"]
    assert report.folded_geo == 0


# ---------------------------------------------------------------------------------------------------
# Skips and malformed input
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"litellm_provider": "openai", "mode": "chat"}, "no_token_prices"),
        ({"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04}, "non_token_mode"),
        (
            {"litellm_provider": "runwayml", "mode": "video_generation", "output_cost_per_second": 0.05},
            "non_token_mode",
        ),
        (
            {
                "litellm_provider": "openai",
                "mode": "audio_transcription",
                "input_cost_per_second": 0.0001,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
            },
            "non_token_mode",
        ),
        ({"mode": "chat", "input_cost_per_token": 1e-06}, "not_a_model"),
    ],
)
def test_skip_reasons(entry, reason):
    doc, report = convert({"m": entry})
    assert doc["providers"] == {}
    assert {r: n for r, n in report.skipped if n} == {reason: 1}


def test_free_model_is_priced_at_zero_not_skipped():
    doc, _ = convert({"ollama/llama3": chat("ollama", input_cost_per_token=0.0, output_cost_per_token=0.0)})
    assert period(doc, "ollama", "llama3")["input"] == "0"


def test_non_model_keys_are_ignored():
    _doc, report = convert(
        {
            "sample_spec": {"litellm_provider": "one of ...", "input_cost_per_token": 0.0},
            "fallback_generalizations": {"rules": []},
            "m": chat(input_cost_per_token=1e-06),
        }
    )
    assert report.ignored_keys == ("fallback_generalizations", "sample_spec")
    assert report.entries_read == 1 and report.converted == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"gpt-x": "cheap"}, "'gpt-x': entry must be a JSON object"),
        ({"gpt-x": chat(input_cost_per_token="3e-6")}, "'gpt-x' field 'input_cost_per_token': price must be a number"),
        ({"gpt-x": chat(input_cost_per_token=True)}, "price must be a number"),
        (
            {"gpt-x": chat(output_cost_per_token=-1e-06)},
            "'gpt-x' field 'output_cost_per_token': price must not be negative",
        ),
        ({"gpt-x": chat(input_cost_per_token=float("nan"))}, "price must be finite"),
        ({"gpt-x": chat(input_cost_per_token=1e-06, output_cost_per_image=-0.04)}, "'output_cost_per_image'"),
        (
            {
                "gpt-x": chat(
                    input_cost_per_token=1e-06, search_context_cost_per_query={"search_context_size_medium": -1}
                )
            },
            "search_context_cost_per_query.search_context_size_medium",
        ),
        (
            {"gpt-x": chat(input_cost_per_token=1e-06, off_peak_pricing={"input_cost_per_token": "half"})},
            "off_peak_pricing.input_cost_per_token",
        ),
        (
            {"gpt-x": chat(input_cost_per_token=1e-06, regional_endpoint_uplift_multiplier=0)},
            "multiplier must be positive",
        ),
        ({"gpt-x": {"litellm_provider": 7, "input_cost_per_token": 1e-06}}, "'gpt-x': litellm_provider"),
    ],
)
def test_malformed_input_raises_naming_the_key(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        convert(data)


# ---------------------------------------------------------------------------------------------------
# Report and determinism
# ---------------------------------------------------------------------------------------------------

MIXED = {
    "sample_spec": {"litellm_provider": "x"},
    "gpt-5": GPT5,
    "azure/gpt-5.1": azure(1.25e-06, 1e-05),
    "azure/eu/gpt-5.1": azure(1.375e-06, 1.1e-05),
    "anthropic.claude-a": claude("1"),
    "us.anthropic.claude-a": claude("1.1"),
    "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
    "openai/gpt-5": GPT5,
    "m": chat(input_cost_per_token=1e-06, output_cost_per_image=0.04, output_cost_per_second=0.1),
}


def test_report_counts_add_up_and_read_well():
    doc, report = convert(MIXED)
    assert report.entries_read == 8
    assert report.entries_read == report.converted + report.folded_geo + report.folded_region + report.skipped_total
    assert (report.converted, report.folded_geo, report.folded_region) == (4, 1, 1)
    assert {r: n for r, n in report.skipped if n} == {"duplicate_id": 1, "non_token_mode": 1}
    assert dict(report.per_provider) == {"azure": 1, "bedrock": 1, "openai": 2}
    assert dict(report.skipped_fields) == {"output_cost_per_image": 1, "output_cost_per_second": 1}
    text = str(report)
    for expected in (
        "entries read:   8",
        "models written: 4 across 3 providers",
        "duplicate_id 1",
        "output_cost_per_image (1)",
    ):
        assert expected in text
    counts = doc["meta"]["counts"]
    assert counts["converted"] == 4 and counts["skipped"]["non_token_mode"] == 1
    assert report.as_dict()["per_provider"] == {"azure": 1, "bedrock": 1, "openai": 2}
    with pytest.raises(AttributeError):
        report.converted = 0  # frozen


def test_conversion_is_deterministic_and_sorted():
    first, _ = convert(MIXED)
    again, _ = convert(copy.deepcopy(MIXED))
    reordered, _ = convert(dict(reversed([(k, v) for k, v in MIXED.items() if k != "openai/gpt-5"])))
    assert dumps(first) == dumps(again)
    # Input order only decides which duplicate wins; without duplicates the output ignores it.
    assert first["providers"] == reordered["providers"]
    assert list(first["providers"]) == sorted(first["providers"])
    for provider in first["providers"].values():
        ids = [m["id"] for m in provider["model"]]
        assert ids == sorted(ids)


def test_meta_records_provenance():
    doc, _ = convert_litellm({}, source_name="prices.json", source_sha256=None, imported_at=None)
    assert doc["meta"]["tool"] == "otel-costattr pricing import-litellm"
    assert doc["meta"]["source"] == "prices.json"
    assert doc["meta"]["litellm_version"] is None and doc["meta"]["converted_at"] is None
    doc, _ = convert({"m": chat(input_cost_per_token=1e-06)})
    assert doc["meta"]["source_sha256"] == "ab" * 32
    assert doc["meta"]["litellm_version"] == "9.9.9" and doc["meta"]["converted_at"] == "2026-01-01"


def test_import_litellm_file_writes_the_document(tmp_path):
    source = tmp_path / "litellm-1.2.3-prices.json"
    source.write_text(json.dumps(MIXED))
    out = tmp_path / "nested" / "litellm.json"
    report = import_litellm_file(source, out, imported_at="2026-11-22")
    written = json.loads(out.read_text())
    assert written["meta"]["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert written["meta"]["converted_at"] == "2026-11-22"
    assert report.converted == 4 and report.source == source.name
    assert [p.name for p in out.parent.iterdir()] == ["litellm.json"]  # no temporary file left behind


def test_import_litellm_file_dates_from_source_date_epoch(tmp_path, monkeypatch):
    source = tmp_path / "prices.json"
    source.write_text(json.dumps({"m": chat(input_cost_per_token=1e-06)}))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795305600")  # 2026-11-22T00:00:00Z
    import_litellm_file(source, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text())["meta"]["converted_at"] == "2026-11-22"


def test_import_litellm_file_rejects_non_json(tmp_path):
    source = tmp_path / "prices.json"
    source.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON file"):
        import_litellm_file(source, tmp_path / "out.json")


# ---------------------------------------------------------------------------------------------------
# The reference snapshot and the committed file
# ---------------------------------------------------------------------------------------------------

REGENERATE = (
    "regenerate it with: SOURCE_DATE_EPOCH=1795305600 otel-costattr pricing import-litellm "
    "<reference snapshot> --out pricing/imported/litellm.json"
)
needs_reference = pytest.mark.skipif(not REFERENCE.is_file(), reason=f"reference snapshot not found at {REFERENCE}")


@pytest.fixture(scope="module")
def reference():
    raw = REFERENCE.read_bytes()
    return convert_litellm(
        json.loads(raw),
        source_name=REFERENCE.name,
        source_sha256=hashlib.sha256(raw).hexdigest(),
        imported_at="2026-11-22",  # the committed file's date, fixed so that it is reproducible
    )


@needs_reference
def test_reference_known_entries(reference):
    doc, _ = reference
    gpt5 = period(doc, "openai", "gpt-5")
    assert (gpt5["input"], gpt5["cache_read"], gpt5["output"]) == ("1.25", "0.125", "10")
    flex = gpt5["service_tiers"]["flex"]
    assert flex.get("input") == "0.625" or Decimal(gpt5["input"]) * Decimal(flex["multiplier"]) == Decimal("0.625")
    sonnet = period(doc, "anthropic", "claude-sonnet-4-5")
    assert (sonnet["input"], sonnet["cache_write"], sonnet["cache_write_1h"], sonnet["output"]) == (
        "3",
        "3.75",
        "6",
        "15",
    )
    flash = period(doc, "deepseek", "deepseek-v4-flash")
    assert flash["time_windows"] == PEAK_THEN_OFF_PEAK
    pro = period(doc, "gemini", "gemini-2.5-pro")
    (tier,) = pro["long_context"]
    assert {k: tier[k] for k in ("threshold", "comparator", "input", "cache_read", "output")} == {
        "threshold": 200000,
        "comparator": ">",
        "input": "2.5",
        "cache_read": "0.25",
        "output": "15",
    }
    assert pro["service_tiers"]["priority"] == tier["service_tiers"]["priority"] == {"multiplier": "1.8"}
    assert period(doc, "xai", "grok-4.3")["long_context"][0]["comparator"] == ">="
    assert period(doc, "azure", "gpt-5.1")["region_multipliers"] == {"eu": "1.1", "global": "1", "us": "1.1"}
    bedrock = period(doc, "bedrock", "anthropic.claude-sonnet-4-6")
    assert bedrock["geo_multipliers"] == {
        "apac": "1.1",
        "au": "1.1",
        "eu": "1.1",
        "global": "1",
        "jp": "1.1",
        "us": "1.1",
        "us-gov": "1.2",
    }
    assert "us.anthropic.claude-sonnet-4-6" not in models(doc, "bedrock")
    assert period(doc, "openai", "gpt-5.4")["region_multipliers"] == {"eu": "1.1", "us": "1.1"}


@needs_reference
def test_reference_report(reference):
    doc, report = reference
    assert report.entries_read == 4551
    assert report.ignored_keys == ("fallback_generalizations", "sample_spec")
    assert report.entries_read == (report.converted + report.folded_geo + report.folded_region + report.aliases
                                   + report.skipped_total)
    assert doc["meta"]["counts"]["converted"] == report.converted == sum(n for _, n in report.per_provider)


@needs_reference
def test_reference_output_is_well_formed(reference):
    """Structural rules of pricing/README.md that the engine enforces at load."""
    doc, _ = reference
    for provider_id, provider in doc["providers"].items():
        assert provider["meta"]["provider"] == provider_id
        ids = [m["id"] for m in provider["model"]]
        assert len(ids) == len(set(ids)) and all(i == i.lower() for i in ids)
        for model in provider["model"]:
            (p,) = model["period"]
            priced = [c for c in CLASSES if c in p]
            assert "input" in priced or "output" in priced, model["id"]
            assert all(RATE.match(p[c]) for c in priced), model["id"]
            for tier in p.get("long_context", []):
                assert [c for c in CLASSES if c in tier] == priced, model["id"]  # re-prices every class
                assert tier["comparator"] in (">", ">=")
            for tier in p.get("service_tiers", {}).values():
                explicit = [c for c in CLASSES if c in tier]
                assert set(explicit) <= set(priced)
                assert "multiplier" in tier or explicit == priced, model["id"]


def test_committed_file_equals_a_fresh_conversion(reference):
    """The shipped layer is exactly what the converter makes of the LiteLLM release it names: the installed
    litellm package (the ``bench`` extra) when that is the release, else the 1.109.1 reference snapshot."""
    from otel_costattr._pricing._litellm import convert_file, installed_litellm

    assert COMMITTED.is_file(), REGENERATE
    committed = COMMITTED.read_text(encoding="utf-8")
    meta = json.loads(committed)["meta"]
    try:
        path, version = installed_litellm()
    except ValueError:
        path = version = None
    if version == meta["litellm_version"]:
        doc, _ = convert_file(path, litellm_version=version, imported_at=meta["converted_at"])
    elif meta["litellm_version"] == "1.109.1" and REFERENCE.is_file():
        doc, _ = reference
    else:
        pytest.skip(f"the shipped layer comes from LiteLLM {meta['litellm_version']}; install litellm=="
                    f"{meta['litellm_version']} (the bench extra) to check it")
    assert meta["source_sha256"] == doc["meta"]["source_sha256"]
    assert committed == dumps(doc), ("pricing/imported/litellm.json is stale; regenerate it with: "
                                     "otel-costattr pricing update --from-installed litellm")
    assert len(committed.encode()) < 3_000_000


# ---------------------------------------------------------------------------------------------------
# Agreement with the pricing engine (runs where the engine modules exist)
# ---------------------------------------------------------------------------------------------------


def test_ids_follow_the_loader_and_keep_the_original_spelling_as_alias():
    doc, report = convert(
        {
            "@cf/meta/llama-3.2-1b-instruct": chat("cloudflare", input_cost_per_token=2.7e-08),
            "openai/gpt 4o": chat(input_cost_per_token=1e-06),
        }
    )
    (model,) = doc["providers"]["cloudflare"]["model"]
    assert (model["id"], model["aliases"]) == ("cf/meta/llama-3.2-1b-instruct", ["@cf/meta/llama-3.2-1b-instruct"])
    assert dict(report.skipped)["invalid_id"] == 1
    assert report.skip_details == (("openai/gpt 4o", "id 'gpt 4o' has characters outside [a-z0-9._:/@+-]"),)


def test_copies_with_other_service_tiers_are_not_folded():
    # LiteLLM would bill the base's batch at half price too, but the engine prices a tier only where
    # the period lists it, so folding would leave batch calls to the copy unpriced.
    doc, report = convert(
        {
            "azure/o1": azure(1.5e-05, 6e-05),
            "azure/eu/o1": azure(1.65e-05, 6.6e-05, input_cost_per_token_batches=8.25e-06),
        }
    )
    assert sorted(models(doc, "azure")) == ["eu/o1", "o1"]
    assert report.folded_region == 0


def test_mirrored_engine_constants_agree():
    resolve = pytest.importorskip("otel_costattr._pricing._resolve")
    pricebook = pytest.importorskip("otel_costattr._pricing._schema")
    from otel_costattr._pricing import _litellm as importer

    assert set(resolve.GEO_PREFIXES) == importer._FOLDABLE_GEOS
    assert pricebook._ID_RE.pattern == importer._ID_PATTERN.pattern
    assert set(pricebook.TOKEN_CLASSES) == set(CLASSES) == set(importer.CLASSES)


@needs_reference
def test_committed_file_prices_what_litellm_charges():
    """The engine loads the whole committed layer and prices calls as LiteLLM 1.109.1 would."""
    pricing = pytest.importorskip("otel_costattr._pricing._book")
    book = pricing.PriceBook.load([COMMITTED], builtin=False, imported=False, env=False)

    def cost(model, provider, **usage):
        result = book.price(model, provider=provider, at=usage.pop("at", "2026-11-23T12:00:00Z"), **usage)
        assert result.status == "priced", result.reason
        return result.total

    million = 1_000_000
    assert cost("gpt-5", "openai", input_tokens=million, service_tier="flex") == Decimal("0.625")
    # Above 272k LiteLLM has no priority key for gpt-5.4 and bills the standard long-context rate.
    assert cost("gpt-5.4", "openai", input_tokens=300_000, service_tier="priority") == Decimal("1.5")
    assert cost("gpt-5.4", "openai", input_tokens=100_000, service_tier="priority") == Decimal("0.5")
    assert cost("gemini-2.5-pro", "gcp.gemini", input_tokens=250_000, service_tier="priority") == Decimal("1.125")
    assert cost("claude-sonnet-4-5", "anthropic", input_tokens=million, cache_write_1h_tokens=million) == 6
    # DeepSeek: Monday 02:00 UTC is peak, Saturday noon is off-peak (half price).
    assert cost("deepseek-v4-flash", "deepseek", input_tokens=million, at="2026-11-23T02:00:00Z") == Decimal("0.3")
    assert cost("deepseek-v4-flash", "deepseek", input_tokens=million, at="2026-11-28T12:00:00Z") == Decimal("0.15")
    # Folded copies: a Bedrock geo prefix and an Azure data zone.
    assert cost("us.anthropic.claude-sonnet-4-6", "aws.bedrock", input_tokens=million) == Decimal("3.3")
    assert cost("gpt-5.1", "azure", input_tokens=million, region="eu") == Decimal("1.375")
    assert cost("@cf/meta/llama-3.2-1b-instruct", "cloudflare", input_tokens=million) == Decimal("0.027")
