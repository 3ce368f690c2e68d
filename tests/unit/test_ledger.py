"""The DuckDB ledger: every span, exact decimals, idempotent, de-duplicated, durable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import otel_costattr as oc
from otel_costattr._ledger._store import Ledger, LedgerSpanProcessor, SpanRecord
from tests.conftest import DATA

BOOK = oc.PriceBook.load([DATA / "rules.toml"], builtin=False, imported=False, env=False)
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "rulesco", "gen_ai.request.model": "tiered"}


def pipeline(path: Path, sampler=None):
    tp = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    led = LedgerSpanProcessor(path, book=BOOK, schedule_delay_millis=50)
    proc = oc.CostSpanProcessor(led, book=BOOK)
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(proc)
    return tp, led


def test_every_span_of_a_trace_with_exact_costs(tmp_path: Path) -> None:
    tp, led = pipeline(tmp_path / "l.duckdb")
    tracer = tp.get_tracer("t")
    expected = Decimal(0)
    with oc.attribution(customer_id="acme", task_id="t1"):
        with tracer.start_as_current_span("invoke_agent planner", attributes={"gen_ai.operation.name": "invoke_agent"}):
            for i in range(1, 40):
                with tracer.start_as_current_span("chat", attributes=CHAT) as s:
                    s.set_attributes({"gen_ai.usage.input_tokens": 1000 * i + 7, "gen_ai.usage.output_tokens": 3 * i,
                                      "gen_ai.response.id": f"r{i}"})
                expected += (Decimal(1000 * i + 7) * 3 + Decimal(3 * i) * 15) / 1_000_000
            with tracer.start_as_current_span("execute_tool lookup", attributes={"gen_ai.operation.name": "execute_tool"}):
                pass
    tp.force_flush()
    ledger = led.ledger
    assert ledger.count() == 41  # the agent, the tool and 39 calls
    (total, calls), = ledger.query("SELECT sum(cost_total), count(*) FROM calls")
    assert calls == 39 and total == expected  # exact: DECIMAL sums, not floats
    (parents,), = ledger.query("SELECT count(DISTINCT parent_span_id) FROM spans WHERE is_llm")
    assert parents == 1
    assert ledger.query("SELECT DISTINCT customer_id, task_id FROM spans") == [("acme", "t1")]
    tp.shutdown()


def test_content_is_not_stored_unless_asked(tmp_path: Path) -> None:
    rec = SpanRecord("a" * 32, "b" * 16, None, "chat", "CLIENT", 1, 2, "UNSET",
                     {**CHAT, "gen_ai.input.messages": "[secret prompt]", "gen_ai.output.messages": "[answer]",
                      "gen_ai.prompt.0.content": "secret", "app.route": "/chat"})
    plain = Ledger(tmp_path / "a.duckdb")
    plain.write_records([rec])
    (attrs,), = plain.query("SELECT attributes FROM spans")
    assert "secret" not in attrs and "answer" not in attrs and json.loads(attrs)["app.route"] == "/chat"
    full = Ledger(tmp_path / "b.duckdb", store_content=True)
    full.write_records([rec])
    (attrs,), = full.query("SELECT attributes FROM spans")
    assert "secret prompt" in attrs


def _rec(span: str, rid: str, detail_split: bool, status: str, cost: float | None, dup_of: str | None = None,
         flags: tuple[str, ...] = ()) -> SpanRecord:
    a = {**CHAT, "gen_ai.usage.input_tokens": 3050, "gen_ai.usage.cache_read.input_tokens": 1000,
         "gen_ai.usage.cache_write.input_tokens": 2000, "gen_ai.usage.output_tokens": 300,
         "gen_ai.response.id": rid, "gen_ai.cost.status": status}
    if detail_split:
        a["anthropic.usage.cache_creation.ephemeral_5m_input_tokens"] = 1500
        a["anthropic.usage.cache_creation.ephemeral_1h_input_tokens"] = 500
    if cost is not None:
        a["gen_ai.cost.total_cost"] = cost
    if dup_of:
        a["gen_ai.cost.duplicate_of"] = dup_of
    if flags:
        a["gen_ai.cost.flags"] = flags
    return SpanRecord("c" * 32, span, None, "chat", "CLIENT", 1_750_000_000_000_000_000,
                      1_750_000_000_500_000_000, "UNSET", a)


def test_more_detailed_duplicate_wins_in_process(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.duckdb", book=BOOK)
    first = _rec("1" * 16, "msg_1", False, "priced", 0.01245)
    second = _rec("2" * 16, "msg_1", True, "duplicate", None, dup_of="1" * 16, flags=("more_detailed",))
    ledger.write_records([first])
    ledger.write_records([second])
    # the detailed span is re-priced with the 5m/1h split and counted instead:
    # 50 x $3 + 1,000 x $0.30 + 1,500 x $3.75 + 500 x $6 + 300 x $15, per million
    assert ledger.query("SELECT span_id, cost_total FROM calls") == [("2" * 16, Decimal("0.013575"))]


def test_reingest_is_idempotent_and_cross_file_duplicates_count_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.duckdb", book=BOOK)
    a = _rec("1" * 16, "msg_9", False, "priced", 0.01245)
    b = _rec("2" * 16, "msg_9", True, "priced", 0.013575)  # the same call, priced by another process
    ledger.write_records([a], replace=True)
    ledger.write_records([b], replace=True)
    ledger.write_records([a, b], replace=True)
    assert ledger.count() == 2
    assert ledger.query("SELECT span_id, cost_total FROM calls") == [("2" * 16, Decimal("0.013575"))]


def test_unsampled_llm_spans_still_reach_the_ledger(tmp_path: Path) -> None:
    tp, led = pipeline(tmp_path / "l.duckdb", sampler=oc.CostAwareSampler(ParentBased(TraceIdRatioBased(0.0))))
    tracer = tp.get_tracer("t")
    for i in range(20):
        with tracer.start_as_current_span("agent"):
            with tracer.start_as_current_span("chat", attributes=CHAT) as s:
                s.set_attributes({"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 10})
    tp.force_flush()
    (n, total), = led.ledger.query("SELECT count(*), sum(cost_total) FROM calls")
    assert n == 20 and total == Decimal("0.063")  # 20 x (1,000 x $3 + 10 x $15) / 1M
    tp.shutdown()


def test_configure_ledger(tmp_path: Path) -> None:
    tp = TracerProvider()
    p = oc.configure(env={}, ledger=tmp_path / "c.duckdb", tracer_provider=tp, set_global=False, book=BOOK,
                     instrument_threading=False)
    with oc.attribution(customer_id="x"):
        with tp.get_tracer("t").start_as_current_span("chat", attributes=CHAT) as s:
            s.set_attributes({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 1})
    p.force_flush()
    assert p.destinations == ["ledger"]
    assert p.ledger.ledger.query("SELECT customer_id, cost_total FROM calls") == [("x", Decimal("0.000315"))]
    p.shutdown()


def test_bad_ledger_location_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(oc.ConfigurationError, match="does not exist"):
        Ledger(tmp_path / "missing-dir" / "l.duckdb")
    with pytest.raises(oc.ConfigurationError, match="does not exist"):
        Ledger(tmp_path / "nope.duckdb", read_only=True)
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(oc.ConfigurationError, match="cannot open ledger"):
        Ledger(junk)


CHILD = textwrap.dedent("""
    import sys
    from otel_costattr._ledger._store import Ledger, SpanRecord
    led = Ledger(sys.argv[1])
    batch = 500
    for b in range(10_000):
        recs = [SpanRecord(f"{b:032x}", f"{b * batch + i:016x}", None, "chat", "CLIENT", 1, 2, "UNSET",
                           {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                            "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 1,
                            "gen_ai.cost.status": "priced", "gen_ai.cost.total_cost": 0.001})
                for i in range(batch)]
        led.write_records(recs)
        print(f"committed {(b + 1) * batch}", flush=True)
