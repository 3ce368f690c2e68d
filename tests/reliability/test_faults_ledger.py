"""The ledger's storage fails under it: read-only, disk full, the process SIGKILLed mid-write.

Contract under test (``_ledger/_store.py``, ``_segments.py``): a write returns only after its segment is
durable (fsynced, renamed into place); a failed batch makes the exporter return FAILURE and count it
(``LedgerExporter.failed_batches``), never raise; nothing that was committed is lost or corrupted by later
failures, and the ledger resumes once the storage is back.

We run as root, so file modes do not stop writes. What really fails for root:

* read-only: a read-only bind mount over the ledger's directory (``mount --bind`` + ``remount,bind,ro``); if
  mounting is not permitted, the ``segments`` directory is replaced by a file (creating a segment then fails
  with ENOTDIR for anyone).
* disk full: a 2 MiB tmpfs (``mount -t tmpfs -o size=2m``); if mounting is not permitted, ``RLIMIT_FSIZE``
  (with SIGXFSZ ignored, writes past the limit fail with EFBIG).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

import otel_costattr as oc
from otel_costattr._ledger._store import Ledger, LedgerSpanProcessor

from _helpers import LogCapture, emit_units, to_pico
import _workload as W

HERE = Path(__file__).resolve().parent


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` at ``path``; yields False (mounting nothing) where that is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield mounted
    finally:
        if mounted:
            _run("umount", "-l", str(path))


class _Pipeline:
    """The application's pipeline with only the ledger downstream (what these tests are about).

    The ledger exporter is wrapped to note which spans each batch carried and whether the export returned
    SUCCESS: those are the spans the ledger acknowledged, and exactly those must be found after reopening."""

    def __init__(self, path: Path, book: oc.PriceBook) -> None:
        self.path = path
        self.proc = LedgerSpanProcessor(path, book=book, schedule_delay_millis=50)
        self.cost = oc.CostSpanProcessor(self.proc, book=book)
        self.tp = TracerProvider()
        self.tp.add_span_processor(oc.baggage_processor())
        self.tp.add_span_processor(self.cost)
        self.tracer = self.tp.get_tracer("app")
        self.app_exceptions = 0
        self.unit = 0
        self.acked: set[str] = set()
        self.failed: set[str] = set()
        export = self.proc.exporter.export

        def noting_export(spans):  # type: ignore[no-untyped-def]
            result = export(spans)
            ids = {format(s.context.span_id, "016x") for s in spans}
            (self.acked if result is SpanExportResult.SUCCESS else self.failed).update(ids)
            return result

        self.proc.exporter.export = noting_export

    def round(self, units: int) -> bool:
        """End ``units`` units of spans and flush; returns whether every batch of the round was stored."""
        before = self.proc.exporter.failed_batches
        rng = range(self.unit, self.unit + units)
        self.unit += units
        try:
            emit_units(self.tracer, rng)
            self.tp.force_flush()
        except Exception:  # noqa: BLE001 - what we measure: the library raising into the application
            self.app_exceptions += 1
        return self.proc.exporter.failed_batches == before

    def check_after_reopen(self) -> dict[str, int]:
        """Open the ledger afresh (after shutdown): exactly the acknowledged spans are there, once, each
        priced call with its exact cost; no span of a failed batch is."""
        led = Ledger(self.path, read_only=True)
        try:
            stored = [sid for (sid,) in led.query("SELECT span_id FROM spans")]
            priced = led.query("SELECT response_id, cost_total FROM spans WHERE cost_status = 'priced'")
        finally:
            led.close()
        assert len(stored) == len(set(stored)), "a span is stored twice"
        assert not self.acked - set(stored), f"{len(self.acked - set(stored))} acknowledged spans are missing"
        assert not set(stored) & self.failed, "spans of a failed batch were stored in part"
        assert set(stored) == self.acked
        wrong = [rid for rid, cost in priced if to_pico(cost) != _expected_pico(rid)]
        assert not wrong, f"costs changed: {wrong[:5]}"
        return {"rows_after_reopen": len(stored), "priced_rows_checked": len(priced)}


def _expected_pico(response_id: str) -> int:
    """The workload call a response id names (``..._WWW-UUUUUUU-I`` / ``...-WWW-UUUUUUU-I``), priced by hand."""
    worker, unit, i = (int(x) for x in response_id.split("_")[-1].split("-")[-3:])
    return W.call(worker, unit, i).pico


@pytest.mark.figure("Faults", "Ledger directory turns read-only mid-run (root: read-only bind mount)")
def test_read_only_ledger_fails_counted_keeps_committed_and_recovers(tmp_path: Path, figure) -> None:
    """Proves: while the ledger's storage is read-only the application sees no exception and every failed
    batch is counted; what was committed before is intact; writing resumes when the storage is writable."""
    book = oc.PriceBook.load(env=False)
    d = tmp_path / "ledger-dir"
    d.mkdir()
    p = _Pipeline(d / "costs.duckdb", book)
    with LogCapture() as logs:
        for _ in range(3):
            assert p.round(20)
        acked_before = len(p.acked)
        method = "read-only bind mount"
        if not (_run("mount", "--bind", str(d), str(d)) and _run("mount", "-o", "remount,bind,ro", str(d))):
            _run("umount", "-l", str(d))
            method = "segments directory replaced by a file"
            _block_segments(d / "costs.duckdb")
        try:
            failed_rounds = sum(not p.round(20) for _ in range(3))
        finally:
            if method.startswith("read-only"):
                _run("umount", "-l", str(d))
            else:
                _unblock_segments(d / "costs.duckdb")
        for _ in range(2):  # writable again: the ledger resumes
            assert p.round(20), "the ledger did not resume after the storage became writable again"
        failed_batches = p.proc.exporter.failed_batches
        p.tp.shutdown()
    check = p.check_after_reopen()
    warnings = [r.getMessage() for r in logs.records if r.name.startswith("otel_costattr")]
    figure.how_much = (f"{len(p.acked) + len(p.failed)} spans: 600 before, 600 while read-only ({method}), 400 "
                       "after")
    figure.lost = (f"{len(p.failed)} spans ended while read-only ({failed_batches} failed batches, counted); "
                   f"acknowledged: 0 of {len(p.acked)} lost, 0 changed")
    figure.set(method=method, failed_batches=failed_batches, app_exceptions=p.app_exceptions,
               acked_before_read_only=acked_before, first_warning=warnings[0] if warnings else None, **check)
    assert p.app_exceptions == 0
    assert failed_rounds == 3 and failed_batches >= 3
    assert len(p.failed) == 3 * 20 * W.SPANS_PER_UNIT


@pytest.mark.figure("Faults", "Disk full under the ledger (2 MiB tmpfs, or RLIMIT_FSIZE)")
def test_disk_full_fails_counted_keeps_committed_and_recovers(tmp_path: Path, figure) -> None:
    """Proves: when the disk fills up the application sees no exception, failed batches are counted, every
    batch acknowledged before is intact and exact after reopening, and writing resumes once space is freed."""
    book = oc.PriceBook.load(env=False)
    mnt = tmp_path / "small-disk"
    with _tmpfs(mnt, "2m") as mounted, LogCapture():
        p = _Pipeline(mnt / "costs.duckdb", book)
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            if not mounted:
                # No mounting here: cap file size instead (this process only; restored below).
                for _ in range(2):
                    assert p.round(20)
                size = max(f.stat().st_size for f in (mnt / "costs.duckdb" / "segments").iterdir())
                resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1_500_000, old_limit[1]))
            rounds = failed_rounds = 0
            while failed_rounds < 3 and rounds < 200:
                rounds += 1
                failed_rounds += not p.round(20)
            assert failed_rounds == 3, "the small disk never filled up"
            acked_when_full = len(p.acked)
            # Free space: grow the tmpfs (or lift the limit); the ledger must resume.
            if mounted:
                assert _run("mount", "-o", "remount,size=256m", str(mnt))
            else:
                resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            for _ in range(2):
                assert p.round(20), "the ledger did not resume after space was freed"
            failed_batches = p.proc.exporter.failed_batches
            p.tp.shutdown()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)
        check = p.check_after_reopen()
    method = "2 MiB tmpfs" if mounted else "RLIMIT_FSIZE"
    figure.how_much = (f"{len(p.acked) + len(p.failed)} spans in rounds of 200 into a {method} until 3 rounds "
                       "failed, then space freed")
    figure.lost = (f"{len(p.failed)} spans ended while full ({failed_batches} failed batches, counted); "
                   f"acknowledged: 0 of {len(p.acked)} lost, 0 changed")
    figure.set(method=method, failed_batches=failed_batches, app_exceptions=p.app_exceptions,
               acked_when_full=acked_when_full, **check)
    assert p.app_exceptions == 0
    assert failed_batches >= 3


def test_failed_ledger_write_names_the_real_cause(tmp_path: Path) -> None:
    """Proves: the warning logged for a failed ledger write names the storage error that caused it and what is
    already safe, so an operator can tell a full disk from a bug."""
    book = oc.PriceBook.load(env=False)
    d = tmp_path / "ledger-dir"
    d.mkdir()
    p = _Pipeline(d / "costs.duckdb", book)
    with LogCapture() as logs:
        assert p.round(2)
        _block_segments(d / "costs.duckdb")  # the next segment cannot be created
        try:
            assert not p.round(2)
        finally:
            _unblock_segments(d / "costs.duckdb")
        p.tp.shutdown()
    (warning,) = [r.getMessage() for r in logs.records if r.name == "otel_costattr._ledger._store"
                  and r.levelname == "WARNING"]
    assert "Not a directory" in warning and "segments" in warning, warning
    assert "stored before are safe" in warning, warning


def _block_segments(ledger: Path) -> None:
    """Make segment writes fail for anyone, root included: the segments directory becomes a file."""
    (ledger / "segments").rename(ledger / "segments.aside")
    (ledger / "segments").write_bytes(b"")


def _unblock_segments(ledger: Path) -> None:
    (ledger / "segments").unlink()
    (ledger / "segments.aside").rename(ledger / "segments")


# ------------------------------------------------------------------------------------------------- SIGKILL

def _read_acks(path: Path) -> tuple[dict[str, list[str]], set[str]]:
    begun: dict[str, list[str]] = {}
    acked: set[str] = set()
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if parts[0] == "begin" and len(parts) == 3:
            begun[parts[1]] = parts[2].split(",")
        elif parts[0] == "ack" and len(parts) == 2:
            acked.add(parts[1])
    return begun, acked


@pytest.mark.figure("Faults", "SIGKILL while the ledger is being written (subprocess, repeated)")
def test_sigkill_mid_write_loses_no_acknowledged_span(tmp_path: Path, figure) -> None:
    """Proves: after a SIGKILL at an arbitrary moment, the ledger opens (not corrupt), every span whose export
    had returned SUCCESS is there with its exact cost, and a batch in flight is stored whole or not at all.
    The same file is reopened by the next child, so recovery is exercised again on every round."""
    ledger = tmp_path / "costs.duckdb"
    acks = tmp_path / "acks.log"
    rounds = 5
    kills_in_flight = 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    for r in range(rounds):
        errlog = tmp_path / f"child-{r}.err"
        with open(errlog, "wb") as err, subprocess.Popen(
                [sys.executable, str(HERE / "_kill_child.py"), str(ledger), str(acks), str(r * 10_000_000)],
                stdout=subprocess.PIPE, stderr=err, env=env) as child:
            try:
                assert child.stdout is not None
                line = child.stdout.readline()
                assert line.strip() == b"ready", (line, errlog.read_text())
                # Let it write a varying number of batches, then kill it without warning.
                target = 2 + 3 * r
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    begun, acked = _read_acks(acks)
                    if sum(1 for b in acked if b.startswith(f"{child.pid}-")) >= target:
                        break
                    time.sleep(0.01 * (r + 1))
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        begun, acked = _read_acks(acks)
        kills_in_flight += sum(1 for b in begun if b.startswith(f"{child.pid}-") and b not in acked)
    elapsed = time.perf_counter() - t0

    begun, acked = _read_acks(acks)
    led = Ledger(ledger, read_only=True)  # raises if the ledger were corrupt
    try:
        stored = {sid for (sid,) in led.query("SELECT span_id FROM spans")}
        (rows,), = led.query("SELECT count(*) FROM spans")
        priced = led.query("SELECT response_id, cost_total FROM spans WHERE cost_status = 'priced'")
    finally:
        led.close()
    acked_ids = {sid for b in acked for sid in begun[b]}
    in_flight = {b: ids for b, ids in begun.items() if b not in acked}
    partial = [b for b, ids in in_flight.items() if 0 < len(set(ids) & stored) < len(ids)]
    # Exact costs for what is stored: the response id names the workload call it came from.
    wrong_cost = sum(1 for rid, cost in priced if to_pico(cost) != _expected_pico(rid))
    figure.how_much = (f"{rounds} SIGKILLs; {len(acked)} acknowledged batches ({len(acked_ids)} spans); "
                       f"{kills_in_flight} kill(s) landed with a batch in flight")
    figure.lost = f"acknowledged: {len(acked_ids - stored)}; partial batches: {len(partial)}; wrong costs: {wrong_cost}"
    figure.set(rows=rows, stored_unacknowledged=len(stored - acked_ids), seconds_all_rounds=round(elapsed, 1))
    assert rows == len(stored), "a span is stored twice"
    assert not acked_ids - stored, f"{len(acked_ids - stored)} acknowledged spans are missing"
    assert not partial, f"batches stored in part: {partial}"
    assert wrong_cost == 0
    # Anything stored but not acknowledged must be a whole batch that was in flight at the kill.
    assert stored - acked_ids <= {sid for ids in in_flight.values() for sid in ids}


@pytest.mark.figure("Faults", "`ingest` into a full disk (1.2 MiB tmpfs): one message, committed batches kept")
def test_ingest_into_a_full_disk_says_what_is_safe(tmp_path: Path, figure) -> None:
    """Proves: `ingest` on a disk that fills up exits 2 with one message (what happened, what is already safe,
    what to do), no traceback, and the batches it reported as safe are in the ledger and readable."""
    sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
    import bench_ledger as B

    src = tmp_path / "in.pb"
    B._otlp_proto_file(src, B._records(200_000, priced=False))
    mnt = tmp_path / "small-disk"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    with _tmpfs(mnt, "1200k") as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs is not permitted here")
        r = subprocess.run([sys.executable, "-m", "otel_costattr", "ingest", str(src), "--db", str(mnt / "l")],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert "the disk is full" in r.stderr and "To continue: free space" in r.stderr
        safe = int(r.stderr.split("The ")[1].split(" span(s)")[0])
        led = Ledger(mnt / "l", read_only=True)
        try:
            stored = led.count()
        finally:
            led.close()
        assert safe > 0 and stored == safe
        assert not any(p.name.endswith(".tmp") for p in (mnt / "l" / "segments").iterdir())
    figure.how_much = "200,000 spans into a 1.2 MiB tmpfs"
    figure.lost = f"acknowledged: 0 of {safe} lost; exit 2 with one message"


@pytest.mark.figure("Faults", "Commands on a read-only ledger (read-only bind mount)")
def test_commands_on_a_read_only_ledger(tmp_path: Path, figure) -> None:
    """Proves: on a read-only ledger `report` still works (readers write nothing), and `ingest` and `ledger
    compact` exit 2 with one message saying nothing was lost, no traceback."""
    sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
    import bench_ledger as B

    src = tmp_path / "in.pb"
    B._otlp_proto_file(src, B._records(2_000, priced=False))
    d = tmp_path / "ro"
    d.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "otel_costattr", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    assert cli("ingest", str(src), "--db", str(d / "l")).returncode == 0
    assert cli("ingest", str(src), "--db", str(d / "l")).returncode == 0  # two segments: something to compact
    if not (_run("mount", "--bind", str(d), str(d)) and _run("mount", "-o", "remount,bind,ro", str(d))):
        _run("umount", "-l", str(d))
        pytest.skip("a read-only bind mount is not permitted here")
    try:
        rep = cli("report", "--db", str(d / "l"), "--format", "json")
        ing = cli("ingest", str(src), "--db", str(d / "l"))
        cmp = cli("ledger", "compact", "--db", str(d / "l"))
    finally:
        _run("umount", "-l", str(d))
    assert rep.returncode == 0 and json.loads(rep.stdout)["calls"] == 1_000, rep.stderr
    for r in (ing, cmp):
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert "read-only" in r.stderr and ("safe" in r.stderr or "Nothing was changed" in r.stderr), r.stderr
    figure.how_much = "report, ingest, ledger compact on a read-only ledger"
    figure.lost = "0; report exit 0, ingest and compact exit 2 with one message"
