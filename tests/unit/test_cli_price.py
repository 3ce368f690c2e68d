"""`otel-costattr price` and `otel-costattr pricing ...`: the exact CLI contract, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import DATA


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_costattr", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_price_json_contract() -> None:
    r = run("price", "tiered-20250101", "--pricing", str(DATA / "rules.toml"), "--input", "10000",
            "--cache-read", "2000", "--cache-write", "1000", "--cache-write-1h", "500", "--output", "2000",
            "--reasoning", "500", "--at", "2025-06-03T12:00:00Z", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "priced" and out["provider"] == "rulesco" and out["model"] == "tiered"
    assert out["currency"] == "USD" and out["total"] == "0.05685"
    assert set(out["components"]) >= {"input", "cache_read", "cache_write", "output", "reasoning"}
    assert sum(Decimal(v) for v in out["components"].values()) == Decimal(out["total"])
    assert out["effective_from"].startswith("2025-01-01") and out["pricing_version"] == "rules-1"


def test_unpriced_exits_3_and_still_prints_json() -> None:
    r = run("price", "no-such-model-x", "--input", "10", "--json")
    assert r.returncode == 3
    out = json.loads(r.stdout)
    assert out["status"] == "unpriced" and out["total"] is None
    assert "--pricing" in r.stderr


@pytest.mark.parametrize("args", [["price", "x", "--input", "-5"], ["price", "x", "--input", "1.5"],
                                  ["price", "x", "--service-tier", "turbo"], ["price", "x", "--at", "someday"],
                                  ["price"]])
def test_bad_arguments_exit_2(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip()


def test_readable_table_without_json() -> None:
    r = run("price", "tiered", "--pricing", str(DATA / "rules.toml"), "--input", "300000", "--output", "10",
            "--at", "2025-06-03")
    assert r.returncode == 0, r.stderr
    assert "total" in r.stdout and "long_context:>200000" in r.stdout and "rulesco/tiered" in r.stdout


def test_broken_overlay_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[meta]\nprovider = "x"\nversion = "1"\n[[model]]\nid = "m"\nsource = "s"\n'
                   '[[model.period]]\neffective_from = "2025-01-01"\ninput = "-1"\n')
    r = run("price", "m", "--pricing", str(bad))
    assert r.returncode == 2 and "bad.toml" in r.stderr and "input" in r.stderr


def test_pricing_validate(tmp_path: Path) -> None:
    ok = run("pricing", "validate", str(DATA / "rules.toml"), str(DATA / "overlay.toml"))
    assert ok.returncode == 0 and ok.stdout.count("ok ") == 2
    bad = tmp_path / "typo.toml"
    bad.write_text((DATA / "mini.toml").read_text().replace("cache_read", "cache_raed"))
    r = run("pricing", "validate", str(bad))
    assert r.returncode == 1 and "cache_raed" in r.stderr


def test_pricing_list_with_overlay() -> None:
    r = run("pricing", "list", "--pricing", str(DATA / "rules.toml"), "--provider", "rules.co", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 1 and rows[0]["provider"] == "rulesco"
    assert rows[0]["models"] == 5 and rows[0]["long_context"] == 2 and rows[0]["time_windows"] == 1
    assert run("pricing", "list", "--provider", "nonexistent-vendor").returncode == 2
