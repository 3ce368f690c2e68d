"""serve's malloc settings (``_serve._allocator``): applied on glibc, and left alone when the user set glibc's own.

Each case runs in a child process: ``mallopt`` changes the whole process, and the test process is not serve's.
What the settings save (page faults and CPU time per request) depends on the environment, so it is measured in
``benchmarks/bench_allocator.py`` as a same-run ratio, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")

_CHILD = r"""
import json
from otel_costattr._serve._allocator import tune_for_serving
print(json.dumps({"tuned": tune_for_serving()}))
"""


def _run(**env: str) -> dict:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    child_env.update(env)
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=child_env, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_serve_settings_apply_on_glibc() -> None:
    assert _run()["tuned"] is True


def test_users_own_glibc_settings_win() -> None:
    assert _run(MALLOC_TRIM_THRESHOLD_="1048576")["tuned"] is False
    assert _run(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")["tuned"] is False
