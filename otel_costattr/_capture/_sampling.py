"""Exact cost under sampling (DESIGN D13).

A span the sampler drops never reaches a processor, so its cost would vanish from metrics and the ledger.
:class:`CostAwareSampler` wraps the user's sampler: when it would drop a span that is an LLM call, the span is
*recorded but not sampled* (``RECORD_ONLY``). Processors see it, so ``CostSpanProcessor`` prices it and the
cost metrics stay exact; exporters that honour the sampled flag (``BatchSpanProcessor``) do not export it.
Every other decision is the wrapped sampler's, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

__all__ = ["CostAwareSampler"]

# Start-time hints that a span is an LLM call. Instrumentations set some of these when the span starts.
_LLM_ATTRS = ("gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model",
              "llm.request.type")
_NON_LLM_OPS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "plan", "retrieval",
                          "fetch_response"})
_LLM_NAME_PREFIXES = ("chat ", "embeddings ", "text_completion ", "generate_content ", "openai.chat",
                      "openai.completion", "openai.embeddings", "openai.response", "anthropic.chat",
                      "anthropic.messages", "anthropic.completion")


def _looks_like_llm_call(name: str, attributes: Attributes) -> bool:
    if attributes:
        op = attributes.get("gen_ai.operation.name")
        if op in _NON_LLM_OPS:
            return False
        if any(k in attributes for k in _LLM_ATTRS):
            return True
    return name.startswith(_LLM_NAME_PREFIXES)


class CostAwareSampler(Sampler):
    """Wrap ``inner`` so that LLM spans it would drop are still recorded (not exported) and priced."""

    def __init__(self, inner: Sampler) -> None:
        if not isinstance(inner, Sampler):
            raise TypeError(f"CostAwareSampler wraps an OpenTelemetry Sampler, got {type(inner).__name__}")
        self.inner = inner

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        result = self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP and _looks_like_llm_call(name, attributes):
            # A DROP result carries no attributes, but the span takes its start attributes from the result:
            # pass the caller's through, or the span would lose its model and operation.
            merged = dict(attributes or {})
            merged.update(result.attributes or {})
            return SamplingResult(Decision.RECORD_ONLY, merged, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"CostAwareSampler{{{self.inner.get_description()}}}"
