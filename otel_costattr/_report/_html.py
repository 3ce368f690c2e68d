"""The HTML report (``otel-costattr report --format html``): one self-contained page a finance lead can open.

:func:`render_html` turns the plain data of :func:`otel_costattr._analysis._rollup.build_report` into a single HTML
document: inline CSS, charts drawn here as inline SVG, no JavaScript, no fonts, images or URLs to fetch. A
Content-Security-Policy ``<meta>`` forbids scripts and every network load, so even a report mailed around
and opened from disk cannot run or fetch anything.

Rules the page keeps:

* Money is shown exactly as the report gives it (decimal strings, exact sums of per-call costs): the
  displayed figure is built from the string's digits, never from a float. Floats are used only for chart
  geometry. Amounts get thousands separators, a currency sign and at least two decimals (appending zeros
  keeps the value exact); in tables the decimal points line up.
* Unknown is not zero: unattributed spend, unpriced calls and calls without usage are shown up front,
  with what they mean for the totals and how to fix them.
* Every string that came from telemetry (customer ids, models, keys, section titles) is HTML-escaped.
* The same report gives the same bytes: nothing depends on the time of rendering, ids are numbered in
  document order, and colours are assigned in a fixed order.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .._analysis._source import UNATTRIBUTED
from .._version import __version__

__all__ = ["render_html"]

# ---------------------------------------------------------------------------------------------------------
# Text and numbers
# ---------------------------------------------------------------------------------------------------------

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DEC_RE = re.compile(r"^(-?)(\d+)(?:\.(\d+))?$")
_FIGURE_SPACE = "\u2007"  # as wide as a digit in tabular figures: pads decimals without changing the value
_CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def _esc(value: Any) -> str:
    """``value`` as text safe in HTML/SVG element content and quoted attributes.

    Control characters (which HTML cannot carry) become U+FFFD, so odd bytes in an attribute value stay visible
    instead of breaking the document.
    """
    return html.escape(_CONTROL_RE.sub("\ufffd", str(value)), quote=True)


def _dec(value: Any) -> Decimal | None:
    """An exact Decimal for a report number (decimal string, int, Decimal), or None if it is not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        # str() of a float is its shortest round-tripping repr: the value as the JSON carried it.
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _f(value: Any) -> float:
    """A float for chart geometry only (never for a displayed figure); 0.0 for anything that is not a number."""
    d = _dec(value)
    return float(d) if d is not None else 0.0


def _plain_decimal(value: Any) -> tuple[str, str, str] | None:
    """``(sign, integer digits, fraction digits)`` of a number, from its own digits (no float, no rounding)."""
    if isinstance(value, str) and (m := _DEC_RE.match(value.strip())):
        sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    else:
        d = _dec(value)
        if d is None:
            return None
        m = _DEC_RE.match(format(d, "f"))
        if m is None:  # pragma: no cover - format(..., "f") of a finite Decimal always matches
            return None
        sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    whole = whole.lstrip("0") or "0"
    if sign and not whole.strip("0") and not frac.strip("0"):
        sign = ""  # "-0" and "-0.00" are just zero
    return sign, whole, frac


def _frac_len(value: Any) -> int:
    parts = _plain_decimal(value)
    return max(2, len(parts[2])) if parts else 2


class _Money:
    """Formats amounts in the report's currency (``$1,234.5`` -> ``$1,234.50``); exact, from the digits."""

    def __init__(self, currency: Any) -> None:
        code = str(currency or "USD")
        self.code = code
        self.sign = _CURRENCY_SIGNS.get(code, code + "\u00a0")

    def text(self, value: Any, pad_to: int = 0) -> str:
        """Plain text (escape it before use). ``pad_to`` pads the decimals with figure spaces, for alignment."""
        parts = _plain_decimal(value)
        if parts is None:
            return "—" if value is None else str(value)
        sign, whole, frac = parts
        frac = frac.ljust(2, "0")
        out = f"{'-' if sign else ''}{self.sign}{int(whole):,}.{frac}"
        return out + _FIGURE_SPACE * max(0, pad_to - len(frac))


def _int_text(value: Any) -> str:
    """A count with thousands separators; anything that is not an integer is shown as given."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    d = _dec(value)
    if d is not None and d == d.to_integral_value():
        return f"{int(d):,}"
    return "—" if value is None else str(value)


def _pct_text(value: Any) -> str:
    """A share (a percent string such as ``"18.70"``) as ``18.70%``, digits as given."""
    parts = _plain_decimal(value)
    if parts is None:
        return "—"
    sign, whole, frac = parts
    return f"{'-' if sign else ''}{whole}{'.' + frac if frac else ''}%"


def _plural(n: Any, word: str) -> str:
    """``1 call`` / ``3,000 calls``: the count formatted, the noun agreeing with it."""
    return f"{_int_text(n)} {word}{'' if n == 1 else 's'}"


def _text_width(text: str, size: float) -> float:
    """Rough rendered width of ``text`` in px; generous, because SVG text cannot be measured here."""
    wide = sum(1 for ch in text if ch.isupper() or ch in "mwMW%@$")
    return (len(text) * 0.56 + wide * 0.16) * size


def _clip(text: str, size: float, width: float) -> str:
    """``text`` cut with an ellipsis so it fits ``width`` px at ``size``; the full text goes in a <title>."""
    if _text_width(text, size) <= width + 0.5:  # tolerance: an estimate, compared with float sums
        return text
    while text and _text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def _fmt_timestamp(value: Any) -> str:
    """An ISO timestamp as ``2025-11-13 00:00 UTC`` (seconds dropped when zero); anything else as given."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    text = dt.strftime("%Y-%m-%d %H:%M" if dt.second == 0 else "%Y-%m-%d %H:%M:%S")
    offset = dt.utcoffset()
    if offset is None:
        return text
    return text + (" UTC" if not offset else dt.strftime(" %z"))


def _parse_day(value: Any) -> date | None:
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


_NUM_ATTR = ' class="num"'
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _is_unattributed(value: Any) -> bool:
    return value == UNATTRIBUTED


# ---------------------------------------------------------------------------------------------------------
# Colours. A fixed order, so the same providers get the same colours every time.
# ---------------------------------------------------------------------------------------------------------

_BAR = "#34568b"
_FLAG = "#c2410c"  # unattributed spend: the one warm colour in the charts
_SERIES = (  # (fill, label colour on it): a muted, colour-blind-friendlier set with no orange (orange = flag)
    ("#34568b", "#ffffff"), ("#3f9b8f", "#ffffff"), ("#8c6bb1", "#ffffff"), ("#d9b84a", "#1f2933"),
    ("#6b8e23", "#ffffff"), ("#c9637a", "#ffffff"), ("#7f7f7f", "#ffffff"), ("#9fc5e8", "#1f2933"),
    ("#a0522d", "#ffffff"), ("#b7b7b7", "#1f2933"),
)


