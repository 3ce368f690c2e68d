"""Ledger spend as a FinOps FOCUS 1.2 dataset (``otel-costattr export focus``).

Target: FOCUS **1.2** (FinOps Open Cost and Usage Specification, tag ``v1.2`` of
github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, published at focus.finops.org/focus-specification/v1-2/).
1.2 is the newest release whose normative column text we could check line by line; the column list and
constraints we validate against ship as ``tests/data/finance/focus-1.2-columns.json``.

Contract
--------

* **One row per (charge period, provider, model, token class, rate, attribution tag set).** A FOCUS row has one
  ``SkuPriceId`` and its unit prices must reproduce its costs (``ListUnitPrice x PricingQuantity = ListCost``,
  same for contracted), so a row cannot mix input and output tokens: each token class (``input`` = uncached
  input, ``cache_read``, ``cache_write``, ``output`` = text output, ``reasoning``) is its own row.
  ``tool_usage`` (per-call fees such as web search, priced per request) and ``unitemized`` (a call's cost that the
  span did not split into components, e.g. vendor-provided totals) carry ``Requests`` as their unit; components
  that add up to more than their calls' total (inconsistent upstream attributes) leave an ``Adjustment`` row.
* **Charge period** is one UTC day by default (``granularity="hour"`` for hours): vendors' own cost exports are
  daily, which keeps the export joinable with :mod:`._reconcile`, and hourly rows multiply the row count by 24
  for every tag set. The billing period is the UTC calendar month (how OpenAI and Anthropic invoice API use).
* **Money is exact.** ``BilledCost`` / ``EffectiveCost`` / ``ContractedCost`` are the ledger's DECIMAL(38,18)
  sums (billed = effective: API usage has no amortised commitment; contracted = billed: negotiated discounts
  are part of the contracted rate). ``ListCost`` is the cost before a negotiated discount when the call was
  priced with one (``discount:P%`` pricing flag), else the billed cost. ``sum(BilledCost)`` equals the
  ledger's total for the same window exactly. Unit prices are per ``1000000 Tokens`` (how vendors publish
  them); they are exact when a row has a single rate, which grouping by model, pricing version and pricing
  flags (tier, long context, region, discount) makes the normal case; a row that still mixes rates (Anthropic
  5-minute and 1-hour cache writes in one call, audio tokens inside input) gets the weighted average rounded
  to 18 decimals, so price x quantity then reproduces the cost to within quantity x 5E-19 USD.
* **Tags** is a JSON object of the attribution keys the calls carried (``customer_id``, ``task_id``,
  ``agent_id``, ``skill_id``, ``process_id``, ``feature``, ``workload_type``, ``user_id``); null when none.
  Per-run ids (``process_run_id``, ``agent_run_id``) are left out on purpose: they would make every run its own
  row. One user-defined tag scheme, so keys are not prefixed (FOCUS 1.2 Tags requirement).
* Calls whose cost is unknown (``unpriced``, ``no_usage``) have no row: FOCUS costs cannot be null, and unknown
  is not zero. The report counts them.
* Columns: every FOCUS 1.2 Mandatory and Recommended column, plus the Conditional ones that apply to metered API
  usage (or that consumers commonly expect present, left null: commitment discounts, capacity reservations,
  resources, regions, sub accounts). Left out: ``BillingAccountType`` (one account type) and the
  ``PricingCurrency*`` columns (prices and bills are both in USD). Custom columns carry the ``x_`` prefix and come
  last.

Every query goes through ``src.query(sql, params)`` with portable SQL (integer arithmetic, CASE, SUM), so the
same export runs over any rollup :class:`~otel_costattr._analysis._rollup.Source`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import Any

from .._csvcell import csv_cell
from .._errors import ConfigurationError
from .._pricing._book import format_money
from .._analysis._source import Filters, Source

__all__ = ["FOCUS_COLUMNS", "FOCUS_VERSION", "TAG_KEYS", "FocusSummary", "focus_rows", "iter_focus_rows",
           "write_focus"]

FOCUS_VERSION = "1.2"

#: Attribution keys copied into ``Tags`` (run ids are left out: one row per run would defeat aggregation).
TAG_KEYS: tuple[str, ...] = ("customer_id", "task_id", "agent_id", "skill_id", "process_id", "feature",
                             "workload_type", "user_id")

# (column id, FOCUS data type). FOCUS columns in alphabetical order (FOCUS column-ordering rule), then ours.
FOCUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AvailabilityZone", "String"), ("BilledCost", "Decimal"), ("BillingAccountId", "String"),
    ("BillingAccountName", "String"), ("BillingCurrency", "String"), ("BillingPeriodEnd", "Date/Time"),
    ("BillingPeriodStart", "Date/Time"), ("CapacityReservationId", "String"), ("CapacityReservationStatus", "String"),
    ("ChargeCategory", "String"), ("ChargeClass", "String"), ("ChargeDescription", "String"),
    ("ChargeFrequency", "String"), ("ChargePeriodEnd", "Date/Time"), ("ChargePeriodStart", "Date/Time"),
    ("CommitmentDiscountCategory", "String"), ("CommitmentDiscountId", "String"),
    ("CommitmentDiscountName", "String"), ("CommitmentDiscountQuantity", "Decimal"),
    ("CommitmentDiscountStatus", "String"), ("CommitmentDiscountType", "String"),
    ("CommitmentDiscountUnit", "String"), ("ConsumedQuantity", "Decimal"), ("ConsumedUnit", "String"),
    ("ContractedCost", "Decimal"), ("ContractedUnitPrice", "Decimal"), ("EffectiveCost", "Decimal"),
    ("InvoiceId", "String"), ("InvoiceIssuerName", "String"), ("ListCost", "Decimal"), ("ListUnitPrice", "Decimal"),
    ("PricingCategory", "String"), ("PricingQuantity", "Decimal"), ("PricingUnit", "String"),
    ("ProviderName", "String"), ("PublisherName", "String"), ("RegionId", "String"), ("RegionName", "String"),
    ("ResourceId", "String"), ("ResourceName", "String"), ("ResourceType", "String"),
    ("ServiceCategory", "String"), ("ServiceName", "String"), ("ServiceSubcategory", "String"),
    ("SkuId", "String"), ("SkuMeter", "String"), ("SkuPriceDetails", "JSON"), ("SkuPriceId", "String"),
    ("SubAccountId", "String"), ("SubAccountName", "String"), ("SubAccountType", "String"), ("Tags", "JSON"),
    # custom columns (FOCUS: x_ prefix, after every FOCUS column)
    ("x_TokenClass", "String"), ("x_GenAiProvider", "String"), ("x_PricingVersion", "String"),
)
_NAMES = tuple(n for n, _ in FOCUS_COLUMNS)

_PER = Decimal(1_000_000)  # unit prices are per 1,000,000 tokens, as the vendors publish them
_TOKENS_UNIT = "1000000 Tokens"
_SCALE = Decimal("1E-18")  # DECIMAL(38,18), the ledger's own scale
_CTX = Context(prec=80)
_DAY_NS = 86_400 * 10**9
_HOUR_NS = 3_600 * 10**9

# provider (lower-case gen_ai.provider.name / gen_ai.system value) -> (ProviderName, InvoiceIssuerName, ServiceName).
# PublisherName is the model's maker: the provider itself except on marketplaces (see _publisher).
_PROVIDERS: dict[str, tuple[str, str, str]] = {
    "openai": ("OpenAI", "OpenAI", "OpenAI API"),
    "anthropic": ("Anthropic", "Anthropic", "Claude API"),
    "aws.bedrock": ("AWS", "AWS", "Amazon Bedrock"),
    "bedrock": ("AWS", "AWS", "Amazon Bedrock"),
    "gcp.vertex_ai": ("Google Cloud", "Google Cloud", "Vertex AI"),
    "vertex_ai": ("Google Cloud", "Google Cloud", "Vertex AI"),
    "gcp.gemini": ("Google", "Google", "Gemini API"),
    "gcp.gen_ai": ("Google", "Google", "Gemini API"),
    "gemini": ("Google", "Google", "Gemini API"),
    "google": ("Google", "Google", "Gemini API"),
    "azure.ai.openai": ("Microsoft", "Microsoft", "Azure OpenAI"),
    "azure": ("Microsoft", "Microsoft", "Azure OpenAI"),
    "azure.ai.inference": ("Microsoft", "Microsoft", "Azure AI Foundry Models"),
    "deepseek": ("DeepSeek", "DeepSeek", "DeepSeek API"),
    "mistral_ai": ("Mistral AI", "Mistral AI", "Mistral AI API"),
    "mistral": ("Mistral AI", "Mistral AI", "Mistral AI API"),
    "x_ai": ("xAI", "xAI", "xAI API"),
    "xai": ("xAI", "xAI", "xAI API"),
}
# Model-name prefixes that name the maker when a marketplace (Bedrock, Vertex, Azure) resells the model.
_MAKERS = (("anthropic.", "Anthropic"), ("claude", "Anthropic"), ("meta.", "Meta"), ("llama", "Meta"),
           ("amazon.", "Amazon"), ("nova", "Amazon"), ("mistral", "Mistral AI"), ("cohere.", "Cohere"),
           ("ai21.", "AI21 Labs"), ("gemini", "Google"), ("gpt", "OpenAI"), ("o1", "OpenAI"), ("o3", "OpenAI"),
           ("o4", "OpenAI"), ("deepseek", "DeepSeek"), ("grok", "xAI"))

# token class -> SkuMeter
_CLASSES: tuple[tuple[str, str], ...] = (
    ("input", "Input Tokens"), ("cache_read", "Cache Read Tokens"), ("cache_write", "Cache Write Tokens"),
    ("output", "Output Tokens"), ("reasoning", "Reasoning Tokens"),
)
# Pricing flags that change the rate (so they name a different SKU price); discounts do not: the list price
# of the SKU is the same, only the contracted rate differs.
_RATE_FLAGS = ("service_tier:", "long_context:", "region:", "time_window:", "geo:")

_SQL = """
SELECT
  {bucket} AS bucket,
  lower(coalesce(provider, 'unknown')) AS prov,
  coalesce(pricing_model, response_model, request_model, 'unknown') AS model,
  pricing_version, cost_flags,
  CASE WHEN cost_input IS NULL AND cost_output IS NULL THEN 1 ELSE 0 END AS bare,
  {tags},
  count(*) AS n,
  sum(cost_total) AS c_total,
  sum(coalesce(cost_input, 0)) AS c_in,
  sum(coalesce(cost_cache_read, 0)) AS c_cr,
  sum(coalesce(cost_cache_write, 0)) AS c_cw,
  sum(coalesce(cost_output, 0)) AS c_out,
  sum(coalesce(cost_reasoning, 0)) AS c_rs,
  sum(coalesce(cost_tool, 0)) AS c_tool,
  sum(CASE WHEN coalesce(cost_tool, 0) > 0 THEN 1 ELSE 0 END) AS n_tool,
  sum(coalesce(input_tokens, 0)) AS t_in,
  sum(coalesce(cache_read_tokens, 0)) AS t_cr,
  sum(coalesce(cache_write_tokens, 0)) AS t_cw,
  sum(coalesce(cache_write_1h_tokens, 0)) AS t_cw1,
  sum(coalesce(output_tokens, 0)) AS t_out,
  sum(coalesce(reasoning_tokens, 0)) AS t_rs
