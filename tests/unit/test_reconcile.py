"""`otel-costattr reconcile`: vendor usage/cost exports (OpenAI, Anthropic) against the ledger, per UTC day,
provider and model, with exact decimals. Fixtures: tests/data/finance/ (see its README for the documented
formats)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import otel_costattr as oc
from otel_costattr._cli import main
from otel_costattr._ledger._store import Ledger
from otel_costattr._finance._reconcile import ExportFormatError, load_export, reconcile, render_reconciliation
from tests.conftest import DATA
from tests.unit.finance_support import Call, ns, write_ledger

FIN = DATA / "finance"
EXPORTS = [FIN / "openai-costs.json", FIN / "openai-usage-completions.jsonl", FIN / "anthropic-cost-report.json",
           FIN / "anthropic-usage-report.json"]
BOOK = oc.default_book()
MINI = "gpt-4o-mini-2024-07-18"


def ledger_calls() -> list[Call]:
    return [
        # 2025-11-03: exactly what both vendors billed
        Call("2025-11-03T10:00:00", "openai", "gpt-4o-mini", input=12000, cache_read=4000, output=2000,
             tags={"customer_id": "acme"}, response_model=MINI),
        Call("2025-11-03T11:00:00", "openai", "gpt-4o-mini", input=8000, output=1000, tags={"customer_id": "acme"},
             response_model=MINI),
        Call("2025-11-03T12:00:00", "anthropic", "claude-sonnet-4-5", input=50000, cache_read=20000,
             cache_write=10000, output=2000, tags={"customer_id": "globex"},
             response_model="claude-sonnet-4-5-20250929"),
        # 2025-11-04: one tagged call, one untagged; the vendor also billed a service that is not instrumented
        Call("2025-11-04T10:00:00", "openai", "gpt-4o-mini", input=100000, output=10000, tags={"customer_id": "acme"},
             response_model=MINI),
        Call("2025-11-04T11:00:00", "openai", "gpt-4o-mini", input=200000, output=20000, response_model=MINI),
        # 2025-11-05: a day no export covers
        Call("2025-11-05T11:00:00", "openai", "gpt-4o-mini", input=100000, output=10000, tags={"customer_id": "acme"},
             response_model=MINI),
        # another provider the exports do not cover: never compared
        Call("2025-11-03T13:00:00", "aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", input=1000,
             output=100, tags={"customer_id": "acme"}),
    ]


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reconcile") / "l.duckdb"
    write_ledger(path, ledger_calls(), BOOK).close()
    return path


@pytest.fixture
def ledger(ledger_path: Path):
    led = Ledger(ledger_path, read_only=True)
    yield led
    led.close()


def run(ledger: Ledger, files=EXPORTS, **kw) -> dict:
    return reconcile(ledger, [load_export(f) for f in files], book=BOOK, **kw)


def row(result: dict, day: str, provider: str, model: str) -> dict:
    found = [r for r in result["rows"] if (r["day"], r["provider"], r["model"]) == (day, provider, model)]
    assert len(found) == 1, [(r["day"], r["provider"], r["model"]) for r in result["rows"]]
    return found[0]


def test_formats_are_detected_from_content() -> None:
    got = {Path(e.path).name: (e.format, e.provider, e.kind) for e in map(load_export, EXPORTS)}
    assert got == {"openai-costs.json": ("openai.costs", "openai", "cost"),
                   "openai-usage-completions.jsonl": ("openai.usage", "openai", "usage"),
                   "anthropic-cost-report.json": ("anthropic.cost_report", "anthropic", "cost"),
                   "anthropic-usage-report.json": ("anthropic.usage_report", "anthropic", "usage")}


def test_anthropic_amounts_are_cents_and_openai_amounts_are_dollars() -> None:
    anthropic = load_export(FIN / "anthropic-cost-report.json")
    assert sum(r.cost for r in anthropic.records) == Decimal("0.1335")  # "6" + "0.6" + "3.75" + "3" cents
    openai = load_export(FIN / "openai-costs.json")
    assert sum(r.cost for r in openai.records) == Decimal("0.6095")  # JSON numbers read as exact decimals
    assert all(isinstance(r.cost, Decimal) for r in openai.records)


def test_a_matching_day_has_zero_variance(ledger: Ledger) -> None:
    result = run(ledger)
    mini = row(result, "2025-11-03", "openai", "gpt-4o-mini")  # dated vendor name met the table's id
    assert mini["vendor_models"] == [MINI] and mini["ledger_models"] == ["gpt-4o-mini"]
    assert (mini["status"], mini["flagged"]) == ("match", False)
    assert (mini["vendor_cost"], mini["ledger_cost"], mini["variance"]) == ("0.0045", "0.0045", "0")
    assert mini["tokens"]["input"] == {"vendor": 20000, "ledger": 20000, "variance": 0, "variance_pct": "0.00",
                                       "flagged": False}
    assert mini["tokens"]["requests"]["ledger"] == 2 and not mini["tokens_flagged"]
    claude = row(result, "2025-11-03", "anthropic", "claude-sonnet-4-5")
    assert (claude["status"], claude["vendor_cost"], claude["variance"]) == ("match", "0.1335", "0")
    assert {c: t["vendor"] for c, t in claude["tokens"].items()} == {
        "input": 50000, "cache_read": 20000, "cache_write": 10000, "cache_write_1h": 0, "output": 2000}
    day = next(d for d in result["days"] if (d["day"], d["provider"]) == ("2025-11-03", "openai"))
    assert day["flagged"] is False and day["variance"] == "0"
    assert not any(r["provider"] == "aws.bedrock" for r in result["rows"])  # no export covers Bedrock


def test_an_untagged_leak_is_flagged_with_the_unattributed_share_next_to_it(ledger: Ledger) -> None:
    leak = row(run(ledger), "2025-11-04", "openai", "gpt-4o-mini")
    assert leak["status"] == "mismatch" and leak["flagged"]
    assert (leak["vendor_cost"], leak["ledger_cost"]) == ("0.105", "0.063")
    assert leak["variance"] == "0.042" and leak["variance_pct"] == "40.00"
    # two thirds of what the ledger did see carried no customer_id
    assert (leak["unattributed_cost"], leak["unattributed_share"], leak["unattributed_calls"]) == ("0.042", "66.67", 1)
    assert any("billed more" in n for n in leak["notes"])
    assert leak["tokens_flagged"] and leak["tokens"]["requests"] == {
        "vendor": 4, "ledger": 2, "variance": 2, "variance_pct": "50.00", "flagged": True}


def test_a_model_missing_from_the_ledger(ledger: Ledger) -> None:
    r = row(run(ledger), "2025-11-04", "openai", "gpt-4.1")
    assert r["status"] == "vendor_only" and r["flagged"]
    assert (r["vendor_cost"], r["ledger_cost"], r["variance"]) == ("0.5", "0", "0.5")
    assert r["vendor_models"] == ["gpt-4.1-2025-04-14"] and r["ledger_calls"] == 0
    assert any("missing from the ledger" in n for n in r["notes"])


def test_a_day_only_in_the_ledger(ledger: Ledger) -> None:
    default = run(ledger)  # by default only the period the exports cover is compared
    assert {r["day"] for r in default["rows"]} == {"2025-11-03", "2025-11-04"}
    assert default["period"] == {"since": "2025-11-03T00:00:00+00:00", "until": "2025-11-05T00:00:00+00:00"}
    wider = run(ledger, until_ns=ns("2025-11-06T00:00:00"))
    r = row(wider, "2025-11-05", "openai", "gpt-4o-mini")
    assert r["status"] == "ledger_only" and r["flagged"] and r["covered"] is False
    assert (r["vendor_cost"], r["ledger_cost"], r["variance"]) == (None, "0.021", None)
    assert any("do not cover" in n for n in r["notes"])
    day = next(d for d in wider["days"] if d["day"] == "2025-11-05")
    assert day["flagged"] and day["covered"] is False and day["vendor_cost"] is None
    assert wider["totals"]["ledger_cost_without_vendor_cost"] == "0.021"


def test_totals_are_exact_decimals(ledger: Ledger) -> None:
    t = run(ledger)["totals"]
    # vendor: 0.0045 + 0.105 + 0.5 (OpenAI) + 0.1335 (Anthropic); ledger: 0.0045 + 0.063 + 0.1335
    assert (t["vendor_cost"], t["ledger_cost"], t["variance"]) == ("0.743", "0.201", "0.542")
    assert t["ledger_unattributed_cost"] == "0.042" and t["flagged_rows"] == 2


def test_json_numbers_are_never_floats(tmp_path: Path) -> None:
    """0.1 + 0.2 is 0.3 here: amounts are parsed from the file's digits."""
    led = write_ledger(tmp_path / "l.duckdb", [Call("2025-11-03T10:00:00", "openai", "gpt-4o-mini",
                                                    input=2_000_000, tags={"customer_id": "acme"})], BOOK)
    page = {"object": "page", "data": [{"object": "bucket", "start_time": 1762128000, "end_time": 1762214400,
                                        "results": [
        {"object": "organization.costs.result", "amount": {"value": 0.1, "currency": "usd"},
         "line_item": "gpt-4o-mini, input", "project_id": "a"},
        {"object": "organization.costs.result", "amount": {"value": 0.2, "currency": "usd"},
         "line_item": "gpt-4o-mini, input", "project_id": "b"}]}], "has_more": False, "next_page": None}
    f = tmp_path / "costs.json"
    f.write_text(json.dumps(page))
    r = row(run(led, [f], tolerance_usd="0", tolerance_pct="0"), "2025-11-03", "openai", "gpt-4o-mini")
    assert (r["vendor_cost"], r["ledger_cost"], r["variance"], r["status"]) == ("0.3", "0.3", "0", "match")
    led.close()


