"""Deterministic model-name resolution (DESIGN D8).

A name reported by an instrumentation (``gen_ai.response.model`` or ``gen_ai.request.model``) is turned into
an ordered list of candidate names. The first candidate found in a price table wins. There is no fuzzy or
prefix matching: a new sibling model (``gpt-5.7`` next to ``gpt-5``) stays unpriced until the table knows it,
rather than silently borrowing a neighbour's price.

Order of candidates:

1. the name as given (lower-cased, trimmed), which also matches aliases;
2. a routing prefix removed (``openai/``, ``azure/``, ``bedrock/``, ``vertex_ai/`` ...);
3. date or version suffixes removed one at a time (``-2024-08-06``, ``-20250929``, ``@20250929``, ``-v1:0``);
4. a Bedrock geo prefix removed (``us.``, ``eu.``, ``apac.``, ``global.`` ...), then 3 again;
5. for an OpenAI fine-tune (``ft:<base>:<org>:<suffix>:<job>``), ``ft:<base>`` and its suffix chain: a
   fine-tuned model is billed at the fine-tune rate of its base, never at the base model's own rate.

Which provider's table a candidate is looked up in is decided by :func:`vendor_of` and the price book:
resolution never leaves the vendor (DESIGN D8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BEDROCK_NAMESPACES", "Candidate", "FIRST_PARTY", "GEO_PREFIXES", "ROUTING_PREFIXES", "candidates", "vendor_of"]

#: Routing prefixes and the provider they imply (``None``: strip but imply nothing).
ROUTING_PREFIXES: dict[str, str | None] = {
    "openai": "openai", "azure": "azure", "azure_ai": None, "bedrock": "bedrock", "bedrock_converse": "bedrock",
    "vertex_ai": "vertex_ai", "vertex": "vertex_ai", "anthropic": "anthropic", "gemini": "gemini",
    "google": "gemini", "xai": "xai", "x_ai": "xai", "x-ai": "xai", "deepseek": "deepseek",
    "deepseek-ai": "deepseek", "mistral": "mistral", "mistralai": "mistral", "mistral_ai": "mistral",
}
#: Model namespaces of Bedrock ids (``anthropic`` in ``anthropic.claude-...``). Fixed, so that resolution does not
#: depend on whether the imported layer is loaded yet; a test keeps it in step with the shipped tables.
BEDROCK_NAMESPACES: frozenset[str] = frozenset({
    "ai21", "amazon", "anthropic", "cohere", "deepseek", "google", "meta", "minimax", "mistral", "moonshot",
    "moonshotai", "nvidia", "openai", "qwen", "stability", "twelvelabs", "writer", "zai"})
#: Vendors that sell their own models. A call naming one of them may still be an OpenAI-compatible client
#: pointed at another first-party vendor (the OpenAI SDK calling DeepSeek), so a model whose name belongs to
#: another first-party vendor is priced from that vendor's table (flagged ``provider_fallback:``).
FIRST_PARTY: frozenset[str] = frozenset({"openai", "anthropic", "gemini", "xai", "deepseek", "mistral"})

# Model families by name: who sells a model called this. Anchored at the start; no other guessing.
_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^claude"), "anthropic"),
    (re.compile(r"^(?:ft:)?(?:gpt-|chatgpt-|o\d(?:$|-)|text-embedding-|text-moderation|omni-moderation|davinci|"
                r"babbage|dall-e|whisper|tts-|computer-use|codex-)"), "openai"),
    (re.compile(r"^gemini"), "gemini"),
    (re.compile(r"^grok"), "xai"),
    (re.compile(r"^deepseek"), "deepseek"),
    (re.compile(r"^(?:mistral|mixtral|codestral|ministral|pixtral|magistral|devstral|voxtral|open-mistral|"
                r"open-mixtral|open-codestral)"), "mistral"),
)


def vendor_of(name: str, bedrock_namespaces: frozenset[str] = BEDROCK_NAMESPACES) -> str | None:
    """The vendor whose table prices a bare model ``name`` (lower-case, no routing prefix), or ``None``.

    A Bedrock model id (``anthropic.claude-...``, optionally behind a geo prefix such as ``us.``) belongs to
    ``bedrock`` when its namespace is one of ``bedrock_namespaces``; a Vertex ``@`` version
    (``claude-3-opus@20240229``) belongs to ``vertex_ai``; otherwise the name's family decides
    (``claude-*`` Anthropic, ``gpt-*``/``o1``/``ft:gpt-*`` OpenAI, ``gemini-*``, ``grok-*``, ``deepseek-*``,
    Mistral's families). Pure.
    """
    if bedrock_namespaces and "." in name:
        head, _, rest = name.partition(".")
        if head in GEO_PREFIXES and "." in rest:
            head = rest.partition(".")[0]
        if head in bedrock_namespaces:
            return "bedrock"
    if "@" in name:
        return "vertex_ai"
    for rx, vendor in _FAMILIES:
        if rx.match(name):
            return vendor
    return None
#: Bedrock cross-region inference profile prefixes. Longest first so that ``us-gov.`` beats ``us.``.
GEO_PREFIXES: tuple[str, ...] = ("us-gov", "global", "apac", "us", "eu", "jp", "au", "ca")

_SUFFIXES = (
    # Bedrock -v1:0 only: a bare "-v2" is part of real model names (claude-v2, titan-embed-text-v2), and
    # stripping it would price one model as another.
    re.compile(r"-v\d+:\d+$"),
    re.compile(r"@\d{8}$"),                  # Vertex @20250929
    re.compile(r"@latest$"),
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),      # OpenAI -2024-08-06
    re.compile(r"-\d{8}$"),                  # Anthropic -20250929
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One name to look up, with what was removed to get it."""

    name: str
    step: str  # "exact", "prefix", "suffix", "geo", "finetune"
    geo: str | None = None
    provider_hint: str | None = None


def _suffix_chain(name: str) -> list[str]:
    out = []
    current = name
    changed = True
    while changed:
        changed = False
        for rx in _SUFFIXES:
            stripped = rx.sub("", current)
            if stripped != current and stripped:
                out.append(stripped)
                current = stripped
                changed = True
                break
    return out


def candidates(model: str, extra_prefixes: dict[str, str] | None = None) -> list[Candidate]:
    """Candidate names for ``model``, most specific first. Pure and deterministic.

    ``extra_prefixes`` adds routing prefixes (prefix -> provider id), e.g. every provider id the price tables
    know, so that ``groq/llama-3.3-70b`` finds ``llama-3.3-70b`` under provider ``groq``.
    """
    name = model.strip().lower()
    out = [Candidate(name, "exact")]
    hint = None
    if "/" in name:
        head, _, rest = name.partition("/")
        known = head in ROUTING_PREFIXES or (extra_prefixes is not None and head in extra_prefixes)
        if known and rest:
            hint = ROUTING_PREFIXES[head] if head in ROUTING_PREFIXES else extra_prefixes[head]  # type: ignore
            name = rest
            out.append(Candidate(name, "prefix", provider_hint=hint))
    out.extend(Candidate(n, "suffix", provider_hint=hint) for n in _suffix_chain(name))
    if name.startswith("ft:") and name.count(":") >= 2:
        # ft:<base>:<org>:<suffix>:<job id> -> ft:<base>: the organisation and job parts name one tuning run,
        # the price is the base's fine-tune rate.
        base = "ft:" + name[3:].partition(":")[0]
        if len(base) > 3:
            out.append(Candidate(base, "finetune", provider_hint=hint))
            out.extend(Candidate(n, "finetune", provider_hint=hint) for n in _suffix_chain(base))
    head, dot, rest = name.partition(".")
    if dot and head in GEO_PREFIXES and rest:
        out.append(Candidate(rest, "geo", geo=head, provider_hint=hint))
        out.extend(Candidate(n, "geo", geo=head, provider_hint=hint) for n in _suffix_chain(rest))
    return out
