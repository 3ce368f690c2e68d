"""Four token layers: which part of an LLM call's input was prompt, tools and memory (DESIGN D15).

Every billed call's tokens fall into four layers:

* **prompt**: system instructions, the user's request, the conversation so far, anything not below;
* **tool**: tool definitions, the tool calls the model made earlier in the history, and tool results;
* **memory**: retrieved or carried context (RAG passages, a summary of earlier turns, a scratchpad);
* **response**: the output, with reasoning as a part of it. The output count is already on the span
  (``gen_ai.usage.output_tokens``), so this module only splits the *input*.

**A layer is a share of the billed input.** ``prompt + tool + memory == gen_ai.usage.input_tokens``, always
and exactly, and no layer is ever negative. Cached tokens are *not* a fifth layer: by the OTel GenAI
convention (DESIGN D2) the input count already includes cache reads and cache writes, so a cached tool
definition is part of the tool layer, and adding cache counts on top would count those tokens twice.

**Explicit counts win.** An application that knows its layers (it built the prompt) says so with
:class:`token_layers`; the span then carries ``otel_costattr.layer.prompt_tokens`` / ``.tool_tokens`` /
``.memory_tokens``. When the explicit counts do not sum to the billed input (the app counted with another
tokenizer, or only approximately) they are scaled to it by largest-remainder apportionment. A layer the app
did not give takes the remainder: the billed input minus the given layers, divided between the missing
layers in proportion to their content size when message content is on the span, else given to the first
missing layer in the order prompt, tool, memory. When the given layers exceed the billed input, they are
scaled down to it and the missing layers are zero.

**Otherwise the content decides.** When the instrumentation captured message content (``gen_ai.input.messages``,
``gen_ai.system_instructions``, ``gen_ai.tool.definitions``; both the Traceloop and the official parts
format), the billed input is apportioned by the *size* of each layer's content, in characters:

* text (a text part's ``content``, a plain-string message ``content``, string instructions) counts its
  length; anything structured (tool definitions, tool-call arguments, tool results, images by reference)
  counts the length of its compact JSON serialisation, without the part's ``type`` tag; a text document
  recorded as a base64 ``blob`` (genai-anthropic does this) counts its decoded text;
* tool layer: every tool definition, every tool-call part (``tool_call``; also the raw ``tool_use`` /
  ``function_call`` shapes and OpenAI's ``tool_calls`` key), every tool result (role ``tool`` or
  ``function`` messages, ``tool_call_response`` / ``tool_result`` / ``function_call_output`` parts);
* memory layer: messages the memory rule matches (default: a message ``name`` in :data:`MEMORY_NAMES`, or
  ``"otel_costattr.layer": "memory"`` on the message or in its ``metadata``; :func:`set_memory_rule`
  replaces the rule), parts carrying that same marker, and the :class:`memory` hint: the span attribute
  ``otel_costattr.layer.memory_chars`` moves that many characters from the prompt layer to the memory
  layer, capped at the prompt layer's size. The memory rule is tried before the tool rules, so an
  application can declare a retrieval tool's result to be memory. Message names survive only where the
  emitter keeps them (the official genai-openai package does; Traceloop's openai instrumentation drops
  them, and Anthropic messages have none), so :class:`memory` is the portable way to mark memory;
* prompt layer: system instructions and everything else.

Characters are a proxy for tokens; the split is as good as the assumption that each layer tokenizes at
the same rate, and exact in the one property that matters for money: the layers sum to what was billed.
Malformed JSON in one attribute makes that attribute count as absent; nothing here raises on span data.

**Cost follows tokens.** :func:`layer_costs` splits the call's input-side cost (uncached input + cache
reads + cache writes, and input audio where billed: ``gen_ai.cost.input_cost``) in proportion to the layer
tokens with :func:`apportion`, so the three layer costs sum exactly to the input cost. The input rate
differs between cached and uncached tokens, and the span does not say which layer was cached, so each
layer is charged the call's average input rate. The response layer's cost is the output cost, unchanged;
per-call fees (``gen_ai.cost.tool_usage_cost``) are neither input nor output and are not split.

**Hints stay in the process.** :class:`token_layers` and :class:`memory` keep their hints in a
:class:`contextvars.ContextVar`, never in W3C Baggage: Baggage crosses the wire, and some SDKs send it to
the LLM vendor. Asyncio tasks inherit the hints; a thread sees them only when started in a copied context
(``contextvars.copy_context().run``). :func:`context_attributes` returns the hints of the current context
as span attributes, for the span processor to copy onto spans at start. Used as decorators, both work on
functions, coroutines and (async) generators; a generator has the hints only while its body runs, never
in the consumer between two items.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any, TypeVar

from .._errors import ConfigurationError

__all__ = [
    "EXPLICIT_ATTRIBUTES", "MEMORY_CHARS_ATTRIBUTE", "MEMORY_NAMES", "MEMORY_TOKENS_ATTRIBUTE",
    "PROMPT_TOKENS_ATTRIBUTE", "TOOL_TOKENS_ATTRIBUTE", "LayerSplit", "apportion", "context_attributes",
    "layer_costs", "memory", "set_memory_rule", "split_layers", "token_layers",
]

logger = logging.getLogger(__name__)

PROMPT_TOKENS_ATTRIBUTE = "otel_costattr.layer.prompt_tokens"
TOOL_TOKENS_ATTRIBUTE = "otel_costattr.layer.tool_tokens"
MEMORY_TOKENS_ATTRIBUTE = "otel_costattr.layer.memory_tokens"
#: The explicit per-layer token counts set by :class:`token_layers`, in layer order (prompt, tool, memory).
EXPLICIT_ATTRIBUTES = (PROMPT_TOKENS_ATTRIBUTE, TOOL_TOKENS_ATTRIBUTE, MEMORY_TOKENS_ATTRIBUTE)
#: Characters of prompt content that are memory, set by :class:`memory`.
MEMORY_CHARS_ATTRIBUTE = "otel_costattr.layer.memory_chars"

#: Message names the default memory rule treats as memory (compared case-insensitively).
MEMORY_NAMES = frozenset({"memory", "context", "retrieval", "retrieved", "history_summary"})
#: The marker key, on a message, a part, or in their ``metadata``, whose value ``"memory"`` means memory.
MEMORY_MARKER = "otel_costattr.layer"

_INPUT_MESSAGES = "gen_ai.input.messages"
_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
# A span without any of these has no layer split (explicit counts or content to measure).
_LAYER_INPUTS = frozenset(EXPLICIT_ATTRIBUTES + (_INPUT_MESSAGES, _SYSTEM_INSTRUCTIONS, _TOOL_DEFINITIONS))

# Part types that are a tool call or a tool result, in the parts format and in raw vendor shapes that
# an emitter might pass through unnormalised.
_TOOL_PART_TYPES = frozenset({
    "tool_call", "tool_call_response", "tool_use", "tool_result", "function_call", "function_call_output",
    "server_tool_call", "server_tool_call_response", "server_tool_use", "web_search_tool_result",
})
_TOOL_ROLES = frozenset({"tool", "function", "ipython"})
_TEXT_KEYS = ("content", "text")

# Decimal places of apportion() when the amount itself has fewer: the ledger's DECIMAL(38, 18).
_MIN_PLACES = 18

F = TypeVar("F", bound=Callable[..., Any])

# ----------------------------------------------------------------------------------------------- the split


@dataclass(frozen=True, slots=True)
class LayerSplit:
    """The billed input tokens of one call, split into layers.

    ``prompt_tokens + tool_tokens + memory_tokens`` equals the billed input count exactly, and each is
    ``>= 0``. ``source`` is ``"explicit"`` (the application's :class:`token_layers` counts decided) or
    ``"content"`` (apportioned by the size of the captured message content).
    """

    prompt_tokens: int
    tool_tokens: int
    memory_tokens: int
    source: str

    @property
    def input_tokens(self) -> int:
        """The billed input count the layers add up to."""
        return self.prompt_tokens + self.tool_tokens + self.memory_tokens

    def as_tuple(self) -> tuple[int, int, int]:
        """``(prompt, tool, memory)``, the order :func:`layer_costs` returns costs in."""
        return (self.prompt_tokens, self.tool_tokens, self.memory_tokens)


def _largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split the non-negative integer ``total`` in proportion to ``weights``, exactly.

    Each part gets the floor of its quota; the units left over go one each to the largest remainders,
    ties to the earlier part (so the result is deterministic). All-zero weights put everything on the first
    part. ``weights`` must be non-empty and non-negative.
    """
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [total] + [0] * (len(weights) - 1)
    parts: list[int] = []
    remainders: list[tuple[int, int]] = []
    for i, w in enumerate(weights):
        q, r = divmod(total * w, weight_sum)
        parts.append(q)
        remainders.append((-r, i))
    left = total - sum(parts)  # < len(weights), since each floor loses less than one unit
    for _, i in sorted(remainders)[:left]:
        parts[i] += 1
    return parts


def _check_weights(weights: Sequence[int]) -> list[int]:
    checked = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ValueError(f"apportion() weights must be non-negative integers, got {w!r}")
        checked.append(w)
    if not checked:
        raise ValueError("apportion() needs at least one weight")
    return checked


def apportion(total: Decimal, weights: Sequence[int]) -> list[Decimal]:
    """Split an exact decimal amount in proportion to integer weights, with nothing lost or invented.

    The amount is split in units of its own last decimal place or of 10**-18, whichever is finer, by the
    largest-remainder method: each part gets the floor of its exact quota in those units, and the units
    left over go one each to the parts with the largest remainders (ties to the earlier part). So:

    * the parts, all at that scale, sum *exactly* to ``total`` (no rounding anywhere: the arithmetic is on
      integers; add them in a context with enough precision, e.g. the default 28 digits for amounts below
      10**10 at 18 places);
    * no part is negative when ``total >= 0``; a negative total is split like its absolute value and the
      parts negated (a refund splits like the charge);
    * a zero weight gets zero; **if every weight is zero, the whole amount goes to the first part** (an
      amount must land somewhere, and the first part is the default bucket: the prompt layer).

    Raises:
        ValueError: ``total`` is not a finite Decimal (NaN, infinity, or not a Decimal), or ``weights`` is
            empty or holds something other than a non-negative ``int``.
    """
    if not isinstance(total, Decimal) or not total.is_finite():
        raise ValueError(f"apportion() needs a finite Decimal amount, got {total!r}")
    checked = _check_weights(weights)
    sign, digits, exponent = total.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    places = max(_MIN_PLACES, -exponent)
    # Work in integer units of 10**-places. The context is wide enough for every digit of the amount, so
    # neither conversion can round; integers never pass through str() (which caps at 4,300 digits).
    exact = Context(prec=len(digits) + max(0, exponent + places) + 1, Emax=MAX_EMAX, Emin=MIN_EMIN)
    units = int(total.copy_abs().scaleb(places, context=exact))
    parts = []
    for share in _largest_remainder(units, checked):
        part = Decimal(share).scaleb(-places, context=exact)
        parts.append(part.copy_negate() if sign and share else part)
    return parts


def layer_costs(input_cost: Decimal, split: LayerSplit) -> tuple[Decimal, Decimal, Decimal]:
    """``(prompt, tool, memory)`` shares of a call's input-side cost, in proportion to the layer tokens.

    ``input_cost`` is everything billed for input: uncached input, cache reads and cache writes (the
    ``gen_ai.cost.input_cost`` attribute). The three shares sum exactly to it (see :func:`apportion`); a
    split with no tokens at all puts the whole cost on the prompt layer.

    Raises:
        ValueError: ``input_cost`` is not a finite Decimal.
    """
    prompt, tool, mem = apportion(input_cost, split.as_tuple())
    return prompt, tool, mem


def split_layers(attrs: Mapping[str, Any], input_tokens: int | None) -> LayerSplit | None:
    """Split a call's billed input tokens into prompt, tool and memory layers (rules: module docstring).

    ``attrs`` are the span's attributes; ``input_tokens`` its billed input count
    (``gen_ai.usage.input_tokens``, which includes cached tokens). Returns ``None`` when the input count is
    unknown (``None``, negative, not a whole number) or when the span carries neither explicit layer
    counts nor any message content to measure. Never raises: unreadable span data counts as absent.
    """
    try:
        if _LAYER_INPUTS.isdisjoint(attrs):
            return None  # the common case, checked first: this runs for every priced span
        billed = _count(input_tokens)
        if billed is None:
            return None
        return _split(attrs, billed)
    except Exception:  # noqa: BLE001 - span data is untrusted; a report must not fail on one odd span
        logger.debug("token layers could not be computed", exc_info=True)
        return None


def _split(attrs: Mapping[str, Any], billed: int) -> LayerSplit | None:
    explicit = [_count(attrs.get(name)) for name in EXPLICIT_ATTRIBUTES]
    if any(c is not None for c in explicit):
        return _split_explicit(attrs, billed, explicit)
    weights = _content_weights(attrs)
    if weights is None:
        return None
    prompt, tool, mem = weights
    hint = _count(attrs.get(MEMORY_CHARS_ATTRIBUTE)) or 0
    moved = min(hint, prompt)
    weights = [prompt - moved, tool, mem + moved]
    prompt_tokens, tool_tokens, memory_tokens = _largest_remainder(billed, weights)
    return LayerSplit(prompt_tokens, tool_tokens, memory_tokens, source="content")


def _split_explicit(attrs: Mapping[str, Any], billed: int, explicit: list[int | None]) -> LayerSplit:
    given = [i for i, c in enumerate(explicit) if c is not None]
    missing = [i for i, c in enumerate(explicit) if c is None]
    given_sum = sum(explicit[i] or 0 for i in given)
    parts = [0, 0, 0]
    if missing and given_sum <= billed:
        # The app gave some layers: keep them, and the missing layers share what is left.
        for i in given:
            parts[i] = explicit[i] or 0
        rest = billed - given_sum
        weights = _content_weights(attrs) if rest else None
        shares = _largest_remainder(rest, [weights[i] for i in missing] if weights else [0] * len(missing))
        for i, share in zip(missing, shares):
            parts[i] = share
    else:
        # Another tokenizer's counts: keep their proportions, at the billed total.
        shares = _largest_remainder(billed, [explicit[i] or 0 for i in given])
        for i, share in zip(given, shares):
            parts[i] = share
    return LayerSplit(parts[0], parts[1], parts[2], source="explicit")


def _count(value: Any) -> int | None:
    """A token or character count from a span attribute: a non-negative whole number, else None.

    Ledgers and ClickHouse keep every attribute as a string, so whole-number strings and floats count.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() and number >= 0 else None
    return None


# --------------------------------------------------------------------------------------------- content size


def _content_weights(attrs: Mapping[str, Any]) -> list[int] | None:
    """Characters of ``[prompt, tool, memory]`` content on the span, or None if it carries no content."""
    sizes = [0, 0, 0]
    found = False
    system = _load(attrs.get(_SYSTEM_INSTRUCTIONS), plain_text=True)
    if system is not None:
        found = True
        if isinstance(system, list):
            for part in system:
                _add_part(sizes, part, default=0)
        else:
            sizes[0] += _size(system)
    tools = _load(attrs.get(_TOOL_DEFINITIONS))
    if tools is not None:
        found = True
        sizes[1] += sum(_size(t) for t in tools) if isinstance(tools, list) else _size(tools)
    messages = _load(attrs.get(_INPUT_MESSAGES))
    if isinstance(messages, dict):  # a single message, not wrapped in a list
        messages = [messages]
    if isinstance(messages, list):
        found = True
        rule = _memory_rule
        for message in messages:
            _add_message(sizes, message, rule)
    return sizes if found else None


def _load(value: Any, *, plain_text: bool = False) -> Any:
    """A content attribute as Python data; None when absent or malformed.

    Attributes hold JSON text. A value that is already a list or dict (a test, or an exporter that decoded
    it) is taken as is. With ``plain_text``, a string that is not JSON is the content itself, unless it looks
    like JSON that failed to parse (which is malformed, so absent).
    """
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return value
    if isinstance(value, tuple):  # an OTel sequence attribute: each element one JSON value or one text
        items = [_load(v, plain_text=True) for v in value]
        return [v for v in items if v is not None]
    if isinstance(value, (bytes, bytearray)):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        if plain_text and not value.lstrip().startswith(("[", "{")):
            return value
        return None


def _add_message(sizes: list[int], message: Any, rule: Callable[[Mapping[str, Any]], bool] | None) -> None:
    if not isinstance(message, Mapping):
        sizes[0] += _size(message)
        return
    if _is_memory_message(message, rule):
        sizes[2] += _message_size(message)
        return
    role = message.get("role")
    default = 1 if isinstance(role, str) and role.lower() in _TOOL_ROLES else 0
    parts = message.get("parts")
    content = message.get("content")
    if isinstance(parts, list):
        for part in parts:
            _add_part(sizes, part, default)
    elif isinstance(content, list):  # the raw vendor shape: a list of content blocks
        for part in content:
            _add_part(sizes, part, default)
    elif content is not None:
        sizes[default] += _size(content)
    elif parts is not None:
        sizes[default] += _size(parts)
    # OpenAI's raw shape keeps the model's tool calls beside the content.
    for key in ("tool_calls", "function_call"):
        if message.get(key):
            sizes[1] += _size(message[key])


def _message_size(message: Mapping[str, Any]) -> int:
    parts = message.get("parts")
    if isinstance(parts, list):
        return sum(_part_size(p) for p in parts)
    content = message.get("content")
    total = sum(_part_size(p) for p in content) if isinstance(content, list) else _size(content) if content else 0
    for key in ("tool_calls", "function_call"):
        if message.get(key):
            total += _size(message[key])
    return total


def _add_part(sizes: list[int], part: Any, default: int) -> None:
    if isinstance(part, Mapping):
        if _has_memory_marker(part):
            sizes[2] += _part_size(part)
            return
        kind = part.get("type")
        if isinstance(kind, str) and kind in _TOOL_PART_TYPES:
            sizes[1] += _part_size(part)
            return
    sizes[default] += _part_size(part)


def _part_size(part: Any) -> int:
    """Characters of one part: its text if it is text, else its compact JSON without the ``type`` tag."""
    if isinstance(part, Mapping):
        if part.get("type") == "blob":
            text = _text_blob(part)
            if text is not None:
                return len(text)
        for key in _TEXT_KEYS:
            text = part.get(key)
            if isinstance(text, str) and set(part) <= {"type", key, "metadata", MEMORY_MARKER}:
                return len(text)
        return _size({k: v for k, v in part.items() if k != "type"})
    return _size(part)


def _text_blob(part: Mapping[str, Any]) -> str | None:
    # genai-anthropic records a text document as a base64 "blob"; the model reads the text, so count that.
    # Other blobs (images, audio) keep their JSON size: a crude proxy, but there is no text to measure.
    mime = part.get("mime_type")
    data = part.get("content")
    if not (isinstance(mime, str) and mime.startswith("text/") and isinstance(data, str)):
        return None
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _size(value: Any) -> int:
    """Characters of a value as the model would see it: a string's length, or its compact JSON's length."""
    if isinstance(value, str):
        return len(value)
    if value is None:
        return 0
    try:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))
    except (TypeError, ValueError):  # circular or otherwise unserialisable: count its text form
        return len(str(value))


# ---------------------------------------------------------------------------------------------- memory rule


def _has_memory_marker(item: Mapping[str, Any]) -> bool:
    if item.get(MEMORY_MARKER) == "memory":
        return True
    metadata = item.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get(MEMORY_MARKER) == "memory"


def _default_memory_rule(message: Mapping[str, Any]) -> bool:
    name = message.get("name")
    return (isinstance(name, str) and name.lower() in MEMORY_NAMES) or _has_memory_marker(message)


_memory_rule: Callable[[Mapping[str, Any]], bool] | None = None


def _is_memory_message(message: Mapping[str, Any], rule: Callable[[Mapping[str, Any]], bool] | None) -> bool:
    if rule is None:
        return _default_memory_rule(message)
    try:
        return bool(rule(message))
    except Exception:  # noqa: BLE001 - a user's rule failing on odd data must not fail the split
        logger.debug("memory rule raised; message counted as not memory", exc_info=True)
        return False


def set_memory_rule(rule: Callable[[Mapping[str, Any]], bool] | None) -> None:
    """Replace the rule that decides which input messages are memory; ``None`` restores the default.

    The rule receives one message of ``gen_ai.input.messages`` as decoded JSON (a mapping with ``role``,
    ``parts`` or ``content``, maybe ``name``) and returns True if the whole message is memory. The default
    rule matches a ``name`` in :data:`MEMORY_NAMES` or the marker ``"otel_costattr.layer": "memory"`` on the
    message or in its ``metadata``. Parts carrying the marker are memory whatever the rule. A rule that
    raises counts as False for that message. Process-wide; takes effect for splits computed afterwards.

    Raises:
        ConfigurationError: ``rule`` is neither callable nor None.
    """
    global _memory_rule
    if rule is not None and not callable(rule):
        raise ConfigurationError(f"set_memory_rule() needs a callable(message) -> bool or None, got {rule!r}")
    _memory_rule = rule


# ------------------------------------------------------------------------------------------- context hints

# (prompt, tool, memory) explicit counts, each None when not set, and the memory characters of memory().
_Hints = tuple[tuple[int | None, int | None, int | None], int]
_EMPTY: _Hints = ((None, None, None), 0)
_hints: contextvars.ContextVar[_Hints] = contextvars.ContextVar("otel_costattr_layers", default=_EMPTY)


def context_attributes() -> dict[str, Any]:
    """The layer hints of the current context, as span attributes (empty when there are none).

    Explicit counts set by enclosing :class:`token_layers` blocks under :data:`EXPLICIT_ATTRIBUTES`, and the
    characters of enclosing :class:`memory` blocks under :data:`MEMORY_CHARS_ATTRIBUTE` (when above zero).
    """
    hints = _hints.get()
    if hints is _EMPTY:  # outside any block (every span of most apps): nothing to build
        return {}
    counts, chars = hints
    attrs: dict[str, Any] = {name: c for name, c in zip(EXPLICIT_ATTRIBUTES, counts) if c is not None}
    if chars:
        attrs[MEMORY_CHARS_ATTRIBUTE] = chars
    return attrs


class _HintScope:
    """A context manager and decorator that pushes a change to the layer hints for its extent."""

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token[_Hints]] = []

    def _apply(self, current: _Hints) -> _Hints:  # pragma: no cover - overridden
        raise NotImplementedError

    def _copy(self) -> _HintScope:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._tokens.append(_hints.set(self._apply(_hints.get())))
        return self

    def __exit__(self, *exc: object) -> None:
        _hints.reset(self._tokens.pop())

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        # Each call gets its own scope object, so concurrent calls never share the token stack.
        make = self._copy
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with make():
                    return await func(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]
        # Generators get the hints only while their body runs, one step at a time. Holding the scope open
        # across a yield would leak the hints into the consumer's own LLM calls, and a generator finalised
        # in another context (asyncio closes abandoned async generators from a new task) could not reset it.
        if inspect.isasyncgenfunction(func):
            @functools.wraps(func)
            def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return _step_async(make, func(*args, **kwargs))
            return agen_wrapper  # type: ignore[return-value]
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return _step_sync(make, func(*args, **kwargs))
            return gen_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with make():
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


def _step_sync(make: Callable[[], _HintScope], gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Drive ``gen`` with the hints applied around each step only; send, throw and close pass through."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            with make():
                item = gen.send(value) if error is None else gen.throw(error)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            value = yield item
        except GeneratorExit:
            with make():
                gen.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown in by the consumer: the generator decides
            value, error = None, exc


async def _step_async(make: Callable[[], _HintScope], agen: AsyncGenerator[Any, Any]) -> AsyncGenerator[Any, Any]:
    """The async twin of :func:`_step_sync`."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            with make():
                item = await (agen.asend(value) if error is None else agen.athrow(error))
        except StopAsyncIteration:
            return
        error = None
        try:
            value = yield item
        except GeneratorExit:
            with make():
                await agen.aclose()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown in by the consumer: the generator decides
            value, error = None, exc


def _checked_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"token_layers({name}=...) must be a non-negative int or None, got {value!r}")
    return value


