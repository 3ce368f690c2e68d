"""Budgets: the TOML file (fail fast, naming file, budget and field), the report's status and projection, and
the live tracker's metric + log event, emitted exactly once per budget, level and period."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from otel_costattr._finance._budgets import (Budget, BudgetTracker, budget_status, load_budgets, parse_budgets, projection,
                                    status_of)
from otel_costattr._cli import main
from tests.conftest import DATA
from tests.unit.finance_support import Call, ns, write_ledger

GOOD = """
[[budget]]
name = "acme-monthly"
scope = { customer_id = "acme" }
period = "month"
limit_usd = "100.00"
warn_at_pct = 80

[[budget]]
name = "all-daily"
scope = {}
period = "day"
limit_usd = "5"
"""


def write(tmp_path: Path, text: str, name: str = "budgets.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def budget(limit: str = "10", period: str = "day", warn: str = "80", **scope: str) -> Budget:
    return Budget(f"b-{period}-{limit}", tuple(sorted(scope.items())), period, Decimal(limit), Decimal(warn))


# ------------------------------------------------------------------------------------------------ the file

def test_a_valid_file(tmp_path: Path) -> None:
    acme, total = load_budgets(write(tmp_path, GOOD))
    assert (acme.name, acme.scope_dict, acme.period, acme.limit, acme.warn_at) == (
        "acme-monthly", {"customer_id": "acme"}, "month", Decimal("100.00"), Decimal("80"))
    assert (total.scope, total.period, total.limit, total.warn_at_pct) == ((), "day", Decimal(5), Decimal(80))


@pytest.mark.parametrize("body, where", [
    ('[[budget]]\nperiod = "day"\nlimit_usd = "1"', "budget #1: field 'name'"),
    ('[[budget]]\nname = "a"\nperiod = "week"\nlimit_usd = "1"', "budget 'a': field 'period'"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = 100.5',
     "budget 'a': field 'limit_usd': write money as a string"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = "-3"', "budget 'a': field 'limit_usd': must be greater"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = "lots"', "budget 'a': field 'limit_usd'"),
    ('[[budget]]\nname = "a"\nperiod = "day"', "budget 'a': field 'limit_usd': required"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = "1"\nwarn_at_pct = 120', "field 'warn_at_pct'"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = "1"\nscope = { customer_id = 7 }', "field 'scope'"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = "1"\nscope = { day = "x" }', "field 'scope'"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = "1"\nlimit = "2"', "field 'limit': unknown field"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit_usd = "1"\n[[budget]]\nname = "a"\nperiod = "day"\n'
     'limit_usd = "1"', "budget 'a': field 'name': another budget"),
    ("", "defines no budget"),
    ('[budgets]\nx = 1', "unknown top-level key"),
    ("[[budget]\nname=", "not valid TOML"),
])
def test_bad_files_fail_naming_file_budget_and_field(tmp_path: Path, body: str, where: str) -> None:
    path = write(tmp_path, body, "team-budgets.toml")
    with pytest.raises(oc.ConfigurationError) as err:
        load_budgets(path)
    assert str(path) in str(err.value) and where in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(oc.ConfigurationError, match="nope.toml: budget file not found"):
        load_budgets(tmp_path / "nope.toml")


# ------------------------------------------------------------------------------------------ projection

def test_projection_is_linear_in_the_elapsed_fraction() -> None:
    start, end = ns("2025-11-03T00:00:00"), ns("2025-11-04T00:00:00")
    assert projection(Decimal("10"), start, end, ns("2025-11-03T06:00:00")) == Decimal("40.00")  # a quarter gone
    assert projection(Decimal("10"), start, end, ns("2025-11-03T18:00:00")) == Decimal("13.33")
    # the first hour projects as if an hour had passed (a 5-minute burst must not project x288)
    assert projection(Decimal("1"), start, end, ns("2025-11-03T00:05:00")) == Decimal("24.00")
    assert projection(Decimal("7.5"), start, end, ns("2025-11-05T00:00:00")) == Decimal("7.50")  # period over
    m0, m1 = ns("2025-11-01T00:00:00"), ns("2025-12-01T00:00:00")
    assert projection(Decimal("30"), m0, m1, ns("2025-11-11T00:00:00")) == Decimal("90.00")  # 10 of 30 days


def test_status_order() -> None:
    b = budget("100", warn="80")
    assert status_of(b, Decimal("100.01"), Decimal("100.01")) == "exceeded"
    assert status_of(b, Decimal("50"), Decimal("150")) == "on_track_to_exceed"
    assert status_of(b, Decimal("80"), Decimal("95")) == "warning"
    assert status_of(b, Decimal("100"), Decimal("100")) == "warning"  # at the limit is not over it
    assert status_of(b, Decimal("10"), Decimal("99")) == "ok"


def test_budget_status_over_the_ledger_with_scopes(tmp_path: Path) -> None:
    led = write_ledger(tmp_path / "l.duckdb", [
        Call("2025-11-02T10:00:00", "openai", "gpt-4o-mini", input=10_000_000, tags={"customer_id": "acme"}),  # $1.50
        Call("2025-11-03T01:00:00", "openai", "gpt-4o-mini", input=20_000_000, tags={"customer_id": "acme"}),  # $3
        Call("2025-11-03T02:00:00", "openai", "gpt-4o-mini", input=10_000_000, tags={"customer_id": "globex"}),
        Call("2025-10-31T23:00:00", "openai", "gpt-4o-mini", input=10_000_000, tags={"customer_id": "acme"}),  # Oct
    ])
    budgets = parse_budgets({"budget": [
        {"name": "acme-month", "scope": {"customer_id": "acme"}, "period": "month", "limit_usd": "20"},
        {"name": "acme-day", "scope": {"customer_id": "acme"}, "period": "day", "limit_usd": "10"},
        {"name": "all-day", "period": "day", "limit_usd": "4", "warn_at_pct": 50},
        {"name": "globex-day", "scope": {"customer_id": "globex"}, "period": "day", "limit_usd": "3.5",
         "warn_at_pct": 40},
        {"name": "nobody", "scope": {"customer_id": "initech"}, "period": "day", "limit_usd": "1"},
    ]})
    got = {b["name"]: b for b in budget_status(led, budgets, now_ns=ns("2025-11-03T12:00:00"))}
    month = got["acme-month"]
    assert (month["period_start"], month["period_end"]) == ("2025-11-01T00:00:00Z", "2025-12-01T00:00:00Z")
    assert month["spent"] == "4.5"  # Oct 31 belongs to another period
    # $4.50 in 2.5 of November's 30 days runs at $54 for the month: over the $20 limit
    assert (month["projected"], month["status"], month["elapsed_pct"]) == ("54", "on_track_to_exceed", "8.33")
    assert got["acme-day"]["spent"] == "3" and got["acme-day"]["projected"] == "6"
    assert got["all-day"]["spent"] == "4.5" and got["all-day"]["status"] == "exceeded"
    # $1.50 passed the $1.40 warning, and at half the day it runs at $3, under $3.50
    assert got["globex-day"]["spent"] == "1.5" and got["globex-day"]["status"] == "warning"
    assert got["nobody"]["spent"] == "0" and got["nobody"]["status"] == "ok"
    assert set(month) >= {"name", "scope", "period", "period_start", "limit", "spent", "projected", "status"}
    led.close()


# ------------------------------------------------------------------------------------------- the report

@pytest.fixture
def today_ledger(tmp_path: Path) -> Path:
    """A ledger with spend from a few minutes ago, so `report --budgets` (evaluated now) sees it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 120))
    path = tmp_path / "today.duckdb"
    write_ledger(path, [Call(now, "openai", "gpt-4o-mini", input=40_000_000, tags={"customer_id": "acme"}),  # $6
                        Call(now, "openai", "gpt-4o-mini", input=1_000_000, tags={"customer_id": "globex"})]).close()
    return path


