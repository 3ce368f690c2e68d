"""serve's malloc settings (``_allocator``): applied on glibc, left alone when the user set glibc's own, and they
keep a serve-like request loop from touching fresh pages on every request.

Each case runs in a child process: ``mallopt`` changes the whole process, and the test process is not serve's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")

ROOT = Path(__file__).resolve().parents[2]

# Decode, price and re-serialize 512-span requests as serve does; report the minor page faults per request over
# the last requests (after warm-up).
_LOOP = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1] + "/benchmarks")
tuned = None
if sys.argv[2] == "tuned":
    from otel_costattr._serve._allocator import tune_for_serving
    tuned = tune_for_serving()
from bench_serve import make_batch
from otel_costattr._capture._enrich import Enricher
from otel_costattr._pricing._book import PriceBook
from otel_costattr._serve._codec import PROTOBUF, ProtoEnricher

bodies = [make_batch("llm", seed) for seed in range(8)]
pe = ProtoEnricher(Enricher(PriceBook.load()))
def one(body):
    decoded = pe.decode(body, PROTOBUF)
    pe.enrich(decoded)
    return decoded.request.SerializeToString()
for body in bodies * 2:
    one(body)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for body in bodies * 2:
    one(body)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (2 * len(bodies))
print(json.dumps({"tuned": tuned, "faults_per_request": faults}))
"""


def _run(mode: str, **env: str) -> dict:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    child_env.update(env)
    out = subprocess.run([sys.executable, "-c", _LOOP, str(ROOT), mode], capture_output=True, text=True,
                         env=child_env, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_serve_settings_stop_the_per_request_page_faults() -> None:
    plain, tuned = _run("plain"), _run("tuned")
    assert tuned["tuned"] is True
    # Untuned, each request's large buffers come from fresh pages (hundreds of faults per 512-span request).
    assert plain["faults_per_request"] > 100, plain
    assert tuned["faults_per_request"] < plain["faults_per_request"] / 4, (plain, tuned)


def test_users_own_glibc_settings_win() -> None:
    assert _run("tuned", MALLOC_TRIM_THRESHOLD_="1048576")["tuned"] is False
    assert _run("tuned", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")["tuned"] is False
