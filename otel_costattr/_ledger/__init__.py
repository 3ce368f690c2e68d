"""Ledger: the embedded store of priced spans, OTLP decoding, file ingest.

Private: import from the public facade, :mod:`otel_costattr`."""
