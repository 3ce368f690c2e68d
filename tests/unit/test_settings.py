"""OTEL_COSTATTR_* settings: a typo'd value fails at start-up naming what the setting takes; a typo'd name is
logged once, naming the closest setting; the table lists every setting the package reads."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider

import otel_costattr as oc
from otel_costattr import _settings
from otel_costattr._capture import _attribution


def _configure(env: dict[str, str]) -> None:
    oc.configure(tracer_provider=TracerProvider(), set_global=False, env=env).shutdown()


@pytest.mark.parametrize("env, words", [
    ({"OTEL_COSTATTR_FLUSH_ON_SIGNAL": "flase"}, ["OTEL_COSTATTR_FLUSH_ON_SIGNAL", "'flase'", "true or false"]),
    ({"OTEL_COSTATTR_OUTBOUND_ATTRIBUTION": "alow"}, ["OTEL_COSTATTR_OUTBOUND_ATTRIBUTION", "'alow'", "'allow'"]),
])
def test_a_typo_in_a_value_fails_configure(env: dict[str, str], words: list[str]) -> None:
    with pytest.raises(oc.ConfigurationError) as err:
        _configure(env)
    assert all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize("value, wanted", [("false", False), ("OFF", False), ("0", False), ("yes", True),
                                           (" True ", True), ("", True)])
def test_flag_values(value: str, wanted: bool) -> None:
    assert _settings.flag("OTEL_COSTATTR_FLUSH_ON_SIGNAL", {"OTEL_COSTATTR_FLUSH_ON_SIGNAL": value}, True) is wanted


def test_a_typo_in_a_name_is_logged_once_with_the_closest_setting(caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_settings, "_warned", set())
    env = {"OTEL_COSTATTR_FLUSH_ON_SIGNALS": "false", "OTEL_COSTATTR_RELIABILITY_SPANS": "10"}
    with caplog.at_level(logging.WARNING, logger="otel_costattr"):
        _configure(env)
        _configure(env)
    lines = [r.getMessage() for r in caplog.records if "OTEL_COSTATTR_" in r.getMessage()]
    assert len(lines) == 1, lines  # once, and never for the test suite's own variables
    assert "OTEL_COSTATTR_FLUSH_ON_SIGNALS is set but is not a setting" in lines[0]
    assert "did you mean OTEL_COSTATTR_FLUSH_ON_SIGNAL?" in lines[0]


def test_the_cli_exits_2_on_a_bad_value() -> None:
    env = {**os.environ, "OTEL_COSTATTR_FLUSH_ON_SIGNAL": "maybe"}
    r = subprocess.run([sys.executable, "-m", "otel_costattr", "price", "gpt-4o"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "OTEL_COSTATTR_FLUSH_ON_SIGNAL='maybe'" in r.stderr


def test_the_outbound_guard_stays_on_for_a_bad_value(caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_COSTATTR_OUTBOUND_ATTRIBUTION", "alow")
    monkeypatch.setattr(_attribution, "_guard_warned", False)
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    before = propagate.get_global_textmap()
    # the SDK's default propagator, as in a fresh process (an earlier test may have left ours, already guarded)
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    try:
        with caplog.at_level(logging.WARNING):
            with oc.attribution(customer_id="acme"):
                pass
            with oc.attribution(customer_id="acme"):
                pass
        assert isinstance(propagate.get_global_textmap(), _attribution._OutboundGuard)
        assert sum("outbound guard stays on" in r.getMessage() for r in caplog.records) == 1
    finally:
        propagate.set_global_textmap(before)


def test_every_setting_the_package_reads_is_in_the_table() -> None:
    pkg = Path(oc.__file__).parent
    read = {m for p in pkg.rglob("*.py") if p.name != "_settings.py"  # the table itself, with its examples
            for m in re.findall(r"OTEL_COSTATTR_[A-Z_]+[A-Z]", p.read_text())}
    assert read == set(_settings.SETTINGS)