class token_layers(_HintScope):  # noqa: N801 - used like a function: `with token_layers(...)` / `@token_layers(...)`
    """Declare the token layers of the LLM calls made inside a block or function (sync or async).

    ``with token_layers(prompt=812, tool=2_400, memory=3_100): client.chat.completions.create(...)``.
    Every LLM span started inside carries the given counts (see :func:`context_attributes`), and
    :func:`split_layers` prefers them to content sizes. Counts in another tokenizer are fine: they are
    scaled to the billed input. A layer left ``None`` takes the remainder. Nested blocks override the
    layers they give and inherit the others; leaving a block restores the outer values.

    Raises:
        ConfigurationError: a count that is not a non-negative ``int``.
    """

    def __init__(self, *, prompt: int | None = None, tool: int | None = None, memory: int | None = None) -> None:
        super().__init__()
        self.counts = (_checked_count("prompt", prompt), _checked_count("tool", tool), _checked_count("memory", memory))

    def _apply(self, current: _Hints) -> _Hints:
        (outer_prompt, outer_tool, outer_memory), chars = current
        prompt, tool, mem = self.counts
        return ((outer_prompt if prompt is None else prompt, outer_tool if tool is None else tool,
                 outer_memory if mem is None else mem), chars)

    def _copy(self) -> token_layers:
        prompt, tool, mem = self.counts
        return token_layers(prompt=prompt, tool=tool, memory=mem)


class memory(_HintScope):  # noqa: N801 - used like a function: `with memory(docs):`
    """Mark memory carried into the prompt by the LLM calls made inside a block (or function).

    ``with memory(retrieved_text): client.chat.completions.create(messages=[..., prompt_with(retrieved_text)])``
    records ``len(retrieved_text)`` (or the given character count) on every LLM span started inside, and the
    content-based split moves that many characters from the prompt layer to the memory layer. Use it when
    memory is spliced into an ordinary message; a message of its own can be named ``"memory"`` instead.
    Nested blocks add up (the inner calls carry both); leaving a block restores the outer value.

    Raises:
        ConfigurationError: ``content`` is neither a string nor a non-negative ``int``.
    """

    def __init__(self, content: str | int) -> None:
        super().__init__()
        if isinstance(content, str):
            self.chars = len(content)
        elif isinstance(content, int) and not isinstance(content, bool) and content >= 0:
            self.chars = content
        else:
            raise ConfigurationError(f"memory() needs the memory text or its character count, got {content!r}")

    def _apply(self, current: _Hints) -> _Hints:
        counts, chars = current
        return counts, chars + self.chars

    def _copy(self) -> memory:
        return memory(self.chars)
