"""The HTML report in a real browser: Playwright driving Debian's Chromium, headless.

A 60-day ledger (one customer doubling its spend, an unpriced model, calls without customer_id, hostile ids) is
written through the real pricing path, reported as JSON and as HTML by the real CLI, and the page is opened from
disk. The test clicks through it as a person would: sorts a table, filters it to one customer, switches the
time series dimension, mode and step, and opens a trace link; every figure it reads is checked against the JSON
report. It also checks that the page fetches nothing, runs nothing but its own (hash-allowed) script, logs no
error and no CSP violation, and that text from telemetry never becomes markup.

Playwright's own browser download cannot run here; it drives /usr/bin/chromium (``executable_path``). If that is
missing the test installs it with scripts/ensure_chromium.sh (CI runs as root with apt) and skips, with the
reason, only if that fails.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from datetime import date
from decimal import Decimal
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from otel_costattr._cli import main as cli_main
from otel_costattr._report._html import Money, render_html
from tests.unit.finance_support import Call, write_ledger
from tests.unit.test_report_defects import MINI, growth_calls

playwright_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ENSURE = REPO / "scripts" / "ensure_chromium.sh"
EVIL = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
TRACE_URL = "http://jaeger.test/trace/{trace_id}"


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        try:
            proc = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, timeout=900)
            reason = (proc.stderr or proc.stdout).strip()[-600:] or f"exit status {proc.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        if not CHROMIUM.exists():
            pytest.skip(f"{CHROMIUM} is missing and scripts/ensure_chromium.sh could not install it: {reason}")
    return CHROMIUM


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(the HTML page, the JSON report) of the same 60-day ledger, both written by the CLI."""
    tmp = tmp_path_factory.mktemp("html")
    calls = growth_calls() + [
        Call("2026-09-10T10:00:00", "anthropic", "claude-sonnet-4-5", 5000, 500,
             tags={"customer_id": "acme", "workload_type": "batch", "agent_id": "coder"}),
        Call("2026-10-20T10:00:00", "openai", "ft:no-such-base:initech::x", 100, 10, tags={"customer_id": "hooli"}),
        Call("2026-10-21T10:00:00", "openai", MINI, 100, 10, tags={"agent_id": "planner"}),
        Call("2026-10-22T10:00:00", "openai", MINI, 100, 10, tags={"customer_id": EVIL}),
    ]
    db = tmp / "g.duckdb"
    write_ledger(db, calls).close()
    page, js = tmp / "report.html", tmp / "report.json"
    assert cli_main(["report", "--db", str(db), "--out", str(page), "--trace-url", TRACE_URL]) == 0
    assert cli_main(["report", "--db", str(db), "--out", str(js)]) == 0
    return page, json.loads(js.read_text())


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Any:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Watch:
    """Everything a page does that it must not: requests, console errors, uncaught errors, dialogs."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url) if not r.url.startswith("file:") else None)
        page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))


def _open(browser: Any, path: Path) -> tuple[Any, Watch]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page)
    page.goto(path.as_uri())
    page.wait_for_function("window.costattr && window.costattr.series")
    return page, watch


def _visible_rows(page: Any, table: str) -> list[Any]:
    return page.locator(f"#{table} tbody tr:not([hidden])").all()


def test_click_through_matches_the_json(browser: Any, reports: tuple[Path, dict[str, Any]]) -> None:
    path, rep = reports
    page, watch = _open(browser, path)

    # the headline figures are the JSON's
    assert Decimal(page.locator('[data-field="total"]').get_attribute("data-v")) == Decimal(rep["total"])
    assert page.locator('[data-field="calls"]').inner_text() == f"{rep['calls']:,}"

    # sort the rollup table by cost, both ways; an unpriced row (unknown cost) always sorts last
    cost_head = page.locator("#rollup-table thead th", has_text="Cost").first
    cost_col = [h.inner_text() for h in page.locator("#rollup-table thead th").all()].index(cost_head.inner_text())
    for direction in ("descending", "ascending"):
        cost_head.locator("button").click()
        assert cost_head.get_attribute("aria-sort") == direction
        values = [r.locator("td, th").nth(cost_col).get_attribute("data-v") for r in _visible_rows(page, "rollup-table")]
        known = [Decimal(v) for v in values if v]
        assert known == sorted(known, reverse=direction == "descending") and values[-1] == ""
    unpriced = page.locator("#rollup-table tbody tr", has_text="hooli")
    assert "unpriced" in unpriced.inner_text() and "$0.0000" not in unpriced.inner_text()

    # filter to one customer: one row left, and its figures are the JSON row's
    page.fill('input[data-table="rollup-table"]', '"globex"')
    rows = _visible_rows(page, "rollup-table")
    assert len(rows) == 1
    globex = next(r for r in rep["rows"] if r["key"]["customer_id"] == "globex")
    cells = rows[0].locator("td, th")
    assert Decimal(cells.nth(cost_col).get_attribute("data-v")) == Decimal(globex["cost"])
    assert cells.nth(cost_col).get_attribute("title") == Money("USD").exact(Decimal(globex["cost"]))
    assert cells.nth(cost_col + 2).inner_text() == f"{globex['calls']:,}"
    assert page.locator("#rollup-table-count").inner_text() == f"1 of {len(rep['rows'])} rows"
    page.fill('input[data-table="rollup-table"]', "")
    assert len(_visible_rows(page, "rollup-table")) == len(rep["rows"])

    # the time series: customers first, with the doubling customer on top of "fastest growing"
    s = page.evaluate("window.costattr.series")
    assert s["dim"] == "customer_id" and len(s["labels"]) == 60
    growing = page.locator('[data-growth-dim="customer_id"] tbody tr').first
    assert growing.locator("td").first.inner_text() == "globex" == rep["growth"]["customer_id"]["fastest"][0]["key"]
    _check_series(s, rep["series"]["customer_id"])

    # switch the dimension: the chart, its figures and the growth panel follow
    page.select_option("#series-dim", "model")
    s = page.evaluate("window.costattr.series")
    assert s["dim"] == "model"
    assert s["datasets"] == [e["key"] for e in rep["series"]["model"]["entries"]]
    _check_series(s, rep["series"]["model"])
    assert page.locator('[data-growth-dim="model"]').is_visible()
    assert not page.locator('[data-growth-dim="customer_id"]').is_visible()

    # weeks, as lines: Monday buckets whose sums are the days' exact sums
    page.select_option("#series-step", "week")
    page.select_option("#series-mode", "lines")
    s = page.evaluate("window.costattr.series")
    assert s["mode"] == "lines" and s["step"] == "week"
    assert all(date.fromisoformat(d).weekday() == 0 for d in s["labels"])
    total = sum((Decimal(re.sub(r"[$,]", "", v)) for ex in s["exact"] for v in ex), Decimal(0))
    assert total == Decimal(rep["total"])  # every priced call is in exactly one bucket of one entry
    assert page.evaluate("window.costattr.charts.series.config.type") == "line"

    # a trace id is a link built from --trace-url, and it opens
    first_trace = rep["top_traces"][0]["trace_id"]
    link = page.locator("#x-top-traces-table a.trace").first
    assert link.inner_text() == first_trace
    page.route("http://jaeger.test/**", lambda route: route.fulfill(status=200, body="trace view",
                                                                    content_type="text/plain"))
    with page.expect_navigation():
        link.click()
    assert page.url == TRACE_URL.format(trace_id=first_trace)
    assert watch.errors == [], watch.errors
    assert watch.requests == [page.url], watch.requests  # the link, and nothing else, ever
    page.close()


def _check_series(s: dict[str, Any], series: dict[str, Any]) -> None:
    """The page's per-period exact figures are the JSON's costs (days: as they are; every entry)."""
    if s["step"] != "day":
        return
    for shown, entry in zip(s["exact"], series["entries"]):
        want = [Decimal(c or 0) for c in entry["costs"]]
        got = [Decimal(re.sub(r"[$,]", "", v)) for v in shown]
        assert got == want, entry["key"]


def test_page_is_self_contained_and_inert(browser: Any, reports: tuple[Path, dict[str, Any]]) -> None:
    """No network, one script (allowed by hash), hostile ids shown as text, sorted tables keep "other" last."""
    path, rep = reports
    html = path.read_text(encoding="utf-8")
    csp = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "script-src 'sha256-" in csp
    assert len(html.encode()) < 5_000_000
    page, watch = _open(browser, path)
    assert page.evaluate("document.scripts.length") == 2  # the data block and the one inline script
    # nothing to load (no src, no link element) and links only to the page's own sections or to traces
    assert page.evaluate("document.querySelectorAll('[src], link, iframe, object, embed').length") == 0
    hrefs = page.evaluate("Array.from(document.querySelectorAll('[href]')).map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith(("#", "http://jaeger.test/trace/")) for h in hrefs), hrefs
    handlers = page.evaluate("""Array.from(document.querySelectorAll('*')).reduce((n, el) =>
        n + Array.from(el.attributes).filter(a => /^on/i.test(a.name)).length, 0)""")
    assert handlers == 0
    assert page.locator("#rollup-table tbody tr", has_text="<img src=x").count() == 1  # text, not markup
    # breakdown tables: "other" stays last whatever the order
    if rep.get("top_other", {}).get("customer_id"):
        page.locator("#top-customer_id thead th button").first.click()
        assert "other" in page.locator("#top-customer_id tbody tr").last.get_attribute("class")
    page.wait_for_timeout(200)
    assert watch.errors == [] and watch.requests == []
    page.close()


def test_missing_keys_and_unknown_costs_on_the_page(reports: tuple[Path, dict[str, Any]]) -> None:
    path, rep = reports
    html = path.read_text(encoding="utf-8")
    assert "(no customer_id)" in html and "(unattributed)" not in html
    model = next(r for r in rep["top"]["model"] if r["key"]["model"].startswith("ft:"))
    assert model["cost"] is None
    assert re.search(r"ft:no-such-base:initech::x</td><td class=\"num unknown\" data-v=\"\">unpriced", html)


def test_render_is_deterministic_and_pure(reports: tuple[Path, dict[str, Any]]) -> None:
    _, rep = reports
    before = copy.deepcopy(rep)
    assert render_html(rep) == render_html(copy.deepcopy(rep))
    assert rep == before, "rendering must not modify the report"


def test_old_and_minimal_reports_still_render() -> None:
    """A report without the new sections (an older JSON, or a library caller's minimal dict) still renders."""
    sample = json.loads((REPO / "tests" / "data" / "sample_report.json").read_text())
    page = render_html(sample)
    assert page.startswith("<!DOCTYPE html>") and "Spend by customer_id" in page
    page = render_html({"total": "0", "calls": 0})
    assert 'data-field="total" data-v="0" title="$0.00">$0.0000<' in page


def test_money_formatting_is_fixed_in_views_and_exact_on_hover() -> None:
    report = {"currency": "USD", "total": "1234.28718275", "calls": 3, "by": ["customer_id"],
              "rows": [{"key": {"customer_id": "a"}, "cost": "0.427115", "share": "0.03", "calls": 1},
                       {"key": {"customer_id": "b"}, "cost": "0.00000004", "share": "0.00", "calls": 1},
                       {"key": {"customer_id": None}, "cost": None, "share": None, "calls": 1,
                        "unpriced_calls": 1}]}
    page = render_html(report)
    assert 'title="$1,234.28718275">$1,234.2872<' in page
    assert 'title="$0.427115">$0.4271<' in page
    assert "&lt;$0.0001<" in page  # a real amount never shows as $0
    assert 'data-v="">unpriced<' in page and "(no customer_id)" in page


def test_implausible_counts_are_called_out_on_the_page() -> None:
    base = {"total": "5", "calls": 5, "by": ["customer_id"],
            "rows": [{"key": {"customer_id": "a"}, "cost": "5", "share": "100", "calls": 5}]}
    assert "implausible" not in render_html(base)
    page = render_html({**base, "implausible_calls": 4})
    assert "<li>4 calls with a token count above the model&#39;s limits (flagged implausible" in page


def test_long_values_stay_distinct() -> None:
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    report = {"total": "2", "calls": 2, "by": ["customer_id"],
              "rows": [{"key": {"customer_id": v}, "cost": "1", "share": "50", "calls": 1} for v in (a, b)]}
    page = render_html(report)
    shown = re.findall(r"x{48}…#([0-9a-f]{8})", page)
    assert len(set(shown)) == 2  # cut, with a short hash each: two rows, two labels
    assert f'title="{a}"' in page  # the full value on hover


def test_retry_findings_are_shown_when_present() -> None:
    report = {"total": "10", "calls": 5, "retry": {"findings": [
        {"customer_id": "acme", "share": "41.00", "wasted": "4.1", "total": "10",
         "sentence": "acme: 41% of its spend went into retry loops."},
        {"customer_id": "tiny", "share": "0.50", "wasted": "0.05", "total": "10", "sentence": "tiny: 0.5%."}]}}
    # (the threshold is 1%: the second is below it)
    page = render_html(report)
    assert "acme: 41% of its spend went into retry loops." in page and "tiny: 0.5%." not in page
    assert "Retry findings" not in render_html({"total": "1", "calls": 1, "retry": {}})


def test_cli_html_from_an_empty_ledger(tmp_path: Path) -> None:
    from otel_costattr._ledger._store import Ledger

    db = tmp_path / "costs.duckdb"
    Ledger(db).close()
    out = tmp_path / "report.html"
    assert cli_main(["report", "--db", str(db), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "No calls in this period." in html
