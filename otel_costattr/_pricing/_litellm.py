"""Convert LiteLLM's ``model_prices_and_context_window.json`` into our imported pricing layer.

The output has the structure described in ``pricing/README.md``, written as JSON::

    {"meta": {...provenance and counts...},
     "providers": {"<provider id>": {"meta": {"provider", "provider_names", "version", "currency", ...},
                                     "model": [{"id", "aliases", "source", "note", "period": [{...}]}]}}}

Contract
--------
* :func:`convert_litellm` is pure and deterministic: the same mapping and arguments always give the same
  document (providers, models and every mapping are sorted; lists keep their meaning-bearing order).
* Every rate is a decimal string in USD per 1,000,000 tokens, computed *exactly* as
  ``Decimal(repr(per_token_float)) * 1_000_000``: no binary rounding ever reaches the table, so
  ``3e-06`` becomes ``"3"`` and ``1.25e-07`` becomes ``"0.125"``. Per-call fees are USD per 1,000 calls.
* Malformed input (a top level or an entry that is not an object, a price that is not a number, a
  negative price, a non-positive multiplier) raises :class:`ValueError` naming the offending key.
  Anything well-formed that we cannot represent is skipped and counted in :class:`ImportReport`.

How LiteLLM fields are read
---------------------------
Token keys follow ``<stem>[_above_<N>k_tokens][_<tier>]``. Stems map to our classes (input, output,
reasoning, cache_read, cache_write, cache_write_1h, input/output_audio, input/output_image). The rules
mirror how LiteLLM itself prices a request, so that an imported entry costs what LiteLLM would charge:

* **Long context.** A threshold exists only if ``input_cost_per_token_above_<N>`` exists (LiteLLM finds
  tiers through that key alone); the tier re-prices every class of the period, and a class with no
  ``_above_<N>`` key keeps its base rate inside the tier, as LiteLLM does. The entry note lists such
  classes. Comparator ``>`` everywhere except xAI (``>=``). ``tiered_pricing`` tables (Qwen, Dashscope)
  are whole-request ranges ``lo < prompt <= hi``, so they become a base plus tiers at each ``lo``.
* **Service tiers** (``_batches``, ``_flex``, ``_priority``). A class a tier does not name costs what
  LiteLLM falls back to: the standard key for flex and priority, half of it for batch. When a tier is one
  constant multiple of the standard rates at every context length we write ``{"multiplier": m}``.
  Otherwise the period gets the classes LiteLLM names as explicit rates, with the fallback as
  ``multiplier`` for the rest, and every long-context tier gets its own ``service_tiers`` holding what
  LiteLLM charges at that length (``_above_<N>_<tier>``, else the standard ``_above_<N>`` key for
  flex/priority, else half the long-context rate for batch). The result is exact.
  ``_ultrafast``, ``_balanced`` and ``_decisions`` have no counterpart and are reported as skipped fields.
* **Off-peak** (``off_peak_pricing``). LiteLLM lists the *off-peak* windows (``"HH:MM-HH:MM"`` UTC,
  start inclusive, end exclusive, wrapping past midnight, equal ends meaning the whole day; ISO weekdays
  1..7, optionally read on a ``weekday_timezone`` calendar). We evaluate those rules hour by hour over a
  week and write the shorter of two equivalent window lists, both ending in a catch-all: the peak hours
  first (multiplier ``1``) then off-peak, or the off-peak hours first then peak. Off-peak rates become a
  single ``multiplier`` when exact and nothing else varies; otherwise explicit rates, which replace the
  rate in force just as LiteLLM's do. Windows that need minute precision, or whose shape depends on
  daylight saving time, make the entry unmappable.
* **Regions.** ``regional_processing_uplift_multiplier_eu``/``_us`` become ``region_multipliers`` ``eu``
  and ``us``; Anthropic's ``provider_specific_entry`` ``us`` (``inference_geo``) becomes region ``us``;
  Vertex's ``regional_endpoint_uplift_multiplier`` (any non-global location) becomes region ``regional``.
* **Per-call fees.** ``search_context_cost_per_query.search_context_size_medium`` (USD per query) becomes
  ``per_1k_calls.web_search`` (x 1000), the size LiteLLM bills for Anthropic server-side search.
* Every other price field (per image, per second, per character, DBUs, audio cache rates, ...) is
  listed in the entry note and counted in ``ImportReport.skipped_fields``; an entry with no per-token
  input or output price at all is skipped (``non_token_mode`` when it bills by some other unit).

Providers, ids, data zones and geo copies
-----------------------------------------
``litellm_provider`` maps to our provider id (``bedrock_converse`` -> ``bedrock``, every ``vertex_ai-*``
-> ``vertex_ai``, ``text-completion-openai`` -> ``openai``; LiteLLM's other endpoint variants
``azure_text``, ``cohere_chat``, ``fireworks_ai-embedding-models``, ``text-completion-codestral`` and
``text-completion-inception`` join their vendor). The id is the LiteLLM key, lower-cased, without a
leading routing prefix naming the LiteLLM provider or our provider id (``gemini/``, ``azure/``, ``xai/``,
``vertex_ai/``, ``bedrock/``, then Bedrock's ``invoke/``). Other path segments carry meaning and stay
(``meta/llama-...``). An id must start with a letter or digit for the loader; Cloudflare's
``@cf/...`` keys become ``cf/...`` with the original spelling as an alias (others: ``invalid_id``).

* **Azure data zones** (``azure/eu/gpt-5.1``, ``us/``, ``apac/``, ``us-gov/``, ``global/``,
  ``global-standard/``) and **Bedrock regional keys** (``bedrock/us-east-1/...``) are folded into the
  base model's ``region_multipliers`` (``{"eu": "1.1"}``) when the copy charges exactly one constant
  times the base for every request: each class, each context length and each service tier (both must
  list the same tiers). A span never carries ``eu/gpt-5.1`` as its model name, so a folded multiplier
  is reachable (through a deployment's ``region``) where a separate id is not. Copies that are not an
  exact multiple (Azure rounds many data-zone prices), or that have no base model, keep their own id
  (``eu/gpt-5.1``), which a deployment overlay can still point at.
* **Bedrock geo copies** (``us.anthropic...``) with a prefix the resolver strips (``us``, ``eu``,
  ``apac``, ``global``, ``jp``, ``au``, ``ca``, ``us-gov``) are dropped under the same exactness rule;
  the constant goes into the base period's ``geo_multipliers``. A geo whose constant is the same for
  every folded model of the provider is also written to the provider's ``meta.geo_multipliers``; a
  period then writes its own (complete, since it replaces the provider's) only where it differs. Other
  prefixes (``in.``) and inexact copies keep their own id.
* Copies often lack LiteLLM's web-search fee; a fold keeps the base's fee, which does not depend on
  the data zone (the engine does not scale per-call fees by region or geo).
* If two keys give the same id within a provider, the first in file order wins (``duplicate_id``); if
  the prices differ, the kept entry's note says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Disagreement", "ImportReport", "TableDiff", "convert_file", "convert_litellm", "curated_disagreements",
           "diff_imported", "import_litellm_file", "installed_litellm", "write_document"]

TOOL_NAME = "otel-costattr pricing import-litellm"
DEFAULT_OUT_PATH = Path("pricing") / "imported" / "litellm.json"
EFFECTIVE_FROM = "1970-01-01"  # LiteLLM keeps no history; the imported period is open-ended

# Enough precision that products and quotients of ~17-digit decimals are exact whenever they terminate;
# a ratio that does not terminate is rounded here and then fails the exactness check, as it should.
_CTX = Context(prec=200)
_EXACT = Context(prec=1000)  # wide enough that a product of two _CTX numbers is never rounded
_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1_000)
_ONE = Decimal(1)
_HALF = Decimal("0.5")

# Top-level keys that describe the file rather than a model.
_NON_MODEL_KEYS = frozenset({"sample_spec", "fallback_generalizations"})

# Skip reasons (public values, used as ImportReport keys).
NO_TOKEN_PRICES = "no_token_prices"
NON_TOKEN_MODE = "non_token_mode"
UNMAPPABLE_FIELD = "unmappable_field"
DUPLICATE_ID = "duplicate_id"
NOT_A_MODEL = "not_a_model"
INVALID_ID = "invalid_id"
DANGLING_ALIAS = "dangling_alias"
SKIP_REASONS = (DANGLING_ALIAS, DUPLICATE_ID, INVALID_ID, NO_TOKEN_PRICES, NON_TOKEN_MODE, NOT_A_MODEL,
                UNMAPPABLE_FIELD)

# ---------------------------------------------------------------------------------------------------
# Providers
# ---------------------------------------------------------------------------------------------------

# LiteLLM provider -> our provider id. Every "vertex_ai-*" variant is Vertex AI (handled in code). The
# last five are LiteLLM routing variants of one vendor's endpoint, not providers a span would name.
_PROVIDER_IDS: Mapping[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "gemini": "gemini",
    "azure": "azure",
    "azure_ai": "azure_ai",
    "xai": "xai",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "azure_text": "azure",
    "cohere_chat": "cohere",
    "fireworks_ai-embedding-models": "fireworks_ai",
    "text-completion-codestral": "codestral",
    "text-completion-inception": "inception",
}

# Values of gen_ai.provider.name / gen_ai.system meaning each provider; others get [provider id].
_PROVIDER_NAMES: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "bedrock": ("aws.bedrock", "bedrock"),
    "vertex_ai": ("gcp.vertex_ai", "vertex_ai"),
    "gemini": ("gcp.gemini", "gemini", "gcp.gen_ai"),
    "azure": ("azure.ai.openai", "azure"),
    "xai": ("x_ai", "xai"),
    "deepseek": ("deepseek",),
    "mistral": ("mistral_ai", "mistral"),
    "watsonx": ("ibm.watsonx.ai", "watsonx"),
}

# Second-level routing segments after "bedrock/" (LiteLLM's invoke/converse API selectors).
_BEDROCK_ROUTES = frozenset({"invoke", "converse"})

# Providers whose long-context thresholds include the boundary ("200k and above").
_INCLUSIVE_THRESHOLD_PROVIDERS = frozenset({"xai"})

# Region-qualified key segments that can fold into region_multipliers, per provider.
_AZURE_ZONES = frozenset({"eu", "us", "apac", "us-gov", "global", "global-standard"})
_AWS_REGION = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d+$")
# Bedrock inference-profile prefixes. Only those the resolver strips are folded; this set mirrors
# otel_costattr._pricing._resolve.GEO_PREFIXES (a test keeps the two in step).
_BEDROCK_GEOS = frozenset({"us", "eu", "apac", "global", "au", "jp", "in", "ca", "us-gov"})
_FOLDABLE_GEOS = frozenset({"us-gov", "global", "apac", "us", "eu", "jp", "au", "ca"})
# Model ids the pricing loader accepts; mirrors otel_costattr._pricing._schema._ID_RE.
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._:/@+\-]*$")


def _provider_id(litellm_provider: str) -> str:
    if litellm_provider == "vertex_ai" or litellm_provider.startswith("vertex_ai-"):
        return "vertex_ai"
    return _PROVIDER_IDS.get(litellm_provider, litellm_provider)


def _provider_names(provider: str) -> list[str]:
    return list(_PROVIDER_NAMES.get(provider, (provider,)))


# ---------------------------------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------------------------------


def _price(value: object, where: str) -> Decimal:
    """Return ``value`` (a JSON number, USD per unit) as the exact decimal of its shortest repr.

    Raises ValueError naming ``where`` for a non-number, a non-finite number or a negative number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"LiteLLM key {where}: price must be a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"LiteLLM key {where}: price must be finite, got {value!r}")
        # repr() is the shortest string that round-trips, i.e. exactly what the JSON file said.
        result = Decimal(repr(value))
    else:
        result = Decimal(value)
    if result < 0:
        raise ValueError(f"LiteLLM key {where}: price must not be negative, got {value!r}")
    return result if result != 0 else Decimal(0)  # drop the sign of -0.0


