"""The one way the ledger opens DuckDB: every connection it makes is configured here."""

from __future__ import annotations

from typing import Any

__all__ = ["connect"]


def connect(database: str = ":memory:", *, read_only: bool = False) -> Any:
    """A DuckDB connection to ``database`` with DuckDB's progress bar off.

    DuckDB's Python client prints that bar to the process's standard output, even when it is a pipe or a file,
    for any query that runs over 2 s: ``report --format json > r.json`` on a large ledger would write it into the
    JSON, and a library user's own stdout would get it too. Commands show their own progress on standard error,
    on a terminal only.
    """
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET enable_progress_bar = false")  # a session setting: DuckDB refuses it in connect's config
    return con
