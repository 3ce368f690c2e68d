"""`otel-costattr export focus`: the ledger as a FinOps FOCUS 1.2 dataset, validated against the spec's own
column constraints (tests/data/finance/focus-1.2-columns.json) and the ledger's exact totals."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import otel_costattr as oc
from otel_costattr._cli import main
from otel_costattr._finance._focus import FOCUS_COLUMNS, FOCUS_VERSION, focus_rows, write_focus
from otel_costattr._ledger._store import Ledger
from tests.conftest import DATA
from tests.unit.finance_support import Call, ns, write_ledger

SPEC = json.loads((DATA / "finance" / "focus-1.2-columns.json").read_text())
COLUMNS = {c["id"]: c for c in SPEC["columns"]}
MANDATORY = [c["id"] for c in SPEC["columns"] if c["feature_level"] == "Mandatory"]
# Conditional columns FOCUS 1.2 requires non-null on Usage rows that are not corrections.
USAGE_NOT_NULL = ("ListUnitPrice", "ContractedUnitPrice", "PricingQuantity", "PricingUnit", "PricingCategory",
                  "SkuId", "SkuPriceId", "ConsumedQuantity", "ConsumedUnit")
ARROW = {"Decimal": pa.decimal128(38, 18), "String": pa.string(), "JSON": pa.string(),
         "Date/Time": pa.timestamp("ms", tz="UTC")}
NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")  # FOCUS NumericFormat, as we write it: no exponent, no "+", no commas
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # FOCUS DateTimeFormat


def calls() -> list[Call]:
    return [
        Call("2025-11-03T10:00:00", "openai", "gpt-4o-mini", input=12000, cache_read=4000, output=2000,
             tags={"customer_id": "acme", "task_id": "triage", "agent_run_id": "run-1"}),
        Call("2025-11-03T23:59:59", "openai", "gpt-4o-mini", input=8000, output=1000,
             tags={"customer_id": "acme", "task_id": "triage", "agent_run_id": "run-2"}),
        Call("2025-11-04T00:00:00", "openai", "o3", input=5000, output=4000, reasoning=3000,
             tags={"customer_id": "globex", "feature": "search"}),
        # both Anthropic cache-write TTLs in one call: one row, two rates (the documented rounding case)
        Call("2025-11-04T12:00:00", "anthropic", "claude-sonnet-4-5", input=50000, cache_read=20000,
             cache_write=7000, cache_write_1h=3001, output=2000, tags={"customer_id": "globex"}),
        Call("2025-11-05T08:00:00", "anthropic", "claude-sonnet-4-5", input=1000, output=10),  # untagged
        Call("2025-11-05T09:00:00", "openai", "no-such-model-xyz", input=100, output=10),  # unpriced: no row
    ]


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("focus") / "l.duckdb"
    write_ledger(path, calls()).close()
    return path


@pytest.fixture
def ledger(ledger_path: Path):
    led = Ledger(ledger_path, read_only=True)
    yield led
    led.close()


def ledger_total(led: Ledger, since: int | None = None, until: int | None = None) -> Decimal:
    sql, params = "SELECT sum(cost_total) FROM calls WHERE 1 = 1", []
    if since is not None:
        sql, params = sql + " AND start_ns >= ?", params + [since]
    if until is not None:
        sql, params = sql + " AND start_ns < ?", params + [until]
    return led.query(sql, params)[0][0]


def test_spec_fixture_is_focus_1_2_with_its_21_mandatory_columns() -> None:
    assert SPEC["focus_version"] == FOCUS_VERSION == "1.2"
    assert SPEC["tag"] == "v1.2" and len(SPEC["commit"]) == 40 and SPEC["url"].startswith("https://github.com/")
    assert len(SPEC["columns"]) == 57 and len(MANDATORY) == 21
    assert {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency", "ChargeCategory",
            "ProviderName", "PublisherName", "InvoiceIssuerName", "ServiceCategory", "PricingUnit"} <= set(MANDATORY)


def test_parquet_columns_types_and_nullability_follow_the_spec(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "focus.parquet"
    summary = write_focus(focus_rows(ledger), out)
    table = pq.read_table(out)
    names = table.column_names
    assert summary.rows == table.num_rows > 0
    assert table.schema.metadata[b"focus_version"] == b"1.2"
    for col in MANDATORY:
        assert col in names, f"mandatory FOCUS column {col} missing"
    focus_cols = [n for n in names if not n.startswith("x_")]
    assert all(n in COLUMNS for n in focus_cols), "every non-x_ column must be a FOCUS 1.2 column"
    assert focus_cols == sorted(focus_cols) and names[:len(focus_cols)] == focus_cols  # FOCUS first, then x_
    data = table.to_pylist()
    for col in focus_cols:
        spec = COLUMNS[col]
        assert table.schema.field(col).type == ARROW[spec["data_type"]], col
        if not spec["allows_nulls"]:
            assert all(r[col] is not None for r in data), f"{col} must not be null"
    for r in data:
        assert r["ChargeCategory"] in ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
        assert r["ChargeClass"] is None  # no corrections of previously invoiced periods
        assert r["ChargeFrequency"] == "Usage-Based"
        assert r["ServiceCategory"] == "AI and Machine Learning" and r["ServiceSubcategory"] == "Generative AI"
        assert r["BillingCurrency"] == "USD"
        if r["ChargeCategory"] == "Usage":
            for col in USAGE_NOT_NULL:
                assert r[col] is not None, col
            assert r["PricingCategory"] == "Standard"
            assert (r["ConsumedUnit"], r["PricingUnit"]) in (("Tokens", "1000000 Tokens"), ("Requests", "Requests"))
            assert r["ListUnitPrice"] >= 0 and r["ContractedUnitPrice"] >= 0
        assert r["ChargePeriodStart"] < r["ChargePeriodEnd"]
        assert r["BillingPeriodStart"] <= r["ChargePeriodStart"] and r["ChargePeriodEnd"] <= r["BillingPeriodEnd"]


def test_billed_cost_sums_to_the_ledger_total_exactly_in_csv_and_parquet(ledger: Ledger, tmp_path: Path) -> None:
    rows = focus_rows(ledger)
    expected = ledger_total(ledger)
    assert sum(r["BilledCost"] for r in rows) == expected
    assert sum(r["EffectiveCost"] for r in rows) == expected == sum(r["ContractedCost"] for r in rows)
    write_focus(rows, tmp_path / "f.parquet")
    write_focus(rows, tmp_path / "f.csv")
    assert sum(pq.read_table(tmp_path / "f.parquet").column("BilledCost").to_pylist()) == expected
    with (tmp_path / "f.csv").open(newline="") as fh:
        data = list(csv.DictReader(fh))
    assert [*data[0]] == [n for n, _ in FOCUS_COLUMNS]
    assert sum(Decimal(r["BilledCost"]) for r in data) == expected
    for r in data:
        for col, kind in FOCUS_COLUMNS:
            if r[col] == "":
                continue
            if kind == "Decimal":
                assert NUMERIC.match(r[col]), (col, r[col])
            elif kind == "Date/Time":
                assert DATETIME.match(r[col]), (col, r[col])


def test_unit_prices_reproduce_the_costs(ledger: Ledger) -> None:
    rows = focus_rows(ledger)
    mixed = 0
    for r in rows:
        if r["ChargeCategory"] != "Usage":
            continue
        q = r["PricingQuantity"]
        for price, cost in (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")):
            product = r[price] * q
            if product != r[cost]:
                mixed += 1
                assert abs(product - r[cost]) <= q * Decimal("5E-19"), (r["SkuPriceId"], price)
    # only the row that mixes 5-minute and 1-hour cache writes needs rounding
    assert mixed == 2
    by_price = {(r["SkuPriceId"], r["ChargePeriodStart"].date().isoformat()): r for r in rows}
    mini = by_price[("openai/gpt-4o-mini/input", "2025-11-03")]
    # 12000 - 4000 cached + 8000 = 16000 uncached input tokens at $0.15 per 1M
    assert mini["ConsumedQuantity"] == 16000 and mini["PricingQuantity"] == Decimal("0.016")
    assert mini["ListUnitPrice"] == Decimal("0.15") and mini["BilledCost"] == Decimal("0.0024")
    o3 = {r["x_TokenClass"]: r for r in rows if r["SkuId"] == "o3"}
    assert o3["reasoning"]["ConsumedQuantity"] == 3000 and o3["output"]["ConsumedQuantity"] == 1000
    assert o3["reasoning"]["SkuMeter"] == "Reasoning Tokens"


def test_tags_are_json_objects_of_the_attribution_keys(ledger: Ledger) -> None:
    rows = focus_rows(ledger)
    tags = [json.loads(r["Tags"]) if r["Tags"] is not None else None for r in rows]
    assert all(t is None or (isinstance(t, dict) and all(isinstance(v, str) for v in t.values())) for t in tags)
    assert {"customer_id": "acme", "task_id": "triage"} in tags
    assert {"customer_id": "globex", "feature": "search"} in tags
    assert None in tags  # the untagged call
    assert not any(t and ("agent_run_id" in t or "process_run_id" in t) for t in tags)  # per-run ids left out
    # two runs of the same task on the same day share rows (run ids do not split them)
    acme_input = [r for r in rows if r["SkuPriceId"] == "openai/gpt-4o-mini/input"]
    assert len(acme_input) == 1


def test_period_filters_and_hour_granularity(ledger: Ledger) -> None:
    since, until = ns("2025-11-04T00:00:00"), ns("2025-11-05T00:00:00")
    rows = focus_rows(ledger, since_ns=since, until_ns=until)
    assert rows and {r["ChargePeriodStart"].date().isoformat() for r in rows} == {"2025-11-04"}
    assert sum(r["BilledCost"] for r in rows) == ledger_total(ledger, since, until)
    before = focus_rows(ledger, until_ns=since)
    assert {r["ChargePeriodStart"].date().isoformat() for r in before} == {"2025-11-03"}
    hourly = focus_rows(ledger, granularity="hour")
    assert {(r["ChargePeriodEnd"] - r["ChargePeriodStart"]).total_seconds() for r in hourly} == {3600}
    assert sum(r["BilledCost"] for r in hourly) == ledger_total(ledger)
    assert len(hourly) > len(focus_rows(ledger))
    with pytest.raises(oc.ConfigurationError):
        focus_rows(ledger, granularity="week")


def test_providers_publishers_and_billing_accounts(ledger: Ledger) -> None:
    rows = focus_rows(ledger, accounts={"openai": ("org-abc", "Acme prod")})
    openai = next(r for r in rows if r["x_GenAiProvider"] == "openai")
    anthropic = next(r for r in rows if r["x_GenAiProvider"] == "anthropic")
    assert (openai["ProviderName"], openai["PublisherName"], openai["InvoiceIssuerName"]) == ("OpenAI",) * 3
    assert (openai["BillingAccountId"], openai["BillingAccountName"]) == ("org-abc", "Acme prod")
    assert (anthropic["BillingAccountId"], anthropic["BillingAccountName"]) == ("anthropic", None)
    assert anthropic["ServiceName"] == "Claude API" and anthropic["ProviderName"] == "Anthropic"


def test_list_cost_is_before_the_negotiated_discount(tmp_path: Path) -> None:
    book = oc.PriceBook.load([DATA / "rules.toml", DATA / "overlay.toml"], builtin=False, imported=False, env=False)
    led = write_ledger(tmp_path / "d.duckdb", [Call("2025-11-03T10:00:00", "rulesco", "tiered", input=10000,
                                                    output=1000, tags={"customer_id": "acme"})], book=book)
    rows = {r["x_TokenClass"]: r for r in focus_rows(led)}
    inp = rows["input"]
    # $3 list per 1M, 10% negotiated discount -> $2.70 contracted
    assert inp["ListUnitPrice"] == Decimal(3) and inp["ContractedUnitPrice"] == Decimal("2.7")
    assert inp["ListCost"] == Decimal("0.03") and inp["BilledCost"] == Decimal("0.027")
    assert inp["SkuPriceId"] == "rulesco/tiered/input"  # a discount does not change the SKU price
    assert sum(r["BilledCost"] for r in rows.values()) == led.query("SELECT sum(cost_total) FROM calls")[0][0]
    led.close()


def test_cli_export_focus(ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "spend.csv"
    code = main(["export", "focus", "--db", str(ledger_path), "--since", "2025-11-03", "--until", "2025-11-04",
                 "--billing-account", "openai=org-abc:Acme", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "FOCUS 1.2" in printed and "BilledCost $0.0045" in printed
    with out.open(newline="") as fh:
        data = list(csv.DictReader(fh))
    assert {r["BillingAccountId"] for r in data} == {"org-abc"} and {r["BillingAccountName"] for r in data} == {"Acme"}
    assert sum(Decimal(r["BilledCost"]) for r in data) == Decimal("0.0045")
    assert main(["export", "focus", "--db", str(ledger_path), "--out", str(tmp_path / "x.xlsx")]) == 2
    assert "csv or .parquet" in capsys.readouterr().err
    assert not (tmp_path / "x.xlsx").exists()


def test_an_export_streams_one_day_of_groups_at_a_time(ledger: Ledger, tmp_path: Path) -> None:
    """A ledger whose calls are all distinct groups took 5.2 GB as one list at 1M calls: the export now asks
    for one UTC day at a time and writes as it goes, with the same rows in the same order."""
    from otel_costattr._finance._focus import iter_focus_rows

    sizes: list[int] = []

    class Counting:
        dialect = "duckdb"

        def query(self, sql: str, params: list | None = None) -> list:
            rows = ledger.query(sql, params)
            sizes.append(len(rows))
            return rows

    days: list[tuple[int, int]] = []
    streamed = iter_focus_rows(Counting(), progress=lambda done, total: days.append((done, total)))
    assert sizes == []  # lazy: nothing is read before the first row is asked for
    summary = write_focus(streamed, tmp_path / "s.csv")
    assert days == [(1, 3), (2, 3), (3, 3)]  # 2025-11-03, -04, -05 (the 05th has one priced call)
    assert max(sizes[1:]) <= 2  # each day's groups, never the whole export (5 groups in all)
    whole = write_focus(focus_rows(ledger), tmp_path / "w.csv")
    assert (tmp_path / "s.csv").read_bytes() == (tmp_path / "w.csv").read_bytes()
    assert summary == whole.__class__(whole.rows, whole.billed_cost, whole.list_cost, str(tmp_path / "s.csv"))
    assert summary.billed_cost == ledger_total(ledger)


def test_a_failed_export_leaves_no_file_behind(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    out.write_text("yesterday's export")

    def broken():
        yield from focus_rows(ledger)[:2]
        raise OSError(28, "No space left on device")

    for name in ("f.csv", "f.parquet"):
        with pytest.raises(OSError):
            write_focus(broken(), tmp_path / name)
    assert out.read_text() == "yesterday's export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]  # no .tmp left


def test_focus_csv_text_never_runs_as_a_formula(tmp_path: Path) -> None:
    path = tmp_path / "evil.duckdb"
    evil = '=HYPERLINK("http://evil","x")'
    write_ledger(path, [Call("2025-11-03T10:00:00", "openai", "gpt-4o-mini", input=100, output=10,
                             tags={"customer_id": "acme", "feature": evil})]).close()
    led = Ledger(path, read_only=True)
    rows = focus_rows(led)
    led.close()
    for r in rows:  # a cell that starts like a formula, whatever column it lands in
        r["SkuId"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    write_focus(rows, tmp_path / "f.csv")
    cells = [c for row in csv.reader((tmp_path / "f.csv").read_text().splitlines()) for c in row]
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in cells
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
    assert any(json.dumps(evil) in c for c in cells)  # the tag is kept, in the Tags JSON object (starts with {)


def test_export_shows_its_days_on_a_terminal_only(ledger_path: Path, tmp_path: Path, on_terminal) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "otel_costattr", "export", "focus", "--db", str(ledger_path), "--out"]
    code, out, seen = on_terminal([*argv, str(tmp_path / "t.csv")])
    assert code == 0 and out.startswith(b"wrote ")
    assert b"export focus" in seen and b"3/3" in seen and b"days" in seen
    piped = subprocess.run([*argv, str(tmp_path / "p.csv")], capture_output=True, text=True)
    assert piped.returncode == 0 and "export focus" not in piped.stderr  # quiet when piped (the note remains)
    assert (tmp_path / "t.csv").read_bytes() == (tmp_path / "p.csv").read_bytes()
