"""Invoice reconciliation: vendor usage/cost exports against the ledger (``otel-costattr reconcile``).

Supported exports (format detected from the content, never from the file name):

=============================  =================================================================================
``openai.costs``               ``GET /v1/organization/costs`` pages: buckets (``start_time``/``end_time``, Unix
                               seconds) of ``organization.costs.result`` with ``amount {value, currency}`` in
                               **dollars** (a JSON number), ``line_item`` (``group_by=line_item``: "<model>, <kind>"),
                               ``project_id``.
``openai.usage``               ``GET /v1/organization/usage/completions`` (and ``/embeddings``) pages:
                               ``organization.usage.completions.result`` with ``input_tokens`` (incl. cached),
                               ``input_cached_tokens``, ``output_tokens``, ``num_model_requests``, ``model``
                               (``group_by=model``) ...
``anthropic.cost_report``      ``GET /v1/organizations/cost_report``: ``data[]`` buckets (``starting_at``/
                               ``ending_at``, RFC 3339) of results with ``amount`` in **cents** as a decimal
                               string ("123.45" = $1.2345), ``currency``, and with ``group_by[]=description``:
                               ``model``, ``cost_type``, ``token_type``, ``service_tier``, ``context_window``.
``anthropic.usage_report``     ``GET /v1/organizations/usage_report/messages``: results with
                               ``uncached_input_tokens``, ``cache_read_input_tokens``, ``cache_creation
                               {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}``, ``output_tokens``,
                               ``server_tool_use``, ``model`` (``group_by[]=model``) ...
=============================  =================================================================================

A file may hold one page, a JSON array of pages, or one page per line (what paginating ``curl`` calls
produce). The same bucket appearing in two files is refused (it would be counted twice).

Comparison contract
-------------------

* Per **UTC day, provider and model**. Model names on both sides are mapped to the pricing table's model id
  (``gpt-4o-mini-2024-07-18`` and ``gpt-4o-mini`` are one model); names the table does not know are compared
  as written. When an export for a day is not itemised by model (no ``group_by``), that provider's day is
  compared as one row, ``model = "(all models)"``. Per-call tool fees that a vendor bills on their own line
  (web search, code execution) are compared as ``model = "(tools)"`` against the ledger's tool-usage cost.
* ``variance = vendor - ledger`` (positive: the vendor billed more than the ledger saw), ``variance_pct`` is
  relative to the vendor figure (null when the vendor figure is 0). A row is **within tolerance** when
  ``|variance| <= tolerance_usd`` *or* ``|variance_pct| <= tolerance_pct``; anything else is flagged. Tokens
  are compared class by class when the export has them (flagged beyond ``tolerance_pct``).
* The ledger side is restricted to the providers the exports cover and, unless ``since``/``until`` are given,
  to the days each provider's exports cover (first to last bucket). Next to every row: the ledger's
  unattributed spend (calls missing a required key) and its unpriced calls, because both explain gaps:
  unpriced calls cost money the ledger cannot put a figure on, and untagged traffic is spend nobody can be
  charged for.
* Money is ``Decimal`` from the file's digits to the output (JSON numbers are parsed as decimals, never
  floats); JSON output carries decimal strings.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from .._pricing._book import PriceBook, format_money
from .._analysis._source import Filters, Source, missing_sql

__all__ = ["VendorExport", "VendorRecord", "load_export", "reconcile", "render_reconciliation"]

_DAY_NS = 86_400 * 10**9
_CTX = Context(prec=60)
ALL_MODELS = "(all models)"
TOOLS = "(tools)"
#: Token classes compared, in display order (``input`` includes cache reads and writes: OTel convention).
TOKEN_CLASSES = ("input", "cache_read", "cache_write", "cache_write_1h", "output", "requests")
# OpenAI bills hosted-tool calls on their own line items; these are their leading words.
_OPENAI_TOOL_ITEMS = ("web search", "file search", "code interpreter", "computer use")


class ExportFormatError(ConfigurationError):
    """A vendor export could not be read; the message names the file and what was expected."""


@dataclass(frozen=True)
class VendorRecord:
    """One result of one bucket of a vendor export, normalised."""

    day: date
    provider: str
    model: str | None  # vendor's own name (``None``: the export is not itemised by model)
    cost: Decimal | None = None  # USD
    tokens: Mapping[str, int] | None = None
    tool: bool = False  # a per-call tool fee, not tokens


@dataclass
class VendorExport:
    path: str
    format: str
    provider: str
    kind: str  # "cost" | "usage"
    records: list[VendorRecord] = field(default_factory=list)
    buckets: set[int] = field(default_factory=set)  # bucket starts, epoch seconds

    @property
    def days(self) -> set[date]:
        return {_utc(b).date() for b in self.buckets}


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _rfc3339(text: Any, path: str) -> int:
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ExportFormatError(f"{path}: bucket time {text!r} is not an RFC 3339 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


def _money(v: Any, path: str, what: str) -> Decimal:
    if isinstance(v, bool) or v is None:
        raise ExportFormatError(f"{path}: {what} is {v!r}, not an amount")
    try:
        d = v if isinstance(v, Decimal) else Decimal(str(v))
    except InvalidOperation:
        raise ExportFormatError(f"{path}: {what} {v!r} is not a decimal amount") from None
    if not d.is_finite():
        raise ExportFormatError(f"{path}: {what} {v!r} is not a finite amount")
    return d


def _int(v: Any) -> int:
    if v is None or isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return v
    return int(Decimal(str(v)))


def _pages(path: Path) -> list[Any]:
    """The JSON documents in ``path``: one document, an array of pages, or one page per line."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ExportFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportFormatError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    # Amounts are parsed as Decimal from the file's own digits: a float would already have lost them.
    loads = lambda s: json.loads(s, parse_float=Decimal)  # noqa: E731
    try:
        doc = loads(raw)
    except json.JSONDecodeError as first:
        docs = []
        for n, line in enumerate(io.StringIO(raw), 1):
            if not line.strip():
                continue
            try:
                docs.append(loads(line))
            except json.JSONDecodeError:
                raise ExportFormatError(f"{path}: not JSON ({first.msg} at line {first.lineno}) and not JSON lines "
                                        f"(line {n} does not parse)") from None
        return docs
    if isinstance(doc, list) and all(isinstance(d, dict) and "data" in d for d in doc) and doc:
        return doc
    return [doc]


