"""Render a report (the data of :func:`otel_costattr._analysis._rollup.build_report`) as a table, CSV, JSON or HTML."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from .._csvcell import csv_cell
from .._errors import ConfigurationError

__all__ = ["FORMATS_BY_SUFFIX", "csv_cell", "render", "write_output"]

_TEXT_FINDINGS = 20  # sentences in the text report; the JSON has them all

_COLS = ("cost", "share", "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
         "reasoning_tokens", "unpriced_calls", "no_usage_calls")
#: Formats ``--out`` implies when ``--format`` is not given.
FORMATS_BY_SUFFIX = {".csv": "csv", ".json": "json", ".html": "html", ".htm": "html", ".txt": "table"}


def render(report: dict[str, Any], fmt: str, *, trace_url: str | None = None) -> str:
    """``report`` as ``table`` (fixed-width text), ``csv``, ``json`` or ``html`` (see :func:`render_html`)."""
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        from ._html import render_html
        extra, alerts = economics_sections(report), list(report.get("alerts") or [])
        if report.get("budgets"):
            from .._finance._budgets import budget_alerts, budget_sections
            extra += budget_sections(report)
            alerts = budget_alerts(report) + alerts
        return render_html({**report, "extra_sections": extra + list(report.get("extra_sections") or []),
                            "alerts": alerts}, trace_url=trace_url)
    return _table(report) + _retry_text(report) + _budget_text(report)


def _retry_text(report: dict[str, Any]) -> str:
    """The retry findings under the table: overall waste, then each finding's sentence."""
    retry = report.get("retry")
    if not retry:
        return ""
    out = (f"retry loops: {retry['retry_chains']} chain(s), {retry['attempts']} attempts, costing "
           f"${retry['loop_cost']}; wasted ${retry['wasted']} = {retry['wasted_share']}% of spend\n")
    findings = retry.get("findings", ())
    out += "".join(f"  {f['sentence']}.\n" for f in findings[:_TEXT_FINDINGS])
    if len(findings) > _TEXT_FINDINGS:
        out += f"  ... and {len(findings) - _TEXT_FINDINGS} more (--format json lists them all)\n"
    if retry.get("truncated"):
        out += "  (only the first traces were analysed; narrow the period with --since/--until)\n"
    return out


def _budget_text(report: dict[str, Any]) -> str:
    if not report.get("budgets"):
        return ""
    from .._finance._budgets import budget_lines
    return "\n" + "\n".join(budget_lines(report)) + "\n"