def _multiplier(value: object, where: str) -> Decimal:
    result = _price(value, where)
    if result == 0:
        raise ValueError(f"LiteLLM key {where}: multiplier must be positive, got {value!r}")
    return result


def _fmt(value: Decimal) -> str:
    """Plain decimal string, no exponent, no trailing zeros ("3", "0.125", "10")."""
    text = format(value.normalize(_CTX), "f")
    return "0" if text in ("-0", "0") else text


def _per_million(value: float | int) -> str:
    """USD per token -> USD per 1M tokens as an exact decimal string: Decimal(repr(x)) * 1_000_000."""
    return _fmt(_CTX.multiply(_price(value, "value"), _MILLION))


def _mul(a: Decimal, b: Decimal) -> Decimal:
    return _CTX.multiply(a, b)


def _ratio(pairs: Iterable[tuple[Decimal, Decimal]]) -> tuple[bool, Decimal | None]:
    """Find m with ``new == old * m`` exactly for every ``(old, new)`` pair.

    Returns ``(True, m)``; ``(True, None)`` when every pair is zero (any m fits); ``(False, None)`` when
    no single m fits.
    """
    found: Decimal | None = None
    for old, new in pairs:
        if old == 0:
            if new != 0:
                return False, None
            continue
        if found is None:
            found = _CTX.divide(new, old).normalize(_CTX)
        if _EXACT.multiply(old, found) != new:
            return False, None
    return True, found


# ---------------------------------------------------------------------------------------------------
# Field grammar
# ---------------------------------------------------------------------------------------------------

# Our token classes, in the order the README lists them (used for deterministic iteration).
CLASSES = (
    "input",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "output",
    "reasoning",
    "input_audio",
    "output_audio",
    "input_image",
    "output_image",
)

# LiteLLM stem -> (our class, preference). When two stems give one class, the lower preference wins.
_STEMS: Mapping[str, tuple[str, int]] = {
    "input_cost_per_token": ("input", 0),
    "output_cost_per_token": ("output", 0),
    "output_cost_per_reasoning_token": ("reasoning", 0),
    "cache_read_input_token_cost": ("cache_read", 0),
    "input_cost_per_token_cache_hit": ("cache_read", 1),  # DeepSeek's older name for the same rate
    "cache_creation_input_token_cost": ("cache_write", 0),
    "cache_creation_input_token_cost_above_1hr": ("cache_write_1h", 0),  # Anthropic 1h TTL
    "cache_creation_input_token_cost_above_12hr": ("cache_write_1h", 1),  # OpenAI 12h TTL
    "input_cost_per_audio_token": ("input_audio", 0),
    "output_cost_per_audio_token": ("output_audio", 0),
    "input_cost_per_image_token": ("input_image", 0),
    "output_cost_per_image_token": ("output_image", 0),
}
_TIERS: Mapping[str, str] = {"batches": "batch", "flex": "flex", "priority": "priority"}
_UNSUPPORTED_TIERS = ("ultrafast", "balanced", "decisions", "fast")
# What LiteLLM charges for a class a service tier does not price: the standard key (flex, priority) or
# half of it (batch).
_TIER_FALLBACK: Mapping[str, Decimal] = {"batch": _HALF, "flex": _ONE, "priority": _ONE}
_STANDARD = "standard"

_TOKEN_KEY = re.compile(
    r"^(?P<stem>"
    + "|".join(re.escape(s) for s in sorted(_STEMS, key=len, reverse=True))
    + r")(?:_above_(?P<n>\d+)(?P<k>k?)_tokens)?(?:_(?P<tier>"
    + "|".join((*_TIERS, *_UNSUPPORTED_TIERS))
    + r"))?$"
)

# off_peak_pricing rate keys -> class (LiteLLM swaps in exactly these five during off-peak hours).
_OFF_PEAK_KEYS: Mapping[str, str] = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "output_cost_per_reasoning_token": "reasoning",
}
_OFF_PEAK_STRUCTURE = frozenset({"windows", "hours_utc", "weekday_timezone"})

_REGION_KEYS: Mapping[str, str] = {
    "regional_processing_uplift_multiplier_eu": "eu",
    "regional_processing_uplift_multiplier_us": "us",
    "regional_endpoint_uplift_multiplier": "regional",
}

_WEB_SEARCH_KEY = "search_context_cost_per_query"
_WEB_SEARCH_SIZE = "search_context_size_medium"


def _is_price_field(name: str) -> bool:
    """True for fields that carry money or change it (the ones worth reporting when not imported)."""
    return "cost" in name or "pricing" in name or "multiplier" in name


