"""Pricing files: parse, validate and compile them into immutable price tables.

The schema is documented in ``pricing/README.md``. This module turns one parsed file (TOML or the JSON of
the imported layer) into :class:`ProviderTable` objects holding :class:`ModelEntry` and :class:`Period`
values whose rates are exact per-token :class:`~decimal.Decimal`.

Contract: every function here either returns fully validated objects or raises
:class:`~otel_costattr.PricingError` naming the file, the model and the field. Nothing here is on the hot
path; the compiled objects are designed so that pricing a call does no parsing and no validation.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._errors import PricingError

__all__ = [
    "ADJUSTABLE_CLASSES",
    "Adjustment",
    "Deployment",
    "Discount",
    "LongContextTier",
    "ModelEntry",
    "Period",
    "ProviderTable",
    "TOKEN_CLASSES",
    "TimeWindow",
    "load_file",
    "parse_document",
    "validate_file",
]

#: Token classes, in the order components are reported. Disjoint billing buckets.
TOKEN_CLASSES: tuple[str, ...] = (
    "input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning",
    "input_audio", "output_audio", "input_image", "output_image",
)
ADJUSTABLE_CLASSES = TOKEN_CLASSES

#: Missing-rate fallbacks, applied in order until a rate is found (documented in pricing/README.md).
FALLBACKS: dict[str, tuple[str, ...]] = {
    "reasoning": ("output",),
    "cache_write_1h": ("cache_write", "input"),
    "cache_write": ("input",),
    "cache_read": ("input",),
    "input_audio": ("input",),
    "input_image": ("input",),
    "output_audio": ("output",),
    "output_image": ("output",),
}

_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1000)
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_COMPARATORS = (">", ">=")
_SERVICE_TIERS = ("batch", "flex", "priority")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._:/@+\-]*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_META_KEYS = {"provider", "provider_names", "version", "currency", "geo_multipliers", "region_multipliers",
              "source", "note", "unit", "cache_multipliers", "cache_multipliers_match"}
_MODEL_KEYS = {"id", "aliases", "source", "note", "period", "context_window", "max_output", "retired"}
#: Cache classes a vendor's documented multiplier of the input rate may price (``meta.cache_multipliers``).
CACHE_CLASSES = ("cache_read", "cache_write", "cache_write_1h")
_PERIOD_KEYS = set(TOKEN_CLASSES) | {"effective_from", "effective_to", "long_context", "service_tiers",
                                     "time_windows", "per_1k_calls", "per_second", "geo_multipliers",
                                     "region_multipliers", "note"}
_TIER_KEYS = set(TOKEN_CLASSES) | {"threshold", "comparator", "service_tiers"}
_ADJ_KEYS = set(TOKEN_CLASSES) | {"multiplier"}
_WINDOW_KEYS = _ADJ_KEYS | {"name", "days", "hours_utc"}
_PER_CALL_KEYS = {"web_search", "file_search", "code_interpreter", "grounding"}


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A change to a rate vector: explicit per-token rates for some classes, a multiplier for the rest."""

    rates: Mapping[str, Decimal]
    multiplier: Decimal | None

    def apply(self, base: Mapping[str, Decimal]) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for cls, rate in base.items():
            if cls in self.rates:
                out[cls] = self.rates[cls]
            elif self.multiplier is not None:
                out[cls] = rate * self.multiplier
            else:  # validation guarantees this cannot happen for a priced class
                raise KeyError(cls)
        return out


