"""Budgets: declarative spend limits, checked in reports and alerted on live.

Budget file (TOML)::

    [[budget]]
    name = "acme-monthly"            # unique
    scope = { customer_id = "acme" } # attribution keys (or other span attributes) that must all match; {} = all
    period = "month"                 # "day" | "month", UTC calendar periods
    limit_usd = "100.00"             # a decimal string (or a whole number); TOML floats are refused
    warn_at_pct = 80                 # optional, default 80; 0 < warn_at_pct <= 100

Levels: ``warning`` once the period's spend reaches ``warn_at_pct`` of the limit, ``exceeded`` once it is above
the limit. The report also projects the period linearly: ``projected = spent / elapsed`` where ``elapsed`` is the
fraction of the period gone by at report time, floored at 1/24 (the first hour of a day or the first ~30 hours
of a month would otherwise project from a few minutes of traffic); rounded to the cent. Status, most severe
first: ``exceeded`` (spent > limit), ``on_track_to_exceed`` (projected > limit), ``warning`` (spent >= warn
threshold), ``ok``.

Live (``configure(budgets="budgets.toml")``): :class:`BudgetTracker` is a cost listener of the
``CostSpanProcessor``. It keeps one running total per budget for the current period (memory bounded by the number
of budgets; totals reset at UTC period rollover) and, the moment a total crosses a level, emits exactly once per
budget, level and period:

* the counter ``otel_costattr.budget.crossed`` (attributes ``budget.name``, ``budget.level``, ``budget.period``);
* a log record through the OpenTelemetry logs API, ``event_name = "otel_costattr.budget.crossed"``, severity WARN
  (warning) or ERROR (exceeded), with the budget, level, limit, spent and period start as attributes. When no
  ``LoggerProvider`` is configured (the API would drop the record) or the installed API cannot emit events, the
  same message goes to the Python logger ``otel_costattr.budgets`` instead, so an alert is never silently lost
  and never sent twice;
* the observable gauges ``otel_costattr.budget.spend`` and ``otel_costattr.budget.limit`` (USD, by
  ``budget.name`` and ``budget.period``) report every budget's current-period spend and limit.

When a ledger is configured the totals are seeded from it at start; levels already crossed by then are not
announced again (a restart must not re-fire every alert of the period). Listener calls never raise into the
application.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from .._pricing._book import format_money
from .._analysis._source import _KEY_RE, BUILTIN_DIMENSIONS, Source, dimension_sql
from .._version import __version__

__all__ = ["Budget", "BudgetTracker", "budget_alerts", "budget_sections", "budget_status", "load_budgets",
           "parse_budgets"]

logger = logging.getLogger("otel_costattr.budgets")

PERIODS = ("day", "month")
LEVELS = ("warning", "exceeded")
EVENT_NAME = "otel_costattr.budget.crossed"
_FIELDS = {"name", "scope", "period", "limit_usd", "warn_at_pct"}
_MIN_ELAPSED = Decimal(1) / Decimal(24)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Budget:
    """One validated budget. ``scope`` pairs must all match a call's attributes (empty scope: every call)."""

    name: str
    scope: tuple[tuple[str, str], ...]
    period: str
    limit: Decimal
    warn_at_pct: Decimal = Decimal(80)

    @property
    def warn_at(self) -> Decimal:
        """The spend at which the warning level is reached (exact)."""
        return self.limit * self.warn_at_pct / 100

    @property
    def scope_dict(self) -> dict[str, str]:
        return dict(self.scope)

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        for k, v in self.scope:
            got = attributes.get(k)
            if got is None or (got if type(got) is str else str(got)) != v:
                return False
        return True

    def bounds(self, t_ns: int) -> tuple[int, int]:
        """``[start, end)`` of the UTC period containing ``t_ns``, in epoch nanoseconds."""
        return period_bounds(self.period, t_ns)


def period_bounds(period: str, t_ns: int) -> tuple[int, int]:
    d = datetime.fromtimestamp(t_ns // 10**9, tz=timezone.utc)
    if period == "day":
        start = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        return _ns(start), _ns(start) + 86_400 * 10**9
    start = datetime(d.year, d.month, 1, tzinfo=timezone.utc)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)
    return _ns(start), _ns(end)


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 10**9


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------ loading

