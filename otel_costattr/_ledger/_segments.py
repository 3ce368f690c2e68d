"""The ledger on disk: a directory of immutable Parquet segments (DESIGN D11).

Layout::

    costs.duckdb/                        the ledger directory (the name is the user's; ".duckdb" is kept as-is)
      otel-costattr-ledger.json          marker: {"format": "otel-costattr-ledger", "version": 2}
      segments/
        <utc>_<pid>-<rand>_<seq>_v<schema>[<flags>].parquet     one committed batch of one writer stream
        c<level>_<utc>_<pid>-<rand>_<seq>_v<schema>[<flags>].parquet   a compaction of earlier segments
        .<name>.tmp                      a segment being written (never read)

Contract:

* **Writers never lock.** Each process writes its own stream (``<pid>-<random>``, a new one after ``fork``).
  A segment is written under a temporary name, fsynced, then renamed into place (and the directory fsynced):
  a reader sees a whole segment or none, and a crash leaves at most a ``.tmp`` file that nothing reads.
  :meth:`SegmentDir.write` returns only after the rename is durable: that is the acknowledgement.
* **Compaction is atomic for readers.** A compacted segment names, in its Parquet key-value metadata
  (``otel_costattr.replaces``), the segments it replaces. It is renamed into place *before* its inputs are
  deleted, and readers drop every segment that a present segment replaces, so a reader counts each row once
  whether it lists the directory before, during or after a compaction. A reader that lists a segment which is
  deleted before it reads it gets an I/O error and lists again (:class:`~otel_costattr._ledger.Ledger` retries).
  Compactions of one ledger exclude each other with ``flock`` on ``segments/.compact.lock`` (writers skip their
  own compaction while ``otel-costattr ledger compact`` runs, and the reverse).
* **Flags** in a segment's name tell readers what it needs: ``r`` = written by a re-load (``ingest``), whose rows
  replace earlier rows with the same ``(trace_id, span_id)``; ``s`` = holds a counted row whose ``duplicate_of``
  span is in another segment (a more detailed duplicate, or a span with usage that supersedes a twin without
  usage, D16: it un-counts that span). Readers pay for those only while such segments
  exist; ``otel-costattr ledger compact`` folds them away.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError

__all__ = ["LedgerStorageError", "MARKER", "SegmentDir", "ledger_kind"]

logger = logging.getLogger(__name__)

MARKER = "otel-costattr-ledger.json"
FORMAT = "otel-costattr-ledger"
FORMAT_VERSION = 2
SEGMENTS = "segments"
REPLACES_KEY = b"otel_costattr.replaces"
_DUCKDB_MAGIC = b"DUCK"  # bytes 8..11 of every DuckDB database file
#: A stream merges its own segments of one level once it has this many (level 0 = one per batch). Fewer files
#: keep live reads fast (a report over 30 small segments cost 2.4x the CPU of one), more rewrites cost writers.
MERGE_FANOUT = 8
#: A stream does not merge a level whose merge would hold more rows than this: those segments stay as they are.
MERGE_MAX_ROWS = 1_000_000
#: ``otel-costattr ledger compact`` writes level 9.
FULL_LEVEL = 9


class LedgerStorageError(ConfigurationError):
    """The ledger's storage refused a write (disk full, read-only directory, ...): the message says what happened,
    what is already safe and what to do."""


def ledger_kind(path: Path) -> str:
    """``"dir"`` (a segment ledger), ``"duckdb"`` (a single-file ledger of otel-costattr <= 0.x), ``"missing"``,
    ``"empty_dir"`` or ``"other"`` (a file or directory that is not a ledger)."""
    try:
        if path.is_dir():
            if (path / MARKER).is_file():
                return "dir"
            return "empty_dir" if not any(path.iterdir()) else "other"
        if not path.exists():
            return "missing"
        with path.open("rb") as f:
            head = f.read(16)
        return "duckdb" if head[8:12] == _DUCKDB_MAGIC else "other"
    except OSError:
        return "other"


def storage_message(exc: OSError, what: str, safe: str) -> str:
    """One message for a refused write: what happened, what is already safe, what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free space on that disk (or move the ledger with --db / configure(ledger=...)), then run it again"
        why = "the disk is full"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "make the directory writable for this user, or point --db / configure(ledger=...) elsewhere"
        why = "the directory is read-only" if exc.errno == errno.EROFS else "permission was denied"
    else:
        fix = "check the storage, then run it again"
        why = os.strerror(exc.errno) if exc.errno else str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{what}: {why}{where}. {safe} To continue: {fix}."