FROM calls{where}
GROUP BY {group}
ORDER BY 1, 2, 3, 4, 5, 6, {tag_order}
"""


@dataclass(frozen=True)
class FocusSummary:
    """What an export wrote: row count and the exact sums a reader can check the file against."""

    rows: int
    billed_cost: Decimal
    list_cost: Decimal
    path: str | None = None

    def __str__(self) -> str:
        where = f" to {self.path}" if self.path else ""
        return (f"wrote {self.rows} FOCUS {FOCUS_VERSION} row(s){where}: BilledCost ${format_money(self.billed_cost)}, "
                f"ListCost ${format_money(self.list_cost)}")


def _dec(v: Any) -> Decimal:
    if v is None:
        return Decimal(0)
    if isinstance(v, Decimal):
        return v
    if isinstance(v, int):
        return Decimal(v)
    return Decimal(str(v))  # other sources may hand back floats or strings; their shortest text is the value


def _fit(d: Decimal) -> Decimal:
    """``d`` at the DECIMAL(38,18) scale: unchanged when it already fits (every cost does), else rounded."""
    q = d.quantize(_SCALE, rounding=ROUND_HALF_EVEN, context=_CTX)
    return d if q == d else q


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 10**9, tz=timezone.utc)


def _month_bounds(ns: int) -> tuple[datetime, datetime]:
    d = _ts(ns)
    start = datetime(d.year, d.month, 1, tzinfo=timezone.utc)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def _publisher(prov: str, model: str, provider_name: str) -> str:
    if prov not in ("aws.bedrock", "bedrock", "gcp.vertex_ai", "vertex_ai", "azure.ai.openai", "azure",
                    "azure.ai.inference"):
        return provider_name
    m = model.lower().split("/")[-1]
    for geo in ("us.", "eu.", "apac.", "global.", "jp.", "au."):  # Bedrock cross-region inference prefixes
        if m.startswith(geo):
            m = m[len(geo):]
            break
    for prefix, maker in _MAKERS:
        if m.startswith(prefix):
            return maker
    return provider_name


def _discount(flags: str | None) -> Decimal | None:
    """The negotiated discount percent recorded in the pricing flags (``discount:12.5%``), if any."""
    if not flags:
        return None
    for f in flags.split(","):
        f = f.strip()
        if f.startswith("discount:") and f.endswith("%"):
            try:
                return Decimal(f[len("discount:"):-1])
            except ArithmeticError:
                return None
    return None


def _rate_suffix(flags: str | None) -> str:
    parts = sorted(f.strip() for f in (flags or "").split(",") if f.strip().startswith(_RATE_FLAGS))
    return ("/" + "+".join(parts)) if parts else ""


def _region(flags: str | None) -> str | None:
    for f in (flags or "").split(","):
        f = f.strip()
        if f.startswith("region:"):
            return f[len("region:"):] or None
    return None


def focus_rows(src: Source, *, since_ns: int | None = None, until_ns: int | None = None, granularity: str = "day",
               accounts: Mapping[str, tuple[str, str | None]] | None = None) -> list[dict[str, Any]]:
    """The ledger's spend in ``[since_ns, until_ns)`` as FOCUS rows (dicts keyed by :data:`FOCUS_COLUMNS` ids):
    :func:`iter_focus_rows` as a list (for small windows and tests; an export streams them instead).

    Raises:
        ConfigurationError: ``granularity`` is not ``day`` or ``hour``.
    """
    return list(iter_focus_rows(src, since_ns=since_ns, until_ns=until_ns, granularity=granularity,
                                accounts=accounts))


def iter_focus_rows(src: Source, *, since_ns: int | None = None, until_ns: int | None = None,
                    granularity: str = "day", accounts: Mapping[str, tuple[str, str | None]] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Iterator[dict[str, Any]]:
    """The ledger's spend in ``[since_ns, until_ns)`` as FOCUS rows, in order (charge period, provider, model,
    pricing version, flags, tags), one UTC day of spend at a time.

    Values are ``Decimal`` (costs, quantities, unit prices), timezone-aware UTC ``datetime`` (periods), ``str``
    or ``None``. ``accounts`` maps a provider (``openai``, ``anthropic``, ...) to ``(BillingAccountId,
    BillingAccountName)``, e.g. the vendor organisation id; by default the account id is the provider id and
    the name is null. ``progress(days_done, days)`` is called after each day.

    Memory holds one day's groups, not the export: a ledger whose every call is its own group (1M calls with
    distinct tag sets) took 5.2 GB as one list. It costs one query per day that has calls, plus one listing them.

    Raises:
        ConfigurationError: ``granularity`` is not ``day`` or ``hour`` (raised before the first row).
    """
    if granularity not in ("day", "hour"):
        raise ConfigurationError(f"granularity must be 'day' or 'hour', got {granularity!r}")
    return _iter_rows(src, since_ns, until_ns, _DAY_NS if granularity == "day" else _HOUR_NS,
                      {k.lower(): v for k, v in (accounts or {}).items()}, progress)


def _iter_rows(src: Source, since_ns: int | None, until_ns: int | None, width: int,
               accounts: Mapping[str, tuple[str, str | None]],
               progress: Callable[[int, int], None] | None) -> Iterator[dict[str, Any]]:
    where, params = Filters(since_ns, until_ns).where("cost_total IS NOT NULL")
    days = [int(d) for d, in src.query(f"SELECT DISTINCT start_ns - start_ns % {_DAY_NS} FROM calls{where} "
                                        "ORDER BY 1", params)]
    for i, day in enumerate(days):
        lo = day if since_ns is None else max(day, since_ns)
        hi = day + _DAY_NS if until_ns is None else min(day + _DAY_NS, until_ns)
        yield from _day_rows(src, lo, hi, width, accounts)
        if progress is not None:
            progress(i + 1, len(days))


def _day_rows(src: Source, since_ns: int, until_ns: int, width: int,
              accounts: Mapping[str, tuple[str, str | None]]) -> Iterator[dict[str, Any]]:
    """The rows of the calls in ``[since_ns, until_ns)`` (within one UTC day), grouped by ``width`` buckets."""
    # `start_ns - start_ns % width` is the bucket start in plain integer SQL (no dialect date functions).
    bucket = f"(start_ns - start_ns % {width})"
    where, params = Filters(since_ns, until_ns).where("cost_total IS NOT NULL")
    tag_cols = ", ".join(TAG_KEYS)
    sql = _SQL.format(bucket=bucket, tags=tag_cols, where=where,
                      group=f"1, 2, 3, 4, 5, 6, {tag_cols}",
                      tag_order=", ".join(f"coalesce({k}, '')" for k in TAG_KEYS))
    ntags = len(TAG_KEYS)
    for r in src.query(sql, params):
        b, prov, model, version, flags, bare = int(r[0]), str(r[1]), str(r[2]), r[3], r[4], int(r[5])
        tag_vals = r[6:6 + ntags]
        (n, c_total, c_in, c_cr, c_cw, c_out, c_rs, c_tool, n_tool,
         t_in, t_cr, t_cw, t_cw1, t_out, t_rs) = r[6 + ntags:]
        c_total = _dec(c_total)
        tags = {k: v for k, v in zip(TAG_KEYS, tag_vals) if v is not None}
        base = _base_row(b, width, prov, model, version, flags, tags, accounts)
        pct = _discount(flags)
        itemised = Decimal(0)
        if not bare:
            costs = {"input": _dec(c_in) - _dec(c_cr) - _dec(c_cw), "cache_read": _dec(c_cr),
                     "cache_write": _dec(c_cw), "output": _dec(c_out) - _dec(c_rs), "reasoning": _dec(c_rs)}
            tokens = {"cache_read": int(t_cr or 0), "cache_write": int(t_cw or 0) + int(t_cw1 or 0),
                      "reasoning": int(t_rs or 0)}
            tokens["input"] = max(int(t_in or 0) - tokens["cache_read"] - tokens["cache_write"], 0)
            tokens["output"] = max(int(t_out or 0) - tokens["reasoning"], 0)
            for cls, meter in _CLASSES:
                cost, qty = costs[cls], tokens[cls]
                # A class with no tokens has no unit price; a negative derived cost means the span's components
                # were inconsistent. Either way its money stays in the group's remainder row: totals stay exact.
                if qty <= 0 or cost < 0:
                    continue
                itemised += cost
                yield _priced_row(base, cls, meter, cost, Decimal(qty), _TOKENS_UNIT, _PER, pct, model)
            tool = _dec(c_tool)
            if tool > 0 and int(n_tool or 0) > 0:
                itemised += tool
                yield _priced_row(base, "tool_usage", "Tool Requests", tool, Decimal(int(n_tool)),
                                  "Requests", Decimal(1), pct, model)
        rest = c_total - itemised
        if rest > 0:
            # Calls costed as one figure (a vendor-provided total): usage, counted per request.
            yield _priced_row(base, "unitemized", "Requests", rest, Decimal(int(n or 1)), "Requests",
                              Decimal(1), pct, model)
        elif rest < 0:
            yield _adjustment_row(base, rest, model)


def _base_row(bucket: int, width: int, prov: str, model: str, version: Any, flags: Any, tags: dict[str, str],
              accounts: Mapping[str, tuple[str, str | None]]) -> dict[str, Any]:
    pname, issuer, service = _PROVIDERS.get(prov, (prov, prov, f"{prov} API"))
    acct_id, acct_name = accounts.get(prov, (prov, None))
    bp_start, bp_end = _month_bounds(bucket)
    region = _region(flags)
    return {
        "AvailabilityZone": None,
        "BillingAccountId": acct_id, "BillingAccountName": acct_name, "BillingCurrency": "USD",
        "BillingPeriodEnd": bp_end, "BillingPeriodStart": bp_start,
        "CapacityReservationId": None, "CapacityReservationStatus": None,
        "ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _ts(bucket + width), "ChargePeriodStart": _ts(bucket),
        "CommitmentDiscountCategory": None, "CommitmentDiscountId": None, "CommitmentDiscountName": None,
        "CommitmentDiscountQuantity": None, "CommitmentDiscountStatus": None, "CommitmentDiscountType": None,
        "CommitmentDiscountUnit": None, "InvoiceId": None, "InvoiceIssuerName": issuer,
        # Negotiated discounts are still "Standard" in FOCUS (predetermined rate for the billing account).
        "PricingCategory": "Standard",
        "ProviderName": pname, "PublisherName": _publisher(prov, model, pname),
        "RegionId": region, "RegionName": region,
        "ResourceId": None, "ResourceName": None, "ResourceType": None,
        "ServiceCategory": "AI and Machine Learning", "ServiceName": service, "ServiceSubcategory": "Generative AI",
        "SkuId": model, "SkuPriceDetails": None,
        "SubAccountId": None, "SubAccountName": None, "SubAccountType": None,
        "Tags": json.dumps(tags, sort_keys=True, separators=(",", ":")) if tags else None,
        "x_GenAiProvider": prov, "x_PricingVersion": version if version is None else str(version),
        "_flags": flags,
    }


def _priced_row(base: dict[str, Any], cls: str, meter: str, billed: Decimal, consumed: Decimal, unit: str,
                per: Decimal, pct: Decimal | None, model: str) -> dict[str, Any]:
    if pct is not None and pct < 100:
        # billed = list x (1 - pct/100) exactly, so the division gives the list figure back exactly.
        listed = _fit(_CTX.divide(billed, _CTX.subtract(Decimal(1), _CTX.divide(pct, Decimal(100)))))
    else:
        listed = billed
    quantity = _fit(_CTX.divide(consumed, per))
    row = dict(base)
    flags = row.pop("_flags")
    row.update({
        "BilledCost": billed, "EffectiveCost": billed, "ContractedCost": billed, "ListCost": listed,
        "ConsumedQuantity": consumed, "ConsumedUnit": "Tokens" if unit == _TOKENS_UNIT else unit,
        "PricingQuantity": quantity, "PricingUnit": unit,
        "ContractedUnitPrice": _fit(_CTX.divide(billed, quantity)),
        "ListUnitPrice": _fit(_CTX.divide(listed, quantity)),
        "ChargeDescription": f"{model} {meter.lower()} ({row['ServiceName']})",
        "SkuMeter": meter,
        "SkuPriceId": f"{row['x_GenAiProvider']}/{model}/{cls}{_rate_suffix(flags)}",
        "x_TokenClass": cls,
    })
    return row


def _adjustment_row(base: dict[str, Any], amount: Decimal, model: str) -> dict[str, Any]:
    """Components that add up to more than the calls' total (inconsistent upstream cost attributes): the
    difference is booked as an Adjustment, which FOCUS lets carry no quantity, unit price or SKU, so that the
    file's BilledCost still sums to the ledger exactly."""
    row = dict(base)
    row.pop("_flags")
    row.update({
        "BilledCost": amount, "EffectiveCost": amount, "ContractedCost": amount, "ListCost": amount,
        "ChargeCategory": "Adjustment", "ChargeFrequency": "Usage-Based", "PricingCategory": None,
        "ConsumedQuantity": None, "ConsumedUnit": None, "PricingQuantity": None, "PricingUnit": None,
        "ContractedUnitPrice": None, "ListUnitPrice": None, "SkuId": None, "SkuMeter": None, "SkuPriceId": None,
        "ChargeDescription": f"{model}: cost components exceed the recorded call totals (correction)",
        "x_TokenClass": "adjustment",
    })
    return row


