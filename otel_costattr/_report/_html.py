"""The HTML report (``otel-costattr report --format html``): one self-contained, interactive page.

:func:`render_html` turns the plain data of :func:`otel_costattr._analysis._rollup.build_report` into a single
HTML document laid out by a Jinja2 template (``templates/report.html.j2``, autoescaped). The page embeds
everything it uses: its CSS, its data (a JSON block), Chart.js (vendored, MIT, ``static/chart.umd.min.js``) and
its own script (``static/report.js``: sortable and filterable tables, spend over time per dimension as
stacked bars or lines by day or week, vendor share). A Content-Security-Policy ``<meta>`` allows exactly that
inline script and style by their SHA-256 and nothing else: no network, no other script, so a report mailed
around and opened from disk fetches nothing.

Rules the page keeps:

* Money is formatted from the report's exact decimal strings, never through a float: views show a fixed
  precision (:data:`PLACES` decimals, a non-zero amount never shows as zero: ``<$0.0001``), the exact value is
  on hover (``title``) and in the exports. Floats are used only for chart geometry.
* Unknown is not zero: an amount the report gives as ``null`` (only unpriced calls) is shown as "unpriced".
* A missing key (``null`` in the JSON) is shown as ``(no agent_id)`` with a "missing" badge: markup that a
  value can never produce. Long values are cut and given a short hash, so distinct values stay distinct; the
  full value is on hover.
* Tables list at most :data:`MAX_ROWS` rows, then an "other" row, so shares add up to 100% and the page stays
  small with any ledger.
* Deterministic: the same report gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._version import __version__

__all__ = ["FINDING_THRESHOLD", "MAX_ROWS", "PLACES", "key_label", "render_html"]

PLACES = 4  #: decimals shown for money in the page's views
MAX_ROWS = 200  #: table rows before the rest is folded into one "other" row
LONG = 48  #: characters of a value shown before it is cut (and given a short hash)
#: Retry findings at or above this share of the key's spend (percent) are named on the page.
FINDING_THRESHOLD = Decimal("1")
_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_ASSETS = Path(__file__).resolve().parent  # templates/ and static/ sit beside this module
_TOP_TITLES = {  # the known ``top`` lists, in page order: (title, noun)
    "customer_id": ("Top customers", "Customer"), "workload_type": ("Cost per workload", "Workload"),
    "task_id": ("Cost per task", "Task"), "agent_id": ("Cost per agent", "Agent"),
    "skill_id": ("Cost per skill", "Skill"), "model": ("Cost per model", "Model"),
    "provider": ("Cost per vendor", "Vendor"), "process_id": ("Cost per process", "Process"),
}
_SERIES_LABELS = {"customer_id": "customer", "workload_type": "workload", "agent_id": "agent", "model": "model",
                  "provider": "vendor", "task_id": "task", "skill_id": "skill"}
_TOKEN_COLS = (("input_tokens", "Input tok."), ("output_tokens", "Output tok."),
               ("cache_read_tokens", "Cache read"), ("cache_write_tokens", "Cache write"),
               ("reasoning_tokens", "Reasoning"))
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_OLD_MISSING = "(unattributed)"  # what older reports (and the economics sections) write for a missing key


# ------------------------------------------------------------------------------------------------ values


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _plain(d: Decimal) -> str:
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Money:
    """Money in the report's currency: a fixed precision for views, the exact value for hover and sorting."""

    def __init__(self, currency: Any, places: int = PLACES) -> None:
        self.code = str(currency or "USD")
        self.sign = _SIGNS.get(self.code, self.code + "\u00a0")
        self.places = places
        self._q = Decimal(1).scaleb(-places)

    def exact(self, d: Decimal) -> str:
        sign = "-" if d < 0 else ""
        whole, _, frac = format(abs(d), "f").partition(".")
        frac = frac.rstrip("0").ljust(2, "0")
        return f"{sign}{self.sign}{int(whole):,}.{frac}"

    def fixed(self, d: Decimal) -> str:
        r = d.quantize(self._q, rounding=ROUND_HALF_UP)
        if r == 0 and d != 0:  # a real amount never shows as zero
            tiny = f"{self.sign}0.{'0' * (self.places - 1)}1"
            return f"<{tiny}" if d > 0 else f">-{tiny}"
        sign = "-" if r < 0 else ""
        return f"{sign}{self.sign}{abs(r):,.{self.places}f}"

    def cell(self, value: Any) -> dict[str, str] | None:
        """``{"text", "exact", "v"}`` for a template cell; None (shown as "unpriced") for an unknown amount."""
        d = _dec(value)
        if d is None:
            return None
        return {"text": self.fixed(d), "exact": self.exact(d), "v": _plain(d)}