def test_tolerances(ledger: Ledger) -> None:
    loose = run(ledger, tolerance_pct="50")
    leak = row(loose, "2025-11-04", "openai", "gpt-4o-mini")
    assert leak["tokens_flagged"] is False  # 50% token gap within 50%
    assert leak["flagged"] is False and leak["status"] == "match"  # 40% cost gap within 50%
    assert row(loose, "2025-11-04", "openai", "gpt-4.1")["flagged"]  # 100% of the vendor figure
    by_dollars = run(ledger, tolerance_pct="0", tolerance_usd="0.05")
    assert row(by_dollars, "2025-11-04", "openai", "gpt-4o-mini")["flagged"] is True  # tokens still 100% apart
    assert row(by_dollars, "2025-11-04", "openai", "gpt-4o-mini")["variance"] == "0.042"
    with pytest.raises(oc.ConfigurationError, match="tolerance-pct"):
        run(ledger, tolerance_pct="-1")


def test_an_export_not_itemised_by_model_is_compared_per_day(ledger: Ledger, tmp_path: Path) -> None:
    page = {"data": [{"starting_at": "2025-11-03T00:00:00Z", "ending_at": "2025-11-04T00:00:00Z",
                      "results": [{"currency": "USD", "amount": "13.35", "workspace_id": None, "description": None,
                                   "cost_type": None, "context_window": None, "model": None, "service_tier": None,
                                   "token_type": None}]}], "has_more": False, "next_page": None}
    f = tmp_path / "anthropic-total.json"
    f.write_text(json.dumps(page))
    result = run(ledger, [f])
    assert [(r["model"], r["status"], r["variance"]) for r in result["rows"]] == [("(all models)", "match", "0")]


