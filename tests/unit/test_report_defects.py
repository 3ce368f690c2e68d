"""Issue 21: reports people act on. One test per defect, each failing on the code before the fix.

The ledgers are written through the real pricing path (Enricher -> SpanRecord -> Ledger, as `ingest` does) and
every check runs the real CLI in process (``main([...])``), reading its exit code, standard output and error.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import otel_costattr as oc
from otel_costattr._cli import main
from tests.unit.finance_support import Call, write_ledger

MINI = "gpt-4o-mini"  # openai, priced in the shipped tables
EVIL = '=HYPERLINK("http://evil","x")'


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors (exit 2)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ledger with every awkward case of the issue in it."""
    path = tmp_path_factory.mktemp("defects") / "l.duckdb"
    calls = [
        Call("2026-11-02T10:00:00", "openai", MINI, 1000, 100, tags={"customer_id": "acme", "agent_id": "planner",
                                                                     "workload_type": "interactive"}),
        Call("2026-11-01T10:00:00", "openai", MINI, 3000, 300, cache_read=500,
             tags={"customer_id": "acme", "agent_id": "coder", "workload_type": "batch"}),
        Call("2026-11-03T10:00:00", "openai", MINI, 2000, 10, tags={"customer_id": "globex"}),  # no agent_id
        # a customer really named like the old placeholder must not merge with the calls that have none
        Call("2026-11-03T11:00:00", "openai", MINI, 500, 50, tags={"customer_id": "(unattributed)",
                                                                   "agent_id": "planner"}),
        Call("2026-11-03T12:00:00", "openai", MINI, 700, 70, tags={"agent_id": "planner"}),  # no customer_id
        Call("2026-11-03T13:00:00", "openai", MINI, 900, 90, tags={"customer_id": ""}),  # empty: unattributed too
        Call("2026-11-03T14:00:00", "openai", MINI, 100, 10, tags={"customer_id": EVIL}),
        # a model no price table knows: its cost is unknown, never $0
        Call("2026-11-03T15:00:00", "openai", "ft:no-such-base:initech::review-v2", 100, 10,
             tags={"customer_id": "initech"}),
    ]
    write_ledger(path, calls).close()
    return path


# ------------------------------------------------------------------------------------------ 1. unpriced


def test_unpriced_rows_are_unknown_not_zero(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "model", "--format", "json")
    assert code == 0
    rows = {r["key"]["model"]: r for r in json.loads(out)["rows"]}
    ft = next(r for m, r in rows.items() if m.startswith("ft:"))
    assert ft["cost"] is None and ft["share"] is None and ft["unpriced_calls"] == 1
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "model", "--format", "csv")
    ft_csv = next(r for r in csv.DictReader(io.StringIO(out)) if r["model"].startswith("ft:"))
    assert ft_csv["cost"] == "" and ft_csv["unpriced_calls"] == "1"
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "model")
    line = next(ln for ln in out.splitlines() if ln.startswith("ft:"))
    assert "unpriced" in line and "$0" not in line
    # the customer whose only call is unpriced: not $0 either
    code, out, _ = run(capsys, "report", "--db", str(db), "--format", "json")
    initech = next(r for r in json.loads(out)["rows"] if r["key"]["customer_id"] == "initech")
    assert initech["cost"] is None


# ------------------------------------------------------------------------------------------- 2. typos


@pytest.mark.parametrize("args, words", [
    (["--by", "nonexistent_key"], ["nonexistent_key", "customer_id", "model"]),
    (["--since", "2026-11-19", "--until", "2026-11-18"], ["--since", "--until"]),
    (["--as-of", "2026-11-03"], ["--as-of", "--budgets"]),
    (["--fail-on", "exceeded"], ["--fail-on", "--budgets"]),
    (["--where", "custmer_id=acme"], ["custmer_id", "customer_id"]),
    (["--where", "customer_id"], ["--where", "KEY=VALUE"]),
    (["--sort", "coast"], ["coast", "cost"]),
])
def test_report_typos_fail_fast_naming_the_known_keys(capsys: pytest.CaptureFixture[str], db: Path,
                                                       args: list[str], words: list[str]) -> None:
    code, out, err = run(capsys, "report", "--db", str(db), *args)
    assert code == 2, out
    assert all(w in err for w in words), err
    assert "Traceback" not in err


