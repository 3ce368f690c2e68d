"""Tiny interleaved benchmark harness: every case of a comparison runs in the same process, in shuffled order
each round, and ratios are taken per round before the median (this machine is shared and noisy)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    """CPU µs per call of this thread: wall time on this shared VM also counts other tenants' work."""
    t = time.thread_time_ns()
    for _ in range(n):
        fn()
    return (time.thread_time_ns() - t) / n / 1000


def interleaved(cases: dict[str, Callable[[int], float]], rounds: int = 15, warmup: int = 2,
                seed: int = 1) -> dict[str, list[float]]:
    """Run ``cases`` (name -> fn(round) returning a per-op time) interleaved; returns the per-round samples."""
    rng = random.Random(seed)
    names = list(cases)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds + warmup):
        rng.shuffle(names)
        for name in names:
            value = cases[name](r)
            if r >= warmup:
                samples[name].append(value)
    return samples


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def ratio(samples: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of a/b, both measured in the same round."""
    return statistics.median(x / y for x, y in zip(samples[a], samples[b]))


def delta(samples: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x - y for x, y in zip(samples[a], samples[b]))


def line(label: str, value: str, target: str = "", ok: bool | None = None) -> str:
    verdict = "" if ok is None else ("  ok" if ok else "  MISSED")
    return f"  {label:<58}{value:>16}   {target}{verdict}"


def synthetic_ledger(path: Any, n: int, gen: dict[str, str]) -> None:
    """Make ``path`` a ledger directory holding ``n`` calls as one compacted segment, generated inside DuckDB.

    ``gen`` maps a ledger column to a SQL expression over ``i`` (0..n-1); columns it does not name are NULL.
    """
    import duckdb

    from otel_costattr._ledger._segments import FULL_LEVEL, SegmentDir
    from otel_costattr._ledger._store import COLUMNS

    seg_dir = SegmentDir(Path(path), create=True)
    cols = ", ".join(f"CAST({gen.get(c, 'NULL')} AS {t.replace(' NOT NULL', '').replace('JSON', 'VARCHAR')}) AS {c}"
                     for c, t in COLUMNS)
    tmp, final = seg_dir.reserve(level=FULL_LEVEL)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT {cols} FROM range({n}) t(i)) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, "
                "ROW_GROUP_SIZE 131072)")
    con.close()
    seg_dir.commit(tmp, final)
