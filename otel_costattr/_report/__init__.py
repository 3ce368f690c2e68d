"""Report: renders analysis and finance results as a table, CSV, JSON or a self-contained HTML page.

Private: import from the public facade, :mod:`otel_costattr`."""