def test_report_budgets_in_every_format(today_ledger: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, GOOD)
    assert main(["report", "--db", str(today_ledger), "--budgets", str(f), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    got = {b["name"]: b for b in report["budgets"]}
    assert got["all-daily"]["spent"] == "6.15" and got["all-daily"]["status"] == "exceeded"
    assert got["acme-monthly"]["spent"] == "6" and got["acme-monthly"]["scope"] == {"customer_id": "acme"}
    for b in report["budgets"]:
        assert set(b) >= {"name", "scope", "period", "period_start", "limit", "spent", "projected", "status"}
        assert b["status"] in ("ok", "warning", "on_track_to_exceed", "exceeded")
    out = tmp_path / "r.html"
    assert main(["report", "--db", str(today_ledger), "--budgets", str(f), "--format", "html", "--out", str(out)]) == 0
    html = out.read_text()
    assert 'id="x-budgets"' in html and ">Budgets<" in html
    alerts = html.index('class="alerts"')
    assert alerts < html.index('id="x-budgets"')  # the alert line sits near the top
    assert "Budget all-daily (all spend) exceeded: $6.15 of $5 this day" in html
    assert main(["report", "--db", str(today_ledger), "--budgets", str(f)]) == 0
    table = capsys.readouterr().out
    assert "budget all-daily [all spend] day" in table and "EXCEEDED" in table
    assert main(["report", "--db", str(today_ledger), "--budgets", str(f), "--format", "csv"]) == 0
    csv_text = capsys.readouterr().out
    assert "\nbudget,scope,period,period_start,limit,spent,projected,used_pct,status" in csv_text.replace("\r", "")
    assert "acme-monthly,customer_id=acme,month," in csv_text


def test_report_refuses_a_bad_budget_file_before_reading_the_ledger(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, '[[budget]]\nname = "x"\nperiod = "year"\nlimit_usd = "1"')
    assert main(["report", "--db", str(tmp_path / "missing.duckdb"), "--budgets", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "budget 'x': field 'period'" in err


# ------------------------------------------------------------------------------------------------- live

class Clock:
    def __init__(self, iso: str) -> None:
        self.now = ns(iso)

    def __call__(self) -> int:
        return self.now

    def set(self, iso: str) -> None:
        self.now = ns(iso)


class Telemetry:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.logs = InMemoryLogRecordExporter()
        self.loggers = LoggerProvider(shutdown_on_exit=False)
        self.loggers.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def points(self, name: str) -> list:
        out = []
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out

    def crossed(self) -> dict[tuple[str, str], int]:
        return {(p.attributes["budget.name"], p.attributes["budget.level"]): p.value
                for p in self.points("otel_costattr.budget.crossed")}

    def events(self) -> list[tuple[str, str]]:
        return [(r.log_record.attributes["budget.name"], r.log_record.attributes["budget.level"])
                for r in self.logs.get_finished_logs() if r.log_record.event_name == "otel_costattr.budget.crossed"]


def test_each_level_fires_exactly_once_per_period_and_rolls_over() -> None:
    t = Telemetry()
    clock = Clock("2025-11-03T09:00:00")
    tracker = BudgetTracker([budget("10", warn="80", customer_id="acme")], meter_provider=t.meters,
                            logger_provider=t.loggers, clock=clock)
    acme, other = {"customer_id": "acme"}, {"customer_id": "globex"}
    tracker(acme, 7.99)
    tracker(other, 50.0)  # out of scope
    assert t.crossed() == {} and t.events() == []
    tracker(acme, 0.01)  # 8.00: the warn threshold (80% of $10) is reached
    tracker(acme, 1.0)
    assert t.crossed() == {("b-day-10", "warning"): 1} and t.events() == [("b-day-10", "warning")]
    tracker(acme, 1.0)  # 10.00: at the limit, not over it
    assert ("b-day-10", "exceeded") not in t.crossed()
    tracker(acme, 0.5)
    tracker(acme, 3.0)
    assert t.crossed() == {("b-day-10", "warning"): 1, ("b-day-10", "exceeded"): 1}
    assert t.events() == [("b-day-10", "warning"), ("b-day-10", "exceeded")]
    record = t.logs.get_finished_logs()[-1].log_record
    assert record.severity_text == "ERROR" and record.attributes["budget.spent_usd"] == "10.5"
    assert record.attributes["budget.limit_usd"] == "10" and record.attributes["budget.period_start"] == \
        "2025-11-03T00:00:00Z"
    assert "exceeded its limit" in record.body
    # next UTC day: the total restarts and both levels can fire again, once
    clock.set("2025-11-04T00:00:01")
    tracker(acme, 9.0)
    tracker(acme, 9.0)
    assert t.crossed() == {("b-day-10", "warning"): 2, ("b-day-10", "exceeded"): 2}
    assert len(t.events()) == 4
    assert tracker.snapshot()[0]["spent"] == "18" and tracker.snapshot()[0]["period_start"] == "2025-11-04T00:00:00Z"


def test_one_call_can_cross_both_levels_and_gauges_report_the_running_total() -> None:
    t = Telemetry()
    clock = Clock("2025-11-30T23:00:00")
    tracker = BudgetTracker([budget("1", period="month")], meter_provider=t.meters, logger_provider=t.loggers,
                            clock=clock)
    tracker({}, 2.5)
    assert t.events() == [("b-month-1", "warning"), ("b-month-1", "exceeded")]
    spend = {p.attributes["budget.name"]: p.value for p in t.points("otel_costattr.budget.spend")}
    limit = {p.attributes["budget.name"]: p.value for p in t.points("otel_costattr.budget.limit")}
    assert spend == {"b-month-1": 2.5} and limit == {"b-month-1": 1.0}
    clock.set("2025-12-01T00:00:00")  # month rollover: the gauge drops to the new period's spend
    assert {p.attributes["budget.name"]: p.value for p in t.points("otel_costattr.budget.spend")} == {"b-month-1": 0}


def test_bad_input_never_raises_and_python_logging_is_the_fallback(caplog: pytest.LogCaptureFixture) -> None:
    t = Telemetry()
    tracker = BudgetTracker([budget("1")], meter_provider=t.meters, clock=Clock("2025-11-03T09:00:00"))
    tracker({}, float("nan"))
    tracker({}, -5.0)
    tracker({}, "12")  # type: ignore[arg-type]
    tracker(None, 1.0)  # type: ignore[arg-type]  # broken attributes: swallowed, logged once
    with caplog.at_level(logging.WARNING, logger="otel_costattr.budgets"):
        tracker({}, 2.0)  # no LoggerProvider configured anywhere: the event goes to Python logging
    msgs = [r for r in caplog.records if r.name == "otel_costattr.budgets" and "budget 'b-day-1'" in r.getMessage()]
    assert [r.levelname for r in msgs] == ["WARNING", "ERROR"]
    assert t.crossed() == {("b-day-1", "warning"): 1, ("b-day-1", "exceeded"): 1}


def test_configure_feeds_the_tracker_from_priced_spans_and_seeds_it_from_the_ledger(tmp_path: Path) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 60))
    db = tmp_path / "live.duckdb"
    # $6 already spent by acme today, before this process started
    write_ledger(db, [Call(now, "openai", "gpt-4o-mini", input=40_000_000, tags={"customer_id": "acme"})]).close()
    f = write(tmp_path, """
[[budget]]
name = "acme-daily"
scope = { customer_id = "acme" }
period = "day"
limit_usd = "10"
warn_at_pct = 50
""")
    t = Telemetry()
    tracker = BudgetTracker(load_budgets(f), meter_provider=t.meters, logger_provider=t.loggers)
    exporter = InMemorySpanExporter()
    pipeline = oc.configure(budgets=tracker, ledger=str(db), tracer_provider=TracerProvider(),
                            processors=[SimpleSpanProcessor(exporter)], meter_provider=t.meters, set_global=False,
                            instrument_threading=False, langfuse=False, env={})
    assert pipeline.budgets is tracker
    assert tracker.snapshot()[0]["spent"] == "6" and tracker.snapshot()[0]["fired"] == ["warning"]
    assert t.events() == []  # crossed before the restart: not announced again
    tracer = pipeline.tracer_provider.get_tracer("agent")
    with oc.attribution(customer_id="acme"):
        for i in range(3):
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini"}) as s:
                s.set_attributes({"gen_ai.usage.input_tokens": 10_000_000, "gen_ai.usage.output_tokens": 0,
                                  "gen_ai.response.id": f"live-{i}"})  # $1.50 each
    assert tracker.snapshot()[0]["spent"] == "10.5"
    assert t.events() == [("acme-daily", "exceeded")]
    assert len(exporter.get_finished_spans()) == 3
    pipeline.shutdown()


def test_configure_takes_a_budget_file_and_fails_fast_on_a_bad_one(tmp_path: Path) -> None:
    good = oc.configure(budgets=str(write(tmp_path, GOOD)), tracer_provider=TracerProvider(), set_global=False,
                        instrument_threading=False, langfuse=False, env={})
    assert [b.name for b in good.budgets.budgets] == ["acme-monthly", "all-daily"]
    assert good.processor.cost_listeners == [good.budgets]
    good.shutdown()
    bad = write(tmp_path, '[[budget]]\nname = "x"\nperiod = "day"\nlimit_usd = 3.5')
    with pytest.raises(oc.ConfigurationError, match="budget 'x': field 'limit_usd'"):
        oc.configure(budgets=bad, tracer_provider=TracerProvider(), set_global=False, instrument_threading=False,
                     langfuse=False, env={})


def test_a_raising_listener_never_reaches_the_application() -> None:
    def boom(attrs, cost):
        raise RuntimeError("listener bug")

    exporter = InMemorySpanExporter()
    book = oc.PriceBook.load([DATA / "rules.toml"], builtin=False, imported=False, env=False)
    proc = oc.CostSpanProcessor(SimpleSpanProcessor(exporter), book=book, cost_listeners=[boom])
    tp = TracerProvider()
    tp.add_span_processor(proc)
    with tp.get_tracer("t").start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "rulesco", "gen_ai.request.model": "tiered",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 10}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.cost.status"] == "priced"
    assert proc.stats.snapshot()["listener_failed"] == 1