def _detect(pages: list[Any], path: str) -> str:
    """The export format of a file's pages, from their content."""
    vendors: set[str] = set()
    kinds: set[str] = set()
    for page in pages:
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            keys = sorted(page)[:8] if isinstance(page, dict) else type(page).__name__
            raise ExportFormatError(
                f"{path}: unknown vendor export format (top level: {keys}). Expected a page of OpenAI's "
                "/v1/organization/costs or /v1/organization/usage/completions, or of Anthropic's "
                "/v1/organizations/cost_report or /v1/organizations/usage_report/messages, saved as returned")
        for bucket in page["data"]:
            if not isinstance(bucket, dict):
                raise ExportFormatError(f"{path}: data[] holds {type(bucket).__name__}, expected bucket objects")
            if "start_time" in bucket:
                vendors.add("openai")
                for r in bucket.get("results", bucket.get("result")) or []:
                    obj = r.get("object") if isinstance(r, dict) else None
                    if obj == "organization.costs.result":
                        kinds.add("openai.costs")
                    elif obj in ("organization.usage.completions.result", "organization.usage.embeddings.result"):
                        kinds.add("openai.usage")
                    else:
                        raise ExportFormatError(f"{path}: OpenAI result object {obj!r} is not supported; export "
                                                "/v1/organization/costs or /v1/organization/usage/completions")
            elif "starting_at" in bucket:
                vendors.add("anthropic")
                for r in bucket.get("results") or []:
                    if isinstance(r, dict) and "amount" in r:
                        kinds.add("anthropic.cost_report")
                    elif isinstance(r, dict) and any(k in r for k in ("uncached_input_tokens", "output_tokens",
                                                                      "cache_read_input_tokens")):
                        kinds.add("anthropic.usage_report")
                    else:
                        raise ExportFormatError(f"{path}: Anthropic result without amount (cost_report) or token "
                                                "counts (usage_report/messages)")
            else:
                raise ExportFormatError(f"{path}: unknown vendor export format: bucket without start_time (OpenAI) "
                                        f"or starting_at (Anthropic), keys {sorted(bucket)[:8]}")
    if len(vendors) > 1 or len(kinds) > 1:
        raise ExportFormatError(f"{path}: mixes {', '.join(sorted(kinds or vendors))}; save each export in its own "
                                "file")
    if not vendors:
        raise ExportFormatError(f"{path}: no buckets (data[] is empty); nothing to reconcile")
    if kinds:
        return kinds.pop()
    # Every bucket is empty: the vendor recorded nothing on those days. Read it as a cost export of $0.
    return {"openai": "openai.costs", "anthropic": "anthropic.cost_report"}[vendors.pop()]


