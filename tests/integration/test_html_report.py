"""The HTML report in a real browser: Debian's Chromium, headless.

Each report is rendered to a file, then Chromium (a) takes a screenshot, and (b) loads a *test copy* of the
page and dumps its DOM. The test copy differs from the real page in one way: a small script (allowed by a
nonce added to the page's Content-Security-Policy) that records every console.error, uncaught error, failed
load and CSP violation, and at load writes them, with the number of <script> elements and of inline event
handlers, into ``document.title``. The real page has no script at all, so anything recorded is a bug
(a failed load, or markup from the data that the browser tried to run). Chromium's own console log
(``--enable-logging=stderr``) is checked too. A positive control proves the harness does catch errors.

If /usr/bin/chromium is missing the test installs it with scripts/ensure_chromium.sh (CI runs as root with
apt) and skips, with the reason, only if that fails.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from otel_costattr._cli import main as cli_main
from otel_costattr._report._html import render_html
from otel_costattr._report._render import render

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample_report.json"
CHROMIUM = Path("/usr/bin/chromium")
ENSURE = REPO / "scripts" / "ensure_chromium.sh"
EVIL = "<script>alert(1)</script>"
EVIL_ATTR = '" onmouseover="alert(2)" x="'

# No network, no first-run UI, no background services: the page is a local file and must need nothing else.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]

MARK = "COSTATTR-CHECK "
NONCE = "costattr-test"
PROBE = """<script nonce="%s">
(function () {
  var errors = [];
  function record(message) { errors.push(String(message)); if (document.readyState === "complete") mark(); }
  function mark() {
    var handlers = 0;
    document.querySelectorAll("*").forEach(function (el) {
      for (var i = 0; i < el.attributes.length; i++) if (/^on/i.test(el.attributes[i].name)) handlers++;
    });
    document.title = "%s" + JSON.stringify({errors: errors, scripts: document.scripts.length, handlers: handlers,
                                             svgs: document.querySelectorAll("svg").length,
                                             svgTitles: document.querySelectorAll("svg > title").length});
  }
  var original = console.error;
  console.error = function () {
    record(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    record(e.message || ("failed to load " + (e.target && (e.target.src || e.target.href))));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { record("unhandled rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    record("CSP blocked " + e.violatedDirective + " " + e.blockedURI);
  });
  window.addEventListener("load", mark);
})();
</script>""" % (NONCE, MARK)


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


def _run(chromium: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([str(chromium), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=60)


def screenshot(chromium: Path, page: Path, png: Path) -> Path:
    proc = _run(chromium, page.parent, f"--screenshot={png}", "--window-size=1280,2400", page.as_uri())
    assert png.exists(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    return png


def probe(chromium: Path, page: Path) -> tuple[dict[str, Any], str, list[str]]:
    """Load a test copy of ``page`` with the error probe; return (probe result, dumped DOM, console lines)."""
    text = page.read_text(encoding="utf-8")
    csp = "default-src 'none';"
    assert text.count(csp) == 1, "the page should carry exactly one CSP with default-src 'none'"
    text = text.replace(csp, f"{csp} script-src 'nonce-{NONCE}';")
    meta_end = text.index(">", text.index('http-equiv="Content-Security-Policy"')) + 1
    test_copy = page.with_name(page.stem + ".probe.html")
    test_copy.write_text(text[:meta_end] + PROBE + text[meta_end:], encoding="utf-8")
    proc = _run(chromium, page.parent, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                "--dump-dom", test_copy.as_uri())
    dom = proc.stdout
    m = re.search(r"<title>" + re.escape(MARK) + r"(.*?)</title>", dom, re.S)
    assert m, f"the probe did not report (did the page load?); chromium said:\n{proc.stderr[-2000:]}"
    # the title is serialised as HTML text: undo the escaping of &, < and > before parsing the JSON
    result = json.loads(m.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return result, dom, console


def write(tmp: Path, name: str, report: dict[str, Any]) -> Path:
    page = tmp / name
    page.write_text(render_html(report), encoding="utf-8")
    return page


def assert_clean(result: dict[str, Any], console: list[str]) -> None:
    assert result["errors"] == [], result["errors"]
    assert console == [], console
    assert result["scripts"] == 1, "only the test's own probe may be a script"
    assert result["handlers"] == 0, "no element may carry an inline event handler"
    assert result["svgs"] == result["svgTitles"], "every chart needs a <title>"


def assert_png(png: Path) -> None:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)
    # A blank page compresses to a few KB; charts, tables and text need far more.
    assert len(data) > 60_000, f"screenshot is only {len(data)} bytes: is the page blank?"


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def minimal() -> dict[str, Any]:
    """An older/smaller report: no by_day, top, vendor share or extra sections."""
    report = sample()
    for key in ("by_day", "top", "vendor_share_by_workload"):
        del report[key]
    report["rows"] = report["rows"][:3]
    report["other"] = {"rows": 3, "cost": "12.115913", "share": "47.62", "calls": 1449, "input_tokens": 3375508,
                       "output_tokens": 595399, "cache_read_tokens": 0, "cache_write_tokens": 0,
                       "reasoning_tokens": 0, "unpriced_calls": 116, "no_usage_calls": 118}
    return report


def hostile() -> dict[str, Any]:
    """User-derived strings that are markup, in every place the page shows one, plus extension points."""
    report = sample()
    report["rows"][0]["key"]["customer_id"] = EVIL
    report["rows"][1]["key"]["customer_id"] = EVIL_ATTR
    report["top"]["customer_id"][0]["key"]["customer_id"] = EVIL
    report["top"]["customer_id"][1]["key"]["customer_id"] = EVIL_ATTR
    report["top"]["model"][0]["key"]["model"] = "</svg><img src=x onerror=alert(3)>"
    report["unpriced_models"][0]["model"] = EVIL
    report["vendor_share_by_workload"][0]["workload_type"] = EVIL
    report["vendor_share_by_workload"][3]["provider"] = EVIL_ATTR
    report["by_day"][0]["day"] = EVIL
    report["unattributed"]["required_keys"] = ["customer_id", EVIL]
    report["extra_sections"] = [{
        "id": 'retry-waste"><script>alert(4)</script>',
        "title": "Retry-chain waste " + EVIL,
        "note": "Spend on attempts that were retried " + EVIL,
        "columns": ["customer_id", "wasted USD", "retries"],
        "rows": [[EVIL, "1.204", 17], ["acme", "0.5", 4], ["(unattributed)", "0.25", 2]],
        "chart": {"type": "bar", "label_column": 0, "value_column": 1},
    }, "not a section", {"title": "Budgets", "rows": [["x"]], "chart": {"label_column": 9, "value_column": 1}}]
    # keys other features may add later must simply be ignored
    report["retry"] = {"chains": 3}
    report["layers"] = [1, 2]
    report["budgets"] = None
    report["reconciliation"] = {"invoice": "INV-1"}
    return report


HEADINGS = ("Spend over time", "Where the money goes", "Top customers", "Cost per task", "Cost per agent",
            "Cost per skill", "Cost per model", "Vendor share by workload type", "Spend by customer_id")


def text_of(dom: str) -> str:
    """Visible-ish text of the dumped DOM (tags dropped, the common entities undone), for content checks."""
    text = re.sub(r"<[^>]+>", " ", dom)
    return re.sub(r"\s+", " ", text.replace("&amp;", "&").replace("\u2007", " ").replace("&nbsp;", " "))


def test_sample_report_in_chromium(chromium: Path, tmp_path: Path) -> None:
    page = write(tmp_path, "sample.html", sample())
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"https?://", html), "the page must not reference anything outside itself"
    assert "<script" not in html and not re.search(r"<[^>]*\son\w+\s*=", html), "no script, no event handlers"

    assert_png(screenshot(chromium, page, tmp_path / "sample.png"))
    result, dom, console = probe(chromium, page)
    assert_clean(result, console)
    assert result["svgs"] >= 8  # day chart, six breakdowns, vendor share

    text = text_of(dom)
    for heading in HEADINGS:
        assert re.search(r"<h[23][^>]*>" + re.escape(heading) + "</h[23]>", dom), heading
    assert re.search(r'data-field="total">\$25\.441679<', dom)
    assert re.search(r'data-field="unattributed-share">15\.88%<', dom)
    assert "$4.040222" in text and "467 calls" in text  # unattributed $ and calls next to the share
    assert "248 unpriced calls" in text and "238 calls without usage" in text
    assert "unknown, not zero" in text and "pricing overlay" in text and "include_usage" in text
    assert "2025-11-13 → 2025-11-26" in text
    assert "2026-11-22T17:34:58+00:00" in text and "otel-costattr" in text
    assert dom.count('class="unattr"') == 1  # the (unattributed) table row is flagged
    assert "$4.269" in text  # exact figure as given, zero-padded only for alignment


def test_minimal_report_without_sections(chromium: Path, tmp_path: Path) -> None:
    page = write(tmp_path, "minimal.html", minimal())
    assert_png(screenshot(chromium, page, tmp_path / "minimal.png"))
    result, dom, console = probe(chromium, page)
    assert_clean(result, console)
    for absent in ("Spend over time", "Where the money goes", "Vendor share by workload type"):
        assert absent not in dom
    assert "Spend by customer_id" in dom and "Other (3 more rows)" in dom
    assert re.search(r'data-field="total">\$25\.441679<', dom)


def test_hostile_strings_are_escaped_and_extra_sections_render(chromium: Path, tmp_path: Path) -> None:
    report = hostile()
    page = write(tmp_path, "hostile.html", report)
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'onmouseover="alert' not in html

    assert_png(screenshot(chromium, page, tmp_path / "hostile.png"))
    result, dom, console = probe(chromium, page)
    assert_clean(result, console)  # nothing from the data ran, loaded, or became a handler
    text = text_of(dom)
    assert EVIL in text.replace("&lt;", "<").replace("&gt;", ">")  # shown, as text
    assert re.search(r"<h2[^>]*>Retry-chain waste &lt;script&gt;", dom)
    assert "Spend on attempts that were retried" in text and "wasted USD" in text and "1.204" in text
    assert "Budgets" in text  # a section with a bad chart spec still renders its table
    assert 'id="x-retry-waste-script-alert-4-script"' in dom  # ids are reduced to safe characters
    assert result["svgs"] >= 9  # the extra section's bar chart is drawn


def test_harness_catches_errors(chromium: Path, tmp_path: Path) -> None:
    """Positive control: a page that breaks the rules is reported, so a clean result means something."""
    page = write(tmp_path, "broken.html", sample())
    broken = page.read_text(encoding="utf-8").replace(
        "</main>", '<img src="https://example.invalid/x.png"><script>alert(1)</script></main>')
    page.write_text(broken, encoding="utf-8")
    result, _, console = probe(chromium, page)
    assert any("img-src" in e for e in result["errors"]), result["errors"]
    assert any("script-src" in e for e in result["errors"]), result["errors"]
    assert console, "chromium's console log should show the blocked loads too"


def test_render_is_deterministic_and_pure() -> None:
    report = sample()
    before = copy.deepcopy(report)
    assert render_html(report) == render_html(copy.deepcopy(report))
    assert report == before, "rendering must not modify the report"
    assert render(report, "html") == render_html(report)


def test_cli_writes_html_from_an_empty_ledger(tmp_path: Path) -> None:
    """``otel-costattr report --format html --out`` end to end: a ledger with no spans still gives a page."""
    from otel_costattr._ledger._store import Ledger

    db = tmp_path / "costs.duckdb"
    Ledger(db).close()
    out = tmp_path / "report.html"
    assert cli_main(["report", "--db", str(db), "--format", "html", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert 'data-field="total">$0.00<' in html and "Spend by customer_id" in html


def test_money_is_shown_exactly() -> None:
    """Amounts come from the report's digits: no float rounding, separators and a sign added, zeros padded."""
    report = sample()
    report["total"] = "1234567.123456789012345678"
    report["unattributed"] = {"required_keys": ["customer_id"], "cost": "0", "share": "0", "calls": 0}
    report["rows"][0]["cost"] = "7.5E-8"  # exponent form is still shown as plain digits
    report["currency"] = "EUR"
    page = render_html(report)
    assert 'data-field="total">€1,234,567.123456789012345678<' in page
    assert "€0.000000075" in page
    assert 'data-field="unattributed-share">0%<' in page and "kpi-unattr ok" in page


def test_all_clear_when_nothing_is_excluded() -> None:
    report = minimal()
    for key in ("unpriced_calls", "no_usage_calls"):
        report[key] = 0
    report["unpriced_models"] = []
    page = render_html(report)
    assert "Every call was priced and reported its usage" in page
    assert "unpriced calls" not in page
