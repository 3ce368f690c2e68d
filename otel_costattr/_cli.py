"""The ``otel-costattr`` command line.

Exit codes: 0 success (``price``: priced), 1 a checked input failed validation (``reconcile``: a row beyond
tolerance), 2 bad arguments or bad configuration, 3 ``price``: the model is unpriced (the JSON is still printed).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ._errors import OtelCostattrError

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNPRICED = 0, 1, 2, 3


def _non_negative_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; token counts are >= 0")
    return value


def _build_parser() -> argparse.ArgumentParser:
    """The `otel-costattr` parser: one `_add_<command>_parser` per subcommand (`_SUBCOMMANDS`), then serve's.

    The parsed namespace carries `command` and, for commands with actions, `<command>_command`."""
    parser = argparse.ArgumentParser(
        prog="otel-costattr",
        description="Price LLM calls exactly and attribute the spend to customers, tasks, agents and skills.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    from ._serve._cli import add_serve_parser
    add_serve_parser(sub)
    return parser


def _add_price_parser(sub: argparse._SubParsersAction) -> None:
    """`price MODEL`: price one call from token counts."""
    p = sub.add_parser("price", help="price one call from token counts",
                       description="Price one call. Counts follow the OpenTelemetry GenAI convention: --input "
                       "includes cache reads and both kinds of cache writes; --output includes reasoning.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--provider", metavar="NAME", help="provider id or gen_ai.provider.name (e.g. openai, "
                   "aws.bedrock); default: inferred from the model name")
    p.add_argument("--input", type=_non_negative_int, default=0, metavar="N",
                   help="input tokens, including cache reads and writes")
    p.add_argument("--output", type=_non_negative_int, default=0, metavar="N", help="output tokens, incl. reasoning")
    p.add_argument("--cache-read", type=_non_negative_int, default=0, metavar="N")
    p.add_argument("--cache-write", type=_non_negative_int, default=0, metavar="N",
                   help="short-TTL cache writes (Anthropic 5 minutes; the vendor default elsewhere)")
    p.add_argument("--cache-write-1h", type=_non_negative_int, default=0, metavar="N", help="long-TTL cache writes")
    p.add_argument("--reasoning", type=_non_negative_int, default=0, metavar="N")
    p.add_argument("--input-audio", type=_non_negative_int, default=0, metavar="N")
    p.add_argument("--output-audio", type=_non_negative_int, default=0, metavar="N")
    p.add_argument("--input-image", type=_non_negative_int, default=0, metavar="N")
    p.add_argument("--output-image", type=_non_negative_int, default=0, metavar="N")
    p.add_argument("--web-search", type=_non_negative_int, default=0, metavar="N", help="web-search calls")
    p.add_argument("--service-tier", choices=("standard", "batch", "flex", "priority"), default="standard")
    p.add_argument("--region", metavar="NAME", help="data-residency region or deployment zone (e.g. eu, us)")
    p.add_argument("--at", metavar="ISO-8601", help="the call's start time (default: now)")
    p.add_argument("--pricing", nargs="+", action="extend", default=[], metavar="FILE",
                   help="overlay pricing file(s); they win over the shipped tables")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_pricing_parser(sub: argparse._SubParsersAction) -> None:
    """`pricing validate|list|import-litellm|update`: the pricing tables."""
    pr = sub.add_parser("pricing", help="validate, list and import pricing tables")
    psub = pr.add_subparsers(dest="pricing_command", metavar="ACTION")
    v = psub.add_parser("validate", help="validate pricing files (exit 1 if any is invalid)")
    v.add_argument("files", nargs="+", metavar="FILE")
    ls = psub.add_parser("list", help="list providers with coverage counts")
    ls.add_argument("--provider", metavar="P")
    ls.add_argument("--models", action="store_true", help="list every model of the selected providers")
    ls.add_argument("--pricing", nargs="+", action="extend", default=[], metavar="FILE")
    ls.add_argument("--json", action="store_true")
    imp = psub.add_parser("import-litellm", help="convert LiteLLM's model_prices_and_context_window.json")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--out", metavar="PATH", default="litellm-imported.json",
                     help="where to write the converted layer (default: %(default)s); use it with --pricing, "
                     "curated entries still win")
    up = psub.add_parser(
        "update", help="refresh the imported LiteLLM layer from the installed litellm package or a file; prints "
        "what changed and the curated entries LiteLLM now prices differently (curated rates are never changed)")
    up.add_argument("file", nargs="?", metavar="FILE", help="LiteLLM's model_prices_and_context_window.json")
    up.add_argument("--from-installed", choices=["litellm"], metavar="litellm",
                    help="read the price map bundled with the litellm package installed in this environment")
    up.add_argument("--out", metavar="PATH", help="the imported layer to compare with and replace (default: the "
                    "shipped pricing/imported/litellm.json)")
    up.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")


def _add_ingest_parser(sub: argparse._SubParsersAction) -> None:
    """`ingest FILE...`: load OTLP trace files into the ledger."""
    ing = sub.add_parser("ingest", help="load OTLP JSON-lines or protobuf files into the ledger",
                         description="Load OTLP trace files (the collector's file exporter: JSON lines, or "
                         "length-prefixed protobuf; gzip accepted) into the ledger, pricing spans that are not priced "
                         "yet. Malformed lines are reported with file and line; good lines still load.")
    ing.add_argument("files", nargs="+", metavar="FILE")
    ing.add_argument("--db", default=_default_db(), metavar="PATH", help="ledger (default: %(default)s)")
    ing.add_argument("--pricing", nargs="+", action="extend", default=[], metavar="FILE")
    _no_progress_flag(ing)


def _no_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress display (it is shown only when standard error is a terminal)")


def _add_ledger_parser(sub: argparse._SubParsersAction) -> None:
    """`ledger compact|migrate|info`: ledger maintenance."""
    led = sub.add_parser("ledger", help="maintain the ledger: compact, migrate, info",
                         description="The ledger is a directory of Parquet segments that any number of processes "
                         "write at once and reports read while they write.")
    lsub = led.add_subparsers(dest="ledger_command", metavar="ACTION")
    cp = lsub.add_parser("compact", help="fold all segments into one (faster reports; safe while applications "
                         "write)")
    cp.add_argument("--db", default=_default_db(), metavar="PATH", help="ledger (default: %(default)s)")
    _no_progress_flag(cp)
    mg = lsub.add_parser("migrate", help="convert a single-file ledger (earlier versions) into a ledger directory at "
                         "the same path, checked, keeping the old file as PATH.v1")
    mg.add_argument("path", metavar="PATH", nargs="?", default=_default_db())
    _no_progress_flag(mg)
    inf = lsub.add_parser("info", help="format, segments and span count")
    inf.add_argument("--db", default=_default_db(), metavar="PATH", help="ledger (default: %(default)s)")
    inf.add_argument("--json", action="store_true")


def _add_report_parser(sub: argparse._SubParsersAction) -> None:
    """`report`: rollups, budgets and retry findings over ledgers or a ClickHouse source."""
    rep = sub.add_parser("report", help="roll spend up by customer, task, agent, skill, model, day ...")
    rep.add_argument("--db", action="append", metavar="PATH",
                     help=f"ledger (default: {_default_db()}); repeat to report over several ledgers at once")
    rep.add_argument("--source", metavar="URL",
                     help="read the collector clickhouse exporter's otel_traces table instead of the ledger: "
                     "clickhouse://user:password@host:8123/database?table=otel_traces (clickhouses:// for TLS; needs "
                     "otel-costattr[clickhouse]) or chdb:///path/to/dir")
    rep.add_argument("--by", default="customer_id", metavar="KEY[,KEY...]",
                     help="attribution keys, span attributes, or provider/model/day/month/service (default: "
                     "%(default)s)")
    rep.add_argument("--since", metavar="T", help="ISO date/time, or relative: 7d, 24h")
    rep.add_argument("--until", metavar="T", help="ISO date/time, or relative: 7d, 24h (exclusive)")
    rep.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                     help="only calls whose KEY is VALUE (repeat: values of one key are alternatives, different "
                     "keys must all match; KEY= selects calls without KEY)")
    rep.add_argument("--sort", choices=("auto", "cost", "calls", "key", "input_tokens", "output_tokens"),
                     default="auto", help="row order (default: by date for --by day/month, else by cost)")
    rep.add_argument("--top", type=_positive_int, metavar="N", help="show the N largest rows, then 'other'")
    rep.add_argument("--format", choices=("table", "csv", "json", "html"),
                     help="output format (default: from the --out extension .csv/.json/.html, else table)")
    rep.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    rep.add_argument("--required-keys", default="customer_id", metavar="KEY[,KEY...]",
                     help="spend missing any of these keys counts as unattributed (default: %(default)s)")
    rep.add_argument("--trace-url", metavar="TEMPLATE",
                     help="HTML: make every trace id a link, e.g. 'http://jaeger:16686/trace/{trace_id}' or "
                     "'https://cloud.langfuse.com/project/PROJECT/traces/{trace_id}'")
    rep.add_argument("--findings-by", default="customer_id", metavar="KEY[,KEY...]",
                     help="retry findings (\"N%% of X's spend went into retry loops ...\") per customer_id, agent_id, "
                     "task_id and/or skill_id (default: %(default)s)")
    rep.add_argument("--budgets", metavar="FILE", help="budget file (TOML): mark budgets exceeded or on track to be "
                     "exceeded in the current UTC day/month (JSON key `budgets`, a panel and alerts in HTML)")
    rep.add_argument("--as-of", metavar="T", help="evaluate --budgets as of this ISO instant (default: now)")
    rep.add_argument("--fail-on", choices=("exceeded", "warning"),
                     help="with --budgets: exit 1 when a budget is exceeded (or, with 'warning', past its warning "
                     "level or on track to exceed), for cron jobs and CI")


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """`demo`: the multi-tenant workload against a local fake vendor."""
    demo = sub.add_parser("demo", help="run a multi-tenant agent workload on a local fake vendor and show who spent "
                          "what", description="Drive the real OpenAI and Anthropic SDKs (and DeepSeek through the "
                          "OpenAI SDK), under real OpenTelemetry instrumentations, against a local fake vendor: five "
                          "customers' agents, priced and attributed. Writes costs.duckdb and report.html to --out-dir "
                          "and prints the headline rollups. The same --seed gives the same numbers.")
    demo.add_argument("--seed", type=int, default=7, metavar="N", help="workload seed (default: %(default)s)")
    demo.add_argument("--out-dir", default="otel-costattr-demo", metavar="DIR",
                      help="where to write costs.duckdb and report.html (created if missing; default: %(default)s). "
                      "A rerun replaces the ledger an earlier demo run left there; it refuses to touch any other costs.duckdb "
                      "(or one written to since) unless --force is given")
    demo.add_argument("--force", action="store_true", help="replace an existing costs.duckdb in --out-dir")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")
    demo.add_argument("--scale", type=float, default=1.0, metavar="F",
                      help="multiply the number of runs (default: %(default)s; tests use less)")


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    """`export focus`: FinOps FOCUS rows."""
    exp = sub.add_parser("export", help="export ledger spend in standard formats")
    esub = exp.add_subparsers(dest="export_command", metavar="FORMAT")
    foc = esub.add_parser("focus", help="FinOps FOCUS 1.2 cost and usage rows (CSV or Parquet)",
                          description="Write the ledger's spend as a FinOps FOCUS 1.2 dataset: one row per charge "
                          "period, provider, model, token class and attribution tag set, with exact decimal costs. "
                          "The format follows the --out extension (.csv or .parquet).")
    foc.add_argument("--db", default=_default_db(), metavar="PATH", help="ledger (default: %(default)s)")
    foc.add_argument("--since", metavar="T", help="ISO date/time, or relative: 7d, 24h")
    foc.add_argument("--until", metavar="T", help="ISO date/time, or relative (exclusive)")
    foc.add_argument("--granularity", choices=("day", "hour"), default="day",
                     help="charge period length, UTC (default: %(default)s)")
    foc.add_argument("--billing-account", action="append", default=[], metavar="PROVIDER=ID[:NAME]",
                     help="BillingAccountId (and name) per provider, e.g. openai=org-abc:Acme; default: the provider")
    foc.add_argument("--out", required=True, metavar="FILE.{csv,parquet}")
    _no_progress_flag(foc)


def _add_reconcile_parser(sub: argparse._SubParsersAction) -> None:
    """`reconcile FILE...`: vendor usage/cost exports against the ledger."""
    rec = sub.add_parser("reconcile", help="compare vendor usage/cost exports with the ledger",
                         description="Compare OpenAI (/v1/organization/costs, /usage/completions) and Anthropic "
                         "(/v1/organizations/cost_report, /usage_report/messages) exports with the ledger per UTC day, "
                         "provider and model. Exit 0: every row within tolerance; 1: some row flagged; 2: bad input.")
    rec.add_argument("files", nargs="+", metavar="VENDOR_EXPORT")
    rec.add_argument("--db", default=_default_db(), metavar="PATH", help="ledger (default: %(default)s)")
    rec.add_argument("--tolerance-pct", default="1", metavar="P",
                     help="a row is within tolerance when |variance| <= P %% of the vendor figure ... (default: 1)")
    rec.add_argument("--tolerance-usd", default="0.01", metavar="D",
                     help="... or when |variance| <= D dollars (default: 0.01)")
    rec.add_argument("--since", metavar="T", help="ISO date/time or relative; default: the period the exports cover")
    rec.add_argument("--until", metavar="T", help="ISO date/time or relative (exclusive)")
    rec.add_argument("--required-keys", default="customer_id", metavar="KEY[,KEY...]",
                     help="ledger spend missing one of these keys is shown as unattributed (default: %(default)s)")
    rec.add_argument("--pricing", nargs="+", action="extend", default=[], metavar="FILE",
                     help="overlay pricing files (used to match model names)")
    rec.add_argument("--format", choices=("table", "json"), default="table")
    rec.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")


# Subcommands in the order `--help` lists them; serve is added last from its own stage.
_SUBCOMMANDS = (_add_price_parser, _add_pricing_parser, _add_ingest_parser, _add_ledger_parser, _add_report_parser, _add_demo_parser, _add_export_parser, _add_reconcile_parser)


def _default_db() -> str:
    import os
    return os.environ.get("OTEL_COSTATTR_LEDGER", "costs.duckdb")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def _instant(text: str | None, what: str) -> int | None:
    """ISO date/datetime (UTC if no zone) or a relative '7d' / '24h' / '30m' before now, as epoch ns."""
    import re
    import time
    from datetime import datetime, timezone

    from ._errors import ConfigurationError
    if text is None:
        return None
    m = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if m:
        secs = int(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
        return time.time_ns() - secs * 1_000_000_000
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{what} {text!r} is not an ISO date/time (2026-11-01, 2026-11-01T12:00Z) or a "
                                 "relative period (7d, 24h, 30m)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


# ---------------------------------------------------------------------------------------------- price


def _cmd_price(args: argparse.Namespace) -> int:
    from ._pricing._book import PriceBook, format_money

    book = PriceBook.load(args.pricing)
    usage = dict(input_tokens=args.input, output_tokens=args.output, cache_read_tokens=args.cache_read,
                 cache_write_tokens=args.cache_write, cache_write_1h_tokens=args.cache_write_1h,
                 reasoning_tokens=args.reasoning, input_audio_tokens=args.input_audio,
                 output_audio_tokens=args.output_audio, input_image_tokens=args.input_image,
                 output_image_tokens=args.output_image, web_search_calls=args.web_search)
    cost = book.price(args.model, provider=args.provider, service_tier=args.service_tier, region=args.region,
                      at=args.at, **usage)
    if args.json:
        print(json.dumps(cost.to_dict(), indent=2))
    else:
        _print_cost_table(cost, usage, format_money)
    if not cost.priced:
        print(f"otel-costattr: unpriced: {cost.reason}", file=sys.stderr)
        return EXIT_UNPRICED
    return EXIT_OK


def _print_cost_table(cost: Any, usage: dict[str, int], fmt: Any) -> None:
    tokens = {
        "input": max(usage["input_tokens"] - usage["cache_read_tokens"] - usage["cache_write_tokens"]
                     - usage["cache_write_1h_tokens"] - usage["input_audio_tokens"] - usage["input_image_tokens"], 0),
        "cache_read": usage["cache_read_tokens"], "cache_write": usage["cache_write_tokens"],
        "cache_write_1h": usage["cache_write_1h_tokens"],
        "output": max(usage["output_tokens"] - usage["reasoning_tokens"] - usage["output_audio_tokens"]
                      - usage["output_image_tokens"], 0),
        "reasoning": usage["reasoning_tokens"], "input_audio": usage["input_audio_tokens"],
        "output_audio": usage["output_audio_tokens"], "input_image": usage["input_image_tokens"],
        "output_image": usage["output_image_tokens"], "web_search": usage["web_search_calls"],
    }
    print(f"model      {cost.requested_model}" + (f"  ->  {cost.provider}/{cost.model}" if cost.model else ""))
    print(f"status     {cost.status}")
    if cost.effective_from:
        print(f"prices     in force from {cost.effective_from.date()}  (table {cost.provider}@{cost.pricing_version}, "
              f"{cost.origin})")
        print(f"source     {cost.source}")
    if cost.priced:
        print()
        print(f"{'component':<16}{'tokens':>12}{'USD':>18}")
        for name, value in cost.components.items():
            unit = "calls" if name == "web_search" else ""
            print(f"{name:<16}{tokens.get(name, ''):>12}{fmt(value):>18} {unit}".rstrip())
        print(f"{'total':<16}{'':>12}{fmt(cost.total):>18}")
        if cost.list_total is not None:
            print(f"{'list price':<16}{'':>12}{fmt(cost.list_total):>18}  (discount {fmt(cost.discount_percent)}%)")
    if cost.flags:
        print(f"\nflags      {', '.join(cost.flags)}")
    if cost.reason:
        print(f"\n{cost.reason}")


# --------------------------------------------------------------------------------------------- pricing


def _cmd_validate(args: argparse.Namespace) -> int:
    from ._errors import PricingError
    from ._pricing._schema import validate_file

    failed = 0
    for f in args.files:
        try:
            doc = validate_file(f)
        except PricingError as exc:
            failed += 1
            print(f"invalid  {exc}", file=sys.stderr)
            continue
        models = sum(len(t.models) + len(t.pending) for t in doc.tables)
        provs = ", ".join(t.provider for t in doc.tables) or "-"
        extra = []
        if doc.discounts:
            extra.append(f"{len(doc.discounts)} discount(s)")
        if doc.deployments:
            extra.append(f"{len(doc.deployments)} deployment(s)")
        print(f"ok       {f}: {models} model(s) [{provs}]" + (f", {', '.join(extra)}" if extra else ""))
    return EXIT_INVALID if failed else EXIT_OK


def _coverage(table: Any) -> dict[str, Any]:
    counts = {"models": 0, "cache_read": 0, "cache_write": 0, "cache_write_1h": 0, "reasoning": 0,
              "long_context": 0, "batch": 0, "flex": 0, "priority": 0, "time_windows": 0, "history": 0,
              "web_search": 0}
    for mid in sorted(set(table.index.values())):
        entry = table.entry(mid)
        if entry is None:
            continue
        p = entry.periods[-1]
        counts["models"] += 1
        for cls in ("cache_read", "cache_write", "cache_write_1h", "reasoning"):
            counts[cls] += cls in p.rates
        counts["long_context"] += bool(p.long_context)
        for t in ("batch", "flex", "priority"):
            counts[t] += t in p.service_tiers
        counts["time_windows"] += bool(p.time_windows)
        counts["history"] += len(entry.periods) > 1
        counts["web_search"] += "web_search" in p.per_call
    return counts


def _cmd_list(args: argparse.Namespace) -> int:
    from ._pricing._book import PriceBook

    book = PriceBook.load(args.pricing)
    want = book.canonical_provider(args.provider) if args.provider else None
    if args.provider and want is None:
        print(f"otel-costattr: unknown provider {args.provider!r}; run `otel-costattr pricing list` to see them",
              file=sys.stderr)
        return EXIT_USAGE
    rows = []
    for t in book.tables():
        if want and t.provider != want:
            continue
        row = {"provider": t.provider, "origin": t.origin, "version": t.version, **_coverage(t)}
        if args.models:
            row["model_ids"] = sorted(set(t.index.values()))
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    cols = ["models", "cache_read", "cache_write", "cache_write_1h", "reasoning", "long_context", "batch", "flex",
            "priority", "time_windows", "web_search", "history"]
    short = ["models", "c.read", "c.write", "c.w.1h", "reason", "long", "batch", "flex", "prio", "windows",
             "search", "hist"]
    print(f"{'provider':<22}{'origin':<10}" + "".join(f"{h:>8}" for h in short))
    for r in rows:
        origin = r["origin"] if not r["origin"].startswith("user:") else "user"
        print(f"{r['provider']:<22}{origin:<10}" + "".join(f"{r[c]:>8}" for c in cols))
        for mid in r.get("model_ids", []):
            print(f"    {mid}")
    total = sum(r["models"] for r in rows)
    print(f"\n{total} models in {len(rows)} table(s). Curated tables win over imported ones; user overlays win "
          "over both.")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from ._pricing._litellm import import_litellm_file

    report = import_litellm_file(args.file, args.out)
    print(report)
    print(f"\nwrote {args.out}. Use it with --pricing {args.out} or OTEL_COSTATTR_PRICING; curated entries still "
          "win over imported ones.")
    return EXIT_OK


def _cmd_update(args: argparse.Namespace) -> int:
    """``pricing update``: convert, diff against the current imported layer, list curated disagreements,
    write (unless --dry-run). Curated files are only read."""
    from pathlib import Path

    from ._pricing import _litellm as imp
    from ._pricing._book import PriceBook, _builtin_dir

    if (args.file is None) == (args.from_installed is None):
        print("otel-costattr: error: give either FILE (LiteLLM's model_prices_and_context_window.json) or "
              "--from-installed litellm", file=sys.stderr)
        return EXIT_USAGE
    if args.from_installed:
        path, version = imp.installed_litellm()
    else:
        path, version = Path(args.file), None
        if not path.is_file():
            print(f"otel-costattr: error: {path}: no such file; pass LiteLLM's model_prices_and_context_window.json "
                  "or use --from-installed litellm", file=sys.stderr)
            return EXIT_USAGE
    try:
        document, report = imp.convert_file(path, litellm_version=version)
    except OSError as exc:
        print(f"otel-costattr: error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    target = Path(args.out) if args.out else _builtin_dir() / "imported" / "litellm.json"
    old: dict[str, Any] = {"meta": {}, "providers": {}}
    if target.is_file():
        try:
            old = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"otel-costattr: warning: cannot read the current layer {target} ({exc}); everything counts as "
                  "new", file=sys.stderr)
    print(report)
    print()
    print("\n".join(imp.diff_imported(old, document).lines()))
    curated = [t for t in PriceBook.load(imported=False, env=False).tables(include_imported=False)
               if t.origin == "curated"]
    disagreements = imp.curated_disagreements(curated, document, old)
    print()
    if disagreements:
        fresh = sum(d.new for d in disagreements)
        print(f"curated entries LiteLLM prices differently: {len(disagreements)} ({fresh} new with this update). "
              "Curated rates are kept; check each against the vendor's page and record the outcome in "
              "pricing/SOURCES.md:")
        for d in disagreements:
            print(d.line())
    else:
        print("curated entries LiteLLM prices differently: none")
    if args.dry_run:
        print(f"\n--dry-run: {target} not written")
        return EXIT_OK
    try:
        imp.write_document(document, target)
    except OSError as exc:
        print(f"otel-costattr: error: cannot write {target}: {exc.strerror or exc}; pass --out PATH (a file you can "
              "write) and use it with --pricing PATH", file=sys.stderr)
        return EXIT_USAGE
    print(f"\nwrote {target} (LiteLLM {report.litellm_version or 'version unknown'})")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ ledger


def _cmd_ingest(args: argparse.Namespace) -> int:
    import os

    from ._ledger._ingest import ingest_files
    from ._ledger._store import Ledger
    from ._pricing._book import PriceBook

    book = PriceBook.load(args.pricing)
    ledger = Ledger(args.db, book=book)
    total = sum(os.path.getsize(f) for f in args.files if os.path.isfile(f))
    show = _show_progress(args)
    # A bulk load allocates millions of small dicts that all live until their batch is written, and the cyclic
    # GC kept re-scanning them: 1.5-1.8x the run time (measured on OTLP/JSON files). Decoded spans hold no
    # reference cycles, so this process collects only once the load is done.
    gc.disable()
    try:
        with _progress(show, total) as tick:
            result = ingest_files(args.files, ledger, book, progress=tick)
    finally:
        gc.enable()
        ledger.close()
    print(result.summary())
    for line in result.error_lines():
        print(f"otel-costattr: {line}", file=sys.stderr)
    return EXIT_INVALID if result.errors else EXIT_OK


def _cmd_compact(args: argparse.Namespace) -> int:
    from ._ledger._maintain import compact
    with _working(_show_progress(args), "compacting the ledger"):
        result = compact(args.db)
    print(result)
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from ._ledger._maintain import migrate
    with _working(_show_progress(args), "migrating: copying, then checking every row"):
        result = migrate(args.path)
    print(result)
    return EXIT_OK


@contextlib.contextmanager
def _days_progress(show: bool, what: str) -> Iterator[Any]:
    """A bar over the days of spend a command walks, with ETA, on standard error (rich); ``None`` (no display)
    when ``show`` is false. Yields ``tick(days_done, days)``."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("days"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield tick


