"""Token usage that the fake vendor reports, and the request headers that control it.

The control headers are plain HTTP headers, so a test or the demo passes them with the SDKs'
own ``extra_headers=`` argument and needs no test-only client code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "MODEL_HEADER",
    "REQUEST_KEY_HEADER",
    "SCENARIO_HEADER",
    "SERVICE_TIER_HEADER",
    "USAGE_HEADER",
    "ResolvedUsage",
    "Usage",
    "fake_headers",
]

USAGE_HEADER = "x-fake-usage"
"""Per-request usage, e.g. ``input=1200,cache_read=1024,output=300`` (see :class:`Usage`)."""

MODEL_HEADER = "x-fake-model"
"""Per-request response model, sent back verbatim as the response's ``model``."""

SCENARIO_HEADER = "x-fake-scenario"
"""Comma-separated scenarios: ``error-NNN``, ``flaky``, ``flaky-N``, ``malformed-tool``, ``no-usage``."""

REQUEST_KEY_HEADER = "x-fake-request-key"
"""Names one logical request across SDK retries (for ``flaky``); defaults to a hash of the body."""

SERVICE_TIER_HEADER = "x-fake-service-tier"
"""Per-request response service tier (OpenAI ``service_tier``, Anthropic ``usage.service_tier``)."""


@dataclass(frozen=True)
class Usage:
    """Token counts to report, each in the *vendor-native* field it names.

    ``None`` means "not specified": a header overlays only the keys it names on the server's
    default, and :meth:`resolved` derives whatever is still unspecified.

    * ``input``: OpenAI ``prompt_tokens`` (Chat, Embeddings; also Embeddings ``total_tokens``) or
      ``input_tokens`` (Responses), which **include** cached and cache-written tokens. Anthropic
      ``input_tokens``, which is the **uncached** input only: cache reads and writes are not in it.
    * ``cache_read``: OpenAI ``*_tokens_details.cached_tokens``; Anthropic ``cache_read_input_tokens``.
    * ``cache_write``: OpenAI ``*_tokens_details.cache_write_tokens``; Anthropic
      ``cache_creation_input_tokens``.
    * ``cache_write_5m`` / ``cache_write_1h``: Anthropic
      ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens`` (OpenAI: not sent).
    * ``cache_write_30m`` / ``cache_write_12h``: OpenAI Responses
      ``input_tokens_details.cache_write_tokens_details.ttl_30m_tokens`` / ``ttl_12h_tokens``
      (Chat Completions and Anthropic: not sent).
    * ``output``: OpenAI ``completion_tokens`` / ``output_tokens``; Anthropic ``output_tokens``.
      Both **include** reasoning.
    * ``reasoning``: OpenAI ``*_tokens_details.reasoning_tokens``; Anthropic
      ``output_tokens_details.thinking_tokens``.
    * ``total``: OpenAI ``total_tokens`` (default ``input + output``; Anthropic: not sent).

    The fake never reconciles keys: what you give is what is sent, so inconsistent usage (e.g.
    ``cache_write=100`` with a 1500/500 split) reaches the SDK as given. That is deliberate, so that
    tests can feed a cost processor exactly the vendor data they want.
    """

    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    cache_write_5m: int | None = None
    cache_write_1h: int | None = None
    cache_write_30m: int | None = None
    cache_write_12h: int | None = None
    reasoning: int | None = None
    total: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            # bool is an int subclass; "reasoning=True" is a caller mistake, not a count.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"Usage.{field.name} must be a non-negative int or None, got {value!r}")

    @classmethod
    def parse(cls, text: str) -> Usage:
        """Parse the ``x-fake-usage`` header form: ``key=int`` pairs separated by commas.

        Whitespace around keys and values is ignored and an empty string gives ``Usage()``.
        Raises :class:`ValueError` naming the offending part for an unknown key, a repeated key or
        a value that is not a non-negative integer; the server turns that into an HTTP 400, so a
        typo in a test never silently falls back to the default usage.
        """
        names = {field.name for field in dataclasses.fields(cls)}
        values: dict[str, int] = {}
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or key not in names:
                raise ValueError(f"{USAGE_HEADER}: unknown or malformed entry {part!r}; keys are {sorted(names)}")
            if key in values:
                raise ValueError(f"{USAGE_HEADER}: key {key!r} given twice")
            if not raw.isdigit():
                raise ValueError(f"{USAGE_HEADER}: {key} must be a non-negative integer, got {raw!r}")
            values[key] = int(raw)
        return cls(**values)

    def to_header(self) -> str:
        """The ``x-fake-usage`` header value for the keys that are set (inverse of :meth:`parse`)."""
        return ",".join(
            f"{field.name}={getattr(self, field.name)}"
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None
        )

    def overlay(self, other: Usage) -> Usage:
        """A copy of ``self`` with every key that ``other`` sets taken from ``other``."""
        changes = {
            field.name: getattr(other, field.name)
            for field in dataclasses.fields(other)
            if getattr(other, field.name) is not None
        }
        return dataclasses.replace(self, **changes)

    def resolved(self) -> ResolvedUsage:
        """Concrete counts, with the documented defaults for unspecified keys.

        * ``input``, ``output``, ``cache_read``, ``reasoning``: 0.
        * ``cache_write``: the sum of the Anthropic split (5m+1h) if either part is given, else of
          the OpenAI split (30m+12h) if either part is given, else 0.
        * A TTL split with neither part given puts all of ``cache_write`` in the default TTL
          (5m for Anthropic, 30m for OpenAI); with one part given, the other is the rest of
          ``cache_write``, clamped at 0.
        * ``total``: ``input + output`` (the OpenAI convention, where input includes cached).
        """
        cache_write = self.cache_write
        if cache_write is None:
            if self.cache_write_5m is not None or self.cache_write_1h is not None:
                cache_write = (self.cache_write_5m or 0) + (self.cache_write_1h or 0)
            else:
                cache_write = (self.cache_write_30m or 0) + (self.cache_write_12h or 0)
        w5m, w1h = _split(cache_write, self.cache_write_5m, self.cache_write_1h)
        w30m, w12h = _split(cache_write, self.cache_write_30m, self.cache_write_12h)
        inp, out = self.input or 0, self.output or 0
        return ResolvedUsage(
            input=inp,
            output=out,
            cache_read=self.cache_read or 0,
            cache_write=cache_write,
            cache_write_5m=w5m,
            cache_write_1h=w1h,
            cache_write_30m=w30m,
            cache_write_12h=w12h,
            reasoning=self.reasoning or 0,
            total=inp + out if self.total is None else self.total,
        )