def load_export(path: str | Path) -> VendorExport:
    """Read and normalise one vendor export file.

    Raises:
        ExportFormatError: the file is missing, not JSON, or not one of the supported formats (the message
            names the file and what was expected); an amount is not in USD.
    """
    p = Path(path)
    pages = _pages(p)
    fmt = _detect(pages, str(p))
    provider = fmt.split(".")[0]
    exp = VendorExport(str(p), fmt, provider, "cost" if "cost" in fmt else "usage")
    for page in pages:
        for bucket in page["data"]:
            if provider == "openai":
                start = _int(bucket.get("start_time"))
                results = bucket.get("results", bucket.get("result")) or []
            else:
                start = _rfc3339(bucket.get("starting_at"), str(p))
                results = bucket.get("results") or []
            if start in exp.buckets:
                raise ExportFormatError(f"{p}: the bucket starting {_utc(start).isoformat()} appears twice")
            exp.buckets.add(start)
            day = _utc(start).date()
            for r in results:
                if isinstance(r, dict):
                    exp.records.append(_record(fmt, r, day, str(p)))
    return exp


def _record(fmt: str, r: Mapping[str, Any], day: date, path: str) -> VendorRecord:
    if fmt == "openai.costs":
        amount = r.get("amount") or {}
        cur = str(amount.get("currency") or "usd").upper()
        if cur != "USD":
            raise ExportFormatError(f"{path}: amount in {cur}; the ledger is in USD")
        item = r.get("line_item")
        model = None
        tool = False
        if isinstance(item, str) and item.strip():
            low = item.strip().lower()
            tool = low.startswith(_OPENAI_TOOL_ITEMS)
            # line items read "<model>, <input|output|cached input|...>"
            model = item.split(",", 1)[0].strip()
        return VendorRecord(day, "openai", model, cost=_money(amount.get("value"), path, "amount.value"), tool=tool)
    if fmt == "openai.usage":
        tokens = {"input": _int(r.get("input_tokens")) + _int(r.get("input_audio_tokens")),
                  "cache_read": _int(r.get("input_cached_tokens")),
                  "output": _int(r.get("output_tokens")) + _int(r.get("output_audio_tokens")),
                  "requests": _int(r.get("num_model_requests"))}
        if r.get("object") == "organization.usage.embeddings.result":
            tokens = {"input": tokens["input"], "requests": tokens["requests"]}
        return VendorRecord(day, "openai", r.get("model") or None, tokens=tokens)
    if fmt == "anthropic.cost_report":
        cur = str(r.get("currency") or "USD").upper()
        if cur != "USD":
            raise ExportFormatError(f"{path}: amount in {cur}; the ledger is in USD")
        # Anthropic reports the lowest currency unit (cents) as a decimal string: "123.45" is $1.2345.
        cost = _money(r.get("amount"), path, "amount").scaleb(-2)
        ctype = r.get("cost_type")
        tool = ctype is not None and ctype != "tokens"
        return VendorRecord(day, "anthropic", r.get("model") or None, cost=cost, tool=tool)
    cc = r.get("cache_creation") or {}
    w5, w1h = _int(cc.get("ephemeral_5m_input_tokens")), _int(cc.get("ephemeral_1h_input_tokens"))
    cr = _int(r.get("cache_read_input_tokens"))
    tokens = {"input": _int(r.get("uncached_input_tokens")) + cr + w5 + w1h, "cache_read": cr,
              "cache_write": w5, "cache_write_1h": w1h, "output": _int(r.get("output_tokens"))}
    return VendorRecord(day, "anthropic", r.get("model") or None, tokens=tokens)


# ------------------------------------------------------------------------------------------------ compare