def _show_progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


@contextlib.contextmanager
def _working(show: bool, what: str) -> Iterator[None]:
    """A spinner with the elapsed time on standard error while one long step runs (its progress cannot be
    measured from outside: DuckDB runs it as one statement). Nothing when ``show`` is false."""
    if not show:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TimeElapsedColumn(), TextColumn(what), console=Console(stderr=True),
                  transient=True) as bar:
        bar.add_task(what, total=None)
        yield


def _cmd_info(args: argparse.Namespace) -> int:
    from ._ledger._maintain import ledger_info
    info = ledger_info(args.db)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:<16}{v}")
    return EXIT_OK


class _progress:
    """A progress display on standard error (rich): bytes read with ETA, spans stored and their rate. Nothing
    at all when ``show`` is false (piped output, --no-progress)."""

    def __init__(self, show: bool, total_bytes: int) -> None:
        self.show = show
        self.total = max(total_bytes, 1)
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.show:
            return None
        import time

        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("ingest"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[spans]}"), console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task("ingest", total=self.total, spans="")
        t0 = time.monotonic()

        def tick(done_bytes: int, stored: int) -> None:
            rate = stored / max(time.monotonic() - t0, 1e-6)
            self.bar.update(task, completed=min(done_bytes, self.total),
                            spans=f"{stored:,} spans stored, {rate:,.0f}/s")

        return tick

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _window(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """``--since``/``--until`` as epoch ns; a window that ends before it starts is a typo, not an empty report."""
    from ._errors import ConfigurationError

    since, until = _instant(args.since, "--since"), _instant(args.until, "--until")
    if since is not None and until is not None and since >= until:
        raise ConfigurationError(f"--since {args.since} is not before --until {args.until}: the window is empty; "
                                 "swap them (--until is exclusive)")
    return since, until


def _where(specs: Sequence[str]) -> list[tuple[str, str]]:
    from ._errors import ConfigurationError

    out = []
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--where {spec!r}: expected KEY=VALUE, e.g. --where customer_id=acme "
                                     "(KEY= selects calls without KEY)")
        out.append((key.strip(), value))
    return out