def _int(value: Any) -> dict[str, str]:
    d = _dec(value)
    if d is None or d != d.to_integral_value():
        return {"text": "—", "v": ""}
    return {"text": f"{int(d):,}", "v": str(int(d))}


def _share(value: Any) -> dict[str, str] | None:
    d = _dec(value)
    if d is None:
        return None
    return {"text": f"{d:.2f}%", "v": _plain(d), "width": f"{min(56.0, max(0.0, float(d) * 0.56)):.1f}"}


def _clean(text: str) -> str:
    return _CONTROL_RE.sub("\ufffd", text)


def key_label(dim: str, value: Any) -> dict[str, Any]:
    """How a key value is shown: ``text`` (cut with a short hash when long), ``full`` (hover), ``missing``
    (the key was absent: ``(no <dim>)``, marked with a badge), ``sort`` (the value, '' when missing)."""
    if value is None or value == _OLD_MISSING:
        return {"text": f"(no {dim})", "full": "", "missing": True, "sort": ""}
    text = _clean(str(value))
    if len(text) <= LONG + 10:
        return {"text": text, "full": "", "missing": False, "sort": text}
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return {"text": f"{text[:LONG]}…#{digest}", "full": text, "missing": False, "sort": text}


def _keys_attr(values: list[Any]) -> str:
    """The row's raw key values for the exact-match filter (unit separator between them)."""
    return "\u001f".join("" if v is None else _clean(str(v)) for v in values)


# --------------------------------------------------------------------------------------------- sections