@dataclass(frozen=True, slots=True)
class LongContextTier:
    """Whole-request tier: when the prompt crosses ``threshold`` every class is re-priced."""

    threshold: int
    comparator: str
    rates: Mapping[str, Decimal]
    service_tiers: Mapping[str, Adjustment]

    def crossed(self, prompt_tokens: int) -> bool:
        return prompt_tokens > self.threshold if self.comparator == ">" else prompt_tokens >= self.threshold


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A UTC weekday/hour window with its own rates (e.g. DeepSeek off-peak)."""

    name: str
    days: frozenset[int] | None
    hours: tuple[tuple[float, float], ...] | None
    adjustment: Adjustment

    def matches(self, when: datetime) -> bool:
        if self.days is not None and when.weekday() not in self.days:
            return False
        if self.hours is None:
            return True
        h = when.hour + when.minute / 60 + when.second / 3600
        return any(lo <= h < hi for lo, hi in self.hours)


@dataclass(frozen=True, slots=True)
class Period:
    """One price period of a model, in force over ``[start_ns, end_ns)``.

    ``rates`` are exact USD per token for the classes the file prices; ``priced`` keeps the file's own
    classes so that fallbacks can be flagged.
    """

    effective_from: datetime
    start_ns: int
    end_ns: int | None
    rates: Mapping[str, Decimal]
    long_context: tuple[LongContextTier, ...]  # sorted by threshold, highest first
    service_tiers: Mapping[str, Adjustment]
    time_windows: tuple[TimeWindow, ...]
    per_call: Mapping[str, Decimal]  # USD per call
    per_second: Decimal | None
    geo_multipliers: Mapping[str, Decimal]
    region_multipliers: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A priced model: its identity, provenance and price history."""

    provider: str
    id: str
    aliases: tuple[str, ...]
    source: str
    note: str
    origin: str  # "curated", "imported" or "user:<file>"
    version: str  # the table version this entry came from
    periods: tuple[Period, ...]  # sorted by start
    starts: tuple[int, ...]
    context_window: int | None = None  # the most input tokens one request can carry, where known
    max_output: int | None = None  # the most output tokens one request can produce, where known
    retired: date | None = None  # the vendor's retirement (shutdown) date, for the record

    def period_at(self, at_ns: int) -> Period | None:
        """The period in force at ``at_ns`` (UTC epoch nanoseconds), or ``None``."""
        periods = self.periods
        # Nearly every call hits the newest period; check it before bisecting.
        last = periods[-1]
        if at_ns >= last.start_ns:
            return last if last.end_ns is None or at_ns < last.end_ns else None
        lo, hi = 0, len(periods) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if periods[mid].start_ns <= at_ns:
                lo = mid
            else:
                hi = mid - 1
        p = periods[lo]
        if at_ns < p.start_ns or (p.end_ns is not None and at_ns >= p.end_ns):
            return None
        return p


@dataclass(frozen=True, slots=True)
class Discount:
    provider: str
    model: str  # "*" for the whole provider
    percent: Decimal
    origin: str


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: str
    name: str
    model: str
    region: str | None
    origin: str


@dataclass(slots=True)
class ProviderTable:
    """All models of one provider from one file (or one provider block of the imported layer)."""

    provider: str
    provider_names: tuple[str, ...]
    version: str
    currency: str
    origin: str
    file: str
    models: dict[str, ModelEntry] = field(default_factory=dict)
    index: dict[str, str] = field(default_factory=dict)  # id or alias -> id
    # Raw, not yet compiled models (the imported layer compiles on first use to keep start-up fast and the
    # number of GC-tracked objects low). Keyed by id.
    pending: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    defaults: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    # The vendor's documented cache multipliers of the input rate (class -> multiplier), used where a model
    # has no rate of its own for that class; ``cache_match`` limits them to ids containing that text.
    cache_multipliers: Mapping[str, Decimal] = field(default_factory=dict)
    cache_match: str | None = None

    def entry(self, model_id: str) -> ModelEntry | None:
        """The compiled entry for ``model_id`` (an id, not an alias), compiling it on first use."""
        found = self.models.get(model_id)
        if found is not None:
            return found
        raw = self.pending.pop(model_id, None)
        if raw is None:
            return None
        ctx = _Ctx(self.file)
        entry = _model(ctx, raw, 0, self.provider, self.version, self.origin, self.defaults)
        self.models[model_id] = entry
        return entry


@dataclass(slots=True)
class Document:
    """Everything one pricing file contributes."""

    file: str
    tables: list[ProviderTable]
    discounts: list[Discount]
    deployments: list[Deployment]
    kind: str = "vendor"
    resales: list[tuple[str, str]] = field(default_factory=list)  # (gateway, vendor or "*")  # "vendor" (curated or overlay file) or "imported" (the long-tail layer format)