def _report_format(args: argparse.Namespace) -> str:
    from pathlib import Path

    from ._report._render import FORMATS_BY_SUFFIX
    if args.format:
        return args.format
    return FORMATS_BY_SUFFIX.get(Path(args.out).suffix.lower(), "table") if args.out else "table"


def _cmd_report(args: argparse.Namespace) -> int:
    from ._analysis._economics import check_findings_by
    from ._analysis._rollup import build_report
    from ._analysis._source import check_keys, open_ledgers
    from ._errors import ConfigurationError
    from ._report._render import render, write_output

    by = [k.strip() for k in args.by.split(",") if k.strip()]
    required = [k.strip() for k in args.required_keys.split(",") if k.strip()]
    findings_by = check_findings_by([k.strip() for k in args.findings_by.split(",") if k.strip()])
    since, until = _window(args)
    where = _where(args.where)
    fmt = _report_format(args)
    if args.as_of and not args.budgets:
        raise ConfigurationError("--as-of only applies to --budgets; add --budgets FILE or drop --as-of")
    if args.fail_on and not args.budgets:
        raise ConfigurationError("--fail-on only applies to --budgets; add --budgets FILE or drop --fail-on")
    if args.trace_url is not None:
        if "{trace_id}" not in args.trace_url or not args.trace_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"--trace-url {args.trace_url!r}: expected an http(s) URL with {{trace_id}} in "
                                     "it, e.g. 'http://jaeger:16686/trace/{trace_id}'")
        if fmt != "html":
            raise ConfigurationError("--trace-url only applies to --format html")
    if args.out:
        from pathlib import Path
        if not Path(args.out).parent.is_dir():  # before minutes of rollups, not after
            raise ConfigurationError(f"--out {args.out}: folder {Path(args.out).parent} does not exist; create it "
                                     "or choose another path")
    budgets = None
    if args.budgets:
        from ._finance._budgets import budget_status, load_budgets
        budgets = load_budgets(args.budgets)  # a bad file fails before the ledger is opened
        as_of = _instant(args.as_of, "--as-of")
    if args.source:
        if args.db:
            raise ConfigurationError("--source and --db are alternatives; pass one of them")
        from ._analysis._clickhouse import open_source
        ledger: Any = open_source(args.source)
    else:
        ledger = open_ledgers(args.db or [_default_db()])
    try:
        if budgets is not None:
            check_keys(ledger, [k for b in budgets for k, _ in b.scope], f"{args.budgets}: budget scope")
        report = build_report(ledger, by=by, since_ns=since, until_ns=until, top=args.top, required_keys=required,
                              sections=fmt in ("html", "json"), retry=fmt != "csv", findings_by=findings_by,
                              where=where, sort=args.sort)
        if budgets is not None:
            report["budgets"] = budget_status(ledger, budgets, now_ns=as_of)
    finally:
        ledger.close()
    write_output(render(report, fmt, trace_url=args.trace_url), args.out)
    if args.fail_on and budgets is not None:
        bad = {"exceeded"} if args.fail_on == "exceeded" else {"exceeded", "on_track_to_exceed", "warning"}
        failed = [b for b in report["budgets"] if b["status"] in bad]
        for b in failed:
            print(f"otel-costattr: budget {b['name']}: {b['status']} (${b['spent']} of ${b['limit']} this "
                  f"{b['period']})", file=sys.stderr)
        if failed:
            return EXIT_INVALID
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from importlib.util import find_spec
    from pathlib import Path

    from ._demo import LEDGER_NAME, is_demo_ledger, run_demo
    from ._errors import ConfigurationError

    existing = Path(args.out_dir) / LEDGER_NAME
    # Checked before the SDK checks below (run_demo checks it again, for Python callers): a ledger the demo did not
    # leave there exactly as it is now may be the user's.
    if existing.exists() and not args.force and not is_demo_ledger(Path(args.out_dir)):
        raise ConfigurationError(f"{existing} already exists and is not the ledger an earlier demo run left there; "
                                 "the demo never replaces a ledger silently: choose another --out-dir, or pass "
                                 "--force to replace it")
    # Found, not imported: run_demo imports them inside its timing (they take seconds).
    missing = [m for m in ("openai", "anthropic", "opentelemetry.instrumentation.openai",
                           "opentelemetry.instrumentation.anthropic") if find_spec(m) is None]
    if missing:
        raise ConfigurationError(f"the demo needs the vendor SDKs and their instrumentations ({', '.join(missing)} "
                                 "missing); install them with: pip install 'otel-costattr[demo]'")
    if not args.scale > 0:
        raise ConfigurationError(f"--scale must be > 0, got {args.scale}")
    run_demo(seed=args.seed, out_dir=Path(args.out_dir), calls_scale=args.scale, progress=not args.no_progress,
             replace=args.force)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from ._errors import ConfigurationError
    from ._analysis._source import open_ledgers
    from ._finance._focus import iter_focus_rows, write_focus

    if not args.out.lower().endswith((".csv", ".parquet")):
        raise ConfigurationError(f"--out {args.out}: the FOCUS export is written as .csv or .parquet; name the file "
                                 "with one of those extensions")
    accounts: dict[str, tuple[str, str | None]] = {}
    for spec in args.billing_account:
        prov, sep, rest = spec.partition("=")
        if not sep or not prov.strip() or not rest.strip():
            raise ConfigurationError(f"--billing-account {spec!r}: expected PROVIDER=ID or PROVIDER=ID:NAME")
        acct, _, name = rest.partition(":")
        accounts[prov.strip().lower()] = (acct.strip(), name.strip() or None)
    since, until = _window(args)
    ledger = open_ledgers([args.db])
    try:
        if accounts:
            known = _known_providers(ledger)
            unknown = sorted(set(accounts) - set(known))
            if unknown:
                raise ConfigurationError(f"--billing-account {unknown[0]}=...: no vendor of that name; known: "
                                         f"{', '.join(known)}")
        (unpriced, no_usage), = ledger.query(
            "SELECT count(*) FILTER (WHERE cost_status = 'unpriced'), "
            "count(*) FILTER (WHERE cost_total IS NULL AND coalesce(cost_status, '') <> 'unpriced') FROM calls"
            + (" WHERE start_ns >= ?" if since is not None else "")
            + ((" AND" if since is not None else " WHERE") + " start_ns < ?" if until is not None else ""),
            [v for v in (since, until) if v is not None])
        with _days_progress(_show_progress(args), "export focus") as tick:
            rows = iter_focus_rows(ledger, since_ns=since, until_ns=until, granularity=args.granularity,
                                   accounts=accounts, progress=tick)
            summary = write_focus(rows, args.out)  # streams: one day of rows in memory at a time
    finally:
        ledger.close()
    print(summary)
    if unpriced or no_usage:
        parts = [f"{unpriced:,} unpriced call{'s' if unpriced != 1 else ''}"] if unpriced else []
        parts += [f"{no_usage:,} call{'s' if no_usage != 1 else ''} without usage"] if no_usage else []
        print(f"otel-costattr: note: {' and '.join(parts)} are not in the export: their cost is unknown, not zero "
              "(see `otel-costattr report` for the models to add to the price tables)", file=sys.stderr)
    return EXIT_OK


