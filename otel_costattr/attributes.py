"""Every span attribute otel-costattr reads or writes, in one place (DESIGN D3, D4).

Reading: usage comes under several names depending on the emitter (OpenTelemetry GenAI semconv, Traceloop /
OpenLLMetry, the Anthropic SDK's own tracing, OpenInference, deprecated spellings). Each tuple below lists the
names of one quantity, preferred first; the first one present on a span wins.

Writing: cost goes under ``gen_ai.cost.*`` (LiteLLM's names where it has one, so existing dashboards keep
working), and ``langfuse.observation.cost_details`` on priced leaf LLM spans, because Langfuse ignores
``gen_ai.cost.*``. Money is never written under ``gen_ai.usage.*``: Langfuse reads every numeric key there
as a token count.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "COST_CACHE_READ", "COST_CACHE_WRITE", "COST_CACHE_WRITE_1H", "COST_CURRENCY", "COST_DUPLICATE_OF",
    "COST_EFFECTIVE_FROM", "COST_FLAGS", "COST_INPUT", "COST_MODEL", "COST_OUTPUT", "COST_PRICING_VERSION",
    "COST_PROVIDER", "COST_REASON", "COST_REASONING", "COST_STATUS", "COST_SUPERSEDES", "COST_TOOL_USAGE", "COST_TOTAL",
    "COST_UNCACHED_INPUT", "COST_TEXT_OUTPUT", "COST_LAYER_MEMORY", "COST_LAYER_MEMORY_TOKENS", "COST_LAYER_PROMPT",
    "COST_LAYER_PROMPT_TOKENS", "COST_LAYER_SOURCE", "COST_LAYER_TOOL", "COST_LAYER_TOOL_TOKENS", "DEFAULT_ATTRIBUTION_KEYS", "LANGFUSE_COST_DETAILS",
    "EMITTER_CONVENTIONS", "INPUT_EXCLUDES_CACHE", "LLM_OPERATIONS", "NON_LLM_OPERATIONS", "OUTPUT_EXCLUDES_REASONING",
    "MAX_VALUE_LENGTH", "PROVIDED_COST", "PROVIDER_NAMES", "READ", "STATUSES", "cut_value",
]

# ----------------------------------------------------------------------------------------------- read

READ: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                     "llm.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion", "llm.usage.completion_tokens"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                          "llm.token_count.prompt_details.cache_read"),
    "cache_write_tokens": ("gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
                           "gen_ai.usage.cache_creation_input_tokens",
                           "llm.token_count.prompt_details.cache_write"),
    "cache_write_5m_tokens": ("anthropic.usage.cache_creation.ephemeral_5m_input_tokens",),
    "cache_write_1h_tokens": ("anthropic.usage.cache_creation.ephemeral_1h_input_tokens",),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                         "llm.token_count.completion_details.reasoning"),
    "input_audio_tokens": ("gen_ai.usage.input_audio_tokens", "llm.token_count.prompt_details.audio"),
    "output_audio_tokens": ("gen_ai.usage.output_audio_tokens", "llm.token_count.completion_details.audio"),
    "web_search_calls": ("gen_ai.usage.web_search_requests", "anthropic.usage.server_tool_use.web_search_requests"),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "response_model": ("gen_ai.response.model", "llm.response.model"),
    "request_model": ("gen_ai.request.model", "llm.model_name", "llm.request.model"),
    "response_id": ("gen_ai.response.id",),
    "operation": ("gen_ai.operation.name",),
    "service_tier": ("openai.response.service_tier", "anthropic.response.service_tier",
                     "gen_ai.openai.response.service_tier", "gen_ai.response.service_tier",
                     "openai.request.service_tier", "gen_ai.openai.request.service_tier"),
    "region": ("gen_ai.cost.region", "anthropic.usage.inference_geo"),
    "streaming": ("gen_ai.request.stream", "gen_ai.is_streaming"),
}

#: Cost already computed upstream (LiteLLM, OpenInference, OpenLIT/Langfuse, pydantic-ai's ``operation.cost``):
#: carried through, status "provided".
PROVIDED_COST: tuple[str, ...] = ("gen_ai.cost.total_cost", "llm.cost.total", "gen_ai.usage.cost", "operation.cost")

#: Provider names emitters write (``gen_ai.provider.name``, ``gen_ai.system``, ``llm.provider``, ``llm.system``)
#: that no pricing table lists in its ``provider_names`` (``pricing/*.toml``, where the GenAI semconv names such as
#: ``aws.bedrock`` and ``gcp.gemini`` live), mapped to the table's provider id (DESIGN D16). Keys are lower-case.
PROVIDER_NAMES: dict[str, str] = {
    "aws": "bedrock",               # OpenInference Bedrock (llm.provider)
    "amazon_bedrock": "bedrock",
    "aws_bedrock": "bedrock",
    "bedrock_converse": "bedrock",  # LiteLLM's provider name for the Converse route
    "google_genai": "gemini",
    "vertex": "vertex_ai",
    "azure_openai": "azure",
    "mistralai": "mistral",         # OpenInference Mistral AI (llm.provider)
}

# Usage conventions of emitters that depart from the GenAI one (DESIGN D2, D16), by instrumentation scope name.
#: The input count excludes cache reads and writes (they are reported beside it): add them to get the GenAI count.
INPUT_EXCLUDES_CACHE = "input_excludes_cache"
#: The output count excludes reasoning (reported beside it): add it to get the GenAI count.
OUTPUT_EXCLUDES_REASONING = "output_excludes_reasoning"
#: Instrumentation scope name -> the conventions its spans follow. Checked against each emitter's source and the
#: fake vendor's wire formats (tests/integration/test_capture_emitters.py); emitters not listed follow the GenAI
#: convention (OpenInference OpenAI/Anthropic/Bedrock/agents, OpenLLMetry, genai-openai/-anthropic, the Anthropic
#: SDK, LiteLLM's callback).
EMITTER_CONVENTIONS: dict[str, frozenset[str]] = {
    # Bedrock's raw usage.inputTokens (Converse) / input_tokens (InvokeModel, Anthropic body) as
    # gen_ai.usage.input_tokens; cache reads and writes go to gen_ai.usage.cache_read/cache_creation (Converse only:
    # its InvokeModel spans carry no cache counts at all).
    "opentelemetry.instrumentation.botocore.bedrock-runtime": frozenset({INPUT_EXCLUDES_CACHE}),
}

#: ``gen_ai.operation.name`` values that are one billed model call.
LLM_OPERATIONS = frozenset({"chat", "text_completion", "completion", "generate_content", "generate",
                            "embeddings", "embedding", "responses", "response"})
#: Operations that are never themselves a billed call (agents, tools, and fetching a finished response).
NON_LLM_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "plan",
                                "retrieval", "fetch_response"})

# ---------------------------------------------------------------------------------------------- write

COST_TOTAL = "gen_ai.cost.total_cost"
COST_INPUT = "gen_ai.cost.input_cost"              # every input-side component (uncached + cache + audio)
COST_OUTPUT = "gen_ai.cost.output_cost"            # every output-side component (text + reasoning + audio)
COST_TOOL_USAGE = "gen_ai.cost.tool_usage_cost"    # per-call fees (web search)
COST_UNCACHED_INPUT = "gen_ai.cost.uncached_input_cost"
COST_CACHE_READ = "gen_ai.cost.cache_read_cost"
COST_CACHE_WRITE = "gen_ai.cost.cache_write_cost"  # short-TTL writes
COST_CACHE_WRITE_1H = "gen_ai.cost.cache_write_1h_cost"
COST_TEXT_OUTPUT = "gen_ai.cost.text_output_cost"
COST_REASONING = "gen_ai.cost.reasoning_cost"
COST_CURRENCY = "gen_ai.cost.currency"
COST_STATUS = "gen_ai.cost.status"
COST_PROVIDER = "gen_ai.cost.provider"
COST_MODEL = "gen_ai.cost.model"                   # the pricing entry that was used
COST_PRICING_VERSION = "gen_ai.cost.pricing_version"
COST_EFFECTIVE_FROM = "gen_ai.cost.effective_from"
COST_FLAGS = "gen_ai.cost.flags"
COST_REASON = "gen_ai.cost.reason"
COST_DUPLICATE_OF = "gen_ai.cost.duplicate_of"     # span id (hex) of the span that carries this call's cost
# On the span that carries a call: span id (hex) of a span of the same call that ended earlier without usage (its
# status stayed no_usage, it had been exported already); it is not a call of its own (the ledger un-counts it).
COST_SUPERSEDES = "gen_ai.cost.supersedes"
LANGFUSE_COST_DETAILS = "langfuse.observation.cost_details"
# Four token layers (DESIGN D15): the billed input split into prompt / tool / memory, and its cost likewise.
COST_LAYER_PROMPT_TOKENS = "gen_ai.cost.layer_prompt_tokens"
COST_LAYER_TOOL_TOKENS = "gen_ai.cost.layer_tool_tokens"
COST_LAYER_MEMORY_TOKENS = "gen_ai.cost.layer_memory_tokens"
COST_LAYER_SOURCE = "gen_ai.cost.layer_source"  # "explicit" | "content"
COST_LAYER_PROMPT = "gen_ai.cost.layer_prompt_cost"
COST_LAYER_TOOL = "gen_ai.cost.layer_tool_cost"
COST_LAYER_MEMORY = "gen_ai.cost.layer_memory_cost"

# Explicit retry-attempt markers, written by :func:`otel_costattr.attempt` at capture and read by the chain rules
# in analysis (DESIGN D14); named here so that both stages share one spelling without importing each other.
ATTEMPT_STEP = "otel_costattr.attempt.step"
ATTEMPT_NUMBER = "otel_costattr.attempt.number"
ATTEMPT_OUTCOME = "otel_costattr.attempt.outcome"

#: Every value of ``gen_ai.cost.status`` (DESIGN D6).
STATUSES = ("priced", "unpriced", "no_usage", "partial", "duplicate", "provided")

#: The attribution schema (DESIGN D9): account -> process -> run -> task -> agent action -> call.
DEFAULT_ATTRIBUTION_KEYS: tuple[str, ...] = (
    "customer_id", "process_id", "process_run_id", "agent_run_id", "task_id", "agent_id", "skill_id",
    "user_id", "feature", "workload_type",
)

#: Attribution values longer than this are cut (DESIGN D9: bounded in length), by :func:`cut_value`.
MAX_VALUE_LENGTH = 256
_HASH_CHARS = 8


def cut_value(text: str, limit: int = MAX_VALUE_LENGTH) -> str:
    """``text`` itself when it fits in ``limit`` characters; otherwise its first characters, ``~`` and the first
    8 hex digits of its SHA-256, ``limit`` characters in all.

    Two long values that share their first ``limit`` characters stay distinct (a plain cut merged two customers'
    spend into one row), and the same value is always cut the same way, in capture, the ledger and the report.
    """
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{text[:limit - _HASH_CHARS - 1]}~{digest}"