def load_budgets(path: str | os.PathLike[str]) -> list[Budget]:
    """Read and validate a budget file.

    Raises:
        ConfigurationError: the file is missing or not TOML, or a budget is invalid; the message names the file,
            the budget and the field.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{p}: budget file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{p}: cannot read the budget file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{p}: not valid TOML ({exc})") from None
    return parse_budgets(doc, str(p))


def parse_budgets(doc: Mapping[str, Any], source: str = "<budgets>") -> list[Budget]:
    """Validate a parsed budget document (the TOML as a dict). See :func:`load_budgets`."""
    extra = sorted(set(doc) - {"budget"})
    if extra:
        raise ConfigurationError(f"{source}: unknown top-level key(s) {', '.join(extra)}; a budget file holds "
                                 "[[budget]] tables only")
    items = doc.get("budget")
    if not isinstance(items, list) or not items:
        raise ConfigurationError(f"{source}: defines no budget; add [[budget]] tables with name, period and "
                                 "limit_usd")
    out: list[Budget] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        label = f"budget #{i}"

        def fail(fld: str, msg: str) -> ConfigurationError:
            return ConfigurationError(f"{source}: {label}: field {fld!r}: {msg}")

        if not isinstance(item, dict):
            raise ConfigurationError(f"{source}: {label}: must be a [[budget]] table")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise fail("name", "required, a non-empty string")
        label = f"budget {name!r}"
        if name in seen:
            raise fail("name", "another budget has the same name; names must be unique")
        seen.add(name)
        unknown = sorted(set(item) - _FIELDS)
        if unknown:
            raise fail(unknown[0], f"unknown field; allowed: {', '.join(sorted(_FIELDS))}")
        scope = item.get("scope", {})
        if not isinstance(scope, dict):
            raise fail("scope", 'must be a table such as { customer_id = "acme" } ({} for all spend)')
        pairs = []
        for k, v in sorted(scope.items()):
            if not _KEY_RE.match(k) or k in BUILTIN_DIMENSIONS:
                raise fail("scope", f"{k!r} is not an attribute key (use attribution keys such as customer_id, "
                                    "feature, agent_id, or other span attributes)")
            if not isinstance(v, str) or not v:
                raise fail("scope", f"{k} must be a non-empty string, got {v!r}")
            pairs.append((k, v))
        period = item.get("period")
        if period not in PERIODS:
            raise fail("period", f'must be "day" or "month", got {period!r}')
        limit = _decimal(item.get("limit_usd"), fail, "limit_usd", money=True)
        if limit <= 0:
            raise fail("limit_usd", "must be greater than 0")
        warn = _decimal(item.get("warn_at_pct", 80), fail, "warn_at_pct", money=False)
        if not 0 < warn <= 100:
            raise fail("warn_at_pct", f"must be in (0, 100], got {format_money(warn)}")
        out.append(Budget(name, tuple(pairs), period, limit, warn))
    return out


def _decimal(v: Any, fail: Callable[[str, str], ConfigurationError], fld: str, *, money: bool) -> Decimal:
    if v is None:
        raise fail(fld, 'required, e.g. "100.00"' if money else "required")
    if isinstance(v, bool):
        raise fail(fld, f"must be a number, got {v!r}")
    if isinstance(v, float):
        if money:
            raise fail(fld, f'write money as a string, e.g. "{v}": a TOML float is binary and can lose cents')
        v = repr(v)
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        raise fail(fld, f"{v!r} is not a decimal number") from None
    if not d.is_finite():
        raise fail(fld, f"{v!r} is not a finite number")
    return d


# ------------------------------------------------------------------------------------------------ report

def budget_spent(src: Source, b: Budget, start_ns: int, end_ns: int) -> Decimal:
    """Exact spend in ``[start_ns, end_ns)`` within the budget's scope (priced calls; unknown is not zero)."""
    where = " AND ".join(["start_ns >= ?", "start_ns < ?", *(f"{dimension_sql(k)} = ?" for k, _ in b.scope)])
    (v,), = src.query(f"SELECT sum(cost_total) FROM calls WHERE {where}", [start_ns, end_ns, *(v for _, v in b.scope)])
    if v is None:
        return Decimal(0)
    return v if isinstance(v, Decimal) else Decimal(str(v))