def _validate_prices(key: str, name: str, value: object) -> None:
    """Every number under a price-bearing field must be a non-negative price (multipliers positive).

    Nested objects and lists of objects are walked; strings and lists of scalars inside them are
    structure (window strings, weekday lists, ranges) unless their own name says they are a price.
    """
    if isinstance(value, Mapping):
        for sub, item in value.items():
            is_number = isinstance(item, (int, float)) and not isinstance(item, bool)
            if isinstance(item, (Mapping, list)) or is_number or _is_price_field(str(sub)):
                _validate_prices(key, f"{name}.{sub}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                _validate_prices(key, f"{name}[{index}]", item)
    elif "multiplier" in name.rpartition(".")[2]:
        _multiplier(value, f"{key!r} field {name!r}")
    else:
        _price(value, f"{key!r} field {name!r}")


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    """What one conversion did. Counts always add up:
    ``entries_read == converted + folded_geo + folded_region + aliases + sum(skipped)``.

    Attributes:
        source: input file name as given to the converter.
        source_sha256: hex digest of the input file, if known.
        entries_read: model entries read (top-level keys minus ``ignored_keys``).
        converted: models written to the output.
        folded_geo: Bedrock geo copies folded into their base model's ``geo_multipliers``.
        folded_region: data-zone / regional copies folded into their base's ``region_multipliers``.
        unfolded_copies: geo or regional copies written under their own id (not an exact multiple,
            no base model, or a prefix the resolver does not strip). Included in ``converted``.
        skipped: ``(reason, count)`` pairs, sorted by reason.
        per_provider: ``(provider id, models written)`` pairs, sorted by provider.
        skipped_fields: ``(LiteLLM field, count)`` pairs for price fields of written models that the
            schema cannot carry, most frequent first.
        ignored_keys: top-level keys that describe the file, not a model.
        skip_details: ``(LiteLLM key, why)`` for each entry skipped as ``unmappable_field`` or
            ``invalid_id`` (the rare reasons worth reading one by one).
        aliases: ``alias_of`` entries (``claude-sonnet-latest`` -> ``claude-sonnet-5-5``) written as aliases
            of their target model. One whose target was not imported is skipped as ``dangling_alias``.
        litellm_version: the LiteLLM release the table came from, when known.
    """

    source: str
    source_sha256: str | None
    entries_read: int
    converted: int
    folded_geo: int
    folded_region: int
    unfolded_copies: int
    skipped: tuple[tuple[str, int], ...]
    per_provider: tuple[tuple[str, int], ...]
    skipped_fields: tuple[tuple[str, int], ...]
    ignored_keys: tuple[str, ...] = field(default=())
    skip_details: tuple[tuple[str, str], ...] = field(default=())
    aliases: int = 0
    litellm_version: str | None = None

    @property
    def skipped_total(self) -> int:
        return sum(count for _, count in self.skipped)

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready form."""
        return {
            "source": self.source,
            "source_sha256": self.source_sha256,
            "entries_read": self.entries_read,
            "converted": self.converted,
            "folded_geo": self.folded_geo,
            "folded_region": self.folded_region,
            "unfolded_copies": self.unfolded_copies,
            "aliases": self.aliases,
            "litellm_version": self.litellm_version,
            "skipped": dict(self.skipped),
            "per_provider": dict(self.per_provider),
            "skipped_fields": dict(self.skipped_fields),
            "ignored_keys": list(self.ignored_keys),
            "skip_details": dict(self.skip_details),
        }

    def __str__(self) -> str:
        digest = f" (sha256 {self.source_sha256[:12]})" if self.source_sha256 else ""
        skipped = ", ".join(f"{reason} {count}" for reason, count in self.skipped if count) or "none"
        top = sorted(self.per_provider, key=lambda item: (-item[1], item[0]))[:8]
        lines = [
            f"LiteLLM {self.litellm_version or '(version unknown)'} import from {self.source}{digest}",
            f"  entries read:   {self.entries_read}"
            + (f" (ignored non-model keys: {', '.join(self.ignored_keys)})" if self.ignored_keys else ""),
            f"  models written: {self.converted} across {len(self.per_provider)} providers"
            f" ({self.unfolded_copies} geo/regional copies kept under their own id)",
            f"  folded copies:  {self.folded_geo} Bedrock geo, {self.folded_region} data-zone/regional",
            f"  aliases:        {self.aliases} alias_of entries written as aliases of their target",
            f"  skipped:        {self.skipped_total} ({skipped})",
            "  largest providers: " + ", ".join(f"{name} {count}" for name, count in top),
        ]
        if self.skipped_fields:
            shown = ", ".join(f"{name} ({count})" for name, count in self.skipped_fields[:12])
            more = len(self.skipped_fields) - 12
            lines.append(f"  price fields not imported: {shown}" + (f", and {more} more" if more > 0 else ""))
        for key, why in self.skip_details[:5]:
            lines.append(f"  skipped {key}: {why}")
        if len(self.skip_details) > 5:
            lines.append(f"  ... and {len(self.skip_details) - 5} more skipped entries with details")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Per-entry conversion
# ---------------------------------------------------------------------------------------------------


class _Skip(Exception):
    """An entry that cannot be imported; ``reason`` is one of the skip reasons."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


# (tier, threshold) -> class -> USD per 1M tokens. Tier "standard" at threshold 0 is the base.
_Table = dict[tuple[str, int], dict[str, Decimal]]


@dataclass
class _Entry:
    """One LiteLLM model entry, parsed into the rates LiteLLM would charge (the "truth" table)."""

    key: str
    provider: str
    model_id: str
    source: str
    classes: tuple[str, ...]
    thresholds: tuple[int, ...]
    comparator: str
    tiers: tuple[str, ...]
    table: _Table
    given: dict[tuple[str, int], frozenset[str]]  # classes LiteLLM names explicitly per (tier, N)
    windows: list[dict[str, object]]
    per_1k_calls: dict[str, Decimal]
    regions: dict[str, Decimal]
    notes: list[str]
    skipped_fields: list[str]
    aliases: tuple[str, ...] = ()
    copy_of: tuple[str, str, str] | None = None  # ("region" | "geo", qualifier, base id)
    geos: dict[str, Decimal] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)
    context_window: int | None = None
    max_output: int | None = None


def _strip_routing(key: str, litellm_provider: str, provider: str) -> str:
    """Lower-cased key without its routing prefix: LiteLLM's provider name (``gemini/``), our provider
    id (``vertex_ai/`` for ``vertex_ai-anthropic_models``, ``azure/`` for ``azure_text``) or its dashed
    spelling (``amazon-nova/``), then Bedrock's ``invoke/``/``converse/`` API selector."""
    lowered = key.strip().lower()
    head, sep, rest = lowered.partition("/")
    prefixes = {litellm_provider.lower(), provider, litellm_provider.lower().replace("_", "-")}
    if sep and rest and head in prefixes:
        lowered = rest
        if provider == "bedrock":
            head, sep, rest = lowered.partition("/")
            if sep and rest and head in _BEDROCK_ROUTES:
                lowered = rest
    return lowered


def _copy_of(provider: str, model_id: str) -> tuple[str, str, str] | None:
    """Recognise a data-zone/regional copy (``eu/gpt-4o``) or a Bedrock geo copy (``us.anthropic...``)."""
    head, sep, rest = model_id.partition("/")
    if sep and rest:
        if provider == "azure" and head in _AZURE_ZONES:
            return ("region", head, rest)
        if provider == "bedrock" and _AWS_REGION.match(head):
            return ("region", head, rest)
        return None
    if provider == "bedrock":
        head, sep, rest = model_id.partition(".")
        if sep and rest and head in _BEDROCK_GEOS:
            return ("geo", head, rest)
    return None


def _token_fields(key: str, spec: Mapping[str, object], notes: list[str], skipped: list[str]):
    """Parse every token-price key.

    Returns ``(given, names, read)``: ``given[(tier, N)][class]`` in USD per 1M tokens, the LiteLLM key
    behind each ``(tier, N, class)`` slot, and every key read (including agreeing aliases).
    """
    candidates: dict[tuple[str, int, str], list[tuple[int, str, Decimal]]] = {}
    read: set[str] = set()
    for name, value in spec.items():
        match = _TOKEN_KEY.match(name)
        if match is None:
            continue
        tier = match["tier"] or _STANDARD
        if tier in _UNSUPPORTED_TIERS:
            skipped.append(name)
            continue
        tier = _TIERS.get(tier, tier)
        threshold = 0
        if match["n"] is not None:
            threshold = int(match["n"]) * (1000 if match["k"] else 1)
        cls, preference = _STEMS[match["stem"]]
        rate = _mul(_price(value, f"{key!r} field {name!r}"), _MILLION)
        candidates.setdefault((tier, threshold, cls), []).append((preference, name, rate))
    given: dict[tuple[str, int], dict[str, Decimal]] = {}
    names: dict[tuple[str, int, str], str] = {}
    for slot, options in sorted(candidates.items()):
        options.sort()
        _, winner, rate = options[0]
        read.add(winner)
        for _, loser, other in options[1:]:
            if other == rate:
                read.add(loser)
            else:
                notes.append(f"{loser} ({_fmt(other)} per 1M) differs from {winner}; used {winner}")
                skipped.append(loser)
        given.setdefault(slot[:2], {})[slot[2]] = rate
        names[slot] = winner
    return given, names, read


def _tiered_pricing(key: str, spec: Mapping[str, object], notes: list[str]):
    """Turn a ``tiered_pricing`` range table into ``given`` rows: the first range is the base and each
    later range a long-context tier at its lower bound (LiteLLM picks the range with lo < prompt <= hi,
    and the last range beyond its end, which is exactly "highest crossed threshold wins")."""
    ranges = spec["tiered_pricing"]
    if not isinstance(ranges, list) or not ranges or not all(isinstance(r, Mapping) for r in ranges):
        raise _Skip(UNMAPPABLE_FIELD, "tiered_pricing is not a list of objects")
    if not all("range" in r for r in ranges):
        return None  # a per-query result-count table (search providers), not token tiers
    rows: list[tuple[int, dict[str, Decimal]]] = []
    previous_hi: float | None = None
    for index, tier in enumerate(ranges):
        bounds = tier["range"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        ):
            raise _Skip(UNMAPPABLE_FIELD, f"tiered_pricing[{index}].range is not [lo, hi]")
        lo, hi = bounds
        if (index == 0 and lo != 0) or (previous_hi is not None and lo != previous_hi) or lo != int(lo):
            raise _Skip(UNMAPPABLE_FIELD, "tiered_pricing ranges are not contiguous from 0")
        previous_hi = hi
        rates: dict[str, Decimal] = {}
        for name, value in tier.items():
            if name == "range":
                continue
            stem = _STEMS.get(name)
            if stem is None:
                raise _Skip(UNMAPPABLE_FIELD, f"tiered_pricing[{index}].{name} has no counterpart")
            rates[stem[0]] = _mul(_price(value, f"{key!r} field 'tiered_pricing[{index}].{name}'"), _MILLION)
        if "input" not in rates:
            raise _Skip(UNMAPPABLE_FIELD, f"tiered_pricing[{index}] has no input rate")
        rows.append((int(lo), rates))
    top_output = spec.get("output_cost_per_token")
    classes = {cls for _, rates in rows for cls in rates}
    if top_output is not None:
        classes.add("output")
    given: dict[tuple[str, int], dict[str, Decimal]] = {}
    for lo, rates in rows:
        full = dict(rates)
        # LiteLLM's fallbacks inside a range: cache rates -> the range's input rate, the 1h write ->
        # the range's write rate, reasoning -> the range's output rate, output -> the model's output.
        if "output" in classes and "output" not in full:
            full["output"] = _mul(_price(top_output, f"{key!r} field 'output_cost_per_token'"), _MILLION)
        for cls in ("cache_read", "cache_write"):
            if cls in classes and cls not in full:
                full[cls] = full["input"]
        if "cache_write_1h" in classes and "cache_write_1h" not in full:
            full["cache_write_1h"] = full.get("cache_write", full["input"])
        if "reasoning" in classes and "reasoning" not in full:
            full["reasoning"] = full.get("output", full["input"])
        given[(_STANDARD, lo)] = full
    notes.append("tiered_pricing ranges imported as long-context tiers")
    return given