def _csv(report: dict[str, Any]) -> str:
    """The rows as CSV: one column per ``by`` key (empty = the key is missing), exact amounts (empty = unknown),
    then ``other_rows``: empty on a row, the number of rows folded into the last row when ``--top`` cut them."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*(csv_cell(k) for k in report["by"]), *_COLS, "other_rows"])
    for r in report["rows"]:
        w.writerow([*(csv_cell(r["key"][k]) for k in report["by"]), *(csv_cell(r.get(c)) for c in _COLS), ""])
    if report.get("other"):
        o = report["other"]
        w.writerow([*[""] * len(report["by"]), *(csv_cell(o.get(c)) for c in _COLS), o["rows"]])
    if report.get("budgets"):
        # A second table after one blank line: the budgets of `report --budgets`.
        w.writerow([])
        cols = ("name", "period", "period_start", "limit", "spent", "projected", "used_pct", "status")
        w.writerow(["budget", "scope", *cols[1:]])
        for b in report["budgets"]:
            w.writerow([csv_cell(b["name"]), csv_cell(";".join(f"{k}={v}" for k, v in b["scope"].items())),
                        *(csv_cell(b[c]) for c in cols[1:])])
    return buf.getvalue()


def _key_text(key: str, value: Any) -> str:
    return f"(no {key})" if value is None else str(value)


def _money_text(value: Any, unpriced: int) -> str:
    if value is None:
        return "unpriced" if unpriced else "no usage"
    return f"${value}"


def _table(report: dict[str, Any]) -> str:
    by = report["by"]

    def cells(r: dict[str, Any], keys: list[str]) -> list[str]:
        share = r.get("share")
        return [*keys, _money_text(r.get("cost"), r.get("unpriced_calls", 0)),
                "-" if share is None else share + "%", f"{r['calls']:,}", f"{r['input_tokens']:,}",
                f"{r['output_tokens']:,}", f"{r['unpriced_calls']:,}"]

    rows = [cells(r, [_key_text(k, r["key"][k]) for k in by]) for r in report["rows"]]
    if report.get("other"):
        o = report["other"]
        rows.append(cells(o, [f"other ({o['rows']:,} rows)", *[""] * (len(by) - 1)]))
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
    out.write(f"\ntotal ${report['total']} over {report['calls']:,} calls")
    if report.get("since") or report.get("until"):
        out.write(f"  [{report.get('since') or '...'} .. {report.get('until') or '...'})")
    if report.get("where"):
        out.write("  where " + " and ".join(f"{k} in ({', '.join(v)})" for k, v in report["where"].items()))
    out.write(f"\nunattributed (no {' / '.join(u['required_keys'])}): ${u['cost']} = {u['share']}% of spend, "
              f"{u['calls']:,} calls\n")
    out.write(f"unpriced calls: {report['unpriced_calls']:,}   no-usage calls: {report['no_usage_calls']:,}   "
              f"partial: {report['partial_calls']:,}   duplicate spans ignored: {report['duplicate_spans']:,}\n")
    if report.get("implausible_calls"):
        out.write(f"calls with a token count above the model's limits (flagged implausible, priced and summed as "
                  f"reported): {report['implausible_calls']:,}\n")
    if report["unpriced_models"]:
        models = ", ".join(f"{m['model']} ({m['calls']})" for m in report["unpriced_models"][:5])
        out.write(f"unpriced models: {models}; add them with a pricing overlay (otel-costattr pricing --help)\n")
    return out.getvalue()


def write_output(text: str, out: str | None) -> None:
    """Write ``text`` to ``out`` (atomically: a temporary file, then a rename), or to standard output.

    Raises:
        ConfigurationError: the folder does not exist or cannot be written (the message names it).
    """
    if out is None:
        sys.stdout.write(text)
        return
    path = Path(out)
    if not path.parent.is_dir():
        raise ConfigurationError(f"--out {out}: folder {path.parent} does not exist; create it or choose another path")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigurationError(f"--out {out}: cannot write it ({exc.strerror or exc})") from None


def economics_sections(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent-economics parts of a report (retry waste, worst loops, cost per successful task) as generic
    sections for the HTML page."""
    out: list[dict[str, Any]] = []
    retry = report.get("retry")
    if retry:
        by_customer = retry["by"].get("customer_id", [])
        note = (f"{retry['wasted_share']}% of all spend (${retry['wasted']}) went into attempts that had to be "
                f"repeated: {retry['retry_chains']} retry chain(s), {retry['attempts']} attempts.")
        # the findings themselves (each at or above _html.FINDING_THRESHOLD) have their own card near the top
        if retry.get("truncated"):
            note += " (Only the first traces were analysed; narrow the period with --since/--until.)"
        out.append({"id": "retry-waste", "title": "Retry waste by customer", "note": note,
                    "columns": ["customer", "wasted $", "loop cost $", "customer spend $", "wasted %", "retry chains",
                                "attempts"],
                    "rows": [[r["key"]["customer_id"], r["wasted"], r["loop_cost"], r["spend"],
                              r["wasted_share_of_spend"], r["retry_chains"], r["attempts"]] for r in by_customer],
                    "chart": {"type": "bar", "label_column": 0, "value_column": 1}})
        for key, title in (("agent_id", "agent"), ("task_id", "task"), ("skill_id", "skill")):
            rows = retry["by"].get(key, [])
            if rows:
                out.append({"id": f"retry-{title}", "title": f"Retry waste by {title}",
                            "columns": [title, "wasted $", "wasted % of its spend", "retry chains", "attempts"],
                            "rows": [[r["key"][key], r["wasted"], r["wasted_share_of_spend"], r["retry_chains"],
                                      r["attempts"]] for r in rows]})
        if retry["worst"]:
            out.append({"id": "worst-loops", "title": "Worst retry loops (open these traces in Jaeger or Langfuse)",
                        "trace_column": 0,
                        "columns": ["trace id", "customer", "agent", "step", "attempts", "wasted $", "cost $",
                                    "answered"],
                        "rows": [[w["trace_id"], w["customer_id"], w["agent_id"], w["step"], w["attempts"],
                                  w["wasted"], w["cost"], "yes" if w["succeeded"] else "no"]
                                 for w in retry["worst"]]})
    traces = report.get("top_traces")
    if traces:
        out.append({"id": "top-traces", "title": "Most expensive traces",
                    "note": "Drill down from the rollups to single traces (pass --trace-url to link them to Jaeger or "
                            "Langfuse).",
                    "columns": ["trace id", "customer", "agent", "started", "calls", "cost $"], "trace_column": 0,
                    "rows": [[t["trace_id"], t["customer_id"], t["agent_id"], t["start"], t["calls"], t["cost"]]
                             for t in traces]})
    lay = report.get("layers")
    if lay and any(r["calls_with_layers"] for r in lay["rows"]):
        out.append({"id": "token-layers", "title": "Four token layers by agent",
                    "note": "Billed input split into prompt, tool (definitions and results) and memory (retrieved or "
                            "carried context); output is the response, reasoning included. Layers come from explicit "
                            "counts (token_layers()) or captured content; calls with neither are not guessed.",
                    "columns": ["agent", "calls with layers", "prompt tok", "tool tok", "memory tok", "tool %",
                                "memory %", "prompt $", "tool $", "memory $", "response tok", "reasoning tok"],
                    "rows": [[r["key"][lay["by"]], f"{r['calls_with_layers']}/{r['calls']}", r["prompt_tokens"],
                              r["tool_tokens"], r["memory_tokens"], r["tool_share"], r["memory_share"],
                              r["prompt_cost"], r["tool_cost"], r["memory_cost"], r["response_tokens"],
                              r["reasoning_tokens"]] for r in lay["rows"]]})
    econ = report.get("economics")
    if econ and econ.get("by_task"):
        out.append({"id": "cost-per-task", "title": "Cost per call vs cost per successful task",
                    "note": "A task instance is one trace of a task; failed instances still cost money, so the cost "
                            "per successful task is what a finished piece of work really costs.",
                    "columns": ["task", "calls", "cost $", "cost per call $", "instances", "successful",
                                "cost per successful task $"],
                    "rows": [[r["key"]["task_id"], r["calls"], r["cost"], r["cost_per_call"], r["instances"],
                              r["successful"], r["cost_per_successful_task"] or "n/a (none succeeded)"]
                             for r in econ["by_task"]]})
    return out