def test_budget_scope_typo_fails_naming_the_keys(capsys: pytest.CaptureFixture[str], db: Path,
                                                 tmp_path: Path) -> None:
    b = tmp_path / "b.toml"
    b.write_text('[[budget]]\nname = "acme"\nscope = { custmer_id = "acme" }\nperiod = "month"\nlimit_usd = "1"\n')
    code, _, err = run(capsys, "report", "--db", str(db), "--budgets", str(b), "--as-of", "2026-11-04")
    assert code == 2 and "custmer_id" in err and "customer_id" in err


def test_export_unknown_billing_vendor_fails(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "export", "focus", "--db", str(db), "--out", str(tmp_path / "f.csv"),
                       "--billing-account", "nosuchvendor=abc")
    assert code == 2 and "nosuchvendor" in err and "openai" in err
    assert not (tmp_path / "f.csv").exists()


def test_export_reversed_dates_fail(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "export", "focus", "--db", str(db), "--out", str(tmp_path / "f.csv"),
                       "--since", "2026-11-19", "--until", "2026-11-18")
    assert code == 2 and "--until" in err


# ---------------------------------------------------------------------------- 3. missing-key labels


def test_missing_keys_are_explicit_and_never_collide(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "agent_id", "--format", "json")
    rep = json.loads(out)
    keys = [r["key"]["agent_id"] for r in rep["rows"]]
    assert None in keys and "(unattributed)" not in keys  # null in JSON, not a made-up value
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "agent_id")
    assert "(no agent_id)" in out and "(unattributed)" not in out.split("\n\n")[0]
    code, out, _ = run(capsys, "report", "--db", str(db), "--format", "json")
    rep = json.loads(out)
    by_key = {r["key"]["customer_id"]: r for r in rep["rows"]}
    assert by_key["(unattributed)"]["calls"] == 1  # the customer with that literal name keeps its own row
    # no customer_id and an empty customer_id are both "missing": one row, two calls, counted as unattributed
    assert by_key[None]["calls"] == 2 and "" not in by_key
    assert rep["unattributed"]["calls"] == 2
    assert Decimal(rep["unattributed"]["cost"]) == Decimal(by_key[None]["cost"])


# ------------------------------------------------------------------------------------ 6. CSV injection


