"""``otel-costattr ledger compact | migrate | info``: keep a segment ledger small and fast, convert an old one.

* :func:`compact` folds every live segment into one, sorted by start time: re-loaded copies of a span collapse
  to the newest, the span that counts for each billed call is decided again over all copies (as ``ingest``
  did in the single-file ledger), shadowed duplicates are settled, and the segment flags readers pay for
  (``r``, ``s``) are gone. Safe while applications write: it takes the segments present when it starts, writers
  keep adding new ones, and readers see the old set or the new one, never both (see ``_segments``).
* :func:`migrate` converts a single-file DuckDB ledger (otel-costattr before the segment format) into a ledger
  directory at the same path, checks that every span and the exact total arrived, and keeps the old file
  beside it as ``<path>.v1`` (its WAL as ``<path>.v1.wal``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from . import _duck
from ._segments import FULL_LEVEL, LedgerStorageError, SegmentDir, ledger_kind, storage_message
from ._store import COLUMNS, SCHEMA_VERSION, Ledger, _parquet_list, _spans_sql

__all__ = ["CompactResult", "MigrateResult", "compact", "ledger_info", "migrate"]

_NAMES = [n for n, _ in COLUMNS]
_PARQUET_OPTS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 131072"


@dataclass
class CompactResult:
    segments_before: int
    segments_after: int
    rows_before: int
    rows_after: int
    seconds: float

    def __str__(self) -> str:
        if self.segments_before == self.segments_after and self.rows_before == self.rows_after:
            return f"nothing to compact ({self.segments_before} segment(s), {self.rows_after} span(s))"
        return (f"compacted {self.segments_before} segment(s) into 1: {self.rows_after} span(s)"
                + (f" ({self.rows_before - self.rows_after} repeated copies folded)"
                   if self.rows_before != self.rows_after else "") + f" in {self.seconds:.1f} s")


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Which span of each billed call counts, over every copy in the ledger: a span with a cost beats one without,
# then the most detailed usage, then the earliest to end (the writer's rule for a pair, applied to all copies).
_COMPACT_SQL = """
WITH _pairs AS (
    SELECT response_id, coalesce(lower(provider), '') AS p FROM spans
    WHERE is_llm AND response_id IS NOT NULL GROUP BY ALL HAVING count(*) > 1),
  _rank AS (
    SELECT s.trace_id, s.span_id, row_number() OVER (
        PARTITION BY s.response_id, coalesce(lower(s.provider), '')
        ORDER BY (s.cost_total IS NOT NULL) DESC, coalesce(s.usage_detail, 0) DESC, s.end_ns, s.span_id) AS _rn
    FROM spans s JOIN _pairs k ON s.response_id = k.response_id AND coalesce(lower(s.provider), '') = k.p
    WHERE s.is_llm),
  _shadow AS (
    SELECT DISTINCT duplicate_of AS span_id FROM spans
    WHERE counted AND duplicate_of IS NOT NULL)
