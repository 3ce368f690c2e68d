#!/usr/bin/env python3
"""Turn the reliability suite's figures (``.reliability-figures.json``) into the README's Markdown table.

    python scripts/reliability_table.py                      # print the table
    python scripts/reliability_table.py --readme README.md   # replace the table between the markers

The figures file is written by ``tests/reliability/conftest.py`` at the end of every pytest session that ran
reliability tests, keyed by test id (a later run of a test replaces its row). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AREAS = ("Load", "Faults", "Bad input", "Security", "Pricing integrity")
BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"
RESULT = {"passed": "pass", "failed": "**FAIL**", "xfailed": "known bug (xfail)", "xpassed": "**XPASS**",
          "skipped": "skipped", "error": "**ERROR**"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "–"


def _seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def table(data: dict) -> str:
    figures = data.get("figures", {})
    order = {nodeid: i for i, nodeid in enumerate(figures)}
    rows = sorted(figures.items(), key=lambda kv: (AREAS.index(kv[1]["area"]) if kv[1]["area"] in AREAS else 99,
                                                   kv[0].split("::")[0], order[kv[0]]))
    out = ["| Area | What was tried | How much | What was lost | Time | Result |",
           "|---|---|---|---|---|---|"]
    for nodeid, f in rows:
        out.append("| " + " | ".join([_cell(f["area"]), _cell(f["what"]), _cell(f.get("how_much")),
                                      _cell(f.get("lost")), _seconds(f.get("seconds")),
                                      RESULT.get(f.get("outcome", ""), _cell(f.get("outcome")))]) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figures", nargs="?", default=str(ROOT / ".reliability-figures.json"))
    ap.add_argument("--readme", metavar="FILE", help=f"replace the text between {BEGIN} and {END} in FILE")
    args = ap.parse_args(argv)
    path = Path(args.figures)
    if not path.exists():
        print(f"{path} does not exist: run the suite first (python -m pytest tests/reliability)", file=sys.stderr)
        return 1
    text = table(json.loads(path.read_text()))
    if not args.readme:
        sys.stdout.write(text)
        return 0
    readme = Path(args.readme)
    doc = readme.read_text()
    if BEGIN not in doc or END not in doc:
        print(f"{readme} has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