def _split(total: int, default_part: int | None, other_part: int | None) -> tuple[int, int]:
    if default_part is None and other_part is None:
        return total, 0
    if default_part is None:
        return max(total - (other_part or 0), 0), other_part or 0
    if other_part is None:
        return default_part, max(total - default_part, 0)
    return default_part, other_part


@dataclass(frozen=True)
class ResolvedUsage:
    """:class:`Usage` with every key concrete; see :meth:`Usage.resolved` for the rules."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_5m: int
    cache_write_1h: int
    cache_write_30m: int
    cache_write_12h: int
    reasoning: int
    total: int


def fake_headers(
    *,
    usage: Usage | Mapping[str, int] | None = None,
    scenario: str | Iterable[str] | None = None,
    model: str | None = None,
    request_key: str | None = None,
    service_tier: str | None = None,
) -> dict[str, str]:
    """Build the control headers for one call, for the SDKs' ``extra_headers=`` argument.

    ``usage`` may be a :class:`Usage` or a mapping of its keys; ``scenario`` one name or several.
    Only the arguments given produce headers, so ``fake_headers()`` is ``{}``.
    """
    headers: dict[str, str] = {}
    if usage is not None:
        if not isinstance(usage, Usage):
            usage = Usage(**usage)
        headers[USAGE_HEADER] = usage.to_header()
    if scenario is not None:
        headers[SCENARIO_HEADER] = scenario if isinstance(scenario, str) else ",".join(scenario)
    if model is not None:
        headers[MODEL_HEADER] = model
    if request_key is not None:
        headers[REQUEST_KEY_HEADER] = request_key
    if service_tier is not None:
        headers[SERVICE_TIER_HEADER] = service_tier
    return headers