@dataclass(frozen=True)
class Segment:
    name: str
    path: Path
    level: int  # 0 = one batch; >= 1 = a compaction
    stream: str
    flags: str
    schema: int = 1

    @classmethod
    def parse(cls, path: Path) -> "Segment | None":
        name = path.name
        if not name.endswith(".parquet") or name.startswith("."):
            return None
        parts = name[:-8].split("_")
        level = 0
        if parts and parts[0].startswith("c") and parts[0][1:].isdigit():
            level = int(parts[0][1:])
            parts = parts[1:]
        if len(parts) != 4 or not parts[3].startswith("v"):
            return None
        tail = parts[3][1:]
        digits = len(tail) - len(tail.lstrip("0123456789"))
        if not digits:
            return None
        return cls(name, path, level, parts[1], tail[digits:], int(tail[:digits]))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class SegmentDir:
    """One ledger directory: creation, listing for readers, durable segment writes, compaction.

    Thread-safe within a process (writes of one stream are serialised); many processes may write at once.
    After ``os.fork`` the child writes a new stream of its own (:meth:`after_fork`).
    """

    def __init__(self, root: Path, *, create: bool) -> None:
        self.root = root
        self.seg_dir = root / SEGMENTS
        kind = ledger_kind(root)
        if kind == "missing" or kind == "empty_dir":
            if not create:
                raise ConfigurationError(f"ledger {root} does not exist; run `otel-costattr demo` or pass the path "
                                         "your application writes (configure(ledger=...))")
            self._create()
        elif kind != "dir":
            raise ConfigurationError(_not_a_ledger(root, kind))
        else:
            self._check_marker()
        self._lock = threading.Lock()
        self._new_stream()
        self._replaces_cache: dict[str, tuple[str, ...]] = {}

    # ------------------------------------------------------------------------------------------ set-up

    def _create(self) -> None:
        if not self.root.parent.exists():
            raise ConfigurationError(f"ledger folder {self.root.parent} does not exist; create it or choose another "
                                     "path")
        try:
            self.root.mkdir(exist_ok=True)
            self.seg_dir.mkdir(exist_ok=True)
            marker = self.root / MARKER
            if not marker.exists():
                # Several processes may create the ledger at once: each writes its own temporary marker and
                # renames it; the content is the same, so whichever rename lands last is fine.
                tmp = self.root / f".{MARKER}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
                tmp.write_text(json.dumps({"format": FORMAT, "version": FORMAT_VERSION,
                                           "created_ns": time.time_ns()}) + "\n")
                os.replace(tmp, marker)
                _fsync_dir(self.root)
        except OSError as exc:
            raise LedgerStorageError(storage_message(exc, f"cannot create the ledger {self.root}",
                                                     "Nothing was written.")) from None

    def _check_marker(self) -> None:
        try:
            meta = json.loads((self.root / MARKER).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{self.root}/{MARKER} is unreadable ({exc}); is {self.root} an otel-costattr "
                                     "ledger?") from None
        if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
            raise ConfigurationError(_not_a_ledger(self.root, "other"))
        if meta["version"] > FORMAT_VERSION:
            raise ConfigurationError(f"ledger {self.root} was written by a newer otel-costattr (format version "
                                     f"{meta['version']}, this one reads {FORMAT_VERSION}); upgrade otel-costattr")
        if not self.seg_dir.is_dir():
            try:
                self.seg_dir.mkdir(exist_ok=True)
            except OSError as exc:
                raise LedgerStorageError(storage_message(exc, f"cannot prepare the ledger {self.root}",
                                                         "Nothing was changed.")) from None

    def _new_stream(self) -> None:
        self.pid = os.getpid()
        self.stream = f"{self.pid}-{secrets.token_hex(4)}"
        self._seq = 0
        # This stream's live segments by level, with their row counts, for its own merges.
        self._mine: dict[int, list[tuple[Segment, int]]] = {}

    def after_fork(self) -> None:
        """In a forked child: a stream of its own (the parent's names and merges are the parent's)."""
        self._lock = threading.Lock()
        self._new_stream()

    # ------------------------------------------------------------------------------------------ writing

    def _name(self, level: int, flags: str, schema: int) -> str:
        self._seq += 1
        ts = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        prefix = f"c{level}_" if level else ""
        return f"{prefix}{ts}_{self.stream}_{self._seq:06d}_v{schema}{''.join(sorted(set(flags)))}.parquet"

    def write(self, table: Any, *, flags: str = "", schema: int = 1, level: int = 0) -> Segment:
        """Write ``table`` as one durable segment; returns it once it is renamed into place and fsynced.

        Raises OSError (disk full, read-only directory); a failed write leaves no segment and no temporary file.
        """
        import pyarrow.parquet as pq

        with self._lock:
            if os.getpid() != self.pid:  # forked without after_fork (a writer made outside the processor)
                self._new_stream()
            name = self._name(level, flags, schema)
            final = self.seg_dir / name
            tmp = self.seg_dir / f".{name}.tmp"
            try:
                with open(tmp, "wb") as f:
                    pq.write_table(table, f, compression="zstd", row_group_size=1 << 17)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
                _fsync_dir(self.seg_dir)
            except BaseException:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:  # pragma: no cover - the original error matters more
                    pass
                raise
            seg = Segment(name, final, level, self.stream, "".join(sorted(set(flags))), schema)
            self._mine.setdefault(level, []).append((seg, table.num_rows))
            return seg

    def reserve(self, *, level: int, flags: str = "", schema: int = 1) -> tuple[Path, Path]:
        """(temporary path, final path) for a segment written by someone else (DuckDB's COPY): write the
        temporary file, then :meth:`commit` it."""
        with self._lock:
            name = self._name(level, flags, schema)
        return self.seg_dir / f".{name}.tmp", self.seg_dir / name

    def commit(self, tmp: Path, final: Path) -> Segment:
        """fsync ``tmp``, rename it to ``final``, fsync the directory: the segment is then durable and visible."""
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.seg_dir)
        seg = Segment.parse(final)
        assert seg is not None
        return seg

    # ------------------------------------------------------------------------------------------ reading

    def replaced_by(self, seg: Segment) -> tuple[str, ...]:
        """The segment names a compacted segment replaces (cached: segments are immutable)."""
        if seg.level == 0:
            return ()
        got = self._replaces_cache.get(seg.name)
        if got is None:
            import pyarrow.parquet as pq
            meta = pq.read_schema(seg.path).metadata or {}
            raw = meta.get(REPLACES_KEY)
            got = tuple(json.loads(raw)) if raw else ()
            if len(self._replaces_cache) > 4096:  # bounded: compacted segments are few, but a cap costs nothing
                self._replaces_cache.clear()
            self._replaces_cache[seg.name] = got
        return got

    def live(self) -> list[Segment]:
        """The segments a reader should read now: every committed segment not replaced by another present one.

        Raises FileNotFoundError when a compacted segment vanished while being listed (the caller lists again).
        """
        found, gone = self._listing()
        return sorted((s for s in found if s.name not in gone), key=lambda s: s.name)

    def _listing(self) -> tuple[list[Segment], set[str]]:
        """(every committed segment present, the names of those a present compacted segment replaces)."""
        found = []
        with os.scandir(self.seg_dir) as it:
            for entry in it:
                seg = Segment.parse(Path(entry.path))
                if seg is not None:
                    found.append(seg)
        gone: set[str] = set()
        for seg in found:
            if seg.level:
                gone.update(self.replaced_by(seg))
        return found, gone

    # ------------------------------------------------------------------------------------------ merging

    def compact_lock(self, blocking: bool) -> Any:
        import fcntl
        try:
            fd = os.open(self.seg_dir / ".compact.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if not blocking:
                return None  # a writer's own merge: skipped (the write itself will say what is wrong)
            raise LedgerStorageError(storage_message(exc, f"cannot lock {self.seg_dir} for compaction",
                                                     "Nothing was changed.")) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError:
            os.close(fd)
            if blocking:
                raise
            return None
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        import fcntl
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def merge_own(self) -> int:
        """Merge this stream's segments of a level that has :data:`MERGE_FANOUT` of them; returns merges done.

        Bounded: a merge streams its inputs one at a time into the new segment (memory: the largest input), and
        levels whose merge would exceed :data:`MERGE_MAX_ROWS` rows are left as they are (``otel-costattr ledger
        compact`` folds them). A more detailed duplicate whose shadowed span is among the merged rows is settled
        here (that span's ``counted`` becomes false); the ``s`` flag stays only for the rest. Skipped, not waited
        for, while a full compaction runs. Failures are left to the caller (the inputs then stay as they are).
        """
        done = 0
        for level in sorted(self._mine):
            entries = self._mine[level]
            if len(entries) < MERGE_FANOUT:
                continue
            if sum(rows for _, rows in entries) > MERGE_MAX_ROWS:
                self._mine[level] = []  # large enough to stay: no longer this stream's to merge
                continue
            fd = self.compact_lock(blocking=False)
            if fd is None:
                return done
            try:
                present = [(s, r) for s, r in entries if s.path.exists()]  # a full compaction may have taken some
                if len(present) < 2:
                    # Nothing to merge (a compaction took the others): the one left stays as it is, and stays
                    # this stream's. (Deleting it here, unmerged, lost a committed batch, issue 17.)
                    self._mine[level] = present
                    continue
                self._merge(present, level + 1 if level + 1 < FULL_LEVEL else level)
                done += 1
                self._mine[level] = [e for e in self._mine[level] if e not in entries]  # kept if the merge failed
                self.delete(s for s, _ in present)
            finally:
                self.unlock(fd)
        return done

    def seal(self) -> bool:
        """When this stream ends (its ledger is closed): merge all its own segments that are still small into one,
        so a stream that is gone leaves one file, not a few per level. Skipped while a compaction runs."""
        entries = [e for level in sorted(self._mine) for e in self._mine[level]]
        if len(entries) < 2 or sum(r for _, r in entries) > MERGE_MAX_ROWS:
            return False
        fd = self.compact_lock(blocking=False)
        if fd is None:
            return False
        try:
            present = [(s, r) for s, r in entries if s.path.exists()]
            if len(present) < 2:
                return False
            self._merge(present, min(max(s.level for s, _ in present) + 1, FULL_LEVEL - 1))
            self._mine = {}
            self.delete(s for s, _ in present)
            return True
        finally:
            self.unlock(fd)

    def _merge(self, inputs: list[tuple[Segment, int]], level: int) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        flags = "".join(s.flags for s, _ in inputs)
        shadowed: set[str] = set()
        for seg, _ in inputs:
            if "s" in seg.flags:
                t = pq.read_table(seg.path, columns=["counted", "duplicate_of"])
                mask = pc.fill_null(t["counted"], False)
                shadowed.update(x for x in pc.filter(t["duplicate_of"], mask).to_pylist() if x)
        unresolved = False
        if shadowed:
            here: set[str] = set()
            for seg, _ in inputs:
                here.update(pq.read_table(seg.path, columns=["span_id"])["span_id"].to_pylist())
            unresolved = not shadowed <= here
        out_flags = ("r" if "r" in flags else "") + ("s" if unresolved else "")
        schema = pq.read_schema(inputs[0][0].path)
        schema = schema.with_metadata({**(schema.metadata or {}),
                                       REPLACES_KEY: json.dumps([s.name for s, _ in inputs]).encode()})
        tmp, final = self.reserve(level=level, flags=out_flags, schema=inputs[0][0].schema)
        value_set = pa.array(sorted(shadowed), pa.string()) if shadowed else None
        try:
            with open(tmp, "wb") as f, pq.ParquetWriter(f, schema, compression="zstd") as out:
                for seg, _ in inputs:
                    table = pq.read_table(seg.path).replace_schema_metadata(schema.metadata)
                    if value_set is not None:
                        hit = pc.fill_null(pc.and_kleene(pc.is_in(table["span_id"], value_set=value_set),
                                                         table["is_llm"]), False)
                        i = table.schema.get_field_index("counted")
                        table = table.set_column(i, table.schema.field(i), pc.if_else(hit, False, table["counted"]))
                    out.write_table(table, row_group_size=1 << 17)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        seg = self.commit(tmp, final)
        self._mine.setdefault(level, []).append((seg, sum(r for _, r in inputs)))

    def drop_flag(self, flag: str, which: Any) -> int:
        """Rename the live segments ``which(seg)`` selects to the same name without ``flag``; returns how many.

        Under the compaction lock, so no compaction names the old names meanwhile; a reader that listed an old
        name fails to open it and lists again."""
        fd = self.compact_lock(blocking=True)
        n = 0
        renamed: dict[str, str] = {}
        try:
            for seg in self.live():
                if flag not in seg.flags or not which(seg):
                    continue
                stem = seg.name[:-len(".parquet")]
                head, _, tail = stem.rpartition("_v")
                digits = tail.rstrip("abcdefghijklmnopqrstuvwxyz")
                flags = "".join(f for f in seg.flags if f != flag)
                renamed[seg.name] = f"{head}_v{digits}{flags}.parquet"
                os.replace(seg.path, self.seg_dir / renamed[seg.name])
                n += 1
            if n:
                _fsync_dir(self.seg_dir)
                for level, entries in self._mine.items():  # this stream's own list follows the new names
                    self._mine[level] = [(Segment.parse(self.seg_dir / renamed[s.name]) or s, r)
                                         if s.name in renamed else (s, r) for s, r in entries]
        finally:
            self.unlock(fd)
        return n

    def delete(self, segs: Iterable[Segment]) -> None:
        for s in segs:
            try:
                s.path.unlink(missing_ok=True)
            except OSError:  # the compacted segment replaces it anyway; the next compaction retries
                logger.debug("could not delete replaced segment %s", s.path, exc_info=True)
        _fsync_dir(self.seg_dir)

    def clean_orphans(self, max_age_s: float = 3600) -> int:
        """Delete temporary files older than ``max_age_s`` (left by a crash mid-write) and segments that a present
        compacted segment replaces (left by a crash between rename and delete). Returns files removed."""
        removed = 0
        now = time.time()
        # Only names a compacted segment replaces: a segment a writer commits while this runs is in neither set
        # of the listing (deleting "whatever was not live when listed" lost such segments, issue 17).
        _, replaced = self._listing()
        for entry in os.scandir(self.seg_dir):
            name = entry.name
            try:
                if name.endswith(".tmp") and now - entry.stat().st_mtime > max_age_s:
                    os.unlink(entry.path)
                    removed += 1
                elif name in replaced:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _not_a_ledger(path: Path, kind: str) -> str:
    what = "a directory" if path.is_dir() else "a file"
    return (f"{path} is {what} that is not an otel-costattr ledger; nothing was read or written. Pass the ledger "
            "your application writes (configure(ledger=...), --db), or a new path to create one")