def projection(spent: Decimal, start_ns: int, end_ns: int, now_ns: int) -> Decimal:
    """Linear projection of ``spent`` to the end of ``[start_ns, end_ns)`` at ``now_ns`` (rounded to the cent).

    ``spent / elapsed`` with ``elapsed`` the fraction of the period gone by, floored at 1/24; after the period,
    ``spent`` itself.
    """
    length = Decimal(end_ns - start_ns)
    elapsed = min(Decimal(max(now_ns - start_ns, 0)) / length, Decimal(1))
    return (spent / max(elapsed, _MIN_ELAPSED)).quantize(_CENT, rounding=ROUND_HALF_UP)


def status_of(b: Budget, spent: Decimal, projected: Decimal) -> str:
    if spent > b.limit:
        return "exceeded"
    if projected > b.limit:
        return "on_track_to_exceed"
    if spent >= b.warn_at:
        return "warning"
    return "ok"


def budget_status(src: Source, budgets: Sequence[Budget], *, now_ns: int | None = None) -> list[dict[str, Any]]:
    """Each budget's current period at ``now_ns`` (default: now): the report's ``budgets`` entries.

    ``{name, scope, period, period_start, period_end, limit, warn_at_pct, warn_at, spent, projected, used_pct,
    elapsed_pct, status}``; money as decimal strings.
    """
    now = time.time_ns() if now_ns is None else now_ns
    out = []
    for b in budgets:
        start, end = b.bounds(now)
        spent = budget_spent(src, b, start, end)
        projected = projection(spent, start, end, now)
        elapsed = min(Decimal(now - start) / Decimal(end - start), Decimal(1))
        out.append({
            "name": b.name, "scope": b.scope_dict, "period": b.period,
            "period_start": _iso(start), "period_end": _iso(end),
            "limit": format_money(b.limit), "warn_at_pct": format_money(b.warn_at_pct),
            "warn_at": format_money(b.warn_at), "spent": format_money(spent), "projected": format_money(projected),
            "used_pct": format((spent * 100 / b.limit).quantize(_CENT, rounding=ROUND_HALF_UP), "f"),
            "elapsed_pct": format((elapsed * 100).quantize(_CENT, rounding=ROUND_HALF_UP), "f"),
            "status": status_of(b, spent, projected),
        })
    return out


def _scope_text(scope: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in scope.items()) or "all spend"


_STATUS_TEXT = {"exceeded": "EXCEEDED", "on_track_to_exceed": "on track to exceed", "warning": "warning",
                "ok": "ok"}