def _build_table(
    given: dict[tuple[str, int], dict[str, Decimal]],
    thresholds: tuple[int, ...],
    tiers: tuple[str, ...],
    classes: tuple[str, ...],
) -> _Table:
    """What LiteLLM charges per class for each (service tier, context tier), its fallbacks applied."""
    base = given[(_STANDARD, 0)]
    table: _Table = {(_STANDARD, 0): {c: base[c] for c in classes}}
    for n in thresholds:
        row = given.get((_STANDARD, n), {})
        table[(_STANDARD, n)] = {c: row.get(c, base[c]) for c in classes}
    for tier in tiers:
        fallback = _TIER_FALLBACK[tier]
        row0 = given.get((tier, 0), {})
        table[(tier, 0)] = {c: row0[c] if c in row0 else _mul(base[c], fallback) for c in classes}
        for n in thresholds:
            row = given.get((tier, n), {})
            standard_n = given.get((_STANDARD, n), {})
            if tier == "batch":
                # Batch falls back to half of whatever standard rate is in force.
                table[(tier, n)] = {
                    c: row[c] if c in row else _mul(table[(_STANDARD, n)][c], fallback) for c in classes
                }
            else:
                # flex/priority: the tier's key, else the standard long-context key, else the tier's base.
                table[(tier, n)] = {
                    c: row[c] if c in row else standard_n[c] if c in standard_n else table[(tier, 0)][c]
                    for c in classes
                }
    return table


# Hour-of-week grid helpers for off-peak windows ------------------------------------------------------

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_WEEKDAY_NAMES = {name: index + 1 for index, name in enumerate(_DAYS)}
# Two reference weeks (winter and summer, each starting on a Monday) expose calendars that move with DST.
_REFERENCE_MONDAYS = (datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2026, 7, 6, tzinfo=timezone.utc))


