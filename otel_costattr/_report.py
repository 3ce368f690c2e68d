"""Render a report (the data of :func:`otel_costattr._rollup.build_report`) as a table, CSV, JSON or HTML."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["render", "write_output"]

_COLS = ("cost", "share", "calls", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens",
         "unpriced_calls", "no_usage_calls")


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        from ._html import render_html
        return render_html(report)
    return _table(report)


def _csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*report["by"], *_COLS])
    for r in report["rows"]:
        w.writerow([*(r["key"][k] for k in report["by"]), *(r[c] for c in _COLS)])
    if report.get("other"):
        o = report["other"]
        w.writerow([f"(other: {o['rows']} rows)", *[""] * (len(report["by"]) - 1), *(o[c] for c in _COLS)])
    return buf.getvalue()


def _table(report: dict[str, Any]) -> str:
    by = report["by"]
    rows = [[*(str(r["key"][k]) for k in by), r["cost"], r["share"] + "%", str(r["calls"]), str(r["input_tokens"]),
             str(r["output_tokens"]), str(r["unpriced_calls"])] for r in report["rows"]]
    if report.get("other"):
        o = report["other"]
        rows.append([f"(other: {o['rows']} rows)", *[""] * (len(by) - 1), o["cost"], o["share"] + "%",
                     str(o["calls"]), str(o["input_tokens"]), str(o["output_tokens"]), str(o["unpriced_calls"])])
    head = [*by, "cost USD", "share", "calls", "input tok", "output tok", "unpriced"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    out = io.StringIO()
    fmt_row = lambda cells: "  ".join(c.rjust(w) if i >= len(by) else c.ljust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths)))
    out.write(fmt_row(head) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in rows:
        out.write(fmt_row(r) + "\n")
    u = report["unattributed"]
    out.write(f"\ntotal ${report['total']} over {report['calls']} calls")
    if report.get("since") or report.get("until"):
        out.write(f"  [{report.get('since') or '...'} .. {report.get('until') or '...'})")
    out.write(f"\nunattributed (no {' / '.join(u['required_keys'])}): ${u['cost']} = {u['share']}% of spend, "
              f"{u['calls']} calls\n")
    out.write(f"unpriced calls: {report['unpriced_calls']}   no-usage calls: {report['no_usage_calls']}   "
              f"partial: {report['partial_calls']}   duplicate spans ignored: {report['duplicate_spans']}\n")
    if report["unpriced_models"]:
        models = ", ".join(f"{m['model']} ({m['calls']})" for m in report["unpriced_models"][:5])
        out.write(f"unpriced models: {models}; add them with a pricing overlay (otel-costattr pricing --help)\n")
    return out.getvalue()


def write_output(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