# --------------------------------------------------------------------------------------------- parsing


class _Ctx:
    """Where we are in a file, for error messages."""

    __slots__ = ("file", "model")

    def __init__(self, file: str) -> None:
        self.file = file
        self.model: str | None = None

    def error(self, message: str, fld: str | None = None) -> PricingError:
        return PricingError(message, file=self.file, model=self.model, field=fld)


def _check_keys(ctx: _Ctx, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ctx.error(f"unknown field {unknown[0]!r} in {where}; allowed: {', '.join(sorted(allowed))}",
                        f"{where}.{unknown[0]}")


def _decimal(ctx: _Ctx, value: Any, fld: str, *, allow_zero: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        kind = "a float" if isinstance(value, float) else type(value).__name__
        raise ctx.error(f"must be a decimal string like \"0.30\", not {kind} ({value!r}); floats cannot "
                        "represent prices exactly", fld)
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ctx.error(f"{value!r} is not a decimal number", fld) from None
    if not d.is_finite():
        raise ctx.error(f"{value!r} is not a finite number", fld)
    if d < 0:
        raise ctx.error(f"{value!r} is negative; prices and multipliers must be >= 0", fld)
    if not allow_zero and d == 0:
        raise ctx.error(f"{value!r} must be greater than zero", fld)
    return d


def _instant(ctx: _Ctx, value: Any, fld: str) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ctx.error(f"{value!r} is not an ISO-8601 date or datetime (e.g. \"2025-06-10\")",
                            fld) from None
    else:
        raise ctx.error(f"must be an ISO-8601 date, not {type(value).__name__}", fld)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _ns(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _multipliers(ctx: _Ctx, value: Any, fld: str) -> dict[str, Decimal]:
    if not isinstance(value, Mapping):
        raise ctx.error("must be a table of name = \"multiplier\"", fld)
    return {str(k).lower(): _decimal(ctx, v, f"{fld}.{k}", allow_zero=False) for k, v in value.items()}


def _class_rates(ctx: _Ctx, table: Mapping[str, Any], where: str) -> dict[str, Decimal]:
    """Per-token rates (USD/1M in the file -> USD/token here) of the token classes present in ``table``."""
    return {cls: _decimal(ctx, table[cls], f"{where}.{cls}") / _MILLION for cls in TOKEN_CLASSES if cls in table}


def _adjustment(ctx: _Ctx, value: Any, where: str, priced: Iterable[str]) -> Adjustment:
    if not isinstance(value, Mapping):
        raise ctx.error("must be a table with `multiplier` and/or per-class rates", where)
    _check_keys(ctx, value, _ADJ_KEYS, where)
    rates = _class_rates(ctx, value, where)
    mult = _decimal(ctx, value["multiplier"], f"{where}.multiplier") if "multiplier" in value else None
    if mult is None:
        missing = [c for c in priced if c not in rates]
        if missing:
            raise ctx.error(f"gives no rate for {', '.join(missing)} and no `multiplier` for the classes it "
                            "does not list; add the rates or a multiplier", where)
    extra = [c for c in rates if c not in priced]
    if extra:
        raise ctx.error(f"prices {', '.join(extra)}, which the period itself does not price; add the class to "
                        "the period first", where)
    return Adjustment(rates=rates, multiplier=mult)


def _service_tiers(ctx: _Ctx, value: Any, where: str, priced: Iterable[str]) -> dict[str, Adjustment]:
    if not isinstance(value, Mapping):
        raise ctx.error("must be a table keyed by batch, flex or priority", where)
    out = {}
    for name, adj in value.items():
        if name not in _SERVICE_TIERS:
            raise ctx.error(f"unknown service tier {name!r}; use one of {', '.join(_SERVICE_TIERS)}",
                            f"{where}.{name}")
        out[name] = _adjustment(ctx, adj, f"{where}.{name}", priced)
    return out


def _hours(ctx: _Ctx, value: Any, fld: str) -> tuple[tuple[float, float], ...]:
    def hour(v: Any) -> float:
        if isinstance(v, str) and re.fullmatch(r"\d{1,2}:\d{2}", v.strip()):
            hh, mm = v.strip().split(":")
            v = int(hh) + int(mm) / 60
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 24:
            raise ctx.error(f"hour {v!r} must be a number (or \"HH:MM\") between 0 and 24", fld)
        return float(v)

    if not isinstance(value, list) or not value:
        raise ctx.error("must be a non-empty list of [start, end) hour pairs, e.g. [[1, 4], [6, 10]]", fld)
    out = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ctx.error(f"{pair!r} is not a [start, end) pair", fld)
        lo, hi = hour(pair[0]), hour(pair[1])
        if hi <= lo:
            raise ctx.error(f"window {pair!r} ends before it starts; split windows that cross midnight", fld)
        out.append((lo, hi))
    return tuple(out)


def _time_windows(ctx: _Ctx, value: Any, where: str, priced: Iterable[str]) -> tuple[TimeWindow, ...]:
    if not isinstance(value, list):
        raise ctx.error("must be a list of [[...time_windows]] tables", where)
    out = []
    names = set()
    for i, w in enumerate(value):
        fld = f"{where}[{i}]"
        if not isinstance(w, Mapping):
            raise ctx.error("must be a table", fld)
        _check_keys(ctx, w, _WINDOW_KEYS, fld)
        name = w.get("name")
        if not isinstance(name, str) or not name:
            raise ctx.error("every time window needs a `name`", f"{fld}.name")
        if name in names:
            raise ctx.error(f"duplicate time window name {name!r}", f"{fld}.name")
        names.add(name)
        days = None
        if "days" in w:
            if not isinstance(w["days"], list) or not w["days"]:
                raise ctx.error("must be a non-empty list like [\"mon\", \"tue\"]", f"{fld}.days")
            try:
                days = frozenset(_DAYS[str(d).lower()[:3]] for d in w["days"])
            except KeyError as exc:
                raise ctx.error(f"unknown day {exc.args[0]!r}; use mon..sun", f"{fld}.days") from None
        hours = _hours(ctx, w["hours_utc"], f"{fld}.hours_utc") if "hours_utc" in w else None
        adj_table = {k: v for k, v in w.items() if k in _ADJ_KEYS}
        if not adj_table:
            raise ctx.error("needs a `multiplier` or rates", fld)
        out.append(TimeWindow(name=name, days=days, hours=hours,
                              adjustment=_adjustment(ctx, adj_table, fld, priced)))
    return tuple(out)


def _period(ctx: _Ctx, raw: Any, where: str, defaults: Mapping[str, Mapping[str, Decimal]]) -> tuple[
        Period, datetime | None]:
    if not isinstance(raw, Mapping):
        raise ctx.error("must be a table", where)
    _check_keys(ctx, raw, _PERIOD_KEYS, where)
    if "effective_from" not in raw:
        raise ctx.error("every period needs `effective_from` (ISO date)", f"{where}.effective_from")
    start = _instant(ctx, raw["effective_from"], f"{where}.effective_from")
    end = _instant(ctx, raw["effective_to"], f"{where}.effective_to") if "effective_to" in raw else None
    if end is not None and end <= start:
        raise ctx.error("effective_to must be after effective_from", f"{where}.effective_to")
    rates = _class_rates(ctx, raw, where)
    if "input" not in rates and "output" not in rates and "per_second" not in raw:
        raise ctx.error("a period must price at least `input` or `output` (or `per_second`)", where)
    priced = tuple(rates)

    tiers = []
    if "long_context" in raw:
        lc = raw["long_context"]
        if isinstance(lc, Mapping):
            lc = [lc]
        if not isinstance(lc, list):
            raise ctx.error("must be a list of [[...long_context]] tables", f"{where}.long_context")
        seen = set()
        for i, t in enumerate(lc):
            fld = f"{where}.long_context[{i}]"
            if not isinstance(t, Mapping):
                raise ctx.error("must be a table", fld)
            _check_keys(ctx, t, _TIER_KEYS, fld)
            thr = t.get("threshold")
            if isinstance(thr, bool) or not isinstance(thr, int) or thr <= 0:
                raise ctx.error(f"threshold {thr!r} must be a positive integer token count", f"{fld}.threshold")
            if thr in seen:
                raise ctx.error(f"duplicate threshold {thr}", f"{fld}.threshold")
            seen.add(thr)
            comp = t.get("comparator", ">")
            if comp not in _COMPARATORS:
                raise ctx.error(f"unknown comparator {comp!r}; use \">\" or \">=\"", f"{fld}.comparator")
            trates = _class_rates(ctx, t, fld)
            missing = [c for c in priced if c not in trates]
            if missing:
                raise ctx.error(f"a long-context tier re-prices the whole request, so it must give every class "
                                f"the period prices; missing: {', '.join(missing)}", fld)
            extra = [c for c in trates if c not in priced]
            if extra:
                raise ctx.error(f"prices {', '.join(extra)}, which the period does not price", fld)
            st = _service_tiers(ctx, t["service_tiers"], f"{fld}.service_tiers", priced) \
                if "service_tiers" in t else {}
            tiers.append(LongContextTier(threshold=thr, comparator=comp, rates=trates, service_tiers=st))
    tiers.sort(key=lambda t: t.threshold, reverse=True)

    service = _service_tiers(ctx, raw["service_tiers"], f"{where}.service_tiers", priced) \
        if "service_tiers" in raw else {}
    windows = _time_windows(ctx, raw["time_windows"], f"{where}.time_windows", priced) \
        if "time_windows" in raw else ()
    per_call: dict[str, Decimal] = {}
    if "per_1k_calls" in raw:
        pc = raw["per_1k_calls"]
        if not isinstance(pc, Mapping):
            raise ctx.error("must be a table like { web_search = \"10\" }", f"{where}.per_1k_calls")
        _check_keys(ctx, pc, _PER_CALL_KEYS, f"{where}.per_1k_calls")
        per_call = {k: _decimal(ctx, v, f"{where}.per_1k_calls.{k}") / _THOUSAND for k, v in pc.items()}
    per_second = _decimal(ctx, raw["per_second"], f"{where}.per_second") if "per_second" in raw else None
    geo = _multipliers(ctx, raw["geo_multipliers"], f"{where}.geo_multipliers") \
        if "geo_multipliers" in raw else dict(defaults.get("geo", {}))
    region = _multipliers(ctx, raw["region_multipliers"], f"{where}.region_multipliers") \
        if "region_multipliers" in raw else dict(defaults.get("region", {}))
    period = Period(effective_from=start, start_ns=_ns(start), end_ns=_ns(end) if end else None, rates=rates,
                    long_context=tuple(tiers), service_tiers=service, time_windows=windows, per_call=per_call,
                    per_second=per_second, geo_multipliers=geo, region_multipliers=region)
    return period, end


def _model(ctx: _Ctx, raw: Any, idx: int, provider: str, version: str, origin: str,
           defaults: Mapping[str, Mapping[str, Decimal]]) -> ModelEntry:
    where = f"model[{idx}]"
    if not isinstance(raw, Mapping):
        raise ctx.error("must be a [[model]] table", where)
    mid = raw.get("id")
    if not isinstance(mid, str) or not mid.strip():
        raise ctx.error("every model needs a non-empty string `id`", f"{where}.id")
    ctx.model = mid
    mid = mid.strip().lower()
    if not _ID_RE.match(mid):
        raise ctx.error(f"id {mid!r} has characters outside [a-z0-9._:/@+-]", "id")
    _check_keys(ctx, raw, _MODEL_KEYS, "model")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise ctx.error("must be a list of non-empty strings", "aliases")
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ctx.error("every model needs a `source` (the URL its prices were read from)", "source")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise ctx.error("must be a string", "note")
    limits: dict[str, int | None] = {}
    for key in ("context_window", "max_output"):
        v = raw.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ctx.error(f"{v!r} must be a positive integer token count", key)
        limits[key] = v
    retired = _instant(ctx, raw["retired"], "retired").date() if "retired" in raw else None
    periods_raw = raw.get("period")
    if isinstance(periods_raw, Mapping):
        periods_raw = [periods_raw]
    if not isinstance(periods_raw, list) or not periods_raw:
        raise ctx.error("every model needs at least one [[model.period]] with `effective_from` and rates",
                        "period")
    built = [_period(ctx, p, f"period[{i}]", defaults) for i, p in enumerate(periods_raw)]
    built.sort(key=lambda pe: pe[0].start_ns)
    periods: list[Period] = []
    for i, (p, explicit_end) in enumerate(built):
        nxt = built[i + 1][0] if i + 1 < len(built) else None
        if nxt is not None and nxt.start_ns == p.start_ns:
            raise ctx.error(f"two periods start at {p.effective_from.date()}; each period needs its own "
                            "effective_from", "period.effective_from")
        end_ns = p.end_ns
        if nxt is not None:
            if end_ns is not None and end_ns > nxt.start_ns:
                raise ctx.error(f"the period from {p.effective_from.isoformat()} has effective_to "
                                f"{explicit_end.isoformat() if explicit_end else ''}, after the next period "
                                f"starts ({nxt.effective_from.isoformat()}); periods must not overlap",
                                "period.effective_to")
            end_ns = nxt.start_ns if end_ns is None else end_ns
        if end_ns != p.end_ns:
            p = Period(effective_from=p.effective_from, start_ns=p.start_ns, end_ns=end_ns, rates=p.rates,
                       long_context=p.long_context, service_tiers=p.service_tiers, time_windows=p.time_windows,
                       per_call=p.per_call, per_second=p.per_second, geo_multipliers=p.geo_multipliers,
                       region_multipliers=p.region_multipliers)
        periods.append(p)
    entry = ModelEntry(provider=provider, id=mid, aliases=tuple(a.strip().lower() for a in aliases),
                       source=source.strip(), note=note, origin=origin, version=version, periods=tuple(periods),
                       starts=tuple(p.start_ns for p in periods), context_window=limits["context_window"],
                       max_output=limits["max_output"], retired=retired)
    ctx.model = None
    return entry


def _provider_block(ctx: _Ctx, meta: Any, models: Any, origin: str, lazy: bool = False) -> ProviderTable:
    if not isinstance(meta, Mapping):
        raise ctx.error("a file with [[model]] entries needs a [meta] table with `provider` and `version`", "meta")
    _check_keys(ctx, meta, _META_KEYS, "meta")
    provider = meta.get("provider")
    if not isinstance(provider, str) or not _ID_RE.match(provider.strip().lower()):
        raise ctx.error("meta.provider must be a provider id such as \"openai\"", "meta.provider")
    provider = provider.strip().lower()
    version = meta.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ctx.error("meta.version must be a non-empty string (the table version stamped on spans)",
                        "meta.version")
    currency = meta.get("currency", "USD")
    if currency != "USD":
        raise ctx.error(f"currency {currency!r} is not supported; only USD tables are supported today",
                        "meta.currency")
    names = meta.get("provider_names", [provider])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ctx.error("must be a list of strings", "meta.provider_names")
    defaults = {
        "geo": _multipliers(ctx, meta["geo_multipliers"], "meta.geo_multipliers") if "geo_multipliers" in meta
        else {},
        "region": _multipliers(ctx, meta["region_multipliers"], "meta.region_multipliers")
        if "region_multipliers" in meta else {},
    }
    cache_mults: dict[str, Decimal] = {}
    if "cache_multipliers" in meta:
        cm = meta["cache_multipliers"]
        if not isinstance(cm, Mapping):
            raise ctx.error("must be a table like { cache_read = \"0.1\" }", "meta.cache_multipliers")
        _check_keys(ctx, cm, set(CACHE_CLASSES), "meta.cache_multipliers")
        cache_mults = {k: _decimal(ctx, v, f"meta.cache_multipliers.{k}") for k, v in cm.items()}
    match = meta.get("cache_multipliers_match")
    if match is not None and (not isinstance(match, str) or not match.strip()):
        raise ctx.error("must be a non-empty string (text a model id must contain)", "meta.cache_multipliers_match")
    table = ProviderTable(provider=provider, provider_names=tuple(n.lower() for n in names),
                          version=version.strip(), currency="USD", origin=origin, file=ctx.file,
                          defaults=defaults, cache_multipliers=cache_mults,
                          cache_match=match.strip().lower() if match else None)
    if models is None:
        models = []
    if not isinstance(models, list):
        raise ctx.error("must be a list of [[model]] tables", "model")
    if lazy:
        for raw in models:
            mid = str(raw["id"]).lower()
            if mid in table.index:
                continue
            table.pending[mid] = raw
            table.index[mid] = mid
            for alias in raw.get("aliases", ()):
                table.index.setdefault(alias.lower(), mid)
        return table
    for i, raw in enumerate(models):
        entry = _model(ctx, raw, i, provider, table.version, origin, defaults)
        for pos, name in enumerate((entry.id, *entry.aliases)):
            if name in table.index:
                ctx.model = entry.id
                raise ctx.error(f"name {name!r} is already used by model {table.index[name]!r} in this file; "
                                "ids and aliases must be unique per provider", "aliases" if pos else "id")
            table.index[name] = entry.id
        table.models[entry.id] = entry
    return table


def _discounts(ctx: _Ctx, raw: Any, origin: str) -> list[Discount]:
    if not isinstance(raw, list):
        raise ctx.error("must be a list of [[discount]] tables", "discount")
    out = []
    for i, d in enumerate(raw):
        fld = f"discount[{i}]"
        if not isinstance(d, Mapping):
            raise ctx.error("must be a table", fld)
        _check_keys(ctx, d, {"provider", "model", "percent", "note"}, fld)
        prov, model = d.get("provider"), d.get("model", "*")
        if not isinstance(prov, str) or not prov:
            raise ctx.error("needs `provider`", f"{fld}.provider")
        if not isinstance(model, str) or not model:
            raise ctx.error("must be a model id or \"*\"", f"{fld}.model")
        pct = _decimal(ctx, d.get("percent"), f"{fld}.percent")
        if pct > 100:
            raise ctx.error(f"percent {pct} is over 100", f"{fld}.percent")
        out.append(Discount(provider=prov.lower(), model=model.lower(), percent=pct, origin=origin))
    return out


def _deployments(ctx: _Ctx, raw: Any, origin: str) -> list[Deployment]:
    if not isinstance(raw, list):
        raise ctx.error("must be a list of [[deployment]] tables", "deployment")
    out = []
    for i, d in enumerate(raw):
        fld = f"deployment[{i}]"
        if not isinstance(d, Mapping):
            raise ctx.error("must be a table", fld)
        _check_keys(ctx, d, {"provider", "name", "model", "region", "note"}, fld)
        for k in ("provider", "name", "model"):
            if not isinstance(d.get(k), str) or not d[k].strip():
                raise ctx.error(f"needs a non-empty `{k}`", f"{fld}.{k}")
        region = d.get("region")
        if region is not None and not isinstance(region, str):
            raise ctx.error("must be a string", f"{fld}.region")
        out.append(Deployment(provider=d["provider"].strip().lower(), name=d["name"].strip().lower(),
                              model=d["model"].strip().lower(), region=region.lower() if region else None,
                              origin=origin))
    return out


def _resales(ctx: _Ctx, raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise ctx.error("must be a list of [[resale]] tables", "resale")
    out = []
    for i, r in enumerate(raw):
        fld = f"resale[{i}]"
        if not isinstance(r, Mapping):
            raise ctx.error("must be a table", fld)
        _check_keys(ctx, r, {"gateway", "vendor", "note"}, fld)
        gw, vendor = r.get("gateway"), r.get("vendor", "*")
        if not isinstance(gw, str) or not gw.strip():
            raise ctx.error("needs `gateway`, the provider id the calls name (e.g. \"openrouter\")", f"{fld}.gateway")
        if not isinstance(vendor, str) or not vendor.strip():
            raise ctx.error("must be a vendor id (e.g. \"anthropic\") or \"*\" (the vendor the model's name "
                            "belongs to)", f"{fld}.vendor")
        out.append((gw.strip().lower(), vendor.strip().lower()))
    return out


def parse_document(data: Mapping[str, Any], *, file: str, origin: str, lazy: bool = False) -> Document:
    """Validate one parsed pricing document and compile it.

    ``data`` is either a vendor/overlay file (``meta`` + ``model`` + optional ``discount``/``deployment``) or
    the imported layer (``meta`` + ``providers`` keyed by provider id, each with ``meta`` and ``model``).
    With ``lazy=True`` (used only for the shipped, test-validated imported layer) models are indexed now and
    compiled on first use.

    Raises:
        PricingError: naming the file, model and field of the first problem found.
    """
    ctx = _Ctx(file)
    if not isinstance(data, Mapping):
        raise ctx.error("a pricing file must be a table at the top level")
    tables: list[ProviderTable] = []
    if "providers" in data:
        _check_keys(ctx, data, {"meta", "providers"}, "top level")
        provs = data["providers"]
        if not isinstance(provs, Mapping):
            raise ctx.error("must be a table keyed by provider id", "providers")
        if not provs:  # as for the vendor format: a pricing file that prices nothing is a mistake, not a no-op
            raise ctx.error("the file defines nothing: `providers` has no provider table", "providers")
        for key in sorted(provs):
            block = provs[key]
            if not isinstance(block, Mapping):
                raise ctx.error("must be a table with meta and model", f"providers.{key}")
            tables.append(_provider_block(ctx, block.get("meta"), block.get("model"), origin, lazy))
        return Document(file=file, tables=tables, discounts=[], deployments=[], kind="imported")
    _check_keys(ctx, data, {"meta", "model", "discount", "deployment", "resale"}, "top level")
    if "model" in data or "meta" in data:
        tables.append(_provider_block(ctx, data.get("meta"), data.get("model"), origin))
    discounts = _discounts(ctx, data["discount"], origin) if "discount" in data else []
    deployments = _deployments(ctx, data["deployment"], origin) if "deployment" in data else []
    resales = _resales(ctx, data["resale"]) if "resale" in data else []
    if not tables and not discounts and not deployments and not resales:
        raise ctx.error("the file defines nothing: add [meta] with [[model]] entries, [[discount]], "
                        "[[deployment]] or [[resale]] tables")
    return Document(file=file, tables=tables, discounts=discounts, deployments=deployments, resales=resales)


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse a ``.toml`` or ``.json`` pricing file without validating it."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise PricingError("file not found; check the path given with --pricing or OTEL_COSTATTR_PRICING",
                           file=str(path)) from None
    except OSError as exc:
        raise PricingError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    return decode_document(raw, file=str(path), json_format=p.suffix.lower() == ".json")


def decode_document(raw: bytes, *, file: str, json_format: bool) -> Any:
    """Parse the bytes of a pricing file (JSON or TOML) without validating it.

    Raises:
        PricingError: the bytes are not valid UTF-8 TOML / JSON, or nest too deeply to parse (both parsers
            recurse per level, so a hostile file would otherwise raise RecursionError); names ``file``.
    """
    kind = "JSON" if json_format else "TOML"
    try:
        return json.loads(raw) if json_format else tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PricingError(f"not valid {kind}: {exc}", file=file) from None
    except RecursionError:
        raise PricingError(f"not a usable {kind} pricing file: tables or arrays nested too deeply to parse",
                           file=file) from None


def load_file(path: str | Path, *, origin: str | None = None) -> Document:
    """Read, validate and compile one pricing file. ``origin`` defaults to ``user:<path>``."""
    return parse_document(read_file(path), file=str(path), origin=origin or f"user:{path}")


def validate_file(path: str | Path) -> Document:
    """Validate one pricing file; returns the compiled document or raises :class:`PricingError`."""
    return load_file(path)
