from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own overlays or exporter settings."""
    for var in ("OTEL_COSTATTR_PRICING",):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def data_dir() -> Path:
    return DATA