def test_unknown_files_and_double_counting_are_refused(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(ExportFormatError, match="not-a-vendor-export.json: unknown vendor export format"):
        load_export(FIN / "not-a-vendor-export.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ExportFormatError, match="broken.json: not JSON"):
        load_export(broken)
    copy = tmp_path / "copy.json"
    copy.write_text((FIN / "openai-costs.json").read_text())
    with pytest.raises(ExportFormatError, match="pass each export once"):
        run(ledger, [FIN / "openai-costs.json", copy])
    eur = tmp_path / "eur.json"
    eur.write_text((FIN / "anthropic-cost-report.json").read_text().replace('"USD"', '"EUR"'))
    with pytest.raises(ExportFormatError, match="EUR"):
        load_export(eur)


def test_cli_json_contract_and_exit_codes(ledger_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["reconcile", *map(str, EXPORTS), "--db", str(ledger_path), "--format", "json"])
    assert code == 1  # something is beyond tolerance
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"currency", "tolerance", "period", "required_keys", "sources", "rows", "days", "totals",
                        "flagged"}
    assert out["currency"] == "USD" and out["tolerance"] == {"pct": "1", "usd": "0.01"} and out["flagged"] == 2
    assert [s["format"] for s in out["sources"]] == ["openai.costs", "openai.usage", "anthropic.cost_report",
                                                    "anthropic.usage_report"]
    for r in out["rows"]:
        assert set(r) >= {"day", "provider", "model", "status", "flagged", "vendor_cost", "ledger_cost", "variance",
                          "variance_pct", "unattributed_cost", "unattributed_share", "tokens", "notes"}
        assert r["status"] in ("match", "mismatch", "vendor_only", "ledger_only")
        for k in ("vendor_cost", "ledger_cost", "variance", "unattributed_cost"):
            assert r[k] is None or isinstance(r[k], str)  # money is a decimal string, never a float
            if r[k] is not None:
                Decimal(r[k])
    # only the matching day: exit 0
    code = main(["reconcile", *map(str, EXPORTS), "--db", str(ledger_path), "--since", "2025-11-03",
                 "--until", "2025-11-04"])
    assert code == 0
    table = capsys.readouterr().out
    assert "gpt-4o-mini" in table and "match" in table and "0 row(s) and 0 day(s) beyond tolerance" in table
    assert main(["reconcile", str(FIN / "not-a-vendor-export.json"), "--db", str(ledger_path)]) == 2
    assert "not-a-vendor-export.json" in capsys.readouterr().err


def test_table_marks_flagged_rows(ledger: Ledger) -> None:
    text = render_reconciliation(run(ledger), "table")
    assert "! vendor_only" in text and "! mismatch" in text
    assert "0.042 (66.67%)" in text  # the untagged share next to the leak
    assert "! tokens 2025-11-04 openai gpt-4o-mini" in text
