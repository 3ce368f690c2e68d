"""The README's "Tested instrumentations" table names the versions the suite runs: it must match what is installed
(uv.lock), or it tells users something that was never tested."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_PAIR = re.compile(r"\b([a-z][a-z0-9-]*[a-z0-9]) (\d+\.\d+(?:\.\d+)?(?:[ab]\d+)?)\b")
_BARE = re.compile(r"^(\d+\.\d+(?:\.\d+)?(?:[ab]\d+)?)$")


def _claims() -> list[tuple[str, str]]:
    text = README.read_text()
    table = text[text.index("### Tested instrumentations"):]
    rows = [ln for ln in table.splitlines()[1:40] if ln.startswith("| ") and not ln.startswith("| instrumentation")]
    claims = []
    for row in rows[: next((i for i, r in enumerate(rows) if not r.startswith("|")), len(rows))]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = re.fullmatch(r"`([a-z0-9-]+)`(?: \(.*\))?", cells[0])
        if name and _BARE.match(cells[1]):
            claims.append((name.group(1), cells[1]))
        for cell in cells[1:3]:
            claims.extend(_PAIR.findall(cell))
    return claims


def test_the_tested_versions_are_the_installed_ones() -> None:
    claims = _claims()
    assert len(claims) >= 12, claims
    wrong = []
    for dist, wanted in claims:
        try:
            have = version(dist)
        except PackageNotFoundError:
            wrong.append(f"{dist}: not installed")
            continue
        if have != wanted:
            wrong.append(f"{dist}: README {wanted}, installed {have}")
    assert not wrong, wrong