""")


def test_sigkill_mid_write_loses_no_committed_span_and_never_corrupts(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    committed = 0
    assert child.stdout is not None
    for line in child.stdout:
        committed = int(line.split()[1])
        if committed >= 5000:
            break
    child.send_signal(signal.SIGKILL)  # mid-way through the next batch
    child.wait(timeout=30)
    child.stdout.close()
    ledger = Ledger(path)  # opens: the write-ahead log is replayed, nothing is corrupt
    n = ledger.count()
    assert n >= committed and n % 500 == 0  # every acknowledged batch is there, no partial batch
    (total,), = ledger.query("SELECT sum(cost_total) FROM calls")
    assert total == Decimal("0.001") * n


def test_ledger_processor_flush_writes_what_was_queued_and_drops_after_shutdown_are_counted(tmp_path: Path,
                                                                                           caplog) -> None:
    led = LedgerSpanProcessor(tmp_path / "l.duckdb", book=BOOK, schedule_delay_millis=60_000)  # timer never fires
    tp = TracerProvider()
    tp.add_span_processor(oc.CostSpanProcessor(led, book=BOOK))
    tracer = tp.get_tracer("t")
    for _ in range(5):
        with tracer.start_as_current_span("chat", attributes=CHAT) as s:
            s.set_attributes({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 1})
    assert led.stats()["queued"] == 5
    assert led.force_flush(10_000) and led.ledger.count() == 5 and led.stats()["queued"] == 0
    tp.shutdown()
    with caplog.at_level("WARNING", logger="otel_costattr._ledger._store"):
        for _ in range(3):
            with tracer.start_as_current_span("chat", attributes=CHAT) as s:
                s.set_attributes({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 1})
    stats = led.stats()
    assert stats["dropped"] == stats["dropped_shutdown"] == 3 and stats["dropped_priced"] == 3
    assert len([r for r in caplog.records if "dropping spans" in r.getMessage()]) == 1  # logged once
    assert Ledger(tmp_path / "l.duckdb", read_only=True).count() == 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_ledger_processor_in_a_forked_child_drops_counted_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    led = LedgerSpanProcessor(path, book=BOOK, schedule_delay_millis=50)
    tp = TracerProvider()
    tp.add_span_processor(oc.CostSpanProcessor(led, book=BOOK))
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("before fork"):
        pass
    assert led.force_flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: end two spans, shut down, report the counters, never return into pytest
        code = 1
        try:
            for _ in range(2):
                with tracer.start_as_current_span("in child"):
                    pass
            tp.shutdown()
            os.write(w, json.dumps(led.stats()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        child_stats = json.loads(f.read() or "{}")
    assert os.waitpid(pid, 0)[1] == 0
    assert child_stats["dropped_forked"] == 2 and child_stats["written"] == 1
    with tracer.start_as_current_span("after fork"):
        pass
    tp.shutdown()
    assert [n for (n,) in Ledger(path, read_only=True).query("SELECT name FROM spans ORDER BY name")] == [
        "after fork", "before fork"]


def test_values_that_do_not_fit_their_column_are_nulled_marked_and_counted(tmp_path: Path) -> None:
    good = _rec("1" * 16, "msg_a", False, "priced", 0.01245)
    bad = _rec("2" * 16, "msg_b", False, "provided", 1e20)
    bad.attributes.update({"http.request.resend_count": 2**40, "gen_ai.cost.input_cost": 10**25})
    bad.end_ns = 2**63
    ledger = Ledger(tmp_path / "l.duckdb", book=BOOK)
    assert ledger.write_records([good, bad]) == 2  # the good span is not lost with the bad one
    row = ledger.query("SELECT cost_status, cost_total, cost_input, resend_count, end_ns, cost_flags FROM spans "
                       "WHERE span_id = '2222222222222222'")
    assert row == [("unpriced", None, None, None, None,
                    "out_of_range:cost_total,out_of_range:cost_input,out_of_range:resend_count,out_of_range:end_ns")]
    assert ledger.out_of_range_values == 4
    assert ledger.query("SELECT sum(cost_total) FROM calls") == [(Decimal("0.01245"),)]


def _plain(i: int, cost: float = 0.25) -> SpanRecord:
    return SpanRecord(trace_id=f"{i // 3:032x}", span_id=f"{i:016x}", parent_span_id=None, name="chat",
                      kind="CLIENT", start_ns=1_763_000_000_000_000_000 + i, end_ns=1_763_000_000_000_000_100 + i,
                      status_code="UNSET", service_name="t",
                      attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                  "gen_ai.request.model": "gpt-4o", "gen_ai.response.id": f"r{i}",
                                  "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
                                  "gen_ai.cost.status": "priced", "gen_ai.cost.total_cost": cost,
                                  "customer_id": f"c{i % 4}"})


def _recs(n: int, start: int = 0) -> list[SpanRecord]:
    return [SpanRecord(f"{i // 3:032x}", f"{i:016x}", None, "chat", "CLIENT", 10 + i, 20 + i, "UNSET",
                       {**CHAT, "gen_ai.usage.input_tokens": i, "gen_ai.usage.output_tokens": 1,
                        "gen_ai.response.id": f"r{i}", "gen_ai.cost.status": "priced",
                        "gen_ai.cost.total_cost": i * 3e-6 + 15e-6, "customer_id": f"c{i % 5}"})
            for i in range(start, start + n)]


def test_write_stream_stores_what_write_records_stores(tmp_path: Path) -> None:
    recs = _recs(1000)
    a, b = Ledger(tmp_path / "a.duckdb"), Ledger(tmp_path / "b.duckdb")
    for j in range(0, 1000, 300):
        a.write_records(recs[j:j + 300])
    assert b.write_stream(iter(recs), batch_size=128) == 1000
    q = "SELECT * FROM spans ORDER BY span_id"
    assert a.query(q) == b.query(q)
    (total,), = b.query("SELECT sum(cost_total) FROM calls")
    assert total == sum(Decimal(i) * 3 / 10**6 + Decimal(15) / 10**6 for i in range(1000))
    # replace=True through the stream is idempotent too, also when a copy falls in a later batch
    assert b.write_stream(iter(recs[:500] + recs[:10]), replace=True, batch_size=7) == 510
    assert b.count() == 1000 and a.query(q) == b.query(q)


def test_write_stream_failure_keeps_earlier_batches_and_raises(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.duckdb")

    def records():
        yield from _recs(250)
        raise RuntimeError("decoder broke")

    with pytest.raises(RuntimeError, match="decoder broke"):
        led.write_stream(records(), batch_size=100)
    assert led.count() == 200  # two whole batches committed, the half-filled third never written

    real, calls = led._write_prepared, []

    def flaky(prepared, replace):
        calls.append(prepared[1])
        if len(calls) == 2:
            raise OSError("disk full")
        return real(prepared, replace)

    led._write_prepared = flaky  # the writer thread's failure reaches the caller, and writing stops there
    with pytest.raises(OSError, match="disk full"):
        led.write_stream(iter(_recs(1000, start=10_000)), batch_size=100)
    assert led.count() == 300
    assert calls == [100, 100]  # a batch already queued is drained unwritten; nothing after it is converted
    with pytest.raises(ValueError, match="batch_size"):
        led.write_stream(iter(()), batch_size=0)
