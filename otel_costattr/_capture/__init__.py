"""Capture: what runs inside the user's TracerProvider (usage reading, pricing decision, processors, baggage, sampling, metrics, attempt markers, layer hints).

Private: import from the public facade, :mod:`otel_costattr`."""
