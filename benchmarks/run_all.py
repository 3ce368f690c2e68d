"""Run every benchmark and print its ratios against the same-run baseline. `--quick` shortens the long ones."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_allocator  # noqa: E402
import bench_capture  # noqa: E402
import bench_economics  # noqa: E402
import bench_ledger  # noqa: E402
import bench_pricing  # noqa: E402
import bench_report  # noqa: E402
import bench_serve  # noqa: E402

if __name__ == "__main__":
    quick = "--quick" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    suites = {"pricing": lambda: bench_pricing.main(), "capture": lambda: bench_capture.main(long=not quick),
              "ledger": lambda: bench_ledger.main(long=not quick),
              "economics": lambda: bench_economics.main(long=not quick),
              "serve": lambda: bench_serve.main(rounds=5 if quick else 15),
              "report": lambda: bench_report.main(rounds=3 if quick else 5),
              "allocator": lambda: bench_allocator.main(rounds=3 if quick else 7)}
    for name, run in suites.items():
        if only and name not in only:
            continue
        t = time.perf_counter()
        print("\n".join(run()))
        print(f"  ({time.perf_counter() - t:.0f} s)\n", flush=True)