class _Models:
    """Maps model names to the pricing table's id (cached), so dated and undated names meet."""

    def __init__(self, book: PriceBook | None) -> None:
        self.book = book
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, provider: str, name: str) -> str:
        key = (provider, name)
        hit = self._cache.get(key)
        if hit is None:
            hit = name.strip()
            if self.book is not None:
                try:
                    found = self.book.resolve(name, provider)
                except Exception:  # noqa: BLE001 - an odd name is compared as written
                    found = None
                if found is not None:
                    hit = found[0].id
            self._cache[key] = hit
        return hit


@dataclass
class _Side:
    cost: Decimal = Decimal(0)
    has_cost: bool = False
    tokens: dict[str, int] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    present: bool = False
    calls: int = 0
    unpriced: int = 0
    unattributed: Decimal = Decimal(0)
    unattributed_calls: int = 0

    def add_tokens(self, tokens: Mapping[str, int]) -> None:
        for k, v in tokens.items():
            self.tokens[k] = self.tokens.get(k, 0) + int(v)


def _pct(diff: Decimal, base: Decimal) -> Decimal | None:
    return None if base == 0 else _CTX.divide(diff * 100, base)


def _pct_text(p: Decimal | None) -> str | None:
    return None if p is None else format(p.quantize(Decimal("0.01")), "f")


def _within(diff: Decimal, pct: Decimal | None, tol_pct: Decimal, tol_usd: Decimal) -> bool:
    return abs(diff) <= tol_usd or (pct is not None and abs(pct) <= tol_pct)


_LEDGER_SQL = """
SELECT (start_ns - start_ns % {day}) AS d, lower(coalesce(provider, 'unknown')) AS p,
  pricing_model, response_model, request_model,
  count(*) AS n,
  sum(cost_total) AS cost,
  sum(coalesce(cost_tool, 0)) AS tool,
  sum(CASE WHEN cost_status = 'unpriced' THEN 1 ELSE 0 END) AS unpriced,
  sum(CASE WHEN {missing} THEN cost_total END) AS un_cost,
  sum(CASE WHEN {missing} THEN 1 ELSE 0 END) AS un_calls,
  sum(coalesce(input_tokens, 0)) AS t_in,
  sum(coalesce(cache_read_tokens, 0)) AS t_cr,
  sum(coalesce(cache_write_tokens, 0)) AS t_cw,
  sum(coalesce(cache_write_1h_tokens, 0)) AS t_cw1,
  sum(coalesce(output_tokens, 0)) AS t_out
FROM calls{where}
GROUP BY 1, 2, 3, 4, 5
"""


#: A comparison row's key: (UTC day, provider, model id or ALL_MODELS / TOOLS; None before folding).
_Key = tuple[date, str, str | None]


def reconcile(src: Source, exports: Sequence[VendorExport], *, book: PriceBook | None = None,
              tolerance_pct: Decimal | str = "1", tolerance_usd: Decimal | str = "0.01",
              since_ns: int | None = None, until_ns: int | None = None,
              required_keys: Sequence[str] = ("customer_id",)) -> dict[str, Any]:
    """Compare vendor exports with the ledger; returns the JSON-ready result (see the module docstring).

    Keys: ``currency``, ``tolerance {pct, usd}``, ``period {since, until}``, ``sources[]``, ``rows[]`` (per day,
    provider, model), ``days[]`` (per day and provider), ``totals``, ``flagged`` (number of flagged rows).

    Steps: refuse double-counted buckets, build the vendor side, then the ledger side over the providers and
    period the exports cover, fold the vendor rows of days not itemised by model, compare row by row.

    Raises:
        ExportFormatError: two exports hold the same bucket of the same kind (it would count twice).
        ConfigurationError: a tolerance is not a non-negative decimal.
    """
    tol_pct, tol_usd = _tolerance(tolerance_pct, "--tolerance-pct"), _tolerance(tolerance_usd, "--tolerance-usd")
    _refuse_double_buckets(exports)
    canon = _Models(book)
    vendor, cost_days, usage_days = _vendor_side(exports, canon, since_ns, until_ns)
    collapsed = {(d, p) for d, p, m in vendor if m is None}
    tool_split = {(d, p) for d, p, m in vendor if m == TOOLS}

    # --- ledger side: the providers and (unless given) the period the exports cover
    providers = sorted({e.provider for e in exports})
    covered = sorted(cost_days | usage_days)
    lo, hi = _period(covered, since_ns, until_ns)
    # Without an explicit window each provider is compared over the days its own exports cover.
    first_day = ({p: min((d for d, q in covered if q == p), default=date.max) for p in providers}
                 if since_ns is None else None)
    last_day = ({p: max((d for d, q in covered if q == p), default=date.min) for p in providers}
                if until_ns is None else None)
    ledger = _ledger_side(src, book, canon, providers, Filters(lo, hi), required_keys, first_day, last_day,
                          collapsed, tool_split)
    _fold_collapsed(vendor, collapsed)

    rows = [_row(k, vendor.get(k), ledger.get(k), (k[0], k[1]) in cost_days, (k[0], k[1]) in usage_days,
                 tol_pct, tol_usd)
            for k in sorted(set(vendor) | set(ledger), key=lambda k: (k[0], k[1], str(k[2])))]
    days = _days(rows, cost_days, usage_days, tol_pct, tol_usd)
    return {
        "currency": "USD",
        "tolerance": {"pct": format_money(tol_pct), "usd": format_money(tol_usd)},
        "period": {"since": _iso(lo), "until": _iso(hi)},
        "required_keys": list(required_keys),
        "sources": [_source(e) for e in exports],
        "rows": rows,
        "days": days,
        "totals": _totals(rows, days),
        "flagged": sum(r["flagged"] for r in rows),
    }


