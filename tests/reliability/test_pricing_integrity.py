"""Pricing integrity: a broken pricing file fails at load, naming the file, the model and the field.

A price table that silently half-loads is worse than none: a typo'd field would price a class at a fallback
rate, a negative price would subtract spend, overlapping periods would make the rate at an instant ambiguous.
Every broken file below is loaded the three ways a user loads one (an overlay through ``PriceBook.load``,
``otel-costattr pricing validate``, ``configure(pricing=...)``) and must fail all three with the location.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_costattr as oc
from otel_costattr import ConfigurationError, PricingError
from otel_costattr._cli import main as cli

HEAD = """
[meta]
provider = "acme"
version = "2026-01"
"""
MODEL = """
[[model]]
id = "acme-pro"
source = "https://example.invalid/pricing"
  [[model.period]]
  effective_from = "2025-01-01"
  input = "2"
  cache_read = "0.5"
  output = "8"
"""


def _with(extra: str, base: str = MODEL) -> str:
    return HEAD + base + textwrap.dedent(extra)


# (case, file body, model named, field named, words the message must contain)
CASES = [
    ("typo: period field", HEAD + MODEL.replace('output = "8"', 'ouptut = "8"'), "acme-pro", "period[0].ouptut",
     "unknown field"),
    ("typo: model field", HEAD + MODEL.replace("source =", "sorce ="), "acme-pro", "model.sorce", "unknown field"),
    ("typo: meta field", HEAD.replace("version", "verison") + MODEL, None, "meta.verison", "unknown field"),
    ("typo: long-context field", _with("""
      [[model.period.long_context]]
      treshold = 200000
      input = "4"
      cache_read = "1"
      output = "16"
    """), "acme-pro", "period[0].long_context[0].treshold", "unknown field"),
    ("typo: service-tier field", _with("""
      [model.period.service_tiers]
      batch = { multipler = "0.5" }
    """), "acme-pro", "period[0].service_tiers.batch.multipler", "unknown field"),
    ("typo: discount field", HEAD + MODEL + '[[discount]]\nprovider = "acme"\npercnt = "10"\n', None,
     "discount[0].percnt", "unknown field"),
    ("negative: input price", HEAD + MODEL.replace('input = "2"', 'input = "-2"'), "acme-pro", "period[0].input",
     "negative"),
    ("negative: cache-read price", HEAD + MODEL.replace('cache_read = "0.5"', 'cache_read = "-0.5"'), "acme-pro",
     "period[0].cache_read", "negative"),
    ("negative: batch multiplier", _with("""
      [model.period.service_tiers]
      batch = { multiplier = "-0.5" }
    """), "acme-pro", "period[0].service_tiers.batch.multiplier", "negative"),
    ("negative: per-call fee", _with("""
      [model.period.per_1k_calls]
      web_search = "-10"
    """), "acme-pro", "period[0].per_1k_calls.web_search", "negative"),
    ("negative: discount", HEAD + MODEL + '[[discount]]\nprovider = "acme"\npercent = "-5"\n', None,
     "discount[0].percent", "negative"),
    ("overlap: effective_to after the next period starts",
     HEAD + MODEL.replace('output = "8"', 'output = "8"\n  effective_to = "2025-09-01"') + textwrap.dedent("""
      [[model.period]]
      effective_from = "2025-06-01"
      input = "1"
      output = "4"
    """), "acme-pro", "period.effective_to", "must not overlap"),
    ("overlap: two periods start the same day", _with("""
      [[model.period]]
      effective_from = "2025-01-01T00:00:00Z"
      input = "1"
      output = "4"
    """), "acme-pro", "period.effective_from", "two periods start"),
    ("overlap: period ends before it starts",
     HEAD + MODEL.replace('output = "8"', 'output = "8"\n  effective_to = "2024-12-31"'), "acme-pro",
     "period[0].effective_to", "after effective_from"),
    ("unknown rule: comparator", _with("""
      [[model.period.long_context]]
      threshold = 200000
      comparator = "=>"
      input = "4"
      cache_read = "1"
      output = "16"
    """), "acme-pro", "period[0].long_context[0].comparator", "unknown comparator"),
    ("unknown rule: service tier", _with("""
      [model.period.service_tiers]
      turbo = { multiplier = "2" }
    """), "acme-pro", "period[0].service_tiers.turbo", "unknown service tier"),
    ("unknown rule: top-level table", HEAD + MODEL + '[pricing_rules]\nround = "up"\n', None,
     "top level.pricing_rules", "unknown field"),
    ("unknown rule: per-call fee kind", _with("""
      [model.period.per_1k_calls]
      image_generation = "40"
    """), "acme-pro", "period[0].per_1k_calls.image_generation", "unknown field"),
    ("unknown rule: time-window day", _with("""
      [[model.period.time_windows]]
      name = "weekend"
      days = ["sat", "funday"]
      multiplier = "0.5"
    """), "acme-pro", "period[0].time_windows[0].days", "unknown day"),
    ("unknown rule: currency", HEAD.replace('version = "2026-01"', 'version = "2026-01"\ncurrency = "EUR"') + MODEL,
     None, "meta.currency", "only USD"),
    # issue 20: vendor cache multipliers, model limits and retirement dates, the resale overlay
    ("negative: cache multiplier", HEAD.replace('version = "2026-01"',
                                                'version = "2026-01"\ncache_multipliers = { cache_read = "-0.1" }')
     + MODEL, None, "meta.cache_multipliers.cache_read", "negative"),
    ("typo: cache multiplier class", HEAD.replace('version = "2026-01"',
                                                  'version = "2026-01"\ncache_multipliers = { cache_raed = "0.1" }')
     + MODEL, None, "meta.cache_multipliers.cache_raed", "unknown field"),
    ("negative: context window", HEAD + MODEL.replace('source =', 'context_window = -1\nsource ='), "acme-pro",
     "context_window", "positive integer"),
    ("not a date: retired", HEAD + MODEL.replace('source =', 'retired = "soon"\nsource ='), "acme-pro", "retired",
     "ISO-8601"),
    ("typo: resale field", HEAD + MODEL + '[[resale]]\ngateway = "openrouter"\nvendr = "anthropic"\n', None,
     "resale[0].vendr", "unknown field"),
    ("missing: resale gateway", HEAD + MODEL + '[[resale]]\nvendor = "anthropic"\n', None, "resale[0].gateway",
     "gateway"),
]


def _location_named(message: str, path: Path, model: str | None, field: str) -> bool:
    return str(path) in message and field in message and (model is None or f"model {model!r}" in message)


@pytest.mark.figure("Pricing integrity", "Broken pricing files: typo'd field, negative price, overlapping periods, "
                    "unknown rule")
def test_every_broken_pricing_file_fails_at_load_naming_file_model_and_field(tmp_path: Path, figure,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves: each broken file is refused whole (nothing from it is priced) by all three load paths, and each
    refusal names the file, the model (when the problem is inside one) and the field, with the reason."""
    accepted: list[str] = []
    unnamed: list[str] = []
    for i, (case, body, model, field, words) in enumerate(CASES):
        path = tmp_path / f"broken-{i}.toml"
        path.write_text(body)
        # 1. An overlay on the shipped tables.
        try:
            oc.PriceBook.load([path], imported=False, env=False)
            accepted.append(f"{case} (PriceBook.load)")
        except PricingError as err:
            if not (err.file == str(path) and err.model == model and err.field == field and words in str(err)):
                unnamed.append(f"{case} (PriceBook.load): file={err.file} model={err.model} field={err.field}: {err}")
        # 2. The CLI a person runs before deploying a file.
        stderr, stdout = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            code = cli(["pricing", "validate", str(path)])
        if code != 1:
            accepted.append(f"{case} (pricing validate exit {code})")
        elif not _location_named(stderr.getvalue(), path, model, field):
            unnamed.append(f"{case} (pricing validate): {stderr.getvalue().strip()}")
        # 3. configure(): fails at start-up, before any span is priced.
        try:
            oc.configure(pricing=[str(path)], tracer_provider=TracerProvider(), set_global=False,
                         instrument_threading=False, env={})
            accepted.append(f"{case} (configure)")
        except ConfigurationError as err:
            if not _location_named(str(err), path, model, field):
                unnamed.append(f"{case} (configure): {err}")
    figure.how_much = f"{len(CASES)} broken files x 3 load paths (PriceBook.load, pricing validate, configure)"
    figure.lost = f"accepted: {len(accepted)}; refused without file+model+field: {len(unnamed)}"
    figure.set(cases=[c[0] for c in CASES], accepted=accepted, unnamed=unnamed)
    assert not accepted, accepted
    assert not unnamed, unnamed


@pytest.mark.figure("Pricing integrity", "The shipped pricing tables and the imported layer load and validate")
def test_shipped_tables_are_valid(figure) -> None:
    """Proves: every shipped file passes the same validation (the imported layer compiled model by model),
    so the refusals above are not a validator that refuses everything."""
    book = oc.PriceBook.load(env=False)
    tables = book.tables()
    compiled = 0
    for t in tables:
        for mid in list(t.index.values()):
            if t.entry(mid) is not None:
                compiled += 1
    root = Path(__file__).resolve().parents[2] / "pricing"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = cli(["pricing", "validate", *map(str, sorted(root.glob("*.toml"))),
                    str(root / "imported" / "litellm.json")])
    figure.how_much = f"{len(tables)} provider tables, {compiled:,} model entries compiled"
    figure.lost = f"invalid: {0 if code == 0 else 'see details'}"
    figure.set(validate_output=stdout.getvalue().splitlines()[-12:])
    assert code == 0
    assert compiled > 100
