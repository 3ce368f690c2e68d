from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own overlays or exporter settings."""
    for var in ("OTEL_COSTATTR_PRICING",):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _restore_process_globals():
    """attribution() installs an outbound guard on the global propagator, and tests may add attribution keys:
    put both back so that no test depends on the order it runs in."""
    from opentelemetry import propagate

    import otel_costattr._capture._attribution as attribution_module

    textmap = propagate.get_global_textmap()
    keys = attribution_module._keys
    yield
    propagate.set_global_textmap(textmap)
    attribution_module._keys = keys


@pytest.fixture
def data_dir() -> Path:
    return DATA