def _refuse_double_buckets(exports: Sequence[VendorExport]) -> None:
    """Raise :class:`ExportFormatError` when two files hold the same (provider, kind, bucket): it would count
    twice. The same file passed twice is not caught here (its path is the same)."""
    seen: dict[tuple[str, str, int], str] = {}
    for e in exports:
        for b in e.buckets:
            other = seen.setdefault((e.provider, e.kind, b), e.path)
            if other != e.path:
                raise ExportFormatError(f"{e.path} and {other} both hold the {e.provider} {e.kind} bucket of "
                                        f"{_utc(b).date()}: pass each export once (it would be counted twice)")


def _day_start_ns(day: date) -> int:
    """Epoch nanoseconds of 00:00 UTC on ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * 10**9


def _in_window(day: date, since_ns: int | None, until_ns: int | None) -> bool:
    """Whether the UTC ``day`` overlaps ``[since_ns, until_ns)`` (an open end when None)."""
    start = _day_start_ns(day)
    return (since_ns is None or start + _DAY_NS > since_ns) and (until_ns is None or start < until_ns)


def _vendor_side(exports: Sequence[VendorExport], canon: _Models, since_ns: int | None, until_ns: int | None
                 ) -> tuple[dict[_Key, _Side], set[tuple[date, str]], set[tuple[date, str]]]:
    """The vendor's figures per (day, provider, model) within the window, and the (day, provider) pairs that a
    cost export and a usage export cover.

    The model is the pricing table's id (``canon``), :data:`TOOLS` for a tool-fee line, or None for a record
    not itemised by model (the caller folds that provider's day into one row).
    """
    vendor: dict[_Key, _Side] = {}
    cost_days: set[tuple[date, str]] = set()
    usage_days: set[tuple[date, str]] = set()
    for e in exports:
        for b in e.buckets:
            d = _utc(b).date()
            if _in_window(d, since_ns, until_ns):
                (cost_days if e.kind == "cost" else usage_days).add((d, e.provider))
        for r in e.records:
            if not _in_window(r.day, since_ns, until_ns):
                continue
            model = TOOLS if r.tool else (canon(r.provider, r.model) if r.model else None)
            side = vendor.setdefault((r.day, r.provider, model), _Side())
            side.present = True
            if r.model:
                side.names.add(r.model)
            if r.cost is not None:
                side.cost += r.cost
                side.has_cost = True
            if r.tokens is not None:
                side.add_tokens(r.tokens)
    return vendor, cost_days, usage_days


def _period(covered: Sequence[tuple[date, str]], since_ns: int | None, until_ns: int | None
            ) -> tuple[int | None, int | None]:
    """The ledger window ``[lo, hi)`` in epoch ns: ``since``/``until`` when given, otherwise the first and last
    day the exports cover (None when they cover no day)."""
    lo, hi = since_ns, until_ns
    if covered and lo is None:
        lo = _day_start_ns(min(d for d, _ in covered))
    if covered and hi is None:
        hi = _day_start_ns(max(d for d, _ in covered)) + _DAY_NS
    return lo, hi


def _ledger_side(src: Source, book: PriceBook | None, canon: _Models, providers: Sequence[str], filters: Filters,
                 required_keys: Sequence[str], first_day: Mapping[str, date] | None,
                 last_day: Mapping[str, date] | None, collapsed: set[tuple[date, str]],
                 tool_split: set[tuple[date, str]]) -> dict[_Key, _Side]:
    """The ledger's figures per (day, provider, model), keyed like the vendor side.

    Only ``providers`` are kept, and per provider only the days from ``first_day`` to ``last_day`` (a bound that
    is None is not applied). A (day, provider) in ``collapsed`` becomes one :data:`ALL_MODELS` row; one in
    ``tool_split`` has its tool-usage cost moved to a :data:`TOOLS` row (cost only: calls, tokens and the
    unattributed share stay on the model's row).
    """
    missing = " OR ".join(missing_sql(k) for k in required_keys) or "1 = 0"
    where, params = filters.where()
    ledger: dict[_Key, _Side] = {}
    for (d_ns, prov, pm, rm, qm, n, cost, tool, unpriced, un_cost, un_calls,
         t_in, t_cr, t_cw, t_cw1, t_out) in src.query(_LEDGER_SQL.format(day=_DAY_NS, missing=f"({missing})",
                                                                        where=where), params):
        p = (book.canonical_provider(prov) if book is not None else None) or prov
        if p not in providers:
            continue
        day = _utc(int(d_ns) // 10**9).date()
        if (first_day is not None and day < first_day[p]) or (last_day is not None and day > last_day[p]):
            continue
        name = pm or rm or qm or "unknown"
        model = pm if pm else canon(p, name)
        cost_d, tool_d = _d(cost), _d(tool)
        tokens = {"input": int(t_in or 0), "cache_read": int(t_cr or 0), "cache_write": int(t_cw or 0),
                  "cache_write_1h": int(t_cw1 or 0), "output": int(t_out or 0), "requests": int(n)}
        if (day, p) in collapsed:
            keys = [(ALL_MODELS, cost_d)]
        elif (day, p) in tool_split and tool_d:
            keys = [(model, cost_d - tool_d), (TOOLS, tool_d)]
        else:
            keys = [(model, cost_d)]
        for m, c in keys:
            side = ledger.setdefault((day, p, m), _Side())
            side.present = True
            side.cost += c
            side.has_cost = True
            if m == TOOLS:
                continue
            side.names.add(name)
            side.calls += int(n)
            side.unpriced += int(unpriced or 0)
            side.unattributed += _d(un_cost)
            side.unattributed_calls += int(un_calls or 0)
            side.add_tokens(tokens)
    return ledger


def _fold_collapsed(vendor: dict[_Key, _Side], collapsed: set[tuple[date, str]]) -> None:
    """A day whose export is not itemised by model is compared as one row: fold (in place) the vendor's rows of
    each (day, provider) in ``collapsed`` into its :data:`ALL_MODELS` row."""
    for key in [k for k in vendor if (k[0], k[1]) in collapsed and k[2] != ALL_MODELS]:
        part = vendor.pop(key)
        dst = vendor.setdefault((key[0], key[1], ALL_MODELS), _Side())
        dst.present = True
        dst.names |= part.names
        dst.cost += part.cost
        dst.has_cost = dst.has_cost or part.has_cost
        dst.add_tokens(part.tokens)


def _source(e: VendorExport) -> dict[str, Any]:
    """One ``sources[]`` entry: the file, its format and provider, and the days its buckets span."""
    return {"file": e.path, "format": e.format, "provider": e.provider, "buckets": len(e.buckets),
            "first_day": min(e.days).isoformat() if e.buckets else None,
            "last_day": max(e.days).isoformat() if e.buckets else None}


def _totals(rows: Sequence[Mapping[str, Any]], days: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``totals`` object. Vendor and ledger totals cover only rows with a vendor cost (like with like); the
    ledger cost of rows without one is reported on its own (``ledger_cost_without_vendor_cost``)."""
    v_total = sum((Decimal(r["vendor_cost"]) for r in rows if r["vendor_cost"] is not None), Decimal(0))
    l_total = sum((Decimal(r["ledger_cost"]) for r in rows if r["vendor_cost"] is not None), Decimal(0))
    l_uncovered = sum((Decimal(r["ledger_cost"]) for r in rows if r["vendor_cost"] is None), Decimal(0))
    un_total = sum((Decimal(r["unattributed_cost"]) for r in rows), Decimal(0))
    diff = v_total - l_total
    return {"vendor_cost": format_money(v_total), "ledger_cost": format_money(l_total),
            "variance": format_money(diff), "variance_pct": _pct_text(_pct(diff, v_total)),
            "ledger_cost_without_vendor_cost": format_money(l_uncovered),
            "ledger_unattributed_cost": format_money(un_total),
            "flagged_rows": sum(r["flagged"] for r in rows),
            "flagged_days": sum(d["flagged"] for d in days)}


def _tolerance(v: Decimal | str, what: str) -> Decimal:
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise ConfigurationError(f"{what} {v!r} is not a decimal number (e.g. 1 or 0.5)") from None
    if not d.is_finite() or d < 0:
        raise ConfigurationError(f"{what} must be a non-negative number, got {v!r}")
    return d


def _d(v: Any) -> Decimal:
    if v is None:
        return Decimal(0)
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _iso(ns: int | None) -> str | None:
    return None if ns is None else datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).isoformat()


def _row(key: tuple[date, str, str | None], v: _Side | None, led: _Side | None, cost_covered: bool,
         usage_covered: bool, tol_pct: Decimal, tol_usd: Decimal) -> dict[str, Any]:
    day, provider, model = key
    led = led or _Side()
    v = v or _Side()
    vendor_cost = v.cost if (v.has_cost or cost_covered) else None
    variance = pct = None
    cost_flag = False
    if vendor_cost is not None:
        variance = vendor_cost - led.cost
        pct = _pct(variance, vendor_cost)
        cost_flag = not _within(variance, pct, tol_pct, tol_usd)
    elif led.present and not (cost_covered or usage_covered):
        # Spend on a day no export covers: either the export range is short or the vendor has not billed it.
        cost_flag = led.cost > tol_usd
    tokens = None
    tokens_flagged = False
    if v.tokens or (usage_covered and led.present):
        tokens = {}
        classes = [c for c in TOKEN_CLASSES if c in v.tokens] or ["input", "output"]
        for c in classes:
            vt, lt = v.tokens.get(c, 0), led.tokens.get(c, 0)
            diff = vt - lt
            tp = _pct(Decimal(diff), Decimal(vt))
            flag = diff != 0 and (tp is None or abs(tp) > tol_pct)
            tokens_flagged |= flag
            tokens[c] = {"vendor": vt, "ledger": lt, "variance": diff, "variance_pct": _pct_text(tp), "flagged": flag}
    if not led.present:
        status = "vendor_only"
    elif not v.present:
        status = "ledger_only"
    else:
        status = "mismatch" if (cost_flag or tokens_flagged) else "match"
    notes = []
    if cost_flag and variance is not None and variance > 0:
        notes.append("the vendor billed more than the ledger recorded: calls from services that are not "
                     "instrumented (or unpriced calls) do not reach the ledger's total")
    if led.unpriced:
        notes.append(f"{led.unpriced} unpriced call(s) in the ledger carry no cost; add their model to the pricing "
                     "table to close the gap")
    if status == "vendor_only":
        notes.append("model missing from the ledger: no call to it was captured")
    if status == "ledger_only" and not (cost_covered or usage_covered):
        notes.append("the vendor exports do not cover this day")
    return {
        "day": day.isoformat(), "provider": provider, "model": model,
        "vendor_models": sorted(v.names), "ledger_models": sorted(led.names),
        "status": status, "flagged": bool(cost_flag or tokens_flagged),
        "vendor_cost": format_money(vendor_cost) if vendor_cost is not None else None,
        "ledger_cost": format_money(led.cost), "variance": format_money(variance) if variance is not None else None,
        "variance_pct": _pct_text(pct),
        "ledger_calls": led.calls, "ledger_unpriced_calls": led.unpriced,
        "unattributed_cost": format_money(led.unattributed),
        "unattributed_share": _pct_text(_pct(led.unattributed, led.cost)) or "0.00",
        "unattributed_calls": led.unattributed_calls,
        "tokens": tokens, "tokens_flagged": tokens_flagged,
        "covered": cost_covered or usage_covered,
        "notes": notes,
    }


def _days(rows: list[dict[str, Any]], cost_days: set[tuple[date, str]], usage_days: set[tuple[date, str]],
          tol_pct: Decimal, tol_usd: Decimal) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        a = acc.setdefault((r["day"], r["provider"]), {"vendor": None, "ledger": Decimal(0), "un": Decimal(0),
                                                       "rows": 0, "flagged_rows": 0})
        if r["vendor_cost"] is not None:
            a["vendor"] = (a["vendor"] or Decimal(0)) + Decimal(r["vendor_cost"])
        a["ledger"] += Decimal(r["ledger_cost"])
        a["un"] += Decimal(r["unattributed_cost"])
        a["rows"] += 1
        a["flagged_rows"] += r["flagged"]
    out = []
    for (day, prov), a in sorted(acc.items()):
        d = date.fromisoformat(day)
        covered = (d, prov) in cost_days
        vendor = a["vendor"] if a["vendor"] is not None or not covered else Decimal(0)
        variance = pct = None
        flagged = a["flagged_rows"] > 0
        if vendor is not None:
            variance = vendor - a["ledger"]
            pct = _pct(variance, vendor)
            flagged = flagged or not _within(variance, pct, tol_pct, tol_usd)
        elif a["ledger"] and not (d, prov) in usage_days:
            flagged = flagged or a["ledger"] > tol_usd  # spend on a day no export covers
        out.append({"day": day, "provider": prov, "vendor_cost": format_money(vendor) if vendor is not None else None,
                    "ledger_cost": format_money(a["ledger"]),
                    "variance": format_money(variance) if variance is not None else None,
                    "variance_pct": _pct_text(pct), "unattributed_cost": format_money(a["un"]),
                    "unattributed_share": _pct_text(_pct(a["un"], a["ledger"])) or "0.00",
                    "covered": covered or (d, prov) in usage_days, "flagged": flagged,
                    "flagged_rows": a["flagged_rows"]})
    return out


# ------------------------------------------------------------------------------------------------ render

def render_reconciliation(result: Mapping[str, Any], fmt: str = "table") -> str:
    """``json`` (the contract above, indented) or a fixed-width ``table`` for people."""
    if fmt == "json":
        return json.dumps(result, indent=2) + "\n"
    head = ["day", "provider", "model", "vendor $", "ledger $", "variance $", "var %", "untagged $", "status"]
    body = []
    for r in result["rows"]:
        body.append([r["day"], r["provider"], r["model"], r["vendor_cost"] or "-", r["ledger_cost"],
                     r["variance"] or "-", (r["variance_pct"] + "%") if r["variance_pct"] else "-",
                     f"{r['unattributed_cost']} ({r['unattributed_share']}%)",
                     ("! " if r["flagged"] else "") + r["status"]])
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
    out = io.StringIO()
    line = lambda cells: "  ".join(c.rjust(w) if 3 <= i <= 7 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out.write(line(head) + "\n" + "  ".join("-" * w for w in widths) + "\n")
    for b in body:
        out.write(line(b) + "\n")
    for r in result["rows"]:
        if r["tokens_flagged"]:
            parts = [f"{c} vendor {t['vendor']} / ledger {t['ledger']}" for c, t in r["tokens"].items() if t["flagged"]]
            out.write(f"! tokens {r['day']} {r['provider']} {r['model']}: {'; '.join(parts)}\n")
    t = result["totals"]
    tol = result["tolerance"]
    out.write(f"\nvendor ${t['vendor_cost']}  ledger ${t['ledger_cost']}  variance ${t['variance']}"
              f"{' (' + t['variance_pct'] + '%)' if t['variance_pct'] else ''}  "
              f"[tolerance {tol['pct']}% or ${tol['usd']}]\n")
    out.write(f"{t['flagged_rows']} row(s) and {t['flagged_days']} day(s) beyond tolerance; ledger spend without "
              f"{' / '.join(result['required_keys'])}: ${t['ledger_unattributed_cost']}\n")
    return out.getvalue()


def load_exports(paths: Iterable[str | Path]) -> list[VendorExport]:
    """:func:`load_export` for each path, in order."""
    return [load_export(p) for p in paths]

