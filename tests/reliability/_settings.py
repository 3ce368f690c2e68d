"""Scale of the reliability suite, from the environment (so CI can run less than the README's figures)."""

from __future__ import annotations

import os


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").replace("_", "").replace(",", "").strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


#: Spans of the load run.
LOAD_SPANS = env_int("OTEL_COSTATTR_RELIABILITY_SPANS", 1_000_000)
#: Time budget, in seconds, of each fuzz target (hypothesis and atheris).
FUZZ_SECONDS = env_float("OTEL_COSTATTR_RELIABILITY_FUZZ_SECONDS", 20.0)
