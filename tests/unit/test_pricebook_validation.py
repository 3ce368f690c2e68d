"""A broken pricing file fails at load, naming the file, the model and the field; it never prices."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from otel_costattr import PriceBook, PricingError
from otel_costattr._pricing._schema import validate_file

HEADER = """
[meta]
provider = "acme"
version = "t1"
"""

MODEL = """
[[model]]
id = "m1"
source = "https://example.invalid"
  [[model.period]]
  effective_from = "2025-01-01"
  input = "1"
  output = "2"
"""


def write(tmp_path: Path, body: str, name: str = "p.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


@pytest.mark.parametrize("body,field,message", [
    (HEADER + MODEL.replace('input = "1"', 'inptu = "1"'), "period[0].inptu", "unknown field 'inptu'"),
    (HEADER + MODEL.replace('input = "1"', 'input = "-1"'), "period[0].input", "negative"),
    (HEADER + MODEL.replace('input = "1"', 'input = 0.000003'), "period[0].input", "decimal string"),
    (HEADER + MODEL.replace('input = "1"', 'input = "abc"'), "period[0].input", "not a decimal"),
    (HEADER + MODEL.replace('input = "1"', 'input = "NaN"'), "period[0].input", "not a finite"),
    (HEADER + MODEL.replace('source = "https://example.invalid"\n', ''), "source", "needs a `source`"),
    (HEADER + MODEL.replace('effective_from = "2025-01-01"', 'effective_from = "soon"'),
     "period[0].effective_from", "ISO-8601"),
    (HEADER + MODEL + """
  [[model.period.long_context]]
  threshold = 200000
  comparator = "=>"
  input = "2"
  output = "4"
""", "period[0].long_context[0].comparator", "unknown comparator"),
    (HEADER + MODEL + """
  [[model.period.long_context]]
  threshold = 200000
  input = "2"
""", "period[0].long_context[0]", "missing: output"),
    (HEADER + MODEL + """
  [model.period.service_tiers]
  turbo = { multiplier = "2" }
""", "period[0].service_tiers.turbo", "unknown service tier"),
    (HEADER + MODEL + """
  [model.period.service_tiers]
  priority = { input = "2" }
""", "period[0].service_tiers.priority", "no rate for output"),
    (HEADER + MODEL + """
  [[model.period]]
  effective_from = "2025-01-01"
  input = "1"
  output = "1"
""", "period.effective_from", "two periods start"),
    (HEADER + MODEL.replace('output = "2"', 'output = "2"\n  effective_to = "2025-08-01"') + """
  [[model.period]]
  effective_from = "2025-06-01"
  input = "1"
  output = "1"
""", "period.effective_to", "must not overlap"),
    (HEADER + MODEL + MODEL, "id", "already used"),
    (HEADER + MODEL.replace('id = "m1"', 'id = "m1"\naliases = ["M1"]'), "aliases", "already used"),
    (HEADER.replace('version = "t1"', '') + MODEL, "meta.version", "meta.version"),
    (HEADER.replace('"t1"', '"t1"\ncurrency = "EUR"') + MODEL, "meta.currency", "only USD"),
    (HEADER + MODEL + """
    [[model.period.time_windows]]
    name = "night"
    hours_utc = [[22, 2]]
    multiplier = "0.5"
""", "period[0].time_windows[0].hours_utc", "cross midnight"),
    ("[[discount]]\nprovider = \"acme\"\npercent = \"120\"\n", "discount[0].percent", "over 100"),
])
def test_broken_files_name_the_problem(tmp_path: Path, body: str, field: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(PricingError) as info:
        validate_file(path)
    err = info.value
    assert err.file == str(path)
    assert err.field == field, str(err)
    assert message in str(err)
    assert str(path) in str(err)


def test_error_names_the_model(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + MODEL.replace('input = "1"', 'input = "-3"'))
    with pytest.raises(PricingError) as info:
        validate_file(path)
    assert info.value.model == "m1" and "model 'm1'" in str(info.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "[meta\nprovider=")
    with pytest.raises(PricingError, match="not valid TOML"):
        validate_file(bad)
    with pytest.raises(PricingError, match="file not found"):
        PriceBook.load([tmp_path / "nope.toml"], builtin=False, imported=False, env=False)


def test_overlay_from_environment_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = write(tmp_path, HEADER + MODEL, "good.toml")
    monkeypatch.setenv("OTEL_COSTATTR_PRICING", str(good))
    book = PriceBook.load(builtin=False, imported=False)
    assert book.price("m1", input_tokens=1_000_000).total == 1
    broken = write(tmp_path, HEADER + MODEL.replace('"2"', '"-2"'), "broken.toml")
    monkeypatch.setenv("OTEL_COSTATTR_PRICING", str(broken))
    with pytest.raises(PricingError, match="broken.toml"):
        PriceBook.load(builtin=False, imported=False)


def test_empty_overlay_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="defines nothing"):
        validate_file(write(tmp_path, "# nothing here\n"))


def test_empty_imported_layer_is_rejected(tmp_path: Path) -> None:
    # Found by the reliability suite's pricing fuzzer: the imported format with no provider loaded as a no-op.
    path = tmp_path / "empty.json"
    path.write_text('{"meta": {"source": "litellm"}, "providers": {}}')
    with pytest.raises(PricingError, match=r"empty.json.*providers.*defines nothing"):
        validate_file(path)