def _fmt_timestamp(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    text = dt.strftime("%Y-%m-%d %H:%M" if dt.second == 0 else "%Y-%m-%d %H:%M:%S")
    off = dt.utcoffset()
    return text if off is None else text + (" UTC" if not off else dt.strftime(" %z"))


def _period(report: dict[str, Any]) -> dict[str, str]:
    since, until = report.get("since"), report.get("until")
    if since or until:
        return {"head": f"{_fmt_timestamp(since) if since else 'start'} → {_fmt_timestamp(until) if until else 'now'}",
                "note": "requested window; the end is exclusive" if until else "requested window"}
    days = sorted(str(d.get("day")) for d in report.get("by_day") or [] if isinstance(d, dict) and d.get("day"))
    if days:
        first, last = days[0], days[-1]
        try:
            n = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
            span = f"{n:,} day{'s' if n != 1 else ''}; "
        except ValueError:
            span = ""
        return {"head": first if first == last else f"{first} → {last}",
                "note": f"{span}all recorded spans (no window given)"}
    return {"head": "All recorded spans", "note": "no time window given"}


def _rollup(report: dict[str, Any], money: Money) -> dict[str, Any]:
    by = [str(k) for k in report.get("by") or []]
    rows = [r for r in report.get("rows") or [] if isinstance(r, dict)]
    other = report.get("other") if isinstance(report.get("other"), dict) else None
    folded = None
    if len(rows) > MAX_ROWS:  # fold the tail into the "other" row: the page stays small, shares still add up
        rest, rows = rows[MAX_ROWS:], rows[:MAX_ROWS]
        parts = rest + ([other] if other else [])
        folded = _fold(parts)
        folded["rows"] = len(rest) + (int(other.get("rows") or 0) if other else 0)
        other = folded
    all_rows = rows + ([other] if other else [])
    token_cols = [(c, label) for c, label in _TOKEN_COLS if not all_rows or any(r.get(c) for r in all_rows)]
    dropped = [label.lower().rstrip(".") for c, label in _TOKEN_COLS if (c, label) not in token_cols]

    def numbers(r: dict[str, Any]) -> dict[str, Any]:
        return {"cost": money.cell(r.get("cost")), "share": _share(r.get("share")), "calls": _int(r.get("calls")),
                "tokens": [_int(r.get(c, 0)) for c, _ in token_cols], "unpriced": _int(r.get("unpriced_calls", 0)),
                "no_usage": _int(r.get("no_usage_calls", 0))}

    out_rows = []
    for r in rows:
        key = r.get("key") or {}
        labels = [key_label(k, key.get(k)) for k in by]
        out_rows.append({"key": labels, "match": _keys_attr([key.get(k) for k in by]),
                         "missing": any(lab["missing"] for lab in labels), **numbers(r)})
    caption = f"Cost in {money.code} at {money.places} decimals (hover for the exact figure); share of total spend."
    if any(r["missing"] for r in out_rows):
        caption += " Rows marked “missing” have no value for that key."
    if dropped:
        caption += (f" No {', '.join(dropped[:-1]) + ' or ' + dropped[-1] if len(dropped) > 1 else dropped[0]} "
                    "tokens in this period (columns omitted).")
    return {
        "rows": out_rows, "caption": caption, "token_cols": token_cols,
        "other": ({**numbers(other), "rows": f"{int(other.get('rows') or 0):,}"} if other else None),
        "ncols": len(by) + 5 + len(token_cols), "calls": _int(report.get("calls")),
        "token_totals": [_int(sum(int(r.get(c) or 0) for r in all_rows)) for c, _ in token_cols],
        "unpriced": _int(report.get("unpriced_calls", 0)), "no_usage": _int(report.get("no_usage_calls", 0)),
        "filter_what": " × ".join(by) or "rows",
    }


def _fold(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows added up into one: exact sums; the cost stays unknown only if every part is unknown."""
    costs = [_dec(r.get("cost")) for r in rows]
    known = [c for c in costs if c is not None]
    shares = [_dec(r.get("share")) for r in rows]
    out: dict[str, Any] = {"cost": _plain(sum(known, Decimal(0))) if known else None,
                           "share": f"{sum((s for s in shares if s is not None), Decimal(0)):.2f}"
                           if any(s is not None for s in shares) else None}
    for c in ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "reasoning_tokens", "unpriced_calls", "no_usage_calls"):
        out[c] = sum(int(r.get(c) or 0) for r in rows)
    return out


def _breakdowns(report: dict[str, Any], money: Money) -> list[dict[str, Any]]:
    top = report.get("top")
    if not isinstance(top, dict):
        return []
    others = report.get("top_other") if isinstance(report.get("top_other"), dict) else {}
    out = []
    for dim in [k for k in _TOP_TITLES if k in top] + sorted(str(k) for k in top if k not in _TOP_TITLES):
        rows = [r for r in top.get(dim) or [] if isinstance(r, dict)]
        if not rows or all((r.get("key") or {}).get(dim) in (None, _OLD_MISSING) for r in rows):
            continue  # nothing tagged with this key: no table of one "missing" row
        title, noun = _TOP_TITLES.get(dim, (f"Cost per {dim}", dim))
        other = others.get(dim) if isinstance(others.get(dim), dict) else None
        out.append({"dim": re.sub(r"[^A-Za-z0-9_-]", "-", dim), "title": title, "noun": noun,
                    "rows": [{"key": key_label(dim, (r.get("key") or {}).get(dim)),
                              "match": _keys_attr([(r.get("key") or {}).get(dim)]),
                              "cost": money.cell(r.get("cost")), "share": _share(r.get("share")),
                              "calls": _int(r.get("calls"))} for r in rows],
                    "other": ({"rows": f"{int(other.get('rows') or 0):,}", "cost": money.cell(other.get("cost")),
                               "share": _share(other.get("share")), "calls": _int(other.get("calls"))}
                              if other else None)})
    return out


def _series(report: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    series = report.get("series")
    if not isinstance(series, dict):
        return [], {}
    dims, data = [], {}
    for dim, s in series.items():
        if not isinstance(s, dict) or not isinstance(s.get("periods"), list):
            continue
        entries = []
        for e in s.get("entries") or []:
            if not isinstance(e, dict):
                continue
            other = bool(e.get("other"))
            label = "other" if other else key_label(str(dim), e.get("key"))["text"]
            entries.append({"key": None if other else e.get("key"), "other": other, "label": label,
                            "costs": [None if _dec(c) is None else _plain(_dec(c))  # type: ignore[arg-type]
                                      for c in e.get("costs") or []]})
        dims.append((str(dim), f"by {_SERIES_LABELS.get(str(dim), str(dim))}"))
        data[str(dim)] = {"periods": [str(p) for p in s["periods"]], "entries": entries}
    return dims, data


def _growth(report: dict[str, Any], money: Money) -> list[dict[str, Any]]:
    growth = report.get("growth")
    if not isinstance(growth, dict):
        return []
    out = []
    for dim, g in growth.items():
        if not isinstance(g, dict):
            continue
        rows = []
        for r in g.get("fastest") or []:
            if not isinstance(r, dict):
                continue
            pct = _dec(r.get("change_pct"))
            rows.append({"key": key_label(str(dim), r.get("key")), "prior": money.cell(r.get("prior")),
                         "recent": money.cell(r.get("recent")), "change": money.cell(r.get("change")),
                         "pct": "new" if pct is None else f"+{pct:.2f}%" if pct > 0 else f"{pct:.2f}%"})
        window = ""
        if g.get("recent_from") and g.get("prior_from"):
            window = (f"{g.get('days')} days from {g['recent_from']} against the {g.get('days')} days before "
                      f"(from {g['prior_from']}); largest increase first.")
        elif g.get("note"):
            window = str(g["note"])
        out.append({"dim": str(dim), "label": _SERIES_LABELS.get(str(dim), str(dim)).capitalize(), "rows": rows,
                    "window": window})
    return out


def _vendor(report: dict[str, Any], money: Money) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if "vendor_share_by_workload" not in report:
        return None, None
    rows = [r for r in report.get("vendor_share_by_workload") or [] if isinstance(r, dict)]
    workloads: list[Any] = []
    providers: list[str] = []
    for r in rows:
        if r.get("workload_type") not in workloads:
            workloads.append(r.get("workload_type"))
        if str(r.get("provider")) not in providers:
            providers.append(str(r.get("provider")))
    shares = [[0.0] * len(workloads) for _ in providers]
    costs: list[list[str | None]] = [[None] * len(workloads) for _ in providers]
    for r in rows:
        i, j = providers.index(str(r.get("provider"))), workloads.index(r.get("workload_type"))
        shares[i][j] = float(_dec(r.get("share")) or 0)
        d = _dec(r.get("cost"))
        costs[i][j] = None if d is None else _plain(d)
    econ_rows = []
    econ = report.get("economics") if isinstance(report.get("economics"), dict) else {}
    for r in econ.get("by_workload") or []:
        if isinstance(r, dict):
            econ_rows.append({"key": key_label("workload_type", (r.get("key") or {}).get("workload_type")),
                              "calls": _int(r.get("calls")), "cost": money.cell(r.get("cost")),
                              "per_call": money.cell(r.get("cost_per_call")), "instances": _int(r.get("instances")),
                              "successful": _int(r.get("successful")),
                              "per_success": money.cell(r.get("cost_per_successful_task"))})
    page = {"rows": [{"workload": key_label("workload_type", r.get("workload_type")),
                      "provider": _clean(str(r.get("provider"))), "cost": money.cell(r.get("cost")),
                      "share": _share(r.get("share")), "calls": _int(r.get("calls"))} for r in rows],
            "economics": econ_rows}
    data = {"workloads": [key_label("workload_type", w)["text"] for w in workloads], "providers": providers,
            "shares": shares, "costs": costs}
    return page, data


def _trace_href(template: str | None, trace_id: Any) -> str | None:
    if not template or trace_id in (None, ""):
        return None
    return template.replace("{trace_id}", quote(str(trace_id), safe=""))


def _extra(report: dict[str, Any], money: Money, trace_url: str | None) -> list[dict[str, Any]]:
    """Generic sections other features plug in (``extra_sections``); malformed entries are skipped."""
    out: list[dict[str, Any]] = []
    extras = report.get("extra_sections")
    if not isinstance(extras, list):
        return out
    used: set[str] = set()
    for n, sec in enumerate(extras, 1):
        if not isinstance(sec, dict):
            continue
        raw_id = re.sub(r"[^A-Za-z0-9_]+", "-", str(sec.get("id") or ""))[:60].strip("-")
        sid = f"x-{raw_id}" if raw_id else f"x-section-{n}"
        while sid in used:
            sid += f"-{n}"
        used.add(sid)
        columns = [str(c) for c in sec.get("columns") or []] if isinstance(sec.get("columns"), list) else []
        rows = [list(r) for r in sec.get("rows") or [] if isinstance(r, (list, tuple))] \
            if isinstance(sec.get("rows"), list) else []
        ncols = max([len(columns)] + [len(r) for r in rows]) if (columns or rows) else 0
        columns += [""] * (ncols - len(columns))
        is_money = [c.endswith(("$", " USD")) for c in columns]
        trace_col = sec.get("trace_column")
        if not isinstance(trace_col, int):
            trace_col = next((i for i, c in enumerate(columns) if c.lower() in ("trace id", "trace_id")), None)
        numeric = [bool(rows) and all(_dec(r[i]) is not None for r in rows if i < len(r) and r[i] not in (None, ""))
                   for i in range(ncols)]
        if len(rows) > MAX_ROWS:
            rows = rows[:MAX_ROWS]
            sec = {**sec, "note": f"{sec.get('note') or ''} (first {MAX_ROWS} rows)".strip()}
        body = []
        for r in rows:
            cells = []
            for i in range(ncols):
                v = r[i] if i < len(r) else None
                cls = "num" if numeric[i] else ""
                if is_money[i] and _dec(v) is not None:
                    m = money.cell(v)
                    cells.append({"text": m["text"], "title": m["exact"], "v": m["v"], "cls": "num",  # type: ignore[index]
                                  "href": None})
                    continue
                if v is None or v == _OLD_MISSING:  # a missing key: labelled like the rollups, never a value
                    cells.append({"text": f"(no {columns[i] or 'value'})", "v": "", "cls": "key flag",
                                  "title": "", "href": None})
                    continue
                text = _clean(str(v))
                lab = key_label(columns[i], text) if not numeric[i] else {"text": text, "full": ""}
                cells.append({"text": lab["text"], "title": lab["full"], "v": text, "cls": cls,
                              "href": _trace_href(trace_url, text) if i == trace_col else None})
            body.append(cells)
        out.append({"id": sid, "title": _clean(str(sec.get("title") or sec.get("id") or f"Section {n}")),
                    "note": _clean(str(sec.get("note") or "")),
                    "columns": [{"label": c, "num": numeric[i]} for i, c in enumerate(columns)], "rows": body})
    return out


def _findings(report: dict[str, Any]) -> list[dict[str, str]]:
    """Every retry finding (any ``findings_by`` key) at or above ``FINDING_THRESHOLD`` percent, in report order."""
    retry = report.get("retry") if isinstance(report.get("retry"), dict) else {}
    out = []
    for f in retry.get("findings") or []:
        if not isinstance(f, dict) or not f.get("sentence"):
            continue
        share = _dec(f.get("share"))
        if share is not None and share < FINDING_THRESHOLD:
            continue
        sentence = _clean(str(f["sentence"]))
        out.append({"sentence": sentence if sentence.endswith(".") else sentence + ".",
                    "customer": _clean(str(f.get("customer_id") or ""))})
    return out


def _quality(report: dict[str, Any]) -> dict[str, Any]:
    unpriced = int(report.get("unpriced_calls") or 0)
    no_usage = int(report.get("no_usage_calls") or 0)
    models = [m for m in report.get("unpriced_models") or [] if isinstance(m, dict)]
    info = []
    for key, text in (("partial_calls", "partially priced calls (some token types had no price)"),
                      ("provided_calls", "calls costed from the vendor-reported cost"),
                      ("duplicate_spans", "duplicate spans ignored (counted once)"),
                      ("implausible_calls", "calls with a token count above the model's limits (flagged "
                       "implausible, priced and summed as reported: check them)")):
        if report.get(key):
            info.append(f"{_int(report.get(key))['text']} {text}")
    return {"ok": not unpriced and not no_usage and not info,
            "unpriced": f"{unpriced:,}" if unpriced else "", "no_usage": f"{no_usage:,}" if no_usage else "",
            "models": [{"model": _clean(str(m.get("model"))), "provider": _clean(str(m.get("provider") or "")),
                        "calls": _int(m.get("calls"))["text"]} for m in models[:8]],
            "more_models": len(models) - 8 if len(models) > 8 else 0, "info": info}


# ----------------------------------------------------------------------------------------------- assets


@lru_cache(maxsize=1)
def _assets() -> tuple[Any, str, str]:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_ASSETS / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)
    static = _ASSETS / "static"
    script = (static / "chart.umd.min.js").read_text("utf-8") + "\n" + (static / "report.js").read_text("utf-8")
    return env.get_template("report.html.j2"), script, (static / "report.css").read_text("utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _json_for_script(data: Any) -> str:
    """JSON that cannot end the <script> block it sits in, nor open a comment or CDATA section there."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_html(report: dict[str, Any], *, trace_url: str | None = None) -> str:
    """Render a report as one self-contained, interactive HTML page and return it.

    Contract:

    * ``report`` is the dict of ``build_report`` (or its JSON, loaded). Only ``total`` and ``calls`` are needed;
      every section (``series``/``growth``, ``top``/``top_other``, ``vendor_share_by_workload``/``economics``,
      ``retry.findings``, ``extra_sections``, ``alerts``) is drawn when present and left out when absent;
      malformed entries are skipped rather than raising.
    * ``extra_sections``: ``[{"id", "title", "note", "columns", "rows", "trace_column"?}]``, drawn as sortable
      tables; columns whose name ends in ``$`` are money. ``alerts``: ``[{"level": "warn"|"bad", "text"}]``.
    * ``trace_url``: a template such as ``http://jaeger:16686/trace/{trace_id}``; every trace id becomes a link.
    * The result is a complete UTF-8 document with no external resource; its CSP allows only its own inline
      script and style (by hash). All report-derived text is escaped by the template engine.
    * Deterministic: the same arguments always give the same string.
    """
    template, script, css = _assets()
    money = Money(report.get("currency"))
    series_dims, series_data = _series(report)
    vendor, vendor_data = _vendor(report, money)
    breakdowns = _breakdowns(report, money)
    extra = _extra(report, money, trace_url)
    nav = [("spend-over-time", "Over time")] if series_dims else []
    nav += [("breakdowns", "Breakdowns")] if breakdowns else []
    nav += [("vendor-share", "Vendors")] if vendor else []
    nav += [("rollup", "Table")] + [(s["id"], s["title"]) for s in extra]
    un = report.get("unattributed") if isinstance(report.get("unattributed"), dict) else {}
    un_share = _dec(un.get("share")) or Decimal(0)
    unpriced, no_usage = int(report.get("unpriced_calls") or 0), int(report.get("no_usage_calls") or 0)
    total = money.cell(report.get("total")) or money.cell("0")
    calls = _int(report.get("calls"))
    data = {"sign": money.sign, "places": money.places, "series": series_data, "vendor_share": vendor_data}
    page = {
        "version": __version__, "currency": money.code, "places": money.places,
        "by": [str(k) for k in report.get("by") or []],
        "generated": _fmt_timestamp(report.get("generated_at")), "generated_raw": report.get("generated_at") or "",
        "nav": nav, "period": _period(report), "total": total, "calls": calls["text"],
        "excluded": f"{unpriced + no_usage:,}" if unpriced + no_usage else "",
        "unattributed": {
            # any unattributed call is worth a look (even at 0.00%), 5% or more is a problem
            "level": "ok" if not un.get("calls") else ("bad" if un_share >= 5 else "warn"),
            "share": f"{un_share:.2f}%", "cost": money.cell(un.get("cost", "0")) or money.cell("0"),
            "calls": f"{_int(un.get('calls', 0))['text']} call{'' if un.get('calls') == 1 else 's'}",
            "required": " or ".join(str(k) for k in un.get("required_keys") or []) or "a required key"},
        "alerts": [{"level": "bad" if a.get("level") == "bad" else "warn", "text": _clean(str(a["text"]))}
                   for a in report.get("alerts") or [] if isinstance(a, dict) and a.get("text")],
        "quality": _quality(report), "findings": _findings(report),
        "series": series_dims, "growth": _growth(report, money), "breakdowns": breakdowns, "vendor": vendor,
        "rollup": _rollup(report, money), "extra": extra,
        "css": css, "script": script, "data_json": _json_for_script(data),
    }
    page["csp"] = (f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(css)}'; "
                   "img-src data:; base-uri 'none'; form-action 'none'")
    return template.render(page=page)
