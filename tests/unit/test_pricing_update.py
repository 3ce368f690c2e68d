"""``otel-costattr pricing update`` (issue 20): refresh the imported layer, record the LiteLLM version, read
``alias_of``, print what changed, list curated entries LiteLLM prices differently and never overwrite them.

The fixture is two small LiteLLM releases written by hand; every line of the expected diff is worked out below.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from otel_costattr import PriceBook
from otel_costattr._cli import main
from otel_costattr._pricing._litellm import diff_imported, installed_litellm
from otel_costattr._pricing._book import _builtin_dir


def chat(provider: str, inp: float, out: float, **extra: object) -> dict[str, object]:
    return {"litellm_provider": provider, "mode": "chat", "input_cost_per_token": inp, "output_cost_per_token": out,
            **extra}


V1 = {
    "sample_spec": {"input_cost_per_token": 0},
    "gpt-9": chat("openai", 2e-06, 8e-06, max_input_tokens=400000, max_output_tokens=64000),
    "gpt-9-mini": chat("openai", 4e-07, 1.6e-06),
    "claude-opus-4-7": chat("anthropic", 5e-06, 2.5e-05, cache_read_input_token_cost=5e-07,
                            cache_creation_input_token_cost=6.25e-06),
    "mistral/mistral-large-4": chat("mistral", 7e-07, 2.1e-06, cache_read_input_token_cost=7e-08),
}
V2 = {
    "sample_spec": {"input_cost_per_token": 0},
    # gpt-9: input cut from $2 to $1.50 per 1M, output unchanged
    "gpt-9": chat("openai", 1.5e-06, 8e-06, max_input_tokens=400000, max_output_tokens=64000),
    # gpt-9-mini removed; gpt-9-nano new
    "gpt-9-nano": chat("openai", 1e-07, 4e-07),
    # LiteLLM now prices Opus 4.7 output at $30 (curated says $25): listed for review, curated kept
    "claude-opus-4-7": chat("anthropic", 5e-06, 3e-05, cache_read_input_token_cost=5e-07,
                            cache_creation_input_token_cost=6.25e-06),
    "mistral/mistral-large-4": chat("mistral", 7e-07, 2.1e-06, cache_read_input_token_cost=7e-08),
    # a moving name, as LiteLLM >= 1.110 writes it
    "gpt-latest": {"alias_of": "gpt-9"},
    "gpt-gone-latest": {"alias_of": "gpt-does-not-exist"},
}


@pytest.fixture()
def releases(tmp_path: Path) -> tuple[Path, Path, Path]:
    one = tmp_path / "litellm-1.200.0-model_prices_and_context_window.json"
    two = tmp_path / "litellm-1.201.0-model_prices_and_context_window.json"
    one.write_text(json.dumps(V1))
    two.write_text(json.dumps(V2))
    return one, two, tmp_path / "imported.json"


def _curated_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(_builtin_dir().glob("*.toml")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_update_on_two_releases_prints_a_correct_diff(releases, capsys) -> None:
    one, two, out = releases
    curated_before = _curated_digest()
    assert main(["pricing", "update", str(one), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "LiteLLM 1.200.0 import" in first
    assert "imported layer: LiteLLM ? -> 1.200.0: 4 new, 0 removed, 0 changed" in first
    doc1 = json.loads(out.read_text())
    assert doc1["meta"]["litellm_version"] == "1.200.0"

    assert main(["pricing", "update", str(two), "--out", str(out)]) == 0
    second = capsys.readouterr().out
    # gpt-9-nano new, gpt-9-mini removed, gpt-9 input 2 -> 1.5, Opus 4.7 output 25 -> 30, gpt-9 gains an alias
    assert "imported layer: LiteLLM 1.200.0 -> 1.201.0: 1 new, 1 removed, 2 changed" in second
    assert "  new: openai/gpt-9-nano" in second
    assert "  removed: openai/gpt-9-mini" in second
    assert "  changed anthropic/claude-opus-4-7: output 25 -> 30" in second
    assert "  changed openai/gpt-9: input 2 -> 1.5; aliases [] -> ['gpt-latest']" in second
    # the curated Opus 4.7 ($25 output) now disagrees with LiteLLM: listed, marked new, and kept
    assert "NEW anthropic/claude-opus-4-7: output ours 25 vs LiteLLM 30" in second
    # mistral-large-4 agrees with the curated rate ($0.70 / $0.07 / $2.10): not listed
    assert "mistral/mistral-large-4" not in second.split("curated entries")[1]
    assert "aliases:        1 alias_of entries" in second and "dangling_alias 1" in second

    doc2 = json.loads(out.read_text())
    assert doc2["meta"]["litellm_version"] == "1.201.0"
    (gpt9,) = [m for m in doc2["providers"]["openai"]["model"] if m["id"] == "gpt-9"]
    assert gpt9["aliases"] == ["gpt-latest"] and gpt9["context_window"] == 400000 and gpt9["max_output"] == 64000
    assert _curated_digest() == curated_before  # curated files are only read

    # the written layer prices through the engine; curated still wins for Opus 4.7
    book = PriceBook.load([out], env=False)
    assert book.price("gpt-latest", input_tokens=1_000_000).total == 1.5
    assert book.price("claude-opus-4-7", output_tokens=1_000_000).total == 25


def test_dry_run_writes_nothing(releases, capsys) -> None:
    one, two, out = releases
    assert main(["pricing", "update", str(one), "--out", str(out), "--dry-run"]) == 0
    assert not out.exists()
    assert "--dry-run" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["pricing", "update"], ["pricing", "update", "x.json", "--from-installed", "litellm"]])
def test_update_needs_exactly_one_source(argv, capsys) -> None:
    assert main(argv) == 2
    assert "either FILE" in capsys.readouterr().err


def test_update_missing_file_is_a_usage_error(tmp_path, capsys) -> None:
    assert main(["pricing", "update", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_update_from_the_installed_package_records_its_version(tmp_path, capsys) -> None:
    try:
        path, version = installed_litellm()
    except ValueError:
        pytest.skip("litellm is not installed (it is the bench extra)")
    out = tmp_path / "imported.json"
    assert main(["pricing", "update", "--from-installed", "litellm", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"LiteLLM {version} import" in text
    doc = json.loads(out.read_text())
    assert doc["meta"]["litellm_version"] == version
    assert doc["meta"]["counts"]["aliases"] > 0  # LiteLLM >= 1.110 writes *-latest names as alias_of


def test_diff_of_identical_layers_is_empty() -> None:
    doc = {"meta": {"litellm_version": "1"}, "providers": {"p": {"meta": {}, "model": [
        {"id": "m", "aliases": [], "source": "s", "note": "n", "period": [{"effective_from": "1970-01-01",
                                                                           "input": "1"}]}]}}}
    d = diff_imported(doc, doc)
    assert (d.added, d.removed, d.changed) == ((), (), ())


def test_unwritable_target_is_a_usage_error_naming_the_fix(releases, tmp_path, capsys) -> None:
    one, _, _ = releases
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    assert main(["pricing", "update", str(one), "--out", str(blocked / "imported.json")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "--out" in err and "Traceback" not in err


def test_malformed_release_is_a_usage_error(tmp_path, capsys) -> None:
    bad = tmp_path / "litellm-9.9.9-x.json"
    bad.write_text('{"m": {"litellm_provider": "openai", "input_cost_per_token": -1}}')
    assert main(["pricing", "update", str(bad), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "'m'" in err and not (tmp_path / "o.json").exists()
