"""Analysis: rollups, retry chains and economics over a ledger or ClickHouse `Source`.

Private: import from the public facade, :mod:`otel_costattr`."""
