"""Pricing: versioned price tables compiled to exact integer rates, model-name resolution, the LiteLLM importer.

Private: import from the public facade, :mod:`otel_costattr`."""
