"""The ledger: every span, exact decimals, idempotent, de-duplicated, durable; the segment store (issue 17)."""

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
    for read_only in (False, True):
        with pytest.raises(oc.ConfigurationError, match="not an otel-costattr ledger; nothing was read or written"):
            Ledger(junk, read_only=read_only)
    assert junk.read_bytes() == b"this is not a database" * 100  # untouched
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"x")
    with pytest.raises(oc.ConfigurationError, match="is a directory that is not an otel-costattr ledger"):
        Ledger(other)


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
def test_ledger_processor_in_a_forked_child_writes_its_own_stream(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    led = LedgerSpanProcessor(path, book=BOOK, schedule_delay_millis=50)
    tp = TracerProvider()
    tp.add_span_processor(oc.CostSpanProcessor(led, book=BOOK))
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("before fork"):
        pass
    assert led.force_flush()
    assert led.ledger.count() == 1  # the parent has a reader connection (with its threads) when it forks
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: end two spans, shut down, report the counters, never return into pytest
        code = 1
        try:
            for _ in range(2):
                with tracer.start_as_current_span("in child"):
                    pass
            tp.force_flush()
            seen = led.ledger.count()  # the child reads through a connection of its own
            tp.shutdown()
            os.write(w, json.dumps({**led.stats(), "seen": seen}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        child_stats = json.loads(f.read() or "{}")
    assert os.waitpid(pid, 0)[1] == 0
    assert child_stats["dropped"] == 0 and child_stats["written"] == 2  # the child's own counters
    assert child_stats["seen"] == 3
    with tracer.start_as_current_span("after fork"):
        pass
    tp.shutdown()
    assert [n for (n,) in Ledger(path, read_only=True).query("SELECT name FROM spans ORDER BY name")] == [
        "after fork", "before fork", "in child", "in child"]
    streams = {s.stream for s in Ledger(path, read_only=True).segments()}
    assert len(streams) == 2 and all(s.split("-")[0] in (str(os.getpid()), str(pid)) for s in streams)


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


# ------------------------------------------------------------------------------------ segment store (issue 17)

def _chat(i: int, cost: float, **extra) -> SpanRecord:
    return SpanRecord(f"{i // 4:032x}", f"{i:016x}", None, "chat", "CLIENT", 1_700_000_000_000_000_000 + i,
                      1_700_000_000_000_000_100 + i, "UNSET",
                      {**CHAT, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1,
                       "gen_ai.response.id": f"r{i}", "gen_ai.cost.status": "priced", "gen_ai.cost.total_cost": cost,
                       "customer_id": f"c{i % 3}", **extra})


def test_money_is_converted_exactly_as_the_single_file_ledger_did() -> None:
    """Float costs become decimal128(38,18) through their shortest text, rounded half-up at 18 places: the
    same values DuckDB's CAST(CAST(x AS VARCHAR) AS DECIMAL(38,18)) gave in the single-file ledger."""
    import random

    import duckdb
    import pyarrow as pa

    from otel_costattr._ledger._store import _to_decimal

    rng = random.Random(5)
    vals = [0.1, 3.0000000000000004e-05, 5e-19, 2.5e-18, 1.5e-18, 0.0077670000000000005, 99999999999999.99, None,
            1e-300, 5e-324, 1.2345678901234567e-25, 4.9999999999999999e-19, 9.99999999999999e19]
    vals += [rng.randint(1, 10**7) * rng.choice([2.5e-6, 1.5e-7, 1 / 3, 1.25e-5, 7e-8]) for _ in range(20_000)]
    col = pa.array(vals, pa.float64())
    con = duckdb.connect()
    t = pa.table({"x": col})  # noqa: F841 - DuckDB reads it by name (replacement scan)
    want = [r[0] for r in con.execute("SELECT CAST(CAST(x AS VARCHAR) AS DECIMAL(38,18)) FROM t").fetchall()]
    assert _to_decimal(col).to_pylist() == want


def test_readers_see_only_whole_segments_and_no_temporary_files(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "costs.duckdb")
    led.write_records([_chat(i, 0.001) for i in range(10)])
    seg_dir = tmp_path / "costs.duckdb" / "segments"
    (seg_dir / ".20260101T000000_1-abcd_000001_v1.parquet.tmp").write_bytes(b"PAR1 half a segment")  # a crash
    reader = Ledger(tmp_path / "costs.duckdb", read_only=True)
    assert reader.count() == 10
    led.write_records([_chat(i, 0.001) for i in range(10, 15)])
    assert reader.count() == 15  # a reader that stays open sees later commits
    assert (tmp_path / "costs.duckdb" / "otel-costattr-ledger.json").is_file()


def test_writer_merges_its_own_segments_and_readers_never_double_count(tmp_path: Path) -> None:
    from otel_costattr._ledger._segments import MERGE_FANOUT

    led = Ledger(tmp_path / "costs.duckdb")
    reader = Ledger(tmp_path / "costs.duckdb", read_only=True)
    total = Decimal(0)
    for b in range(MERGE_FANOUT * 2 + 3):
        led.write_records([_chat(b * 10 + i, 0.000125 * (i + 1)) for i in range(10)])
        total += sum(Decimal("0.000125") * (i + 1) for i in range(10))
        (n, s), = reader.query("SELECT count(*), sum(cost_total) FROM calls")
        assert n == (b + 1) * 10 and s == total
    levels = sorted(seg.level for seg in led.segments())
    assert levels == [0, 0, 0, 1, 1]  # two merges of MERGE_FANOUT batches, three batches not merged yet


def test_a_writers_merge_settles_a_duplicate_pair_split_over_two_batches(tmp_path: Path) -> None:
    from otel_costattr._ledger._segments import MERGE_FANOUT

    led = Ledger(tmp_path / "costs.duckdb", book=BOOK)
    led.write_records([_rec("1" * 16, "msg_1", False, "priced", 0.01245)])
    led.write_records([_rec("2" * 16, "msg_1", True, "duplicate", None, dup_of="1" * 16, flags=("more_detailed",))])
    assert [s.flags for s in led.segments()] == ["", "s"]  # the pair is settled at read time for now
    want = [("2" * 16, Decimal("0.013575"))]
    assert led.query("SELECT span_id, cost_total FROM calls") == want
    for i in range(MERGE_FANOUT - 2):
        led.write_records([_chat(i, 0.001)])
    (merged,) = led.segments()
    assert merged.level == 1 and merged.flags == ""  # settled inside the merge
    assert led.query("SELECT span_id, cost_total FROM calls WHERE response_id = 'msg_1'") == want


def test_compact_folds_reloads_and_duplicates_while_a_writer_keeps_writing(tmp_path: Path) -> None:
    import threading

    from otel_costattr._ledger._maintain import compact

    path = tmp_path / "costs.duckdb"
    led = Ledger(path, book=BOOK)
    led.write_records([_chat(i, 0.002) for i in range(50)])
    led.write_records([_chat(i, 0.003) for i in range(40, 60)], replace=True)  # a re-load: these copies win
    first = _rec("a" * 16, "msg_x", False, "priced", 0.01245)
    detailed = _rec("b" * 16, "msg_x", True, "duplicate", None, dup_of="a" * 16, flags=("more_detailed",))
    led.write_records([first])
    led.write_records([detailed])  # a later batch: shadows the first span from another segment
    reader = Ledger(path, read_only=True)
    before = reader.query("SELECT span_id, cost_total, counted FROM calls ORDER BY span_id")
    stop = threading.Event()
    extra = []

    def keep_writing() -> None:
        w = Ledger(path)
        k = 1000
        while not stop.is_set():
            w.write_records([_chat(k, 0.0005, customer_id="writer")])
            extra.append(k)
            k += 1

    t = threading.Thread(target=keep_writing)
    t.start()
    try:
        seen = []
        result = None

        def run() -> None:
            nonlocal result
            result = compact(path)

        c = threading.Thread(target=run)
        c.start()
        while c.is_alive():
            seen.append(reader.query("SELECT count(*) FROM calls WHERE customer_id IS DISTINCT FROM 'writer'")[0][0])
        c.join()
    finally:
        stop.set()
        t.join()
    assert set(seen) == {len(before)}  # during the compaction: never a row twice, never one missing
    assert result is not None and result.rows_before > result.rows_after
    after = reader.query("SELECT span_id, cost_total, counted FROM calls WHERE customer_id IS DISTINCT FROM "
                         "'writer' ORDER BY span_id")
    assert after == before
    assert not any("r" in s.flags or "s" in s.flags for s in reader.segments() if s.level == 9)
    fresh = Ledger(path, read_only=True).count()
    assert (reader.count(), fresh) == (60 + 2 + len(extra),) * 2


def test_a_segment_committed_while_compaction_cleans_up_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 ) -> None:
    """Proves: a batch a writer commits while ``ledger compact`` removes the segments it replaced stays in the
    ledger. (Before: the clean-up deleted every segment that was not live when it listed the directory, so a
    segment committed between its listing and its scan was deleted: acknowledged spans lost, seen as a flaky
    count in the concurrent compaction test above on a loaded machine.)"""
    from otel_costattr._ledger import _segments
    from otel_costattr._ledger._maintain import compact

    path = tmp_path / "costs.duckdb"
    led = Ledger(path, book=BOOK)
    led.write_records([_chat(i, 0.002) for i in range(10)])
    led.write_records([_chat(i, 0.002) for i in range(10, 20)])
    writer = Ledger(path, book=BOOK)
    real_scandir = os.scandir
    calls: list[str] = []

    def scandir(where):  # noqa: ANN001, ANN202 - os.scandir's signature
        if str(where).endswith("segments"):
            calls.append(str(where))
            if len(calls) == 3:  # after compact's listing and the clean-up's, before its scan: a writer commits
                writer.write_records([_chat(100, 0.5, customer_id="late")])
        return real_scandir(where)

    monkeypatch.setattr(_segments.os, "scandir", scandir)
    compact(path)
    monkeypatch.setattr(_segments.os, "scandir", real_scandir)
    reader = Ledger(path, read_only=True)
    assert len(calls) == 3
    assert reader.count() == 21
    assert reader.query("SELECT count(*) FROM spans WHERE customer_id = 'late'") == [(1,)]


def test_a_writers_merge_after_a_compaction_keeps_its_newest_batch(tmp_path: Path) -> None:
    """Proves: when ``ledger compact`` has taken a writer's segments, the writer's next merge (due at
    ``MERGE_FANOUT`` segments of its own) keeps the one batch left rather than deleting it unmerged. (Before: it
    deleted it: one committed batch lost per process after every compaction that ran while it wrote; 620 of
    ~8,200 spans per process in an 8 s run with compaction looping beside three writers.)"""
    from otel_costattr._ledger._maintain import compact
    from otel_costattr._ledger._segments import MERGE_FANOUT

    path = tmp_path / "costs.duckdb"
    writer = Ledger(path, book=BOOK)
    for i in range(MERGE_FANOUT - 1):
        writer.write_records([_chat(i, 0.002)])
    compact(path)  # takes all of them
    writer.write_records([_chat(100, 0.5)])  # the writer's 8th segment of level 0: its merge is due
    writer.write_records([_chat(101, 0.5)])
    reader = Ledger(path, read_only=True)
    assert reader.count() == MERGE_FANOUT + 1
    assert sorted(r[0] for r in reader.query("SELECT cost_total FROM spans WHERE cost_total > 0.1")) == \
        [Decimal("0.5")] * 2


def _legacy_file(path: Path, records: list[SpanRecord]) -> None:
    """A single-file ledger as otel-costattr wrote it before the segment format."""
    import duckdb

    from otel_costattr._ledger._store import COLUMNS, _prepare, record_to_row

    con = duckdb.connect(str(path))
    cols = ",\n  ".join(f"{n} {t}" for n, t in COLUMNS)
    con.execute(f"CREATE TABLE spans ({cols})")
    batch = _prepare([record_to_row(r) for r in records])[0]  # noqa: F841 - read by DuckDB below
    con.execute("INSERT INTO spans SELECT * FROM batch")
    con.execute("CREATE VIEW calls AS SELECT * FROM spans WHERE is_llm AND counted")
    con.close()


def test_migrate_converts_a_single_file_ledger_without_loss(tmp_path: Path) -> None:
    from otel_costattr._ledger._maintain import migrate

    old = tmp_path / "costs.duckdb"
    _legacy_file(old, [_chat(i, 0.000123 * (i + 1)) for i in range(300)])
    want = Ledger(old, read_only=True).query("SELECT count(*), sum(cost_total) FROM calls")  # still readable
    with pytest.raises(oc.ConfigurationError, match="otel-costattr ledger migrate"):
        oc.configure(ledger=old, tracer_provider=TracerProvider(), set_global=False, env={}, flush_on_signal=False)
    result = migrate(old)
    assert result.spans == 300 and (tmp_path / "costs.duckdb.v1").is_file() and old.is_dir()
    assert Ledger(old, read_only=True).query("SELECT count(*), sum(cost_total) FROM calls") == want
    Ledger(old).write_records([_chat(999, 0.5)])  # writable now
    with pytest.raises(oc.ConfigurationError, match="already a ledger directory"):
        migrate(old)


def test_migrate_and_compact_show_a_spinner_on_a_terminal_only(tmp_path: Path, on_terminal) -> None:
    old = tmp_path / "costs.duckdb"
    _legacy_file(old, [_chat(i, 0.0001) for i in range(50)])
    code, out, seen = on_terminal([sys.executable, "-m", "otel_costattr", "ledger", "migrate", str(old)])
    assert code == 0 and out.startswith(b"migrated 50 span(s)")
    assert b"migrating" in seen and b"0:00:0" in seen  # what runs, with the elapsed time
    Ledger(old).write_records([_chat(999, 0.5)])
    code, out, seen = on_terminal([sys.executable, "-m", "otel_costattr", "ledger", "compact", "--db", str(old)])
    assert code == 0 and b"compacting" in seen
    for args in (["ledger", "compact", "--db", str(old)], ["ledger", "migrate", str(tmp_path / "none.duckdb")]):
        piped = subprocess.run([sys.executable, "-m", "otel_costattr", *args], capture_output=True, text=True)
        assert "compacting" not in piped.stderr and "migrating" not in piped.stderr  # quiet when piped
    code, out, seen = on_terminal([sys.executable, "-m", "otel_costattr", "ledger", "compact", "--db", str(old),
                                   "--no-progress"])
    assert code == 0 and b"compacting" not in seen


def test_no_duckdb_progress_bar_reaches_stdout(tmp_path: Path) -> None:
    """DuckDB prints its progress bar to stdout (even a pipe) for queries over 2 s: it would corrupt
    `report --format json > r.json` on a large ledger. Every connection the package opens has it off."""
    from otel_costattr._ledger._store import LedgerSet

    seg = tmp_path / "dir"
    Ledger(seg).write_records([_chat(1, 0.001)])
    old = tmp_path / "old.duckdb"
    _legacy_file(old, [_chat(2, 0.002)])
    sql = "SELECT current_setting('enable_progress_bar')"
    assert Ledger(seg, read_only=True).query(sql) == [(False,)]
    assert Ledger(old, read_only=True).query(sql) == [(False,)]
    assert LedgerSet([seg, old]).query(sql) == [(False,)]
    # ... and no module opens DuckDB another way (compaction and migration included)
    pkg = Path(oc.__file__).parent
    direct = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
              if "duckdb.connect(" in p.read_text() and p.name != "_duck.py"]
    assert direct == []


def test_cli_messages_for_ledgers_that_are_not(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    for args in (["report", "--db", str(notes)], ["ingest", str(notes), "--db", str(notes)],
                 ["ledger", "compact", "--db", str(notes)], ["ledger", "migrate", str(notes)]):
        r = subprocess.run([sys.executable, "-m", "otel_costattr", *args], capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert "not" in r.stderr and "ledger" in r.stderr
    assert notes.read_text() == "hello"


def test_signal_flush_chains_to_the_previous_handler(tmp_path: Path) -> None:
    """In a fresh process: the app's own SIGTERM handler still runs after our flush; SIG_IGN stays ignored;
    configure() twice installs one handler; flush_on_signal=False leaves the app's handler in place."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        from opentelemetry.sdk.trace import TracerProvider
        import otel_costattr as oc
        from otel_costattr._ledger._store import Ledger
        calls = []
        def app_handler(signum, frame):
            calls.append(Ledger({str(tmp_path / 'l')!r}, read_only=True).count())
        signal.signal(signal.SIGTERM, app_handler)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        tp = TracerProvider()
        p = oc.configure(ledger={str(tmp_path / 'l')!r}, tracer_provider=tp, set_global=False, env={{}})
        oc.configure(ledger={str(tmp_path / 'l2')!r}, tracer_provider=TracerProvider(), set_global=False, env={{}})
        assert signal.getsignal(signal.SIGTERM).previous is app_handler
        tracer = tp.get_tracer("t")
        for i in range(5):
            with tracer.start_as_current_span("chat"):
                pass
        os.kill(os.getpid(), signal.SIGTERM)  # the flush runs first: the app's handler sees 5 spans stored
        os.kill(os.getpid(), signal.SIGINT)   # ignored before us, still ignored
        signal.signal(signal.SIGTERM, app_handler)
        oc.configure(ledger={str(tmp_path / 'l3')!r}, tracer_provider=TracerProvider(), set_global=False, env={{}},
                     flush_on_signal=False)
        assert signal.getsignal(signal.SIGTERM) is app_handler
        print(calls)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[5]"


def test_closing_a_writer_leaves_one_segment_for_its_stream(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "costs.duckdb")
    for b in range(5):
        led.write_records([_chat(b * 10 + i, 0.001) for i in range(10)])
    assert len(led.segments()) == 5
    led.close()
    reader = Ledger(tmp_path / "costs.duckdb", read_only=True)
    (seg,) = reader.segments()
    assert seg.level == 1 and reader.count() == 50


def test_several_ledgers_read_as_one_live_including_a_single_file(tmp_path: Path) -> None:
    from otel_costattr._analysis._source import open_ledgers

    a, b, old = tmp_path / "a", tmp_path / "b", tmp_path / "old.duckdb"
    Ledger(a).write_records([_chat(i, 0.001) for i in range(10)])
    wb = Ledger(b)
    wb.write_records([_chat(100 + i, 0.002) for i in range(5)])
    _legacy_file(old, [_chat(200 + i, 0.004) for i in range(3)])
    both = open_ledgers([str(a), str(b), str(old)])
    try:
        assert both.query("SELECT count(*), sum(cost_total) FROM calls") == [(18, Decimal("0.032"))]
        wb.write_records([_chat(300, 0.5)])  # written after opening: seen by the next query
        assert both.query("SELECT count(*) FROM calls") == [(19,)]
    finally:
        both.close()


def test_reader_holds_small_segments_in_memory_and_reads_the_same(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader keeps small plain segments (live writers' batches) in memory instead of opening each file in
    every query; what it reads is the same as reading the files, through a writer's own merges, a re-load and
    a full compaction, and with the memory budget exhausted."""
    from otel_costattr._ledger import _store
    from otel_costattr._ledger._maintain import compact

    w = Ledger(tmp_path / "l")
    cached, files = Ledger(tmp_path / "l", read_only=True), Ledger(tmp_path / "l", read_only=True)
    files._small_bytes = 0  # noqa: SLF001 - the reference: every segment read as a file
    monkeypatch.setattr(_store, "SMALL_CACHE_BYTES", 10**9)
    q = "SELECT trace_id, span_id, counted, cost_total FROM {} ORDER BY span_id"
    recs = _recs(400)

    def same() -> None:
        for view in ("spans", "calls"):
            assert cached.query(q.format(view)) == files.query(q.format(view))

    for j in range(0, 200, 20):  # ten batches: the writer merges eight of them into one segment
        w.write_records(recs[j:j + 20])
        same()
    assert len(cached._small) == len(cached.segments()) > 1  # noqa: SLF001
    assert "read_parquet" not in cached.query("SELECT sql FROM duckdb_views() WHERE view_name = 'spans'")[0][0]
    w.write_records(recs[:50], replace=True)  # a re-load (flagged): read from its file, settled by the views
    same()
    monkeypatch.setattr(_store, "SMALL_CACHE_BYTES", 1)  # over budget: the rest are read as files
    w.write_records(recs[200:260])
    cached._seen = None  # noqa: SLF001
    same()
    assert cached.count() == 260
    w.close()
    compact(tmp_path / "l")
    same()
    assert cached.count() == 260 and not cached._small  # noqa: SLF001 - still over budget
