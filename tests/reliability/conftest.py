"""Shared fixtures of the reliability and security suite, and the recorder of its figures.

Every must-hold test also measures something (how much was tried, what was lost, how long it took, peak
memory). It records that through the ``figure`` fixture; at the end of the session the figures of every test
that ran are merged into ``.reliability-figures.json`` at the repository root (gitignored), keyed by test id,
with the test's outcome. ``scripts/reliability_table.py`` turns that file into the README table.

Scale is set by environment variables, so CI can run a smaller load than the README figures:

* ``OTEL_COSTATTR_RELIABILITY_SPANS``: spans of the load run (default 1,000,000).
* ``OTEL_COSTATTR_RELIABILITY_FUZZ_SECONDS``: time budget of each fuzz target (default 20).
* ``OTEL_COSTATTR_RELIABILITY_FIGURES``: where to write the figures (default ``.reliability-figures.json``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from _settings import FUZZ_SECONDS, LOAD_SPANS

ROOT = Path(__file__).resolve().parents[2]
FIGURES_FILE = Path(os.environ.get("OTEL_COSTATTR_RELIABILITY_FIGURES", ROOT / ".reliability-figures.json"))

# Area order of the README table.
AREAS = ("Load", "Faults", "Bad input", "Security", "Pricing integrity")




class Figure:
    """What one test tried and what it observed. ``tried`` / ``how_much`` / ``lost`` are the table's cells;
    ``details`` keeps every other measured value (shown in the table's last column)."""

    def __init__(self, area: str, what: str) -> None:
        if area not in AREAS:
            raise ValueError(f"area must be one of {AREAS}")
        self.area = area
        self.what = what
        self.how_much = ""
        self.lost = ""
        self.details: dict[str, Any] = {}
        self.seconds: float | None = None  # set when the work ran outside the test (e.g. a shared fixture)
        self._t0 = time.perf_counter()

    def set(self, **values: Any) -> None:
        self.details.update(values)

    def as_dict(self) -> dict[str, Any]:
        return {"area": self.area, "what": self.what, "how_much": self.how_much, "lost": self.lost,
                "details": self.details,
                "seconds": round(self.seconds if self.seconds is not None else time.perf_counter() - self._t0, 2)}


_collected: dict[str, dict[str, Any]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    # Keep the call-phase result (or a setup skip/failure) for the figure's outcome column.
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        outcome_name = "xfailed" if hasattr(rep, "wasxfail") and rep.skipped else (
            "xpassed" if hasattr(rep, "wasxfail") else rep.outcome)
        item.stash[_OUTCOME] = outcome_name
        if rep.skipped and rep.longrepr:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            item.stash[_REASON] = str(reason).removeprefix("Skipped: ")


_OUTCOME = pytest.StashKey[str]()
_REASON = pytest.StashKey[str]()


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Iterator[Figure]:
    """Record this test's figures: ``figure.area`` is given by ``@pytest.mark.figure(area, what)``."""
    marker = request.node.get_closest_marker("figure")
    if marker is None:
        raise RuntimeError("a test using `figure` needs @pytest.mark.figure(area, what)")
    fig = Figure(*marker.args)
    yield fig
    _collected[request.node.nodeid] = fig.as_dict()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "figure(area, what): the README row this test's figures go to")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for item in session.items:
        marker = item.get_closest_marker("figure")
        outcome = item.stash.get(_OUTCOME, None)
        if marker is None or outcome is None:
            continue
        if item.nodeid not in _collected:  # skipped before the test body ran (e.g. `serve` not merged yet)
            _collected[item.nodeid] = Figure(*marker.args).as_dict()
        fig = _collected[item.nodeid]
        fig["outcome"] = outcome
        if outcome == "skipped":
            fig["how_much"] = fig["how_much"] or "skipped: " + item.stash.get(_REASON, "")
            fig["lost"] = fig["lost"] or "n/a"
    try:
        old = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.exists() else {}
    except (OSError, ValueError):
        old = {}
    if not _collected:
        return
    figures = dict(old.get("figures", {}))
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for nodeid, fig in _collected.items():
        figures[nodeid] = {**fig, "recorded": stamp}
    run = {
        "finished": stamp, "python": platform.python_version(), "cpus": os.cpu_count(),
        "ci": os.environ.get("CI", "") == "true", "load_spans": LOAD_SPANS, "fuzz_seconds": FUZZ_SECONDS,
    }
    FIGURES_FILE.write_text(json.dumps({"run": run, "figures": figures}, indent=1, default=str) + "\n")
