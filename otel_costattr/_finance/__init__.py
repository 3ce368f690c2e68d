"""Finance: FOCUS export, invoice reconciliation, budgets.

Private: import from the public facade, :mod:`otel_costattr`."""