def _window_hours(text: object, where: str) -> tuple[int, int]:
    """``"HH:MM-HH:MM"`` -> (start hour, end hour); equal ends mean the whole day."""
    if not isinstance(text, str):
        raise _Skip(UNMAPPABLE_FIELD, f"{where} is not a string")
    match = _WINDOW.match(text)
    if match is None:
        raise _Skip(UNMAPPABLE_FIELD, f"{where} {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise _Skip(UNMAPPABLE_FIELD, f"{where} {text!r} is not a time of day")
    if m1 or m2:
        raise _Skip(UNMAPPABLE_FIELD, f"{where} {text!r} needs minute precision")
    return h1 % 24, h2 % 24


def _hour_in(hour: int, start: int, end: int) -> bool:
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end  # wraps midnight; start == end covers the whole day


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else [value]


def _off_peak_grid(block: Mapping[str, object], notes: list[str]) -> frozenset[tuple[int, int]]:
    """The (UTC weekday 0..6, UTC hour) cells in which LiteLLM applies the off-peak rates."""
    every_day = [_window_hours(w, "off_peak_pricing.hours_utc") for w in _as_list(block.get("hours_utc"))]
    rules: list[tuple[frozenset[int] | None, list[tuple[int, int]]]] = []
    windows = block.get("windows")
    for index, rule in enumerate(_as_list(windows)):
        if not isinstance(rule, Mapping):
            raise _Skip(UNMAPPABLE_FIELD, f"off_peak_pricing.windows[{index}] is not an object")
        where = f"off_peak_pricing.windows[{index}]"
        hours = [_window_hours(w, f"{where}.hours_utc") for w in _as_list(rule.get("hours_utc"))]
        days: frozenset[int] | None = None
        if rule.get("weekdays") is not None:
            picked = set()
            for day in _as_list(rule["weekdays"]):
                if isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 7:
                    picked.add(day)
                elif isinstance(day, str) and day.strip().lower()[:3] in _WEEKDAY_NAMES:
                    picked.add(_WEEKDAY_NAMES[day.strip().lower()[:3]])
                else:
                    raise _Skip(UNMAPPABLE_FIELD, f"{where}.weekdays has {day!r}")
            days = frozenset(picked)
        rules.append((days, hours))
    calendar: timezone | ZoneInfo = timezone.utc
    zone_name = block.get("weekday_timezone")
    if isinstance(zone_name, str) and zone_name.strip():
        try:
            calendar = ZoneInfo(zone_name.strip())
        except (ValueError, ZoneInfoNotFoundError):
            # LiteLLM reads weekdays on the UTC calendar when it cannot load the zone; so do we.
            notes.append(f"weekday_timezone {zone_name!r} unknown here; weekdays read in UTC as LiteLLM does")

    def off_peak(moment: datetime) -> bool:
        hour = moment.hour
        if any(_hour_in(hour, start, end) for start, end in every_day):
            return True
        weekday = moment.astimezone(calendar).isoweekday()
        return any(
            (days is None or weekday in days) and any(_hour_in(hour, s, e) for s, e in hours) for days, hours in rules
        )

    grids = []
    for monday in _REFERENCE_MONDAYS:
        cells = set()
        for day in range(7):
            for hour in range(24):
                start = monday + timedelta(days=day, hours=hour)
                at_start, at_end = off_peak(start), off_peak(start + timedelta(minutes=59))
                if at_start != at_end:  # the vendor calendar's midnight falls inside this UTC hour
                    raise _Skip(UNMAPPABLE_FIELD, "off-peak weekday boundary is not on a UTC hour")
                if at_start:
                    cells.add((day, hour))
        grids.append(frozenset(cells))
    if grids[0] != grids[1]:
        raise _Skip(UNMAPPABLE_FIELD, "off-peak windows move with daylight saving time")
    return grids[0]


def _hour_ranges(hours: Iterable[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + 1
        else:
            ranges.append([hour, hour + 1])
    return ranges


def _grid_windows(cells: frozenset[tuple[int, int]]) -> list[tuple[list[str] | None, list[list[int]] | None]]:
    """Group cells into (days, hour ranges) windows: days sharing the same hours form one window."""
    by_hours: dict[frozenset[int], list[int]] = {}
    for day in range(7):
        hours = frozenset(h for d, h in cells if d == day)
        if hours:
            by_hours.setdefault(hours, []).append(day)
    out = []
    for hours, days in sorted(by_hours.items(), key=lambda item: item[1]):
        out.append(
            (
                None if len(days) == 7 else [_DAYS[d] for d in days],
                None if len(hours) == 24 else _hour_ranges(hours),
            )
        )
    return out


def _time_windows(off_cells: frozenset[tuple[int, int]], off_payload: dict[str, str]) -> list[dict[str, object]]:
    """Our first-match-wins windows for an off-peak grid, ending with a catch-all window."""
    if not off_cells:
        return []
    every = frozenset((d, h) for d in range(7) for h in range(24))
    peak_cells = every - off_cells
    if not peak_cells:
        return [{"name": "off_peak", **off_payload}]
    peak, off = _grid_windows(peak_cells), _grid_windows(off_cells)

    def named(name: str, groups, payload: dict[str, str]) -> list[dict[str, object]]:
        out = []
        for index, (days, hours) in enumerate(groups):
            window: dict[str, object] = {"name": name if index == 0 else f"{name}_{index + 1}"}
            if days is not None:
                window["days"] = days
            if hours is not None:
                window["hours_utc"] = hours
            window.update(payload)
            out.append(window)
        return out

    if len(peak) <= len(off):
        return [*named("peak", peak, {"multiplier": "1"}), {"name": "off_peak", **off_payload}]
    return [*named("off_peak", off, off_payload), {"name": "peak", "multiplier": "1"}]


def _off_peak(
    key: str,
    block: object,
    base: Mapping[str, Decimal],
    composed: bool,
    notes: list[str],
    skipped: list[str],
) -> list[dict[str, object]]:
    if not isinstance(block, Mapping):
        raise _Skip(UNMAPPABLE_FIELD, "off_peak_pricing is not an object")
    rates: dict[str, Decimal] = {}
    for name, value in block.items():
        if name in _OFF_PEAK_STRUCTURE:
            continue
        cls = _OFF_PEAK_KEYS.get(name)
        if cls is None:
            skipped.append(f"off_peak_pricing.{name}")
            continue
        rate = _mul(_price(value, f"{key!r} field 'off_peak_pricing.{name}'"), _MILLION)
        if cls not in base:
            skipped.append(f"off_peak_pricing.{name}")
            continue
        rates[cls] = rate
    cells = _off_peak_grid(block, notes)
    # Classes without an off-peak key keep their standard rate in LiteLLM.
    exact, factor = _ratio((base[c], rates.get(c, base[c])) for c in base)
    if exact and not composed:
        payload = {"multiplier": _fmt(factor if factor is not None else _ONE)}
    else:
        # LiteLLM's off-peak rates replace whatever rate is in force (long-context or service tier), which
        # is what explicit window rates do; unlisted classes keep their rate (multiplier 1).
        payload = {c: _fmt(rates[c]) for c in CLASSES if c in rates}
        payload["multiplier"] = "1"
    return _time_windows(cells, payload)


def _non_token_prices(spec: Mapping[str, object], read: set[str]) -> bool:
    """True if the entry bills something other than tokens (images, seconds, characters, queries...)."""
    for name, value in spec.items():
        if name in read or name == _WEB_SEARCH_KEY or not _is_price_field(name) or "multiplier" in name:
            continue
        if _TOKEN_KEY.match(name) or name in ("off_peak_pricing", "tiered_pricing"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return True
        if isinstance(value, Mapping) and any(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value.values()
        ):
            return True
    return False


def _parse_entry(key: str, spec: Mapping[str, object], provider: str, litellm_provider: str) -> _Entry:
    """Parse one model entry into the rates LiteLLM would charge; raises _Skip if it cannot be imported."""
    notes: list[str] = []
    skipped: list[str] = []
    given, names, read, comparator = _token_rates(key, spec, provider, notes, skipped)
    base = given.get((_STANDARD, 0), {})
    if "input" not in base and "output" not in base:
        raise _Skip(NON_TOKEN_MODE if _non_token_prices(spec, read) else NO_TOKEN_PRICES)
    if all(rate == 0 for row in given.values() for rate in row.values()) and _non_token_prices(spec, read):
        # A zero token rate next to a real per-image/per-second price is not "free": it is unpriced here.
        raise _Skip(NON_TOKEN_MODE)

    classes = tuple(c for c in CLASSES if c in base)
    given, thresholds = _placeable(given, names, read, base, skipped)
    tiers = tuple(t for t in ("batch", "flex", "priority") if any(slot[0] == t for slot in given))
    given_classes = {slot: frozenset(row) for slot, row in given.items()}
    table = _build_table(given, thresholds, tiers, classes)
    for n in thresholds:
        kept = [c for c in classes if c not in given_classes.get((_STANDARD, n), frozenset())]
        if kept:
            notes.append(
                f"above {n} tokens LiteLLM has no rate for {', '.join(kept)}, so the base rate applies (as in LiteLLM)"
            )

    regions = _regions(key, spec, read, notes, skipped)
    per_1k = _per_1k_calls(key, spec, read, notes)
    windows: list[dict[str, object]] = []
    if "off_peak_pricing" in spec:
        windows = _off_peak(
            key, spec["off_peak_pricing"], table[(_STANDARD, 0)], bool(thresholds or tiers), notes, skipped
        )
        read.add("off_peak_pricing")

    # Every price-bearing field we did not read is reported, never silently dropped.
    for name in spec:
        if _is_price_field(name) and name not in read and name != "provider_specific_entry":
            skipped.append(name)

    source = spec.get("source")
    model_id, aliases = _model_id(key, litellm_provider, provider)
    return _Entry(
        key=key,
        provider=provider,
        model_id=model_id,
        source=source.strip() if isinstance(source, str) and source.strip() else f"litellm:{key}",
        classes=classes,
        thresholds=thresholds,
        comparator=comparator,
        tiers=tiers,
        table=table,
        given=given_classes,
        windows=windows,
        per_1k_calls=per_1k,
        regions=regions,
        notes=notes,
        skipped_fields=sorted(set(skipped)),
        aliases=aliases,
        copy_of=_copy_of(provider, model_id),
        context_window=_limit(spec.get("max_input_tokens")),
        max_output=_limit(spec.get("max_output_tokens")),
    )


def _token_rates(key: str, spec: Mapping[str, object], provider: str, notes: list[str], skipped: list[str]):
    """The entry's token rates: its ``*_cost_per_token`` keys (see :func:`_token_fields`), or its
    ``tiered_pricing`` range table when it has one, which LiteLLM then bills from.

    Returns ``(given, names, read, comparator)``: ``names`` is empty for a range table, and ``comparator`` is how
    a prompt crosses a threshold (``>=`` for the providers that bill from the threshold itself).
    """
    given, names, read = _token_fields(key, spec, notes, skipped)
    comparator = ">=" if provider in _INCLUSIVE_THRESHOLD_PROVIDERS else ">"
    if "tiered_pricing" in spec:
        tiered = _tiered_pricing(key, spec, notes)
        if tiered is None:
            skipped.append("tiered_pricing")
        else:
            # LiteLLM bills from the range table whenever it has one; the flat keys then go unused.
            flat = given.get((_STANDARD, 0), {})
            if any(flat.get(c, v) != v for c, v in tiered[(_STANDARD, 0)].items()):
                notes.append("flat token keys differ from the first tiered_pricing range; used the ranges")
            skipped.extend(name for (tier, n, _), name in names.items() if tier != _STANDARD or n)
            given, names = tiered, {}
            comparator = ">"  # ranges are lo < prompt <= hi for every provider
            read.add("tiered_pricing")
    return given, names, read, comparator


def _placeable(
    given: dict[tuple[str, int], dict[str, Decimal]],
    names: Mapping[tuple[str, int, str], str],
    read: set[str],
    base: Mapping[str, Decimal],
    skipped: list[str],
) -> tuple[dict[tuple[str, int], dict[str, Decimal]], tuple[int, ...]]:
    """The long-context thresholds LiteLLM detects, and ``given`` without the rates the schema has no place for
    (each reported as skipped): a rate for a threshold LiteLLM never detects, or for a class with no base rate
    to fall back from. Returns ``(given, thresholds)``; ``given``'s rows are trimmed in place."""
    # A threshold exists only through the standard input key, as in LiteLLM.
    thresholds = tuple(sorted(n for (tier, n), row in given.items() if tier == _STANDARD and n and "input" in row))
    for (tier, n, cls), name in names.items():
        if (n and n not in thresholds) or cls not in base:
            skipped.append(name)
            read.discard(name)
            del given[(tier, n)][cls]
    return {slot: row for slot, row in given.items() if row}, thresholds


def _regions(
    key: str, spec: Mapping[str, object], read: set[str], notes: list[str], skipped: list[str]
) -> dict[str, Decimal]:
    """Regional uplifts: LiteLLM's regional multiplier keys, and Anthropic's inference_geo uplift
    (``provider_specific_entry.us``/``.eu``), which is a data-residency region in our terms."""
    regions: dict[str, Decimal] = {}
    for name, region in _REGION_KEYS.items():
        if name in spec:
            regions[region] = _multiplier(spec[name], f"{key!r} field {name!r}")
            read.add(name)
    specific = spec.get("provider_specific_entry")
    if isinstance(specific, Mapping):
        for name, value in specific.items():
            if name == "fast":
                skipped.append("provider_specific_entry.fast")
            elif name in ("us", "eu") and isinstance(value, (int, float)) and not isinstance(value, bool):
                factor = _multiplier(value, f"{key!r} field 'provider_specific_entry.{name}'")
                if regions.setdefault(name, factor) != factor:
                    notes.append(f"provider_specific_entry.{name} disagrees with the regional uplift; kept the uplift")
    return regions


def _per_1k_calls(key: str, spec: Mapping[str, object], read: set[str], notes: list[str]) -> dict[str, Decimal]:
    """Per-call fees in USD per 1,000 calls: web search, at LiteLLM's medium search-context size."""
    per_1k: dict[str, Decimal] = {}
    search = spec.get(_WEB_SEARCH_KEY)
    if isinstance(search, Mapping) and _WEB_SEARCH_SIZE in search:
        medium = _price(search[_WEB_SEARCH_SIZE], f"{key!r} field '{_WEB_SEARCH_KEY}.{_WEB_SEARCH_SIZE}'")
        per_1k["web_search"] = _mul(medium, _THOUSAND)
        read.add(_WEB_SEARCH_KEY)
        if any(v != search[_WEB_SEARCH_SIZE] for v in search.values()):
            notes.append("web search priced at the medium context size")
    return per_1k


def _model_id(key: str, litellm_provider: str, provider: str) -> tuple[str, tuple[str, ...]]:
    """Our id for a LiteLLM key (lower case, routing prefix stripped) and the aliases it needs; raises
    ``_Skip(INVALID_ID)`` when no valid id can be made of it."""
    model_id = _strip_routing(key, litellm_provider, provider)
    if _ID_PATTERN.match(model_id):
        return model_id, ()
    # Ids must start with a letter or digit; Cloudflare's "@cf/..." names keep their spelling as an alias.
    trimmed = re.sub(r"^[^a-z0-9]+", "", model_id)
    if not _ID_PATTERN.match(trimmed):
        raise _Skip(INVALID_ID, f"id {model_id!r} has characters outside [a-z0-9._:/@+-]")
    return trimmed, (model_id,)


def _limit(value: object) -> int | None:
    """A token limit LiteLLM states (``max_input_tokens``/``max_output_tokens``), if it is a positive integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


# ---------------------------------------------------------------------------------------------------
# Encoding one entry as a period
# ---------------------------------------------------------------------------------------------------


def _adjustment(entry: _Entry, tier: str, level: int, explicit: Iterable[str]) -> dict[str, str]:
    """One service tier at one context level: ``explicit`` classes as rates, LiteLLM's fallback
    multiplier for the rest (only when some class is left)."""
    table = entry.table
    explicit = [c for c in entry.classes if c in set(explicit)]
    out = {c: _fmt(table[(tier, level)][c]) for c in explicit}
    if len(explicit) < len(entry.classes):
        out["multiplier"] = _fmt(_TIER_FALLBACK[tier])
    return out


def _service_tiers(entry: _Entry) -> tuple[dict[str, dict[str, str]], dict[int, dict[str, dict[str, str]]]]:
    """Encode the service tiers exactly.

    Returns ``(period tiers, {threshold: long-context tiers})``. A tier that is one constant multiple of
    the standard rates at every context level is ``{"multiplier": m}`` and needs nothing more. Otherwise
    the period gets the tier's rates below the first threshold (the classes LiteLLM names, the fallback
    multiplier for the rest), and every long-context tier gets its own ``service_tiers`` with the rates
    LiteLLM charges at that length, since one set of explicit rates cannot hold at every length.
    """
    table = entry.table
    period: dict[str, dict[str, str]] = {}
    uniform: dict[str, bool] = {}
    for tier in entry.tiers:
        exact, factor = _ratio(
            (table[(_STANDARD, n)][c], table[(tier, n)][c]) for n in (0, *entry.thresholds) for c in entry.classes
        )
        uniform[tier] = exact
        if exact:
            period[tier] = {"multiplier": _fmt(factor if factor is not None else _TIER_FALLBACK[tier])}
        else:
            period[tier] = _adjustment(entry, tier, 0, entry.given.get((tier, 0), frozenset()))
    per_level: dict[int, dict[str, dict[str, str]]] = {}
    if entry.thresholds and not all(uniform.values()):
        for n in entry.thresholds:
            level: dict[str, dict[str, str]] = {}
            for tier in entry.tiers:
                fallback = _TIER_FALLBACK[tier]
                exact, factor = _ratio((table[(_STANDARD, n)][c], table[(tier, n)][c]) for c in entry.classes)
                if exact:
                    level[tier] = {"multiplier": _fmt(factor if factor is not None else fallback)}
                else:
                    differs = [
                        c for c in entry.classes if table[(tier, n)][c] != _mul(table[(_STANDARD, n)][c], fallback)
                    ]
                    level[tier] = _adjustment(entry, tier, n, differs)
            per_level[n] = level
    return period, per_level


def _encode(entry: _Entry, provider_geos: Mapping[str, Decimal], base_note: str) -> dict[str, object]:
    period: dict[str, object] = {"effective_from": EFFECTIVE_FROM}
    base = entry.table[(_STANDARD, 0)]
    for cls in entry.classes:
        period[cls] = _fmt(base[cls])
    notes = list(entry.notes)
    tiers, tiers_by_level = _service_tiers(entry)
    if entry.thresholds:
        period["long_context"] = [
            {
                "threshold": n,
                "comparator": entry.comparator,
                **{c: _fmt(entry.table[(_STANDARD, n)][c]) for c in entry.classes},
                **({"service_tiers": tiers_by_level[n]} if n in tiers_by_level else {}),
            }
            for n in entry.thresholds
        ]
    if tiers:
        period["service_tiers"] = tiers
    if entry.windows:
        period["time_windows"] = entry.windows
    if entry.per_1k_calls:
        period["per_1k_calls"] = {k: _fmt(v) for k, v in sorted(entry.per_1k_calls.items())}
    if entry.regions:
        period["region_multipliers"] = {k: _fmt(v) for k, v in sorted(entry.regions.items())}
    if entry.geos and any(provider_geos.get(g) != r for g, r in entry.geos.items()):
        # A period that sets its own geo rules replaces the provider's, so repeat the shared ones.
        merged = {**provider_geos, **entry.geos}
        period["geo_multipliers"] = {k: _fmt(v) for k, v in sorted(merged.items())}
    if entry.folded:
        notes.append("folded LiteLLM copies: " + ", ".join(entry.folded))
    if entry.skipped_fields:
        notes.append("not imported: " + ", ".join(entry.skipped_fields))
    note = base_note + "".join(f"; {n}" for n in notes)
    out: dict[str, object] = {
        "id": entry.model_id,
        "aliases": list(entry.aliases),
        "source": entry.source,
        "note": note,
        "period": [period],
    }
    if entry.context_window is not None:
        out["context_window"] = entry.context_window
    if entry.max_output is not None:
        out["max_output"] = entry.max_output
    return out


# ---------------------------------------------------------------------------------------------------
# Folding copies
# ---------------------------------------------------------------------------------------------------


# Where a period has no rate for a class, the engine bills it at the next class in this chain
# (pricing/README.md, rule 7); LiteLLM treats a missing input or output price as zero.
_CLASS_FALLBACK: Mapping[str, str | None] = {
    "input": None,
    "output": None,
    "cache_read": "input",
    "cache_write": "input",
    "cache_write_1h": "cache_write",
    "reasoning": "output",
    "input_audio": "input",
    "input_image": "input",
    "output_audio": "output",
    "output_image": "output",
}


def _charge(entry: _Entry, tier: str, prompt: int, cls: str) -> Decimal:
    """Per-1M rate the entry charges for one class, for one service tier and prompt size."""
    level = 0
    for n in entry.thresholds:
        if prompt > n or (entry.comparator == ">=" and prompt == n):
            level = n
    factor = _ONE
    if tier != _STANDARD and tier not in entry.tiers:
        tier, factor = _STANDARD, _TIER_FALLBACK[tier]  # LiteLLM's fallback for a tier with no keys
    row = entry.table[(tier, level)]
    name: str | None = cls
    while name is not None and name not in row:
        name = _CLASS_FALLBACK[name]
    return _mul(row[name], factor) if name is not None else Decimal(0)


def _copy_factor(copy: _Entry, base: _Entry) -> Decimal | None:
    """The constant r such that the copy charges exactly r times the base for every request, or None.

    "Every request" means every service tier (both must name the same ones), every prompt size around
    either's thresholds, and every token class either prices (with the usual fallbacks for absent classes).
    Time windows must be identical, region rules compatible, and the copy's per-call fees a subset of
    the base's (LiteLLM omits the web-search fee on many copies; the vendor fee does not change with
    the data zone, so the base's fee is kept).
    """
    if (
        copy.windows != base.windows
        # The same service tiers: the engine prices a tier only where the period lists it, so a copy with a
        # batch price cannot hide behind a base without one (LiteLLM would bill both at its fallback).
        or copy.tiers != base.tiers
        or any(base.regions.get(region) != factor for region, factor in copy.regions.items())
        or any(base.per_1k_calls.get(name) != fee for name, fee in copy.per_1k_calls.items())
    ):
        return None
    tiers = (_STANDARD, *base.tiers)
    prompts = sorted({0} | {p for n in (*copy.thresholds, *base.thresholds) for p in (n, n + 1)})
    classes = [c for c in CLASSES if c in copy.classes or c in base.classes]
    exact, factor = _ratio(
        (_charge(base, tier, prompt, cls), _charge(copy, tier, prompt, cls))
        for tier in tiers
        for prompt in prompts
        for cls in classes
    )
    if not exact:
        return None
    factor = factor if factor is not None else _ONE
    explicit_window_rates = any(c in window for window in copy.windows for c in CLASSES)
    return None if explicit_window_rates and factor != _ONE else factor


def _fold(models: dict[str, _Entry]) -> tuple[int, int, int]:
    """Fold exact-multiple copies into their base model, in place.

    Returns ``(geo copies folded, regional copies folded, copies kept under their own id)``.
    """
    folded_geo = folded_region = kept = 0
    for model_id in sorted(models):
        entry = models[model_id]
        if entry.copy_of is None:
            continue
        kind, qualifier, base_id = entry.copy_of
        base = models.get(base_id)
        if base is None or base.copy_of is not None:
            kept += 1
            continue
        if kind == "geo" and qualifier not in _FOLDABLE_GEOS:
            kept += 1
            entry.notes.append(f"kept apart from {base_id}: the resolver does not strip the {qualifier}. prefix")
            continue
        factor = _copy_factor(entry, base)
        target = base.geos if kind == "geo" else base.regions
        if factor is None or target.get(qualifier, factor) != factor:
            kept += 1
            entry.notes.append(f"not folded into {base_id}: its prices are not one constant multiple of it")
            continue
        target[qualifier] = factor
        base.folded.append(f"{entry.key} ({kind} {qualifier} x{_fmt(factor)})")
        del models[model_id]
        if kind == "geo":
            folded_geo += 1
        else:
            folded_region += 1
    return folded_geo, folded_region, kept


def _same_prices(a: _Entry, b: _Entry) -> bool:
    return (a.classes, a.thresholds, a.comparator, a.table, a.windows, a.per_1k_calls, a.regions) == (
        b.classes,
        b.thresholds,
        b.comparator,
        b.table,
        b.windows,
        b.per_1k_calls,
        b.regions,
    )


def _shared_geos(models: Iterable[_Entry]) -> dict[str, Decimal]:
    """Geo multipliers that are the same for every folded model of a provider."""
    seen: dict[str, set[Decimal]] = {}
    for entry in models:
        for geo, factor in entry.geos.items():
            seen.setdefault(geo, set()).add(factor)
    return {geo: next(iter(values)) for geo, values in sorted(seen.items()) if len(values) == 1}


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------

_VERSION_IN_NAME = re.compile(r"litellm[-_ ]v?(\d+(?:\.\d+){1,3})", re.IGNORECASE)


def _litellm_version(source_name: str) -> str | None:
    match = _VERSION_IN_NAME.search(source_name)
    return match[1] if match else None


def convert_litellm(
    data: Mapping[str, object],
    *,
    source_name: str,
    source_sha256: str | None = None,
    imported_at: str | None = None,
    litellm_version: str | None = None,
) -> tuple[dict[str, object], ImportReport]:
    """Convert a parsed LiteLLM price map into our imported-layer document.

    Args:
        data: the parsed ``model_prices_and_context_window.json`` (a mapping of key -> entry).
        source_name: file name recorded in ``meta`` and in every note (a LiteLLM version found in it,
            as in ``litellm-1.109.1-...json``, is recorded too).
        source_sha256: hex digest of the file, recorded for provenance.
        imported_at: passed through to ``meta.converted_at`` (an ISO date); never read from the clock.
        litellm_version: the LiteLLM release the map comes from (``pricing update --from-installed`` reads
            it from the package metadata); else it is read from ``source_name`` when that carries it.

    Returns:
        ``(document, report)``. The document is JSON-ready, deterministic and sorted.

    Raises:
        ValueError: ``data`` or an entry is not an object, a price is not a non-negative number, a
            multiplier is not positive, or ``litellm_provider`` is not a string. The key is named.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"LiteLLM price map must be a JSON object, got {type(data).__name__}")
    version = litellm_version or _litellm_version(source_name)
    label = version or source_name
    digest = f" (sha256 {source_sha256[:12]})" if source_sha256 else ""
    base_note = f"imported from LiteLLM {label}{digest}, no price history"
    table_version = "litellm-" + (version or (source_sha256[:12] if source_sha256 else "unknown"))
    if version and source_sha256:
        table_version += f"+{source_sha256[:12]}"

    # The steps, in order: read every entry, fold regional/geo copies into their base model, attach the
    # alias_of names, then encode each provider's table.
    found = _read_map(data)
    folded_geo = folded_region = unfolded = 0
    for provider in sorted(found.by_provider):
        geo, region, kept = _fold(found.by_provider[provider])
        folded_geo += geo
        folded_region += region
        unfolded += kept
    n_aliases = _apply_aliases(found.alias_keys, found.by_key, found.by_provider, found.skipped)
    providers, per_provider, field_counts = _encode_providers(found.by_provider, table_version, base_note)

    report = ImportReport(
        source=source_name,
        source_sha256=source_sha256,
        entries_read=found.entries_read,
        converted=sum(per_provider.values()),
        folded_geo=folded_geo,
        folded_region=folded_region,
        unfolded_copies=unfolded,
        skipped=tuple(sorted(found.skipped.items())),
        per_provider=tuple(sorted(per_provider.items())),
        skipped_fields=tuple(sorted(field_counts.items(), key=lambda item: (-item[1], item[0]))),
        ignored_keys=tuple(sorted(found.ignored)),
        skip_details=tuple(found.details),
        aliases=n_aliases,
        litellm_version=version,
    )
    return _document(report, imported_at, providers), report


@dataclass
class _Found:
    """What one pass over a LiteLLM map collects (:func:`_read_map`)."""

    skipped: Counter[str] = field(default_factory=lambda: Counter({reason: 0 for reason in SKIP_REASONS}))
    ignored: list[str] = field(default_factory=list)  # non-model keys ("sample_spec")
    details: list[tuple[str, str]] = field(default_factory=list)  # (key, why) for unmappable and invalid entries
    by_provider: dict[str, dict[str, _Entry]] = field(default_factory=dict)  # provider -> id -> entry
    by_key: dict[str, _Entry] = field(default_factory=dict)  # LiteLLM key -> the entry that prices it (alias_of)
    alias_keys: list[tuple[str, str]] = field(default_factory=list)  # (alias key, target key)
    entries_read: int = 0


def _read_map(data: Mapping[str, object]) -> _Found:
    """Check and parse every entry of a LiteLLM map; count each skip by reason. The first key that gives an id
    wins; a later key with the same id is a ``duplicate_id`` (noted on the first when its prices differ).

    Raises ``ValueError`` naming the key for a malformed entry (see :func:`convert_litellm`).
    """
    found = _Found()
    for key, spec in data.items():
        if not isinstance(key, str):
            raise ValueError(f"LiteLLM key {key!r} is not a string")
        if key in _NON_MODEL_KEYS:
            found.ignored.append(key)
            continue
        found.entries_read += 1
        if not isinstance(spec, Mapping):
            raise ValueError(f"LiteLLM key {key!r}: entry must be a JSON object, got {type(spec).__name__}")
        for name, value in spec.items():
            if _is_price_field(name) and name != "provider_specific_entry":
                _validate_prices(key, name, value)
        litellm_provider = spec.get("litellm_provider")
        if litellm_provider is None and isinstance(spec.get("alias_of"), str):
            # LiteLLM >= 1.110 writes moving names ("claude-sonnet-latest") as {"alias_of": "<key>"}.
            found.alias_keys.append((key, spec["alias_of"]))
            continue
        if litellm_provider is None:
            found.skipped[NOT_A_MODEL] += 1
            continue
        if not isinstance(litellm_provider, str) or not litellm_provider.strip():
            raise ValueError(f"LiteLLM key {key!r}: litellm_provider must be a non-empty string")
        provider = _provider_id(litellm_provider.strip())
        try:
            entry = _parse_entry(key, spec, provider, litellm_provider.strip())
        except _Skip as skip:
            found.skipped[skip.reason] += 1
            if skip.reason in (UNMAPPABLE_FIELD, INVALID_ID):
                found.details.append((key, str(skip)))
            continue
        models = found.by_provider.setdefault(provider, {})
        first = models.get(entry.model_id)
        if first is not None:
            found.skipped[DUPLICATE_ID] += 1
            if not _same_prices(first, entry):
                first.notes.append(f"LiteLLM key {key!r} gives this id other prices and was ignored")
            elif first.model_id == entry.model_id:
                found.by_key[key] = first
            continue
        models[entry.model_id] = entry
        found.by_key[key] = entry
    return found


def _encode_providers(
    by_provider: Mapping[str, dict[str, _Entry]], table_version: str, base_note: str
) -> tuple[dict[str, object], dict[str, int], Counter[str]]:
    """Each provider's table (meta and sorted models). Returns ``(providers, models per provider, count of each
    skipped LiteLLM field)``."""
    providers: dict[str, object] = {}
    per_provider: dict[str, int] = {}
    field_counts: Counter[str] = Counter()
    for provider in sorted(by_provider):
        models = by_provider[provider]
        # An alias must not shadow another model's id (ids and aliases share one index per provider).
        for entry in models.values():
            entry.aliases = tuple(a for a in entry.aliases if a not in models)
        shared = _shared_geos(models.values())
        meta: dict[str, object] = {
            "provider": provider,
            "provider_names": _provider_names(provider),
            "version": table_version,
            "currency": "USD",
        }
        if shared:
            meta["geo_multipliers"] = {g: _fmt(r) for g, r in shared.items()}
        providers[provider] = {
            "meta": meta,
            "model": [_encode(models[mid], shared, base_note) for mid in sorted(models)],
        }
        per_provider[provider] = len(models)
        for entry in models.values():
            field_counts.update(entry.skipped_fields)
    return providers, per_provider, field_counts


def _document(report: ImportReport, imported_at: str | None, providers: dict[str, object]) -> dict[str, object]:
    """The imported-layer document: provenance and counts in ``meta``, then the providers' tables."""
    return {
        "meta": {
            "tool": TOOL_NAME,
            "generated": "do not hand-edit; regenerate with otel-costattr pricing update (--from-installed litellm | FILE)",
            "source": report.source,
            "source_sha256": report.source_sha256,
            "litellm_version": report.litellm_version,
            "converted_at": imported_at,
            "counts": {
                "entries_read": report.entries_read,
                "converted": report.converted,
                "folded_geo": report.folded_geo,
                "folded_region": report.folded_region,
                "unfolded_copies": report.unfolded_copies,
                "aliases": report.aliases,
                "skipped": dict(report.skipped),
            },
        },
        "providers": providers,
    }


def _apply_aliases(alias_keys: list[tuple[str, str]], by_key: Mapping[str, _Entry],
                   by_provider: Mapping[str, dict[str, _Entry]], skipped: Counter[str]) -> int:
    """Write each ``alias_of`` entry as an alias of the model its target key was imported as.

    The alias is the LiteLLM key without a routing prefix naming the target's provider
    (``bedrock/claude-opus-latest`` -> ``claude-opus-latest``). A target folded into its base model as a geo or
    regional copy is reached through the base only when the copy cost exactly what the base costs (factor 1);
    otherwise, or when the target was not imported, or the alias would shadow another name, the alias is
    skipped (``dangling_alias`` / ``duplicate_id``). Returns the number written.
    """
    written = 0
    for key, target_key in sorted(alias_keys):
        target = by_key.get(target_key)
        if target is None:
            skipped[DANGLING_ALIAS] += 1
            continue
        models = by_provider[target.provider]
        if models.get(target.model_id) is not target:
            base = models.get(target.copy_of[2]) if target.copy_of else None
            factor = None
            if base is not None:
                kind, qualifier, _ = target.copy_of  # type: ignore[misc]
                factor = (base.geos if kind == "geo" else base.regions).get(qualifier)
            if base is None or factor != _ONE:
                skipped[DANGLING_ALIAS] += 1
                continue
            target = base
        name = key.strip().lower()
        head, sep, rest = name.partition("/")
        if sep and rest and (head == target.provider or _provider_id(head) == target.provider):
            name = rest
        taken = name in models or any(name in e.aliases for e in models.values())
        if taken or not _ID_PATTERN.match(name):
            skipped[DUPLICATE_ID if taken else INVALID_ID] += 1
            continue
        target.aliases = (*target.aliases, name)
        target.notes.append(f"LiteLLM alias {key!r} (alias_of {target_key!r})")
        written += 1
    return written


def dumps(document: Mapping[str, object]) -> str:
    """Serialise a document the way the committed file is written (sorted keys, 1-space indent)."""
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _default_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), timezone.utc).date().isoformat()
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"SOURCE_DATE_EPOCH must be a Unix timestamp, got {epoch!r}") from exc
    return datetime.now(timezone.utc).date().isoformat()


