"""otel-costattr: cost attribution for LLM calls on OpenTelemetry."""

from ._version import __version__

__all__ = ["__version__"]