class _Ids:
    """Element ids numbered in document order: unique on the page and identical between runs."""

    def __init__(self) -> None:
        self._n = 0

    def __call__(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n}"


def _hatch(pattern_id: str, color: str) -> str:
    # Hatching (not only colour) marks unattributed spend, so it survives greyscale printing.
    return (f'<defs><pattern id="{pattern_id}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{color}" fill-opacity="0.28"/>'
            f'<rect width="2.5" height="6" fill="{color}"/></pattern></defs>')


def _svg_open(ids: _Ids, width: float, height: float, title: str, desc: str) -> tuple[str, str]:
    """The opening of an accessible chart (a <title> and <desc> it is labelled by) and the id prefix used."""
    base = ids("chart")
    return (f'<svg class="chart" viewBox="0 0 {width:g} {height:g}" width="{width:g}" height="{height:g}" '
            f'role="img" aria-labelledby="{base}-t {base}-d" preserveAspectRatio="xMinYMin meet">'
            f'<title id="{base}-t">{_esc(title)}</title><desc id="{base}-d">{_esc(desc)}</desc>'), base


# ---------------------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bar:
    label: str
    value: float  # geometry only
    value_text: str  # exact, already formatted
    note: str = ""  # e.g. the share: a lighter second column after the value
    tip: str = ""
    flagged: bool = False


def _hbar_chart(ids: _Ids, bars: Sequence[_Bar], *, title: str, desc: str, width: float = 560) -> str:
    """Horizontal bars scaled to the largest value: label left, then the bar, then two right-aligned columns
    (the exact value, and its note such as the share), so the figures line up like a table's."""
    size, row_h, bar_h, top = 12.5, 30, 18, 6
    label_w = min(max(max((_text_width(b.label, size) for b in bars), default=40) + 16, 48.0), width * 0.34)
    value_w = max((_text_width(b.value_text, size) for b in bars), default=40)
    note_w = max((_text_width(b.note, size - 1) for b in bars if b.note), default=0.0)
    note_x = width  # right edge of the notes
    value_x = width - (note_w + 14 if note_w else 0)  # right edge of the values
    bar_x = label_w
    bar_w = max(40.0, value_x - value_w - 14 - bar_x)
    height = top + row_h * len(bars) + 6
    top_value = max((b.value for b in bars), default=0.0)
    svg, base = _svg_open(ids, width, height, title, desc)
    out = [svg]
    if any(b.flagged for b in bars):
        out.append(_hatch(f"{base}-h", _FLAG))
    out.append(f'<line x1="{bar_x:.1f}" y1="{top}" x2="{bar_x:.1f}" y2="{height - 4}" class="axis"/>')
    for i, b in enumerate(bars):
        y = top + i * row_h
        cy = y + row_h / 2
        w = bar_w * b.value / top_value if top_value > 0 and b.value > 0 else 0.0
        w = max(w, 1.5)  # a hairline keeps a zero or tiny bar visible as "present but small"
        label_cls = "lbl flag" if b.flagged else "lbl"
        out.append(f'<g><title>{_esc(b.tip or b.label)}</title>')
        out.append(f'<text x="{bar_x - 8:.1f}" y="{cy:.1f}" class="{label_cls}" text-anchor="end" '
                   f'dominant-baseline="central">{_esc(_clip(b.label, size, label_w - 14))}</text>')
        if b.flagged:
            out.append(f'<rect x="{bar_x:.1f}" y="{cy - bar_h / 2:.1f}" width="{w:.1f}" height="{bar_h}" '
                       f'fill="url(#{base}-h)" stroke="{_FLAG}" stroke-width="1" rx="2"/>')
        else:
            out.append(f'<rect x="{bar_x:.1f}" y="{cy - bar_h / 2:.1f}" width="{w:.1f}" height="{bar_h}" '
                       f'fill="{_BAR}" rx="2"/>')
        out.append(f'<text x="{value_x:.1f}" y="{cy:.1f}" class="val" text-anchor="end" '
                   f'dominant-baseline="central">{_esc(b.value_text)}</text>')
        if b.note:
            out.append(f'<text x="{note_x:.1f}" y="{cy:.1f}" class="note" text-anchor="end" '
                       f'dominant-baseline="central">{_esc(b.note)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _nice_step(top: float, target: int = 5) -> Decimal:
    """A round axis step (1, 2, 2.5 or 5 times a power of ten) giving about ``target`` gridlines up to ``top``."""
    if top <= 0:
        return Decimal(1)
    raw = top / target
    exp = math.floor(math.log10(raw))
    base = raw / 10 ** exp
    mult = next(m for m in ("1", "2", "2.5", "5", "10") if base <= float(m) + 1e-9)
    return Decimal(mult).scaleb(exp)


def _axis_money(money: _Money, value: Decimal, step: Decimal) -> str:
    """An axis label: whole amounts when the step is whole (``$2``), else the step's decimals (``$0.50``)."""
    if step == step.to_integral_value():
        return f"{money.sign}{int(value):,}"
    places = max(2, -step.normalize().as_tuple().exponent)
    return f"{money.sign}{value:,.{places}f}"


def _day_chart(ids: _Ids, money: _Money, by_day: Sequence[dict[str, Any]], width: float = 1140) -> str:
    """Spend per day as vertical bars on a dollar axis. Missing days inside the range are drawn as zero."""
    points: list[tuple[str, Any, Any, date | None]] = [
        (str(d.get("day", "")), d.get("cost"), d.get("calls"), _parse_day(d.get("day"))) for d in by_day]
    parsed = [p[3] for p in points]
    if points and all(parsed) and len(set(parsed)) == len(parsed):
        # A gap in the rollup is a day with no calls: draw it, or the time axis would silently compress.
        first, last = min(parsed), max(parsed)  # type: ignore[type-var]
        if (last - first).days <= 731:
            by_date = {p[3]: p for p in points}
            points = [by_date.get(first + timedelta(n), ((first + timedelta(n)).isoformat(), None, 0,
                                                           first + timedelta(n)))
                      for n in range((last - first).days + 1)]
    height, left, right, top, bottom = 290, 78, 12, 26, 32
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [_f(p[1]) for p in points]
    step = _nice_step(max(values, default=0.0))
    top_tick = step
    while float(top_tick) < max(values, default=0.0) - 1e-12:
        top_tick += step
    scale = plot_h / float(top_tick)
    n = max(1, len(points))
    slot = plot_w / n
    bar_w = min(64.0, max(1.0, slot * 0.72))  # a few days must not become slabs
    desc = f"{_plural(len(points), 'day')}; one bar per day, height is that day's spend in {money.code}."
    svg, _ = _svg_open(ids, width, height, "Spend per day", desc)
    out = [svg]
    tick = Decimal(0)
    while tick <= top_tick:
        y = top + plot_h - float(tick) * scale
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                   f'class="{"axis" if tick == 0 else "grid"}"/>')
        out.append(f'<text x="{left - 8}" y="{y:.1f}" class="tick" text-anchor="end" dominant-baseline="central">'
                   f'{_esc(_axis_money(money, tick, step))}</text>')
        tick += step
    years = {p[3].year for p in points if p[3]}

    def label(p: tuple[str, Any, Any, date | None]) -> str:
        d = p[3]
        if d is None:
            return p[0]
        return f"{_MONTHS[d.month - 1]} {d.day}" if len(years) == 1 else d.isoformat()
    labels = [label(p) for p in points]
    label_w = max((_text_width(s, 11) for s in labels), default=30) + 10
    every = max(1, math.ceil(label_w / slot))
    show_values = all(_text_width(money.text(p[1]), 10.5) + 4 <= slot for p in points if p[1] is not None)
    for i, (p, v) in enumerate(zip(points, values)):
        x = left + i * slot + (slot - bar_w) / 2
        h = max(0.0, v * scale)
        y = top + plot_h - h
        calls = _int_text(p[2]) if p[2] is not None else "0"
        tip = f"{p[0]}: {money.text(p[1]) if p[1] is not None else 'no calls'}, {calls} calls"
        out.append(f'<g><title>{_esc(tip)}</title>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{_BAR}"/>')
        if show_values and p[1] is not None:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 6:.1f}" class="bv" text-anchor="middle">'
                       f'{_esc(money.text(p[1]))}</text>')
        out.append("</g>")
        if i % every == 0:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 18}" class="tick" text-anchor="middle">'
                       f'{_esc(labels[i])}</text>')
    out.append("</svg>")
    return "".join(out)


