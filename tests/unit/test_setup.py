"""The set-up files agree with each other: the scripts, CI and the container install what uv.lock pins.

What they do on a fresh machine (the demo and the suite from a fresh clone, the wheel installed with plain pip) is
exercised by ``.ci/run`` itself; these checks catch the drift that would break it only on another day.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pinned_uv() -> str:
    match = re.search(r'^UV_PINNED_VERSION="([0-9.]+)"$', (REPO / "scripts/_uv.sh").read_text(), re.MULTILINE)
    assert match, "scripts/_uv.sh must pin the uv it installs"
    return match.group(1)


def test_the_container_installs_the_locked_serve_extra_with_the_scripts_uv() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f'pip install "uv=={_pinned_uv()}"' in dockerfile
    export = re.search(r"uv export (.*?) -o", dockerfile)
    assert export and {"--frozen", "--extra", "serve"} <= set(export.group(1).split()), "serve needs uvicorn"
    assert "--require-hashes" in dockerfile and "pip install --no-deps /tmp/dist/" in dockerfile
    assert re.search(r"^COPY .*\buv\.lock\b", dockerfile, re.MULTILINE)


def test_scripts_install_the_lock_and_never_resolve() -> None:
    venv = (REPO / "scripts/_venv.sh").read_text()
    assert "sync --locked" in venv
    for script in ("demo.sh", "test.sh", "bench.sh"):
        text = (REPO / "scripts" / script).read_text()
        assert "source scripts/_venv.sh" in text
        assert not re.search(r"pip install|uv pip|uv lock", text), f"{script} must not resolve at set-up"
    demo = (REPO / "scripts/demo.sh").read_text()
    assert re.search(r'^SYNC_EXTRAS="demo"$', demo, re.MULTILINE), "the demo installs only its own extra"


def test_phoenix_stays_out_of_the_test_environment() -> None:
    # arize-phoenix >= 20.4 requires anthropic<2: in the test extra it would hold the SDK under test back.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    assert not any(req.startswith("arize-phoenix") for reqs in extras.values() for req in reqs)
    assert any(req.startswith("arize-phoenix") for req in project["dependency-groups"]["phoenix"])
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    anthropic = [p["version"] for p in lock["package"] if p["name"] == "anthropic"]
    assert any(int(v.split(".")[0]) >= 2 for v in anthropic), anthropic