# --------------------------------------------------------------------------------------------------- writing

def _csv_formatters() -> list[Callable[[Any], str]]:
    """One formatter per column: None is an empty field (CSV has no null; that is how FOCUS CSV exports carry one),
    money is its exact decimal text, text cells never run as spreadsheet formulas. Period values repeat on every
    row of a day: their text is cached (bounded)."""
    times: dict[datetime, str] = {}

    def when(v: Any) -> str:
        text = times.get(v)
        if text is None:
            if len(times) >= 4096:
                times.clear()
            text = times[v] = v.strftime("%Y-%m-%dT%H:%M:%SZ")  # FOCUS Date/Time: extended ISO 8601 with Z
        return text

    def money(v: Any) -> str:
        return "" if v is None else (format_money(v) or "0")

    by_kind = {"Date/Time": when, "Decimal": money}  # text (String, JSON): csv_cell, which writes None as ""
    return [by_kind.get(kind, csv_cell) for _, kind in FOCUS_COLUMNS]


def _arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {"String": pa.string(), "JSON": pa.string(), "Decimal": pa.decimal128(38, 18),
             "Date/Time": pa.timestamp("ms", tz="UTC")}
    meta = {b"focus_version": FOCUS_VERSION.encode(), b"generator": b"otel-costattr"}
    return pa.schema([pa.field(n, kinds[k], nullable=True) for n, k in FOCUS_COLUMNS], metadata=meta)