def test_csv_cells_cannot_be_formulas(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--format", "csv")
    cells = [c for row in csv.reader(io.StringIO(out)) for c in row]
    assert not any(c[:1] in ("=", "+", "@", "\t", "\r") for c in cells)
    assert not any(c.startswith("-") and not _is_number(c) for c in cells)
    assert "'" + EVIL in cells  # neutralised as OWASP recommends, still readable


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


# ---------------------------------------------------------------------------------- 7. smaller defects


def test_csv_has_cache_write_tokens_and_a_clean_other_row(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--format", "csv", "--top", "2")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "cache_write_tokens" in rows[0]
    other = rows[-1]
    assert other["customer_id"] == "" and other["other_rows"] == "4"
    assert all(r["other_rows"] == "" for r in rows[:-1])


def test_out_extension_picks_the_format(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    for name, check in (("r.csv", lambda t: t.startswith("customer_id,cost")),
                        ("r.json", lambda t: json.loads(t)["currency"] == "USD"),
                        ("r.html", lambda t: t.startswith("<!DOCTYPE html>"))):
        code, _, err = run(capsys, "report", "--db", str(db), "--out", str(tmp_path / name))
        assert code == 0, err
        assert check((tmp_path / name).read_text()), name


def test_by_day_is_in_date_order_and_sort_where(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "day", "--format", "json")
    days = [r["key"]["day"] for r in json.loads(out)["rows"]]
    assert days == sorted(days) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    code, out, _ = run(capsys, "report", "--db", str(db), "--sort", "calls", "--format", "json")
    calls = [r["calls"] for r in json.loads(out)["rows"]]
    assert calls == sorted(calls, reverse=True)
    code, out, _ = run(capsys, "report", "--db", str(db), "--sort", "key", "--by", "agent_id", "--format", "json")
    agents = [r["key"]["agent_id"] for r in json.loads(out)["rows"]]
    assert agents == ["coder", "planner", None]  # missing last
    code, out, _ = run(capsys, "report", "--db", str(db), "--where", "customer_id=acme", "--by", "agent_id",
                       "--format", "json")
    rep = json.loads(out)
    assert rep["calls"] == 2 and {r["key"]["agent_id"] for r in rep["rows"]} == {"planner", "coder"}
    assert rep["where"] == {"customer_id": ["acme"]}
    code, out, _ = run(capsys, "report", "--db", str(db), "--where", "customer_id=acme",
                       "--where", "customer_id=globex", "--format", "json")
    assert json.loads(out)["calls"] == 3


def test_several_ledgers_add_up(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    write_ledger(other, [Call("2026-11-05T10:00:00", "openai", MINI, 1000, 100,
                              tags={"customer_id": "acme"})]).close()
    one = json.loads(run(capsys, "report", "--db", str(db), "--format", "json")[1])
    both = json.loads(run(capsys, "report", "--db", str(db), "--db", str(other), "--format", "json")[1])
    assert both["calls"] == one["calls"] + 1
    acme1 = next(r for r in one["rows"] if r["key"]["customer_id"] == "acme")
    acme2 = next(r for r in both["rows"] if r["key"]["customer_id"] == "acme")
    assert acme2["calls"] == acme1["calls"] + 1 and Decimal(acme2["cost"]) > Decimal(acme1["cost"])
    code, _, err = run(capsys, "report", "--db", str(db), "--db", str(db))
    assert code == 2 and "twice" in err


def test_user_errors_give_no_traceback(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "report", "--db", str(db), "--format", "html",
                       "--out", str(tmp_path / "missing-dir" / "r.html"))
    assert code == 2 and "missing-dir" in err and "Traceback" not in err
    import duckdb
    alien = tmp_path / "alien.duckdb"
    con = duckdb.connect(str(alien))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    code, _, err = run(capsys, "report", "--db", str(alien))
    assert code == 2 and "not an otel-costattr ledger" in err
    code, _, err = run(capsys, "export", "focus", "--db", str(alien), "--out", str(tmp_path / "f.csv"))
    assert code == 2 and "not an otel-costattr ledger" in err


def test_export_focus_names_what_it_leaves_out(capsys: pytest.CaptureFixture[str], db: Path,
                                               tmp_path: Path) -> None:
    code, out, err = run(capsys, "export", "focus", "--db", str(db), "--out", str(tmp_path / "f.csv"))
    assert code == 0
    assert "1 unpriced call" in out + err and "not in the export" in out + err


def test_report_budgets_fail_on(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    b = tmp_path / "b.toml"
    b.write_text('[[budget]]\nname = "acme"\nscope = { customer_id = "acme" }\nperiod = "month"\n'
                 'limit_usd = "0.0001"\n')
    base = ["report", "--db", str(db), "--budgets", str(b), "--as-of", "2026-11-04"]
    assert run(capsys, *base)[0] == 0
    code, _, err = run(capsys, *base, "--fail-on", "exceeded")
    assert code == 1 and "acme" in err
    b.write_text('[[budget]]\nname = "acme"\nscope = { customer_id = "acme" }\nperiod = "month"\nlimit_usd = "100"\n'
                 "warn_at_pct = 0.0001\n")
    assert run(capsys, *base, "--fail-on", "exceeded")[0] == 0
    assert run(capsys, *base, "--fail-on", "warning")[0] == 1


def test_reconcile_refuses_duplicate_inputs(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    f = tmp_path / "costs.json"
    f.write_text(json.dumps({"object": "page", "data": [], "has_more": False}))
    code, _, err = run(capsys, "reconcile", str(f), str(tmp_path / "." / "costs.json"), "--db", str(db))
    assert code == 2 and "twice" in err and "costs.json" in err


# ------------------------------------------------------------------------------------------------ demo


def test_demo_refuses_an_existing_ledger(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ledger = tmp_path / "costs.duckdb"
    ledger.write_bytes(b"the user's ledger")
    code, _, err = run(capsys, "demo", "--out-dir", str(tmp_path), "--scale", "0.01", "--no-progress")
    assert code == 2 and "--force" in err and "costs.duckdb" in err
    assert ledger.read_bytes() == b"the user's ledger"


# --------------------------------------------------------------------------------------- 60-day growth


def growth_calls() -> list[Call]:
    """60 days, three customers: acme flat, initech shrinking slowly, globex doubling in the second half."""
    start = date(2026, 9, 1)
    calls = []
    for d in range(60):
        day = (start + timedelta(d)).isoformat()
        calls.append(Call(f"{day}T09:00:00", "openai", MINI, 20_000, 2_000, tags={"customer_id": "acme"}))
        calls.append(Call(f"{day}T10:00:00", "openai", MINI, 30_000 - d * 100, 3_000, tags={"customer_id": "initech"}))
        for _ in range(2 if d >= 30 else 1):
            calls.append(Call(f"{day}T11:00:00", "openai", MINI, 10_000, 1_000, tags={"customer_id": "globex"}))
    return calls


def test_growth_fixture_puts_the_growing_customer_on_top(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    write_ledger(path, growth_calls()).close()
    rep = json.loads(run(capsys, "report", "--db", str(path), "--format", "json")[1])
    growth = rep["growth"]["customer_id"]
    assert growth["fastest"][0]["key"] == "globex"
    top = growth["fastest"][0]
    assert Decimal(top["change_pct"]) == Decimal("100.00")  # 30 vs 30 days: exactly doubled
    series = rep["series"]["customer_id"]
    assert len(series["periods"]) == 60 and {e["key"] for e in series["entries"]} == {"acme", "globex", "initech"}


def test_where_empty_value_selects_missing_and_trace_url_is_checked(capsys: pytest.CaptureFixture[str],
                                                                     db: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--where", "agent_id=", "--by", "customer_id",
                       "--format", "json")
    rep = json.loads(out)
    assert code == 0 and rep["calls"] == 4  # globex, the empty customer id, the formula customer, initech
    for bad in ("http://jaeger/trace/", "javascript:alert(1)//{trace_id}"):
        code, _, err = run(capsys, "report", "--db", str(db), "--out", str(tmp_path / "r.html"), "--trace-url", bad)
        assert code == 2 and "{trace_id}" in err
    code, _, err = run(capsys, "report", "--db", str(db), "--trace-url", "http://j/{trace_id}")
    assert code == 2 and "--format html" in err


def test_top_lists_have_an_other_row_so_shares_add_up(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "agents.duckdb"
    write_ledger(path, [Call("2026-11-03T10:00:00", "openai", MINI, 1000 + 100 * i, 100,
                             tags={"customer_id": "acme", "agent_id": f"agent-{i:02d}", "workload_type": "chat"})
                        for i in range(13)]).close()
    rep = json.loads(run(capsys, "report", "--db", str(path), "--format", "json")[1])
    top, other = rep["top"]["agent_id"], rep["top_other"]["agent_id"]
    assert len(top) == 10 and other["rows"] == 3 and other["calls"] == 3
    assert sum(Decimal(r["share"]) for r in top) + Decimal(other["share"]) == Decimal("100.00")
    assert sum(Decimal(r["cost"]) for r in top) + Decimal(other["cost"]) == Decimal(rep["total"])
    page = run(capsys, "report", "--db", str(path), "--format", "html")[1]
    assert "Other (3 more)" in page and "Economics by workload" in page


def test_long_ids_that_share_a_prefix_stay_distinct(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Two 10 KB customer ids that agree on their first 5,000 characters: a plain cut at 256 merged their spend.
    # Through capture (the baggage processor's cut) and the ledger's, each keeps its own row.
    a, b = "c" * 5000 + "-alpha" * 900, "c" * 5000 + "-omega" * 900
    path = tmp_path / "long.duckdb"
    write_ledger(path, [Call("2026-11-02T10:00:00", "openai", MINI, 1000, 100, tags={"customer_id": a}),
                        Call("2026-11-02T11:00:00", "openai", MINI, 3000, 300, tags={"customer_id": b})]).close()
    code, out, err = run(capsys, "report", "--db", str(path), "--by", "customer_id", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    keys = sorted(r["key"]["customer_id"] for r in rows)
    assert keys == sorted(oc.attributes.cut_value(v) for v in (a, b)) and keys[0] != keys[1]
    assert all(len(k) == oc.attributes.MAX_VALUE_LENGTH for k in keys)
    assert sorted(r["calls"] for r in rows) == [1, 1]