def budget_alerts(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """One ``{"level": "bad"|"warn", "text"}`` line per budget that is not ``ok`` (for the top of the page)."""
    out = []
    for b in report.get("budgets") or []:
        st = b.get("status")
        if st == "exceeded":
            text = (f"Budget {b['name']} ({_scope_text(b['scope'])}) exceeded: ${b['spent']} of ${b['limit']} this "
                    f"{b['period']}")
        elif st == "on_track_to_exceed":
            text = (f"Budget {b['name']} ({_scope_text(b['scope'])}) on track to exceed: ${b['spent']} spent, "
                    f"${b['projected']} projected for the {b['period']} against ${b['limit']}")
        elif st == "warning":
            text = (f"Budget {b['name']} ({_scope_text(b['scope'])}) at {b['used_pct']}% of ${b['limit']} this "
                    f"{b['period']}")
        else:
            continue
        out.append({"level": "warn" if st == "warning" else "bad", "text": text})
    return out


def budget_sections(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The "Budgets" panel as a generic HTML section (see :func:`otel_costattr._report._html.render_html`)."""
    budgets = report.get("budgets")
    if not budgets:
        return []
    return [{
        "id": "budgets", "title": "Budgets",
        "note": ("Current UTC period of each budget. Projected = spend so far divided by the fraction of the period "
                 "elapsed (at least 1/24), i.e. a linear run-rate to the end of the period."),
        "columns": ["budget", "scope", "period", "period start", "spent $", "limit $", "used %", "projected $",
                    "status"],
        "rows": [[b["name"], _scope_text(b["scope"]), b["period"], b["period_start"], b["spent"], b["limit"],
                  b["used_pct"], b["projected"], _STATUS_TEXT.get(b["status"], b["status"])] for b in budgets],
    }]


def budget_lines(report: Mapping[str, Any]) -> list[str]:
    """Plain-text lines for the table format."""
    out = []
    for b in report.get("budgets") or []:
        out.append(f"budget {b['name']} [{_scope_text(b['scope'])}] {b['period']} from {b['period_start']}: "
                   f"${b['spent']} of ${b['limit']} ({b['used_pct']}%), projected ${b['projected']}: "
                   f"{_STATUS_TEXT.get(b['status'], b['status'])}")
    return out


# --------------------------------------------------------------------------------------------------- live

@dataclass
class _Total:
    start: int = 0
    end: int = 0
    spent: Decimal = Decimal(0)
    fired: set[str] = field(default_factory=set)


class BudgetTracker:
    """Running per-budget totals fed by priced spans; emits a metric and a log event when a level is crossed.

    Use it as a cost listener of :class:`~otel_costattr.CostSpanProcessor` (``configure(budgets=...)`` does).
    Calling it (``tracker(attributes, cost)``) never raises. ``clock`` returns epoch nanoseconds (tests inject
    one); period rollover is decided by it, in UTC.
    """

    def __init__(self, budgets: Iterable[Budget], *, meter_provider: Any = None, logger_provider: Any = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.budgets: tuple[Budget, ...] = tuple(budgets)
        names = [b.name for b in self.budgets]
        if len(set(names)) != len(names):
            raise ConfigurationError("budget names must be unique")
        self._clock = clock
        self._lock = threading.Lock()
        self._totals: dict[str, _Total] = {b.name: _Total() for b in self.budgets}
        self._logger_provider = logger_provider
        self._otel_logger: Any = None
        self._failures = 0
        from opentelemetry import metrics
        from opentelemetry.metrics import Observation

        meter = (meter_provider.get_meter("otel_costattr", __version__) if meter_provider is not None
                 else metrics.get_meter("otel_costattr", __version__))
        self.crossed = meter.create_counter("otel_costattr.budget.crossed", unit="{event}",
                                            description="Budget levels crossed (warning, exceeded), once per period")

        def spend(_options: Any) -> Iterable[Any]:
            for b, t in self._current():
                yield Observation(float(t), {"budget.name": b.name, "budget.period": b.period})

        def limit(_options: Any) -> Iterable[Any]:
            for b in self.budgets:
                yield Observation(float(b.limit), {"budget.name": b.name, "budget.period": b.period})

        meter.create_observable_gauge("otel_costattr.budget.spend", callbacks=[spend], unit="USD",
                                      description="Spend in the budget's current period (in-process running total)")
        meter.create_observable_gauge("otel_costattr.budget.limit", callbacks=[limit], unit="USD",
                                      description="The budget's limit")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> "BudgetTracker":
        return cls(load_budgets(path), **kwargs)

    # --------------------------------------------------------------------------------------- feeding

    def _roll(self, b: Budget, t: _Total, now: int) -> None:
        if not t.start <= now < t.end:
            t.start, t.end = b.bounds(now)
            t.spent = Decimal(0)
            t.fired.clear()

    def __call__(self, attributes: Mapping[str, Any], cost: float) -> None:
        """Add one priced call. Never raises (a failure is logged once and counted)."""
        try:
            if type(cost) is not float and type(cost) is not int:
                return
            if not math.isfinite(cost) or cost <= 0:
                return
            amount = Decimal(repr(float(cost)))  # the float's shortest text: the exact cost (as in the ledger)
            now = self._clock()
            events = []
            with self._lock:
                for b in self.budgets:
                    if not b.matches(attributes):
                        continue
                    t = self._totals[b.name]
                    self._roll(b, t, now)
                    t.spent += amount
                    events.extend(self._crossings(b, t))
            for e in events:
                self._emit(*e)
        except Exception:  # noqa: BLE001 - a budget listener must never break tracing
            self._failures += 1
            if self._failures == 1:
                logger.warning("budget tracking failed; further failures are only counted", exc_info=True)

    def _crossings(self, b: Budget, t: _Total) -> list[tuple[Budget, str, Decimal, int]]:
        out = []
        for level, reached in (("warning", t.spent >= b.warn_at), ("exceeded", t.spent > b.limit)):
            if reached and level not in t.fired:
                t.fired.add(level)
                out.append((b, level, t.spent, t.start))
        return out

    def seed(self, src: Source) -> None:
        """Start each budget's current period from the ledger's spend; levels already crossed stay silent."""
        now = self._clock()
        for b in self.budgets:
            start, end = b.bounds(now)
            spent = budget_spent(src, b, start, end)
            with self._lock:
                t = self._totals[b.name]
                t.start, t.end, t.spent = start, end, spent
                t.fired = {lvl for lvl, reached in (("warning", spent >= b.warn_at), ("exceeded", spent > b.limit))
                           if reached}

    def _current(self) -> list[tuple[Budget, Decimal]]:
        now = self._clock()
        with self._lock:
            return [(b, self._totals[b.name].spent if self._totals[b.name].start <= now < self._totals[b.name].end
                     else Decimal(0)) for b in self.budgets]

    def snapshot(self) -> list[dict[str, Any]]:
        """Each budget's running total for its current period (decimal strings)."""
        now = self._clock()
        out = []
        with self._lock:
            for b in self.budgets:
                t = self._totals[b.name]
                live = t.start <= now < t.end
                start = t.start if live else b.bounds(now)[0]
                out.append({"name": b.name, "period": b.period, "period_start": _iso(start),
                            "spent": format_money(t.spent if live else Decimal(0)), "limit": format_money(b.limit),
                            "fired": sorted(t.fired) if live else []})
        return out

    # -------------------------------------------------------------------------------------- emitting

    def _emit(self, b: Budget, level: str, spent: Decimal, start: int) -> None:
        attrs = {"budget.name": b.name, "budget.level": level, "budget.period": b.period}
        self.crossed.add(1, attrs)
        text = (f"budget {b.name!r} ({_scope_text(b.scope_dict)}) {'exceeded' if level == 'exceeded' else 'reached'} "
                f"{'its limit' if level == 'exceeded' else format_money(b.warn_at_pct) + '% of its limit'}: "
                f"${format_money(spent)} of ${format_money(b.limit)} this {b.period} (since {_iso(start)})")
        event_attrs = {**attrs, "budget.period_start": _iso(start), "budget.limit_usd": format_money(b.limit),
                       "budget.spent_usd": format_money(spent), "budget.warn_at_pct": format_money(b.warn_at_pct),
                       "budget.scope": json.dumps(b.scope_dict, sort_keys=True)}
        if not self._emit_otel(level, text, event_attrs):
            logger.log(logging.ERROR if level == "exceeded" else logging.WARNING, "%s", text,
                       extra={"otel_costattr_budget": event_attrs})

    def _emit_otel(self, level: str, text: str, attrs: dict[str, str]) -> bool:
        """Emit through the OpenTelemetry logs API; False when it is not usable (no provider, old API)."""
        try:
            from opentelemetry import _logs
        except ImportError:
            return False
        provider = self._logger_provider or _logs.get_logger_provider()
        # Without a configured LoggerProvider the API hands out a no-op/proxy logger: the alert would vanish.
        if type(provider).__name__ in ("ProxyLoggerProvider", "NoOpLoggerProvider"):
            return False
        if self._otel_logger is None:
            self._otel_logger = provider.get_logger("otel_costattr.budgets", __version__)
        sev = _logs.SeverityNumber.ERROR if level == "exceeded" else _logs.SeverityNumber.WARN
        try:
            self._otel_logger.emit(event_name=EVENT_NAME, severity_number=sev,
                                   severity_text="ERROR" if level == "exceeded" else "WARN", body=text,
                                   attributes=attrs)
            return True
        except TypeError:
            pass  # an API older than keyword emit (< 1.35): build the record ourselves
        try:
            record = _logs.LogRecord(timestamp=time.time_ns(), severity_number=sev, body=text,
                                     attributes={**attrs, "event.name": EVENT_NAME})
            self._otel_logger.emit(record)
            return True
        except Exception:  # noqa: BLE001
            return False