def write_focus(rows: Iterable[Mapping[str, Any]], out: str | os.PathLike[str]) -> FocusSummary:
    """Write ``rows`` to ``out``: ``.csv`` (exact decimal strings, ISO 8601 UTC times, text cells neutralised
    against spreadsheet formulas) or ``.parquet`` (``decimal128(38, 18)``, ``timestamp[ms, UTC]``), streaming:
    rows are consumed once, in batches of :data:`_BATCH` for Parquet. Written to a temporary file first, then
    renamed; on any error the temporary file is removed and ``out`` is untouched.

    Raises:
        ConfigurationError: the extension is neither ``.csv`` nor ``.parquet``, or the folder does not exist.
    """
    path = Path(out)
    ext = path.suffix.lower()
    if ext not in (".csv", ".parquet"):
        raise ConfigurationError(f"--out {path}: the FOCUS export is written as .csv or .parquet; name the file "
                                 "with one of those extensions")
    if not path.parent.exists():
        raise ConfigurationError(f"--out {path}: folder {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    totals = [0, Decimal(0), Decimal(0)]

    def counted() -> Iterator[Mapping[str, Any]]:
        for r in rows:
            totals[0] += 1
            totals[1] += r["BilledCost"]
            totals[2] += r["ListCost"]
            yield r

    try:
        if ext == ".csv":
            _write_csv(counted(), tmp)
        else:
            _write_parquet(counted(), tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return FocusSummary(totals[0], totals[1], totals[2], str(path))


#: Rows per Parquet row group written at once (bounded memory, whatever the export's size).
_BATCH = 65_536


def _write_csv(rows: Iterable[Mapping[str, Any]], tmp: Path) -> None:
    fmts = list(zip(_NAMES, _csv_formatters()))
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(_NAMES)
        for r in rows:
            w.writerow([fmt(r.get(n)) for n, fmt in fmts])


def _write_parquet(rows: Iterable[Mapping[str, Any]], tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()

    def table(batch: list[Mapping[str, Any]]) -> Any:
        return pa.Table.from_arrays([pa.array([r.get(n) for r in batch], type=f.type)
                                     for n, f in zip(_NAMES, schema)], schema=schema)

    with pq.ParquetWriter(tmp, schema) as writer:
        batch: list[Mapping[str, Any]] = []
        for r in rows:
            batch.append(r)
            if len(batch) >= _BATCH:
                writer.write_table(table(batch))
                batch = []
        if batch:
            writer.write_table(table(batch))
