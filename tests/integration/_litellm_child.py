"""Child process for the LiteLLM tests: LiteLLM's OpenTelemetry callback traces through the *global* provider,
which can be set once per process. Sets up the README's three lines on a global provider, optionally OpenInference
OpenAI beside it, makes one call through LiteLLM to the fake vendor, and prints the LLM spans as JSON lines.

    python -m tests.integration._litellm_child VENDOR_URL SCENARIO...

Each scenario is flags joined by "-" (``stream``, ``openinference``, ``step``; ``plain`` for none). Scenarios run
one after another in this one process (importing LiteLLM takes tens of seconds on a busy machine); each printed
span names its scenario.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import nullcontext
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: LiteLLM's bundled price map

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

import otel_costattr  # noqa: E402
from otel_costattr.testing import Usage, fake_headers  # noqa: E402


def main() -> None:
    url, scenarios = sys.argv[1], sys.argv[2:]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    book = otel_costattr.PriceBook.load(env=False)
    # the README's three lines (SimpleSpanProcessor so the spans are there when the call returns)
    provider.add_span_processor(otel_costattr.baggage_processor())
    provider.add_span_processor(otel_costattr.CostSpanProcessor(SimpleSpanProcessor(exporter), book=book))
    trace.set_tracer_provider(provider)
    import litellm
    from openinference.instrumentation.openai import OpenAIInstrumentor

    litellm.callbacks = ["otel"]
    for scenario in scenarios:
        flags = set(scenario.split("-"))
        exporter.clear()
        if "openinference" in flags:
            OpenAIInstrumentor().instrument(tracer_provider=provider)
        try:
            run(litellm, provider, exporter, url, flags)
        finally:
            if "openinference" in flags:
                OpenAIInstrumentor().uninstrument()
        for s in exporter.get_finished_spans():
            a = s.attributes
            if "gen_ai.cost.status" not in a:
                continue
            print(json.dumps({"scenario": scenario, "name": s.name, "scope": s.instrumentation_scope.name,
                              "span_id": format(s.context.span_id, "016x"), "status": a["gen_ai.cost.status"],
                              "total": repr(a["gen_ai.cost.total_cost"]) if "gen_ai.cost.total_cost" in a else None,
                              "duplicate_of": a.get("gen_ai.cost.duplicate_of"),
                              "customer_id": a.get("customer_id"), "task_id": a.get("task_id")}), flush=True)
    provider.shutdown()


def run(litellm: Any, provider: TracerProvider, exporter: InMemorySpanExporter, url: str, flags: set[str]) -> None:
    usage = Usage(input=1200, cache_read=1024, output=300)
    kwargs = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}],
              "api_base": url + "/v1", "api_key": "test-key", "extra_headers": fake_headers(usage=usage)}
    with otel_costattr.attribution(customer_id="acme-retail", task_id="refund-42"):
        with provider.get_tracer("app").start_as_current_span("agent step") if "step" in flags else nullcontext():
            if "stream" in flags:
                for _ in litellm.completion(stream=True, stream_options={"include_usage": True}, **kwargs):
                    pass
            else:
                litellm.completion(**kwargs)
            # LiteLLM ends its span (or, inside a step, writes onto the step) on a logging thread after the call
            # returns: wait for it, bounded
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                    "litellm.call_id" in s.attributes for s in exporter.get_finished_spans()):
                if "step" in flags and "litellm.call_id" in (trace.get_current_span().attributes or {}):
                    break
                time.sleep(0.05)


if __name__ == "__main__":
    main()