def import_litellm_file(
    path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    imported_at: str | None = None,
) -> ImportReport:
    """Read a LiteLLM price file, convert it, and write the imported layer atomically.

    Args:
        path: the LiteLLM ``model_prices_and_context_window.json``.
        out_path: where to write; defaults to ``pricing/imported/litellm.json`` under the current
            directory (the repository layout). Parent directories are created.
        imported_at: ISO date recorded as ``meta.converted_at``; defaults to the UTC date of
            ``SOURCE_DATE_EPOCH`` when that is set (reproducible builds), else today's UTC date.

    Returns:
        The :class:`ImportReport`.

    Raises:
        ValueError: the file is not JSON or is malformed (see :func:`convert_litellm`).
        OSError: the file cannot be read or the output cannot be written.
    """
    document, report = convert_file(path, imported_at=imported_at)
    write_document(document, Path(out_path) if out_path is not None else DEFAULT_OUT_PATH)
    return report


# ---------------------------------------------------------------------------------------------------
# Updating: the installed package, what changed, and curated entries to review
# ---------------------------------------------------------------------------------------------------

_BUNDLED_MAP = "litellm/model_prices_and_context_window_backup.json"


def installed_litellm() -> tuple[Path, str]:
    """The price map bundled with the installed ``litellm`` package and the package's version.

    Found through the package metadata, without importing ``litellm`` (its import fetches the map over the
    network and takes seconds).

    Raises:
        ValueError: ``litellm`` is not installed, or its wheel has no bundled price map; the message says how
            to proceed.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("litellm")
    except metadata.PackageNotFoundError:
        raise ValueError("the litellm package is not installed in this Python environment; install it "
                         "(pip install litellm) or pass LiteLLM's model_prices_and_context_window.json: "
                         "otel-costattr pricing update FILE") from None
    path = Path(str(dist.locate_file(_BUNDLED_MAP)))
    if not path.is_file():
        raise ValueError(f"litellm {dist.version} has no bundled price map at {path}; pass the JSON file: "
                         "otel-costattr pricing update FILE")
    return path, dist.version


def _rates_per_million(period: Mapping[str, object]) -> dict[str, Decimal]:
    return {c: Decimal(str(period[c])) for c in CLASSES if c in period}


def _index(document: Mapping[str, object]) -> dict[tuple[str, str], Mapping[str, object]]:
    out: dict[tuple[str, str], Mapping[str, object]] = {}
    providers = document.get("providers") or {}
    assert isinstance(providers, Mapping)
    for provider, block in providers.items():
        for model in block.get("model", ()):  # type: ignore[union-attr]
            out[(provider, model["id"])] = model
    return out


def _comparable(model: Mapping[str, object]) -> dict[str, object]:
    # The note names the LiteLLM release and the source URL is provenance: neither is a price.
    return {k: v for k, v in model.items() if k not in ("note", "source")}


@dataclass(frozen=True)
class TableDiff:
    """What changed between two imported layers (keys are ``provider/id``)."""

    old_version: str | None
    new_version: str | None
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[str, tuple[str, ...]], ...]  # (model, what changed)

    def lines(self, limit: int = 40) -> list[str]:
        out = [f"imported layer: LiteLLM {self.old_version or '?'} -> {self.new_version or '?'}: "
               f"{len(self.added)} new, {len(self.removed)} removed, {len(self.changed)} changed"]
        for title, items in (("new", self.added), ("removed", self.removed)):
            if items:
                shown = ", ".join(items[:limit]) + (f", and {len(items) - limit} more" if len(items) > limit else "")
                out.append(f"  {title}: {shown}")
        for name, what in self.changed[:limit]:
            out.append(f"  changed {name}: {'; '.join(what)}")
        if len(self.changed) > limit:
            out.append(f"  ... and {len(self.changed) - limit} more changed models")
        return out


def diff_imported(old: Mapping[str, object], new: Mapping[str, object]) -> TableDiff:
    """Compare two imported-layer documents model by model: new and removed ids, and for each model in
    both, its base rates (``input 1.36 -> 0.70`` per 1M), aliases, limits and any other pricing rule."""
    a, b = _index(old), _index(new)
    changed: list[tuple[str, tuple[str, ...]]] = []
    for key in sorted(a.keys() & b.keys()):
        ma, mb = _comparable(a[key]), _comparable(b[key])
        if ma == mb:
            continue
        what: list[str] = []
        pa, pb = ma["period"][0], mb["period"][0]  # type: ignore[index]
        ra, rb = _rates_per_million(pa), _rates_per_million(pb)
        for cls in CLASSES:
            if ra.get(cls) != rb.get(cls):
                what.append(f"{cls} {_fmt(ra[cls]) if cls in ra else 'none'} -> {_fmt(rb[cls]) if cls in rb else 'none'}")
        rest_a = {k: v for k, v in pa.items() if k not in CLASSES}
        rest_b = {k: v for k, v in pb.items() if k not in CLASSES}
        for k in sorted(rest_a.keys() | rest_b.keys()):
            if rest_a.get(k) != rest_b.get(k):
                what.append(f"{k} changed")
        for k in ("aliases", "context_window", "max_output"):
            if ma.get(k) != mb.get(k):
                what.append(f"{k} {ma.get(k)} -> {mb.get(k)}")
        if len(ma["period"]) != len(mb["period"]):  # type: ignore[arg-type]
            what.append("periods changed")
        changed.append((f"{key[0]}/{key[1]}", tuple(what) or ("other fields changed",)))
    meta_a, meta_b = old.get("meta") or {}, new.get("meta") or {}
    return TableDiff(
        old_version=meta_a.get("litellm_version"),  # type: ignore[union-attr]
        new_version=meta_b.get("litellm_version"),  # type: ignore[union-attr]
        added=tuple(f"{p}/{m}" for p, m in sorted(b.keys() - a.keys())),
        removed=tuple(f"{p}/{m}" for p, m in sorted(a.keys() - b.keys())),
        # price changes first, then everything else (limits, aliases, notes of rules)
        changed=tuple(sorted(changed, key=lambda c: (not any(w.split(" ", 1)[0] in CLASSES for w in c[1]), c[0]))),
    )


@dataclass(frozen=True)
class Disagreement:
    """A curated model whose current rates differ from the imported LiteLLM entry of the same name."""

    model: str  # provider/id of the curated entry
    imported: str  # provider/id of the LiteLLM entry
    rates: tuple[tuple[str, Decimal, Decimal], ...]  # (class, curated per 1M, LiteLLM per 1M)
    new: bool  # True when this update made LiteLLM disagree (the previous import agreed or lacked it)

    def line(self) -> str:
        diffs = ", ".join(f"{c} ours {_fmt(ours)} vs LiteLLM {_fmt(theirs)}" for c, ours, theirs in self.rates)
        return f"  {'NEW ' if self.new else ''}{self.model}: {diffs}"


def curated_disagreements(curated: Iterable[object], new: Mapping[str, object],
                          old: Mapping[str, object] | None = None) -> list[Disagreement]:
    """Curated entries (``ProviderTable`` objects of the curated files) whose latest period prices a class
    differently from the imported entry of the same provider and id (or alias). Only classes both price are
    compared. Curated rates are never changed here: the list is for a person to review against the vendor's
    page."""
    million = Decimal(1_000_000)
    b = _index(new)
    a = _index(old) if old is not None else {}
    by_alias: dict[tuple[str, str], tuple[str, str]] = {}
    for (prov, mid), model in b.items():
        for alias in model.get("aliases", ()):  # type: ignore[union-attr]
            by_alias.setdefault((prov, alias), (prov, mid))
    out: list[Disagreement] = []
    for table in curated:
        for entry in table.models.values():  # type: ignore[attr-defined]
            key = None
            for name in (entry.id, *entry.aliases):
                key = (entry.provider, name) if (entry.provider, name) in b else by_alias.get((entry.provider, name))
                if key is not None:
                    break
            if key is None:
                continue
            ours = {c: r * million for c, r in entry.periods[-1].rates.items()}
            theirs = _rates_per_million(b[key]["period"][0])  # type: ignore[index]
            diffs = tuple((c, ours[c].normalize(), theirs[c]) for c in CLASSES
                          if c in ours and c in theirs and ours[c] != theirs[c])
            if not diffs:
                continue
            before = _rates_per_million(a[key]["period"][0]) if key in a else {}  # type: ignore[index]
            new_flag = any(before.get(c) != theirs for c, _, theirs in diffs)
            out.append(Disagreement(f"{entry.provider}/{entry.id}", f"{key[0]}/{key[1]}", diffs, new_flag))
    out.sort(key=lambda d: (not d.new, d.model))
    return out


def write_document(document: Mapping[str, object], target: Path) -> None:
    """Write ``document`` to ``target`` atomically (a reader never sees half a pricing table)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(dumps(document))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_file(path: str | os.PathLike[str], *, litellm_version: str | None = None,
                 imported_at: str | None = None) -> tuple[dict[str, object], ImportReport]:
    """Read and convert one LiteLLM price file (see :func:`convert_litellm`).

    Raises:
        ValueError: the file is not JSON or is malformed.
        OSError: the file cannot be read.
    """
    source = Path(path)
    raw = source.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: not a JSON file ({exc})") from exc
    name = source.name
    if litellm_version and not _litellm_version(name):
        name = f"litellm-{litellm_version}-{name}"
    return convert_litellm(data, source_name=name, source_sha256=hashlib.sha256(raw).hexdigest(),
                           imported_at=imported_at or _default_date(), litellm_version=litellm_version)