def _known_providers(ledger: Any) -> list[str]:
    """Vendor ids a --billing-account may name: the price tables' and those in the ledger."""
    from ._pricing._book import PriceBook

    names = {t.provider for t in PriceBook.load([]).tables()}
    names |= {r[0] for r in ledger.query("SELECT DISTINCT coalesce(pricing_provider, lower(provider)) FROM calls "
                                          "WHERE coalesce(pricing_provider, provider) IS NOT NULL")}
    return sorted(names)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    import hashlib
    from pathlib import Path

    from ._analysis._source import open_ledgers
    from ._errors import ConfigurationError
    from ._finance._reconcile import load_exports, reconcile, render_reconciliation
    from ._pricing._book import PriceBook
    from ._report._render import write_output

    by_path: dict[Path, str] = {}
    by_digest: dict[str, str] = {}
    for f in args.files:  # the same export twice would double the vendor side and flag every row
        p = Path(f)
        if p.resolve() in by_path:
            raise ConfigurationError(f"{f}: the same vendor export is passed twice (also as {by_path[p.resolve()]}); "
                                     "pass each export once")
        by_path[p.resolve()] = f
        if p.is_file():
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            if digest in by_digest:
                raise ConfigurationError(f"{f}: the same vendor export is passed twice (same content as "
                                         f"{by_digest[digest]}); pass each export once")
            by_digest[digest] = f
    exports = load_exports(args.files)  # unreadable or unknown files fail first, naming the file
    required = [k.strip() for k in args.required_keys.split(",") if k.strip()]
    since, until = _window(args)
    book = PriceBook.load(args.pricing)
    ledger = open_ledgers([args.db])
    try:
        result = reconcile(ledger, exports, book=book, tolerance_pct=args.tolerance_pct,
                           tolerance_usd=args.tolerance_usd, since_ns=since, until_ns=until, required_keys=required)
    finally:
        ledger.close()
    write_output(render_reconciliation(result, args.format), args.out)
    return EXIT_INVALID if result["flagged"] else EXIT_OK


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see the module docstring)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ._version import __version__
        print(__version__)
        return EXIT_OK
    from ._serve._cli import cmd_serve
    handlers = {"price": _cmd_price, "ingest": _cmd_ingest, "report": _cmd_report, "demo": _cmd_demo,
                "reconcile": _cmd_reconcile, "serve": cmd_serve}
    try:
        import os

        from ._settings import check_environment
        check_environment(os.environ)  # a typo'd OTEL_COSTATTR_* value is exit 2 here, not a silent default
        if args.command == "export":
            if args.export_command != "focus":
                parser.parse_args(["export", "--help"])
                return EXIT_USAGE
            return _cmd_export(args)
        if args.command == "ledger":
            sub = {"compact": _cmd_compact, "migrate": _cmd_migrate, "info": _cmd_info}
            if args.ledger_command not in sub:
                parser.parse_args(["ledger", "--help"])
                return EXIT_USAGE
            return sub[args.ledger_command](args)
        if args.command == "pricing":
            sub = {"validate": _cmd_validate, "list": _cmd_list, "import-litellm": _cmd_import,
                   "update": _cmd_update}
            if args.pricing_command not in sub:
                parser.parse_args(["pricing", "--help"])
                return EXIT_USAGE
            return sub[args.pricing_command](args)
        if args.command in handlers:
            return handlers[args.command](args)
        parser.print_help()
        return EXIT_USAGE
    except OtelCostattrError as exc:
        print(f"otel-costattr: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # e.g. the importer's malformed-input errors
        print(f"otel-costattr: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file named on the command line that cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        print(f"otel-costattr: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