def _stacked_share_chart(ids: _Ids, money: _Money, rows: Sequence[dict[str, Any]], width: float = 1140) -> str:
    """100% stacked bars: one per workload type, one segment per provider, with a legend above."""
    workloads: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        workloads.setdefault(str(r.get("workload_type", UNATTRIBUTED)), []).append(r)
    # Colours by each provider's total spend (ties by name), so the biggest vendors get the strongest colours.
    totals: dict[str, Decimal] = {}
    for r in rows:
        p = str(r.get("provider", "unknown"))
        totals[p] = totals.get(p, Decimal(0)) + (_dec(r.get("cost")) or Decimal(0))
    providers = sorted(totals, key=lambda p: (-totals[p], p))
    colors = {p: _SERIES[i % len(_SERIES)] for i, p in enumerate(providers)}

    size = 12.5
    label_w = min(max(max((_text_width(w, size) for w in workloads), default=40) + 14, 60.0), width * 0.22)
    workload_totals = {w: sum((_dec(r.get("cost")) or Decimal(0) for r in rs), Decimal(0))
                       for w, rs in workloads.items()}
    value_w = max((_text_width(money.text(t), size) for t in workload_totals.values()), default=40) + 16
    # legend: wrap items into rows that leave room for the column heading at the right
    heading = "Workload spend"
    legend_end = width - max(value_w, _text_width(heading, 11) + 10) - 10
    legend: list[tuple[float, float, str]] = []
    lx, ly = label_w, 4.0
    for p in providers:
        p_label = _clip(p, size, 220)
        item_w = 20 + _text_width(p_label, size) + 22
        if lx + item_w > legend_end and lx > label_w:
            lx, ly = label_w, ly + 22
        legend.append((lx, ly, p))
        lx += item_w
    top = ly + 34
    row_h, bar_h = 40, 26
    bar_x, bar_w = label_w, width - label_w - value_w
    height = top + row_h * len(workloads) + 4
    desc = (f"For each workload type, each provider's share of that workload's spend; "
            f"providers: {', '.join(providers)}.")
    svg, _ = _svg_open(ids, width, height, "Vendor share by workload type", desc)
    out = [svg]
    for x, y, p in legend:
        fill, _ = colors[p]
        out.append(f'<g><title>{_esc(p)}</title><rect x="{x:.1f}" y="{y:.1f}" width="14" height="14" rx="2" '
                   f'fill="{fill}"/><text x="{x + 20:.1f}" y="{y + 7:.1f}" class="lbl" dominant-baseline="central">'
                   f'{_esc(_clip(p, size, 220))}</text></g>')
    out.append(f'<text x="{width:.1f}" y="{ly + 7:.1f}" class="tick" text-anchor="end" '
               f'dominant-baseline="central">{heading}</text>')
    rank = {p: i for i, p in enumerate(providers)}
    for i, (w, rs) in enumerate(workloads.items()):
        # the same provider order in every bar, so a colour sits in the same place down the chart
        rs = sorted(rs, key=lambda r: rank[str(r.get("provider", "unknown"))])
        y = top + i * row_h
        cy = y + bar_h / 2
        flagged = _is_unattributed(w)
        out.append(f'<g><title>{_esc(w)}</title><text x="{bar_x - 10:.1f}" y="{cy:.1f}" '
                   f'class="{"lbl flag" if flagged else "lbl"}" text-anchor="end" dominant-baseline="central">'
                   f'{_esc(_clip(w, size, label_w - 14))}</text></g>')
        costs = [max(0.0, _f(r.get("cost"))) for r in rs]
        whole = sum(costs)
        x = bar_x
        if whole <= 0:
            out.append(f'<rect x="{bar_x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{bar_h}" class="empty"/>'
                       f'<text x="{bar_x + 10:.1f}" y="{cy:.1f}" class="note" dominant-baseline="central">'
                       f'no priced spend</text>')
        for r, c in zip(rs, costs):
            if whole <= 0 or c <= 0:
                continue
            seg = bar_w * c / whole
            p = str(r.get("provider", "unknown"))
            fill, ink = colors[p]
            share = _pct_text(r.get("share"))
            tip = f"{w} · {p}: {share} of {w} spend, {money.text(r.get('cost'))}, {_int_text(r.get('calls'))} calls"
            out.append(f'<g><title>{_esc(tip)}</title><rect x="{x:.1f}" y="{y:.1f}" width="{seg:.1f}" '
                       f'height="{bar_h}" fill="{fill}" stroke="#ffffff" stroke-width="1"/>')
            for text in (f"{p} {share}", share):
                if _text_width(text, 11.5) + 12 <= seg:
                    out.append(f'<text x="{x + seg / 2:.1f}" y="{cy:.1f}" class="seg" fill="{ink}" '
                               f'text-anchor="middle" dominant-baseline="central">{_esc(text)}</text>')
                    break
            out.append("</g>")
            x += seg
        out.append(f'<text x="{width:.1f}" y="{cy:.1f}" class="val" text-anchor="end" '
                   f'dominant-baseline="central">{_esc(money.text(workload_totals[w]))}</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# Page parts
# ---------------------------------------------------------------------------------------------------------

_TOP_TITLES = {  # the known ``top`` lists, in page order
    "customer_id": ("Top customers", "customer"),
    "task_id": ("Cost per task", "task"),
    "agent_id": ("Cost per agent", "agent"),
    "skill_id": ("Cost per skill", "skill"),
    "model": ("Cost per model", "model"),
    "provider": ("Cost per provider", "provider"),
    "process_id": ("Cost per process", "process"),
}
_TOKEN_COLS = (("input_tokens", "Input tok."), ("output_tokens", "Output tok."),
               ("cache_read_tokens", "Cache read"), ("cache_write_tokens", "Cache write"),
               ("reasoning_tokens", "Reasoning"))


def _period(report: dict[str, Any]) -> tuple[str, str]:
    """The period as (headline, detail): the requested window if any, else the days that had spend."""
    since, until = report.get("since"), report.get("until")
    if since or until:
        head = f"{_fmt_timestamp(since) if since else 'start'} → {_fmt_timestamp(until) if until else 'now'}"
        return head, "requested window; the end is exclusive" if until else "requested window"
    days = [d.get("day") for d in report.get("by_day") or [] if isinstance(d, dict) and d.get("day")]
    if days:
        first, last = min(map(str, days)), max(map(str, days))
        span = ""
        if (a := _parse_day(first)) and (b := _parse_day(last)):
            span = f"{_plural((b - a).days + 1, 'day')}; "
        return (first if first == last else f"{first} → {last}"), f"{span}all recorded spans (no window given)"
    return "All recorded spans", "no time window given"


def _kpi_size(text: str) -> str:
    """A smaller type class for long headline figures: money is never wrapped or cut, so it must fit the card."""
    n = len(text)
    return "" if n <= 11 else " long" if n <= 14 else " xlong" if n <= 18 else " xxlong"


def _headline(report: dict[str, Any], money: _Money) -> str:
    """The four headline cards: total, calls, period and the unattributed share (coloured by severity)."""
    calls = report.get("calls")
    unpriced = report.get("unpriced_calls") or 0
    no_usage = report.get("no_usage_calls") or 0
    un = report.get("unattributed") or {}
    keys = [str(k) for k in un.get("required_keys") or []]
    total = money.text(report.get("total"))
    period, period_note = _period(report)
    # break a long period only at the arrow, never inside a date (dates contain hyphens)
    period_html = " → ".join(f'<span class="nowrap">{_esc(part)}</span>' for part in period.split(" → "))
    share = _dec(un.get("share")) or Decimal(0)
    # Unattributed spend cannot be billed or charged back; any is worth a look, 5% or more is a problem.
    level = "ok" if share <= 0 else ("bad" if share >= 5 else "warn")
    missing = " or ".join(f"<code>{_esc(k)}</code>" for k in keys) or "a required key"
    excluded = (_int_text(unpriced + no_usage) if isinstance(unpriced, int) and isinstance(no_usage, int)
                else None)
    calls_note = (f"{excluded} of them without a known cost" if excluded and excluded != "0"
                  else "every call priced")
    cards = [
        f'<div class="kpi kpi-total"><div class="kpi-label">Total spend</div>'
        f'<div class="kpi-value{_kpi_size(total)}" data-field="total">{_esc(total)}</div>'
        f'<div class="kpi-note">{_esc(money.code)}, exact sum of priced calls</div></div>',
        f'<div class="kpi"><div class="kpi-label">Calls</div>'
        f'<div class="kpi-value">{_esc(_int_text(calls))}</div><div class="kpi-note">{calls_note}</div></div>',
        f'<div class="kpi"><div class="kpi-label">Period</div>'
        f'<div class="kpi-value kpi-period">{period_html}</div><div class="kpi-note">{_esc(period_note)}</div></div>',
        f'<div class="kpi kpi-unattr {level}"><div class="kpi-label">Unattributed spend</div>'
        f'<div class="kpi-value" data-field="unattributed-share">{_esc(_pct_text(un.get("share", "0")))}</div>'
        + (f'<div class="kpi-note">Every call carries {missing}.</div></div>' if level == "ok" else
         f'<div class="kpi-note"><strong>{_esc(money.text(un.get("cost", "0")))}</strong> over '
         f'{_esc(_plural(un.get("calls", 0), "call"))} with no {missing}: not billable to anyone until tagged'
         "</div></div>"),
    ]
    return f'<section class="headline" aria-label="Summary">{"".join(cards)}</section>'


def _warnings(report: dict[str, Any]) -> str:
    """The "unknown is not zero" cards: calls whose cost is unknown, why, and how to fix it."""
    unpriced = report.get("unpriced_calls") or 0
    no_usage = report.get("no_usage_calls") or 0
    items = []
    if unpriced:
        models = report.get("unpriced_models") or []
        listed = "".join(
            f"<li><code>{_esc(m.get('model', 'unknown'))}</code> <span class=\"muted\">({_esc(m.get('provider', ''))})"
            f"</span> <span class=\"num\">{_esc(_int_text(m.get('calls')))} calls</span></li>"
            for m in models[:8] if isinstance(m, dict))
        more = f"<li class=\"muted\">and {len(models) - 8} more models</li>" if len(models) > 8 else ""
        items.append(
            f'<div class="warn-card" role="note"><div class="warn-title"><span class="warn-icon" aria-hidden="true">!'
            f'</span><span class="num">{_esc(_int_text(unpriced))}</span> unpriced calls</div>'
            f"<p>Their models are not in the price tables, so their cost is <strong>unknown, not zero</strong>: "
            f"they are excluded from every total on this page.</p>"
            + (f'<ul class="models">{listed}{more}</ul>' if listed else "")
            + "<p class=\"fix\"><strong>Fix:</strong> add the missing models with a pricing overlay "
            "(<code>--pricing overlay.toml</code> or <code>OTEL_COSTATTR_PRICING</code>; check it with "
            "<code>otel-costattr pricing validate</code>), ingest the spans with it, and re-run the report.</p></div>")
    if no_usage:
        items.append(
            f'<div class="warn-card" role="note"><div class="warn-title"><span class="warn-icon" aria-hidden="true">!'
            f'</span><span class="num">{_esc(_int_text(no_usage))}</span> calls without usage</div>'
            f"<p>These calls reported no token counts (typically streamed responses, or errors), so their cost is "
            f"<strong>unknown, not zero</strong>: they are excluded from every total on this page.</p>"
            f"<p class=\"fix\"><strong>Fix:</strong> enable <code>include_usage</code> on streaming calls "
            f"(<code>stream_options: {{\"include_usage\": true}}</code>) so every response reports its tokens.</p>"
            f"</div>")
    info = []
    for key, text in (("partial_calls", "partially priced calls (some token types had no price)"),
                      ("provided_calls", "calls costed from the vendor-reported cost"),
                      ("duplicate_spans", "duplicate spans ignored (counted once)")):
        v = report.get(key)
        if v:
            info.append(f'<li><span class="num">{_esc(_int_text(v))}</span> {text}</li>')
    if not items and not info:
        return ('<section class="quality ok" aria-label="Data quality"><p>Every call was priced and reported its '
                'usage: nothing is excluded from the totals.</p></section>')
    info_html = f'<ul class="info">{"".join(info)}</ul>' if info else ""
    return (f'<section class="quality" aria-label="Data quality">'
            f'<div class="warn-grid">{"".join(items)}</div>{info_html}</section>')


def _alerts(report: dict[str, Any]) -> str:
    """A compact line of alerts (e.g. budgets) near the top: ``report["alerts"]`` = ``[{"level", "text"}]``."""
    items = [a for a in report.get("alerts") or [] if isinstance(a, dict) and a.get("text")]
    if not items:
        return ""
    lis = "".join(f'<li class="alert {"bad" if a.get("level") == "bad" else "warn"}">{_esc(a["text"])}</li>'
                  for a in items)
    return f'<section class="alerts" aria-label="Alerts"><ul>{lis}</ul></section>'


def _section(section_id: str, title: str, body: str, note: str = "", cls: str = "") -> str:
    note_html = f'<p class="section-note">{note}</p>' if note else ""
    return (f'<section class="card {cls}" id="{_esc(section_id)}" aria-labelledby="{_esc(section_id)}-h">'
            f'<h2 id="{_esc(section_id)}-h">{_esc(title)}</h2>{note_html}{body}</section>')


def _spend_over_time(report: dict[str, Any], money: _Money, ids: _Ids) -> str | None:
    days = [d for d in report.get("by_day") or [] if isinstance(d, dict)]
    if "by_day" not in report:
        return None
    if not days:
        return _section("spend-over-time", "Spend over time", '<p class="empty-note">No calls in this period.</p>')
    peak = max(days, key=lambda d: (_dec(d.get("cost")) or Decimal(0)))
    note = (f"Priced spend per UTC day. Peak: <strong>{_esc(money.text(peak.get('cost')))}</strong> on "
            f"{_esc(peak.get('day'))} ({_esc(_plural(peak.get('calls'), 'call'))}). Hover a bar for its exact "
            f"figure.")
    return _section("spend-over-time", "Spend over time", _day_chart(ids, money, days), note)


def _top_bars(rows: Sequence[dict[str, Any]], key: str, money: _Money) -> list[_Bar]:
    bars = []
    pad = max((_frac_len(r.get("cost")) for r in rows), default=2)
    for r in rows:
        label = str((r.get("key") or {}).get(key, ""))
        value = money.text(r.get("cost"), pad)
        share = _pct_text(r.get("share"))
        tip = f"{label}: {money.text(r.get('cost'))} ({share} of spend), {_int_text(r.get('calls'))} calls"
        bars.append(_Bar(label, _f(r.get("cost")), value, share, tip, _is_unattributed(label)))
    return bars


def _top_sections(report: dict[str, Any], money: _Money, ids: _Ids) -> str | None:
    top = report.get("top")
    if not isinstance(top, dict):
        return None
    known = [k for k in _TOP_TITLES if k in top]
    order = known + sorted(str(k) for k in top if k not in _TOP_TITLES)
    panels, untagged, flagged = [], [], False
    for key in order:
        rows = [r for r in top.get(key) or [] if isinstance(r, dict)]
        title, noun = _TOP_TITLES.get(key, (f"Cost per {key}", key))
        if rows and all(_is_unattributed((r.get("key") or {}).get(key)) for r in rows):
            untagged.append(key)  # nothing to compare: say so in one line instead of a single flagged bar
            continue
        if not rows:
            body = '<p class="empty-note">No calls.</p>'
        else:
            bars = _top_bars(rows, key, money)
            flagged = flagged or any(b.flagged for b in bars)
            body = _hbar_chart(ids, bars, title=title,
                               desc=f"Spend per {noun}, largest first, with each one's share of total spend.")
        panels.append(f'<div class="panel"><h3>{_esc(title)}</h3>{body}</div>')
    if not panels and not untagged:
        return None
    note = "The ten largest of each, with their share of total spend."
    if flagged:
        note += " <span class=\"flag-key\">Hatched</span> bars are spend with no value for that key."
    if untagged:
        note += (" Not tagged at all in this period (all spend unattributed): "
                 + ", ".join(f"<code>{_esc(k)}</code>" for k in untagged) + ".")
    return _section("breakdowns", "Where the money goes", f'<div class="panels">{"".join(panels)}</div>', note)


def _vendor_share(report: dict[str, Any], money: _Money, ids: _Ids) -> str | None:
    if "vendor_share_by_workload" not in report:
        return None
    rows = [r for r in report.get("vendor_share_by_workload") or [] if isinstance(r, dict)]
    if not rows:
        body = '<p class="empty-note">No calls in this period.</p>'
    else:
        body = _stacked_share_chart(ids, money, rows)
    note = ("Each bar is one workload type (<code>workload_type</code>) split by provider; the amount at the right "
            "is that workload's priced spend.")
    return _section("vendor-share", "Vendor share by workload type", body, note)


def _rollup_table(report: dict[str, Any], money: _Money) -> str:
    by = [str(k) for k in report.get("by") or []]
    rows = [r for r in report.get("rows") or [] if isinstance(r, dict)]
    other = report.get("other") if isinstance(report.get("other"), dict) else None
    all_rows = rows + ([other] if other else [])
    pad = max([_frac_len(r.get("cost")) for r in all_rows] + [_frac_len(report.get("total"))])
    # Token columns that are zero in every row say nothing and push the table past the page width:
    # they are dropped and named in the caption instead.
    token_cols = [(c, label) for c, label in _TOKEN_COLS if not all_rows or any(r.get(c) for r in all_rows)]
    dropped = [label.lower().rstrip(".") for c, label in _TOKEN_COLS if (c, label) not in token_cols]
    head = "".join(f'<th scope="col">{_esc(k)}</th>' for k in by)
    head += ('<th scope="col" class="num">Cost</th><th scope="col" class="share-col">Share</th>'
             '<th scope="col" class="num">Calls</th>'
             + "".join(f'<th scope="col" class="num">{label}</th>' for _, label in token_cols)
             + '<th scope="col" class="num">Unpriced</th><th scope="col" class="num">No usage</th>')

    def share_cell(value: Any) -> str:
        width = min(100.0, max(0.0, _f(value)))
        return (f'<td class="share-col"><span class="sharebar" aria-hidden="true"><span style="width:{width:.2f}%">'
                f'</span></span><span class="num">{_esc(_pct_text(value))}</span></td>')

    def numbers(r: dict[str, Any]) -> str:
        cells = [f'<td class="num">{_esc(money.text(r.get("cost"), pad))}</td>', share_cell(r.get("share")),
                 f'<td class="num">{_esc(_int_text(r.get("calls")))}</td>']
        cells += [f'<td class="num">{_esc(_int_text(r.get(c, 0)))}</td>' for c, _ in token_cols]
        for c in ("unpriced_calls", "no_usage_calls"):
            v = r.get(c, 0)
            cells.append(f'<td class="num{" warn-num" if v else ""}">{_esc(_int_text(v))}</td>')
        return "".join(cells)

    body = []
    for r in rows:
        key = r.get("key") or {}
        flagged = any(_is_unattributed(key.get(k)) for k in by)
        cells = []
        for i, k in enumerate(by):
            v = key.get(k, "")
            tag = "th" if i == 0 else "td"
            scope = ' scope="row"' if i == 0 else ""
            if _is_unattributed(v):
                cells.append(f'<{tag}{scope} class="key flag"><span class="nowrap">'
                             f'<span class="badge">missing</span> {_esc(v)}</span></{tag}>')
            else:
                cells.append(f'<{tag}{scope} class="key">{_esc(v)}</{tag}>')
        row_attr = ' class="unattr"' if flagged else ""
        body.append(f'<tr{row_attr}>{"".join(cells)}{numbers(r)}</tr>')
    if other:
        span = f' colspan="{len(by)}"' if len(by) > 1 else ""
        body.append(f'<tr class="other"><th scope="row"{span}>Other ({_esc(_int_text(other.get("rows")))} more rows)'
                    f'</th>{numbers(other)}</tr>')
    if not body:
        body.append(f'<tr><td colspan="{len(by) + 5 + len(token_cols)}" class="empty-note">No calls in this period.'
                    f'</td></tr>')

    # The footer adds up the rows; they partition all calls, so the sums are the report's totals.
    def total(col: str) -> str:
        vals = [r.get(col) for r in all_rows]
        return _int_text(sum(v for v in vals if isinstance(v, int) and not isinstance(v, bool)))
    span = f' colspan="{len(by)}"' if len(by) > 1 else ""
    foot = (f'<tr><th scope="row"{span}>Total</th><td class="num">{_esc(money.text(report.get("total"), pad))}</td>'
            f'<td class="share-col"></td><td class="num">{_esc(_int_text(report.get("calls")))}</td>'
            + "".join(f'<td class="num">{total(c)}</td>' for c, _ in token_cols)
            + f'<td class="num">{_esc(_int_text(report.get("unpriced_calls", 0)))}</td>'
            f'<td class="num">{_esc(_int_text(report.get("no_usage_calls", 0)))}</td></tr>')
    title = "Spend by " + " × ".join(by) if by else "Spend"
    caption = f"Cost in {_esc(money.code)}, exact; share of total spend."
    if any(_is_unattributed((r.get("key") or {}).get(k)) for r in rows for k in by):
        caption += " Rows marked <span class=\"badge\">missing</span> have no value for that key."
    if dropped:
        caption += f" No {', '.join(dropped[:-1]) + ' or ' + dropped[-1] if len(dropped) > 1 else dropped[0]} " \
                   "tokens in this period (columns omitted)."
    table = (f'<div class="table-wrap"><table class="rollup"><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody><tfoot>{foot}</tfoot></table></div>')
    return _section("rollup", title, table)


def _extra_sections(report: dict[str, Any], ids: _Ids) -> list[tuple[str, str, str]]:
    """Generic sections other features plug in: ``(id, title, html)`` each; malformed entries are skipped."""
    out: list[tuple[str, str, str]] = []
    extras = report.get("extra_sections")
    if not isinstance(extras, list):
        return out
    used: set[str] = set()
    for n, sec in enumerate(extras, 1):
        if not isinstance(sec, dict):
            continue
        # ids end up in id= and href="#...": keep letters, digits, _ and single dashes only
        raw_id = re.sub(r"[^A-Za-z0-9_]+", "-", str(sec.get("id") or ""))[:60].strip("-")
        sid = f"x-{raw_id}" if raw_id else f"x-section-{n}"
        while sid in used:
            sid += f"-{n}"
        used.add(sid)
        title = str(sec.get("title") or sec.get("id") or f"Section {n}")
        columns = [str(c) for c in sec.get("columns") or []] if isinstance(sec.get("columns"), list) else []
        rows = [r for r in sec.get("rows") or [] if isinstance(r, (list, tuple))] \
            if isinstance(sec.get("rows"), list) else []
        ncols = max([len(columns)] + [len(r) for r in rows]) if (columns or rows) else 0
        parts = []
        chart = sec.get("chart")
        if isinstance(chart, dict) and chart.get("type", "bar") == "bar" and rows:
            li, vi = chart.get("label_column"), chart.get("value_column")
            if isinstance(li, int) and isinstance(vi, int) and 0 <= li < ncols and 0 <= vi < ncols:
                bars = []
                for r in rows:
                    label = str(r[li]) if li < len(r) and r[li] is not None else ""
                    value = r[vi] if vi < len(r) else None
                    bars.append(_Bar(label, _f(value), "—" if value is None else str(value),
                                     tip=f"{label}: {'—' if value is None else value}",
                                     flagged=_is_unattributed(label)))
                vname = columns[vi] if vi < len(columns) else "value"
                parts.append(_hbar_chart(ids, bars, title=title, width=1140,
                                         desc=f"{vname} per {columns[li] if li < len(columns) else 'row'}."))
        # numeric-looking columns are right-aligned so their digits line up
        numeric = [bool(rows) and all(_dec(r[i]) is not None for r in rows if i < len(r) and r[i] not in (None, ""))
                   for i in range(ncols)]
        head = "".join(f'<th scope="col"{_NUM_ATTR if numeric[i] else ""}>'
                       f'{_esc(columns[i] if i < len(columns) else "")}</th>' for i in range(ncols))
        body = []
        for r in rows:
            cells = []
            for i in range(ncols):
                v = r[i] if i < len(r) else ""
                text = "" if v is None else str(v)
                cls = ["num"] if numeric[i] else []
                if _is_unattributed(text):
                    cls.append("flag")
                attr = f' class="{" ".join(cls)}"' if cls else ""
                cells.append(f"<td{attr}>{_esc(text)}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        if ncols:
            thead = f"<thead><tr>{head}</tr></thead>" if columns else ""
            parts.append(f'<div class="table-wrap"><table class="extra">{thead}'
                         f'<tbody>{"".join(body) or ""}</tbody></table></div>')
        if not rows:
            parts.append('<p class="empty-note">Nothing to report.</p>')
        note = _esc(sec.get("note")) if sec.get("note") else ""
        out.append((sid, title, _section(sid, title, "".join(parts), note)))
    return out


_CSS = """
:root { --ink:#1f2933; --muted:#5b6673; --line:#dfe3e8; --bg:#f4f5f7; --card:#fff; --bar:#34568b;
  --flag:#c2410c; --flag-bg:#fff4ec; --warn:#92400e; --warn-bg:#fff8e6; --warn-line:#f0c36d;
  --ok:#1d6b47; --ok-bg:#eaf6ef; --bad:#b42318; --bad-bg:#fdecea; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans",
  sans-serif; }
.page { max-width: 1220px; margin: 0 auto; padding: 28px 24px 16px; }
header.top { display: flex; justify-content: space-between; align-items: flex-end; gap: 24px;
  border-bottom: 2px solid var(--ink); padding-bottom: 12px; margin-bottom: 18px; }
h1 { font-size: 24px; margin: 0 0 2px; letter-spacing: -0.01em; }
.subtitle { color: var(--muted); margin: 0; }
.subtitle code { color: var(--ink); }
nav.toc { font-size: 13px; color: var(--muted); text-align: right; }
nav.toc a { color: var(--bar); text-decoration: none; margin-left: 12px; white-space: nowrap; }
nav.toc a:hover { text-decoration: underline; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.92em;
  background: rgba(31,41,51,0.06); padding: 0 4px; border-radius: 3px; white-space: nowrap; }
.num, .kpi-value, td.num, th.num { font-variant-numeric: tabular-nums; }
.headline { display: grid; gap: 14px; margin-bottom: 14px;
  grid-template-columns: minmax(0, 1.2fr) minmax(0, 0.75fr) minmax(0, 1.35fr) minmax(0, 1.4fr); }
.kpi { background: var(--card); border: 1px solid var(--line); border-top: 4px solid #c5ccd4; border-radius: 8px;
  padding: 12px 18px 14px; }
.kpi-label { font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted);
  font-weight: 600; }
.kpi-value { font-size: 32px; font-weight: 700; letter-spacing: -0.02em; margin: 4px 0 2px; white-space: nowrap; }
.kpi-value.long { font-size: 26px; margin-top: 8px; }
.kpi-value.xlong { font-size: 21px; margin-top: 11px; }
.kpi-value.xxlong { font-size: 17px; margin-top: 13px; white-space: normal; overflow-wrap: anywhere; }
.kpi-period { font-size: 18px; margin: 10px 0 8px; white-space: normal; overflow-wrap: break-word; }
.kpi-note { font-size: 13px; color: var(--muted); }
.kpi-total { border-top-color: var(--bar); }
.kpi-unattr { border-top-color: var(--flag); background: var(--flag-bg); }
.kpi-unattr .kpi-value { font-size: 40px; line-height: 1.05; color: var(--flag); }
.kpi-unattr.bad { border-top-color: var(--bad); background: var(--bad-bg); }
.kpi-unattr.bad .kpi-value { color: var(--bad); }
.kpi-unattr.ok { border-top-color: var(--ok); background: var(--ok-bg); }
.kpi-unattr.ok .kpi-value { color: var(--ok); }
.kpi-unattr .kpi-note { color: var(--ink); }
.quality { margin-bottom: 14px; }
.quality.ok p { background: var(--ok-bg); color: var(--ok); border: 1px solid #b7dfc8; border-radius: 8px;
  padding: 10px 16px; margin: 0; }
.warn-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 14px; }
.warn-card { background: var(--warn-bg); border: 1px solid var(--warn-line); border-left: 5px solid #d97706;
  border-radius: 8px; padding: 12px 16px; }
.warn-card p { margin: 6px 0; }
.alerts ul { list-style: none; margin: 0 0 14px; padding: 0; }
.alerts .alert { padding: 6px 12px; margin: 0 0 4px; border-radius: 6px; font-weight: 600; }
.alerts .alert.warn { background: var(--warn-bg); color: var(--warn); border-left: 5px solid #d97706; }
.alerts .alert.bad { background: var(--bad-bg); color: var(--bad); border-left: 5px solid var(--bad); }
.warn-title { font-weight: 700; font-size: 16px; color: var(--warn); display: flex; align-items: center; gap: 8px; }
.warn-icon { display: inline-flex; width: 20px; height: 20px; border-radius: 50%; background: #d97706; color: #fff;
  font-size: 13px; align-items: center; justify-content: center; }
.warn-card .fix { color: var(--ink); }
ul.models { margin: 6px 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 6px 16px; }
ul.info { list-style: none; padding: 0; margin: 10px 2px 0; display: flex; flex-wrap: wrap; gap: 4px 24px;
  color: var(--muted); font-size: 13px; }
.muted { color: var(--muted); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px 18px;
  margin-bottom: 14px; }
h2 { font-size: 17px; margin: 0 0 4px; }
h3 { font-size: 14px; margin: 0 0 6px; color: var(--ink); }
.section-note { color: var(--muted); margin: 0 0 12px; font-size: 13px; }
.flag-key { color: var(--flag); font-weight: 600; }
.panels { display: grid; grid-template-columns: 1fr 1fr; gap: 18px 36px; }
.panel { min-width: 0; }
svg.chart { display: block; width: 100%; height: auto; overflow: visible; }
.card > svg.chart + .table-wrap { margin-top: 14px; }
svg .axis { stroke: #9aa5b1; stroke-width: 1; }
svg .grid { stroke: #e6e9ed; stroke-width: 1; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, "Liberation Sans", sans-serif; }
svg .tick { font-size: 11px; fill: var(--muted); font-variant-numeric: tabular-nums; }
svg .bv { font-size: 10.5px; fill: var(--ink); font-variant-numeric: tabular-nums; }
svg .lbl { font-size: 12.5px; fill: var(--ink); }
svg .lbl.flag { fill: var(--flag); font-style: italic; font-weight: 600; }
svg .val { font-size: 12.5px; fill: var(--ink); font-weight: 600; font-variant-numeric: tabular-nums; }
svg .note { font-size: 11.5px; fill: var(--muted); font-weight: 400; }
svg .seg { font-size: 11.5px; font-weight: 600; font-variant-numeric: tabular-nums; }
svg .empty { fill: #f1f3f5; stroke: var(--line); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
caption { caption-side: top; text-align: left; color: var(--muted); font-size: 13px; padding: 0 0 10px; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
thead th { font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted);
  border-bottom: 2px solid #c5ccd4; vertical-align: bottom; }
tbody th { font-weight: 600; }
th.key, td.key { overflow-wrap: anywhere; min-width: 7em; }
.nowrap { white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
thead th.num { white-space: normal; }
tfoot th, tfoot td { font-weight: 700; border-top: 2px solid var(--ink); border-bottom: none; }
tbody tr:hover { background: #f7f9fb; }
tr.unattr { background: var(--flag-bg); }
tr.unattr:hover { background: #ffeadb; }
tr.unattr > :first-child { box-shadow: inset 4px 0 0 var(--flag); }
.key.flag, td.flag { color: var(--flag); font-style: italic; }
.badge { display: inline-block; font-style: normal; font-size: 11px; font-weight: 700; text-transform: uppercase;
  letter-spacing: 0.04em; color: #fff; background: var(--flag); border-radius: 3px; padding: 0 5px; margin-right: 4px;
  vertical-align: 1px; }
tr.other th { font-style: italic; font-weight: 400; color: var(--muted); }
td.warn-num { color: var(--warn); font-weight: 600; }
.share-col { width: 128px; white-space: nowrap; }
td.share-col { text-align: right; }
.sharebar { display: inline-block; width: 56px; height: 8px; background: #e8ecf1; border-radius: 2px;
  margin-right: 8px; vertical-align: middle; overflow: hidden; text-align: left; }
.sharebar > span { display: block; height: 100%; background: var(--bar); }
tr.unattr .sharebar > span { background: var(--flag); }
.empty-note { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); margin-top: 20px; padding-top: 10px;
  display: flex; justify-content: space-between; gap: 24px; }
footer .stamp { white-space: nowrap; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { background: #fff; font-size: 11px; }
  .page { max-width: none; padding: 0; }
  nav.toc { display: none; }
  .card, .kpi, .warn-card { break-inside: avoid; }
  .table-wrap { overflow: visible; }
  tbody tr:hover { background: none; }
}
@media (max-width: 900px) {
  .headline { grid-template-columns: 1fr 1fr; }
  .panels { grid-template-columns: 1fr; }
  header.top { flex-direction: column; align-items: flex-start; }
  nav.toc { text-align: left; }
  nav.toc a { margin: 0 12px 0 0; }
}
"""

# Nothing on the page may run or load anything: no scripts, no network, no frames. Inline styles and
# fragment references (url(#pattern) in SVG) are all it needs.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def render_html(report: dict[str, Any]) -> str:
    """Render a report as one self-contained HTML page and return it.

    Contract:

    * ``report`` is the dict of :func:`otel_costattr._analysis._rollup.build_report` (or its JSON, loaded). Only
      ``total`` and ``calls`` are needed; every section (``by_day``, ``top``, ``vendor_share_by_workload``,
      ``extra_sections``) is drawn when present and left out when absent. Unknown keys are ignored, and
      malformed entries inside sections are skipped rather than raising.
    * ``extra_sections`` is an optional list of ``{"id", "title", "note", "columns", "rows", "chart"}``
      (``chart``: ``{"type": "bar", "label_column": i, "value_column": j}``), drawn after the standard
      sections as a table plus an optional horizontal bar chart; cells are shown as given.
    * ``alerts`` is an optional list of ``{"level": "warn"|"bad", "text"}`` shown as one compact line each right
      under the headline cards (budget alerts use it).
    * The result is a complete UTF-8 HTML document: inline CSS and SVG only, no script, no external resource,
      and a Content-Security-Policy that forbids both. All report-derived text is HTML-escaped.
    * Money figures are the report's exact decimal strings, formatted (sign, thousands separators, at least
      two decimals) without going through float.
    * Deterministic: the same ``report`` always gives the same string (the only time shown is
      ``report["generated_at"]``).
    """
    money = _Money(report.get("currency"))
    ids = _Ids()
    by = [str(k) for k in report.get("by") or []]

    sections: list[tuple[str, str, str]] = []  # (id, nav label, html)
    if (s := _spend_over_time(report, money, ids)) is not None:
        sections.append(("spend-over-time", "Over time", s))
    if (s := _top_sections(report, money, ids)) is not None:
        sections.append(("breakdowns", "Breakdowns", s))
    if (s := _vendor_share(report, money, ids)) is not None:
        sections.append(("vendor-share", "Vendors", s))
    sections.append(("rollup", "Table", _rollup_table(report, money)))
    sections.extend(_extra_sections(report, ids))

    nav = "".join(f'<a href="#{_esc(sid)}">{_esc(_clip(label, 13, 150))}</a>' for sid, label, _ in sections)
    by_text = " × ".join(f"<code>{_esc(k)}</code>" for k in by) or "—"
    generated = report.get("generated_at")
    subtitle = (f"Attributed by {by_text} · {_esc(money.code)}"
                + (f" · generated {_esc(_fmt_timestamp(generated))}" if generated else ""))
    period, _ = _period(report)
    doc_title = f"LLM spend report · {period}"
    footer_left = ("Figures are exact decimal sums of per-call costs. Unpriced calls and calls without usage are "
                   "excluded from every total (unknown is not zero).")
    footer_right = (f"Generated {_esc(generated)} by otel-costattr {_esc(__version__)}" if generated
                    else f"Generated by otel-costattr {_esc(__version__)}")
    return "".join([
        "<!DOCTYPE html>\n",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="otel-costattr">',
        f"<title>{_esc(doc_title)}</title><style>{_CSS}</style></head>\n",
        '<body><div class="page">',
        f'<header class="top"><div><h1>LLM spend report</h1><p class="subtitle">{subtitle}</p></div>'
        f'<nav class="toc" aria-label="Sections">{nav}</nav></header>\n',
        "<main>",
        _headline(report, money), "\n",
        _alerts(report),
        _warnings(report), "\n",
        "\n".join(html_ for _, _, html_ in sections),
        "</main>\n",
        f'<footer><span>{footer_left}</span><span class="stamp">{footer_right}</span></footer>',
        "</div></body></html>\n",
    ])