SELECT {select} FROM spans s LEFT JOIN _rank r ON s.trace_id = r.trace_id AND s.span_id = r.span_id
ORDER BY s.start_ns, s.trace_id, s.span_id
"""
_COUNTED = ("CASE WHEN r._rn IS NOT NULL THEN s.is_llm AND r._rn = 1 "
            "WHEN s.is_llm AND s.span_id IN (SELECT span_id FROM _shadow) THEN false ELSE s.counted END")


def compact(path: str | os.PathLike[str], *, wait: bool = True) -> CompactResult:
    """Fold every live segment of the ledger at ``path`` into one (see the module docstring).

    Raises ConfigurationError for a path that is not a ledger directory, LedgerStorageError when the storage
    refuses the new segment (then nothing changed: the old segments are all still there).
    """
    import duckdb

    t0 = time.perf_counter()
    root = Path(path)
    if ledger_kind(root) == "duckdb":
        raise ConfigurationError(f"{root} is a single-file ledger; convert it first: otel-costattr ledger migrate "
                                 f"{root}")
    seg_dir = SegmentDir(root, create=False)
    fd = seg_dir.compact_lock(blocking=wait)
    if fd is None:
        raise ConfigurationError(f"another compaction of {root} is running; try again when it is done")
    try:
        segs = seg_dir.live()
        con = _duck.connect()
        try:
            cols = ", ".join(f"{n} {t.replace(' NOT NULL', '').replace('JSON', 'VARCHAR')}" for n, t in COLUMNS)
            con.execute(f"CREATE TABLE _empty ({cols})")
            con.execute(f"CREATE VIEW spans AS {_spans_sql(segs)}")
            rows_before = con.execute(f"SELECT count(*) FROM {_parquet_list(segs)}").fetchone()[0] if segs else 0
            if len(segs) <= 1 and not any(s.flags for s in segs):
                return CompactResult(len(segs), len(segs), rows_before, rows_before, time.perf_counter() - t0)
            select = ", ".join(f"{_COUNTED} AS counted" if n == "counted" else f"s.{n}" for n in _NAMES)
            tmp, final = seg_dir.reserve(level=FULL_LEVEL, schema=SCHEMA_VERSION)
            replaces = json.dumps([s.name for s in segs])
            try:
                con.execute(f"COPY ({_COMPACT_SQL.format(select=select)}) TO {_q(str(tmp))} "
                            f"({_PARQUET_OPTS}, KV_METADATA {{'otel_costattr.replaces': {_q(replaces)}}})")
                seg_dir.commit(tmp, final)
            except (duckdb.IOException, OSError) as exc:
                tmp.unlink(missing_ok=True)
                err = exc if isinstance(exc, OSError) else OSError(28 if "space" in str(exc).lower() else 5, str(exc))
                raise LedgerStorageError(storage_message(
                    err, f"could not write the compacted segment of {root}",
                    "Nothing changed: every segment is still there and still read.")) from None
            rows_after = con.execute(f"SELECT count(*) FROM read_parquet({_q(str(final))})").fetchone()[0]
        finally:
            con.close()
        seg_dir.delete(segs)
        seg_dir.clean_orphans()
    finally:
        seg_dir.unlock(fd)
    return CompactResult(len(segs), 1, rows_before, rows_after, time.perf_counter() - t0)


@dataclass
class MigrateResult:
    spans: int
    calls: int
    total: Decimal | None
    backup: Path
    seconds: float

    def __str__(self) -> str:
        return (f"migrated {self.spans} span(s) ({self.calls} billed call(s), total {self.total or 0} USD, checked "
                f"equal) into the ledger directory; the old file is kept as {self.backup}")


def _legacy_select(have: set[str]) -> str:
    out = []
    for n, t in COLUMNS:
        kind = t.replace(" NOT NULL", "").replace("JSON", "VARCHAR")
        if n in have:
            out.append(f"CAST({n} AS {kind}) AS {n}")
        elif n == "counted":  # files older than the column: what the old writer's migration computed
            out.append("is_llm AND coalesce(cost_status, '') <> 'duplicate' AS counted")
        elif n == "pricing_provider":
            out.append("json_extract_string(attributes, '$.\"gen_ai.cost.provider\"') AS pricing_provider")
        else:
            out.append(f"CAST(NULL AS {kind}) AS {n}")
    return ", ".join(out)


def migrate(path: str | os.PathLike[str]) -> MigrateResult:
    """Convert the single-file ledger at ``path`` into a ledger directory at the same path, without loss.

    Steps: read the file (read-only), write all its spans as one segment into ``<path>.migrating/``, compare
    span count, billed calls and the exact total, then rename the file to ``<path>.v1`` and the directory to
    ``<path>``. Any failure before the renames leaves the file untouched and removes the half-made directory.
    """
    import duckdb

    t0 = time.perf_counter()
    src = Path(path)
    kind = ledger_kind(src)
    if kind == "dir":
        raise ConfigurationError(f"{src} is already a ledger directory; nothing to migrate")
    if kind != "duckdb":
        raise ConfigurationError(f"{src} is not a single-file otel-costattr ledger; nothing was changed")
    backup = src.with_name(src.name + ".v1")
    wal = src.with_name(src.name + ".wal")
    if backup.exists():
        raise ConfigurationError(f"{backup} already exists (an earlier migration?); move it away, then run again")
    try:
        old = _duck.connect(str(src), read_only=True)
    except duckdb.Error as exc:
        raise ConfigurationError(f"cannot open {src}: {exc}. If an application is still writing it with an earlier "
                                 "otel-costattr, stop it first, then run again") from None
    work = src.with_name(src.name + ".migrating")
    try:
        have = {r[1] for r in old.execute("PRAGMA table_info('spans')").fetchall()}
        if not {"trace_id", "span_id", "is_llm"} <= have:
            raise ConfigurationError(f"{src} is a DuckDB file without an otel-costattr spans table; nothing was "
                                     "changed")
        (want_spans,) = old.execute("SELECT count(*) FROM spans").fetchone()
        want_calls, want_total = old.execute("SELECT count(*), sum(cost_total) FROM calls").fetchone() \
            if "counted" in have else old.execute(
                "SELECT count(*), sum(cost_total) FROM spans WHERE is_llm AND coalesce(cost_status, '') <> "
                "'duplicate'").fetchone()
        if work.exists():
            shutil.rmtree(work)
        seg_dir = SegmentDir(work, create=True)
        tmp, final = seg_dir.reserve(level=FULL_LEVEL, schema=SCHEMA_VERSION)
        try:
            old.execute(f"COPY (SELECT {_legacy_select(have)} FROM spans ORDER BY start_ns) TO {_q(str(tmp))} "
                        f"({_PARQUET_OPTS})")
            seg_dir.commit(tmp, final)
        except (duckdb.IOException, OSError) as exc:
            err = exc if isinstance(exc, OSError) else OSError(28 if "space" in str(exc).lower() else 5, str(exc))
            raise LedgerStorageError(storage_message(err, f"could not write the migrated ledger next to {src}",
                                                     f"Nothing changed: {src} is untouched.")) from None
    except BaseException:
        old.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    old.close()
    check = Ledger(work, read_only=True)
    try:
        (spans,), = check.query("SELECT count(*) FROM spans")
        (calls, total), = check.query("SELECT count(*), sum(cost_total) FROM calls")
    finally:
        check.close()
    if (spans, calls, total) != (want_spans, want_calls, want_total):
        shutil.rmtree(work, ignore_errors=True)
        raise ConfigurationError(f"migration check failed ({spans}/{want_spans} spans, {calls}/{want_calls} calls, "
                                 f"total {total}/{want_total}); {src} is untouched. Please report this")
    os.replace(src, backup)
    if wal.exists():
        os.replace(wal, backup.with_name(backup.name + ".wal"))
    os.replace(work, src)
    return MigrateResult(spans, calls, total, backup, time.perf_counter() - t0)


def ledger_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Format, segment counts (by level and flag) and span count of the ledger at ``path``."""
    root = Path(path)
    kind = ledger_kind(root)
    if kind == "duckdb":
        led = Ledger(root, read_only=True)
        try:
            return {"path": str(root), "format": "single-file (v1): run `otel-costattr ledger migrate`",
                    "spans": led.count()}
        finally:
            led.close()
    led = Ledger(root, read_only=True)
    try:
        segs = led.segments()
        return {"path": str(root), "format": "segments (v2)", "segments": len(segs),
                "by_level": {str(lv): sum(1 for s in segs if s.level == lv) for lv in sorted({s.level for s in segs})},
                "reload_segments": sum(1 for s in segs if "r" in s.flags),
                "shadow_segments": sum(1 for s in segs if "s" in s.flags),
                "streams": len({s.stream for s in segs}), "spans": led.count(),
                "bytes": sum(s.path.stat().st_size for s in segs if s.path.exists())}
    finally:
        led.close()
