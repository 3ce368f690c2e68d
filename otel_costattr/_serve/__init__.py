"""Serve: `otel-costattr serve`, OTLP/HTTP enrichment for apps in any language.

Private: import from the public facade, :mod:`otel_costattr`."""
