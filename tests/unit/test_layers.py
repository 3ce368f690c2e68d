"""Token layers (DESIGN D15): explicit counts win, else content size decides; layers and their costs are exact.

The ``RECORDED`` fixtures are span attributes captured from the real SDKs under the real instrumentations
(openai 3.54.0, anthropic 1.17.0, Traceloop 0.62.4, genai-* 1.3b0; fake vendor; content capture on), trimmed
to what the split reads. The ``test_live_*`` tests drive the same stack end to end.

Character counts in comments are of the compact JSON (or the text) the split measures, worked out by hand.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_costattr import ConfigurationError
from otel_costattr._capture._layers import (
    EXPLICIT_ATTRIBUTES, MEMORY_CHARS_ATTRIBUTE, LayerSplit, apportion, context_attributes, layer_costs, memory,
    set_memory_rule, split_layers, token_layers,
)

MSGS = "gen_ai.input.messages"
SYSTEM = "gen_ai.system_instructions"
TOOLS = "gen_ai.tool.definitions"
P, T, M = EXPLICIT_ATTRIBUTES


@pytest.fixture(autouse=True)
def _default_memory_rule() -> Iterator[None]:
    set_memory_rule(None)
    yield
    set_memory_rule(None)


def split(attrs: dict[str, Any], billed: int | None = 1200) -> tuple[int, int, int, str] | None:
    s = split_layers(attrs, billed)
    return None if s is None else (s.prompt_tokens, s.tool_tokens, s.memory_tokens, s.source)


def dumps(value: Any) -> str:
    return json.dumps(value)


# ----------------------------------------------------------------------------------------- recorded spans

# A chat with a system prompt, a message named "memory" (OpenAI only: Anthropic has no message names), tool
# definitions, an earlier tool call, and its result. Billed input: 1200 tokens.
RECORDED: dict[str, dict[str, Any]] = {
    "traceloop-openai": {
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 1200,
        MSGS: '[{"role": "system", "parts": [{"content": "You are a terse weather bot.", "type": "text"}]}, '
              '{"role": "user", "parts": [{"content": "Earlier: the user lives in Paris.", "type": "text"}]}, '
              '{"role": "user", "parts": [{"content": "Weather in Paris?", "type": "text"}]}, '
              '{"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather", "id": "call_1", '
              '"arguments": {"city": "Paris"}}]}, '
              '{"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", '
              '"response": "{\\"temp_c\\": 21, \\"sky\\": \\"clear\\"}"}]}]',
        TOOLS: '[{"type": "function", "name": "get_weather", "description": "Weather for a city", "parameters": '
               '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]',
    },
    "genai-openai": {
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 1200,
        MSGS: '[{"role":"system","parts":[{"content":"You are a terse weather bot.","type":"text"}],"name":null},'
              '{"role":"user","parts":[{"content":"Earlier: the user lives in Paris.","type":"text"}],"name":"memory"},'
              '{"role":"user","parts":[{"content":"Weather in Paris?","type":"text"}],"name":null},'
              '{"role":"assistant","parts":[{"arguments":{"city":"Paris"},"name":"get_weather","id":"call_1",'
              '"type":"tool_call"}],"name":null},'
              '{"role":"tool","parts":[{"response":"{\\"temp_c\\": 21, \\"sky\\": \\"clear\\"}","id":"call_1",'
              '"type":"tool_call_response"}],"name":null}]',
        TOOLS: '[{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object",'
               '"properties":{"city":{"type":"string"}},"required":["city"]},"type":"function"}]',
    },
    "traceloop-anthropic": {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.usage.input_tokens": 1200,
        SYSTEM: '[{"type": "text", "content": "You are a terse weather bot."}]',
        MSGS: '[{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}, '
              '{"role": "assistant", "parts": [{"type": "tool_call", "id": "toolu_1", "name": "get_weather", '
              '"arguments": {"city": "Paris"}}]}, '
              '{"role": "user", "parts": [{"type": "tool_call_response", "id": "toolu_1", '
              '"response": "{\\"temp_c\\": 21, \\"sky\\": \\"clear\\"}"}]}]',
        TOOLS: '[{"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object", '
               '"properties": {"city": {"type": "string"}}, "required": ["city"]}}]',
    },
    "genai-anthropic": {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.usage.input_tokens": 1200,
        SYSTEM: '[{"content":"You are a terse weather bot.","type":"text"}]',
        MSGS: '[{"role":"user","parts":[{"content":"Weather in Paris?","type":"text"}],"name":null},'
              '{"role":"assistant","parts":[{"arguments":{"city":"Paris"},"name":"get_weather","id":"toolu_1",'
              '"type":"tool_call"}],"name":null},'
              '{"role":"user","parts":[{"response":"{\\"temp_c\\": 21, \\"sky\\": \\"clear\\"}","id":"toolu_1",'
              '"type":"tool_call_response"}],"name":null}]',
        TOOLS: '[{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object",'
               '"properties":{"city":{"type":"string"}},"required":["city"]},"type":"function"}]',
    },
}

# Characters: system 28, memory message 33, user 17; OpenAI tool call 65, result 65, definition 166;
# Anthropic tool call 66, result 66 ("toolu_1" is one longer than "call_1"); raw definition with
# input_schema 150, normalised one 166.
RECORDED_SPLITS = {
    # Traceloop drops message names, so the "memory" message is prompt: [78, 296, 0] of 374 chars.
    # Quotas 250.27 / 949.73 / 0: floors 250 + 949; the one unit left goes to tool (remainder .73).
    "traceloop-openai": (250, 950, 0),
    # [45, 296, 33] of 374: quotas 144.39 / 949.73 / 105.88; floors 1198, the 2 left go to memory, tool.
    "genai-openai": (144, 950, 106),
    # [45, 282, 0] of 327: quotas 165.14 / 1034.86; the unit left goes to tool.
    "traceloop-anthropic": (165, 1035, 0),
    # [45, 298, 0] of 343: quotas 157.43 / 1042.57; the unit left goes to tool.
    "genai-anthropic": (157, 1043, 0),
}


@pytest.mark.parametrize("emitter", sorted(RECORDED))
def test_recorded_spans_split_by_content(emitter: str) -> None:
    attrs = RECORDED[emitter]
    assert split(attrs, attrs["gen_ai.usage.input_tokens"]) == (*RECORDED_SPLITS[emitter], "content")


def test_recorded_formats_measure_the_same_content_alike() -> None:
    # Traceloop writes ", "-separated JSON with other key orders; the official packages compact JSON with
    # "name": null. Both are re-serialised before measuring, so equal content has equal size.
    a, b = dict(RECORDED["traceloop-openai"]), dict(RECORDED["genai-openai"])
    b[MSGS] = b[MSGS].replace('"name":"memory"', '"name":null')
    assert split(a) == split(b)


# --------------------------------------------------------------------------------------------- content rules


def text(role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": content}], **extra}


CONTENT_CASES: list[tuple[str, dict[str, Any], int | None, tuple[int, int, int, str] | None]] = [
    ("text only, official format", {MSGS: dumps([text("user", "a" * 30)])}, 99, (99, 0, 0, "content")),
    ("system instructions as parts", {SYSTEM: dumps([{"type": "text", "content": "s" * 10}]),
                                      MSGS: dumps([text("user", "u" * 30)])}, 100, (100, 0, 0, "content")),
    ("system instructions as a plain string", {SYSTEM: "Be terse.", MSGS: dumps([text("user", "x" * 9)])},
     10, (10, 0, 0, "content")),
    # {"name":"f"} is 12 characters; text 12: an even split.
    ("tool definitions only", {TOOLS: dumps([{"name": "f"}])}, 7, (0, 7, 0, "content")),
    ("tool definitions and text", {TOOLS: dumps([{"name": "f"}]), MSGS: dumps([text("user", "y" * 12)])},
     10, (5, 5, 0, "content")),
    # a role "tool" message in the raw OpenAI shape: its 30 characters of content are tool
    ("tool result: role tool, raw content", {MSGS: dumps([{"role": "user", "content": "q" * 10},
                                                          {"role": "tool", "tool_call_id": "c", "content": "r" * 30}])},
     40, (10, 30, 0, "content")),
    # a tool_call_response part inside a user message (Anthropic): {"id":"c","response":"rrrrrrrrrr"} = 34
    ("tool result: part in a user message", {MSGS: dumps([
        {"role": "user", "parts": [{"type": "text", "content": "q" * 34},
                                   {"type": "tool_call_response", "id": "c", "response": "r" * 10}]}])},
     68, (34, 34, 0, "content")),
    # {"name":"f","id":"c","arguments":{}} = 36 characters
    ("tool call part in the history", {MSGS: dumps([
        {"role": "assistant", "parts": [{"type": "tool_call", "name": "f", "id": "c", "arguments": {}}]},
        text("user", "z" * 36)])}, 2, (1, 1, 0, "content")),
    # OpenAI raw: tool_calls beside null content; [{"id":"c"}] = 12
    ("raw OpenAI tool_calls", {MSGS: dumps([{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
                                            {"role": "user", "content": "u" * 12}])}, 6, (3, 3, 0, "content")),
    # Anthropic raw blocks: {"id":"t","name":"f","input":{}} = 32 and {"tool_use_id":"t","content":"ok"} = 34
    ("raw Anthropic tool_use / tool_result", {MSGS: dumps([
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "w" * 66}]}])}, 4, (2, 2, 0, "content")),
    ("memory by message name", {MSGS: dumps([text("user", "m" * 20, name="retrieval"), text("user", "u" * 20)])},
     10, (5, 0, 5, "content")),
    ("memory name is case-insensitive", {MSGS: dumps([text("user", "m" * 20, name="History_Summary")])},
     10, (0, 0, 10, "content")),
    ("memory by message metadata", {MSGS: dumps([
        text("user", "m" * 30, metadata={"otel_costattr.layer": "memory"}), text("user", "u" * 10)])},
     4, (1, 0, 3, "content")),
    ("memory by marker on the message", {MSGS: dumps([
        text("user", "m" * 10, **{"otel_costattr.layer": "memory"}), text("user", "u" * 10)])},
     4, (2, 0, 2, "content")),
    ("memory by part metadata", {MSGS: dumps([{"role": "user", "parts": [
        {"type": "text", "content": "m" * 10, "metadata": {"otel_costattr.layer": "memory"}},
        {"type": "text", "content": "u" * 30}]}])}, 4, (3, 0, 1, "content")),
    ("memory wins over tool for a named tool result", {MSGS: dumps([
        {"role": "tool", "name": "retrieved", "content": "d" * 10}, text("user", "u" * 10)])},
     2, (1, 0, 1, "content")),
    ("memory hint moves prompt characters", {MSGS: dumps([text("user", "u" * 40)]), MEMORY_CHARS_ATTRIBUTE: 30},
     8, (2, 0, 6, "content")),
    ("memory hint is capped at the prompt layer", {MSGS: dumps([text("user", "u" * 10)]),
                                                   TOOLS: dumps([{"name": "f"}]), MEMORY_CHARS_ATTRIBUTE: 999},
     22, (0, 12, 10, "content")),
    ("memory hint as a string (ledger)", {MSGS: dumps([text("user", "u" * 10)]), MEMORY_CHARS_ATTRIBUTE: "5"},
     2, (1, 0, 1, "content")),
    ("memory hint without content", {MEMORY_CHARS_ATTRIBUTE: 30}, 8, None),
    ("no content, no counts", {"gen_ai.usage.input_tokens": 8}, 8, None),
    ("input count unknown", {MSGS: dumps([text("user", "u")])}, None, None),
    ("input count negative", {MSGS: dumps([text("user", "u")])}, -1, None),
    ("zero input", {MSGS: dumps([text("user", "u")])}, 0, (0, 0, 0, "content")),
    ("empty content: all on prompt", {MSGS: "[]"}, 5, (5, 0, 0, "content")),
    ("garbage JSON messages: absent", {MSGS: "[{'role': 'user'"}, 5, None),
    ("garbage JSON messages, valid tools", {MSGS: "{not json", TOOLS: dumps([{"name": "f"}])}, 5, (0, 5, 0, "content")),
    ("garbage JSON instructions: absent", {SYSTEM: "[{broken", MSGS: dumps([{"role": "tool", "content": "r"}])},
     3, (0, 3, 0, "content")),
    ("wrong types everywhere", {MSGS: 42, TOOLS: object(), SYSTEM: b"\xff\xfe"}, 5, None),
    ("messages that are not objects", {MSGS: dumps(["hello", 7, None, [1, 2]])}, 5, (5, 0, 0, "content")),
    ("a single message object", {MSGS: dumps({"role": "tool", "content": "r" * 5})}, 5, (0, 5, 0, "content")),
    ("already decoded lists", {MSGS: [text("user", "u" * 5)], TOOLS: [{"name": "f"}]}, 17, (5, 12, 0, "content")),
    ("OTel sequence attribute", {MSGS: (dumps(text("user", "u" * 5)), dumps({"role": "tool", "content": "r" * 5}))},
     10, (5, 5, 0, "content")),
    # genai-anthropic records a text document as base64: the decoded 10 characters count, not the 16 of base64
    ("text blob counts its decoded text", {MSGS: dumps([{"role": "user", "parts": [
        {"type": "blob", "mime_type": "text/plain", "modality": "document",
         "content": base64.b64encode(b"d" * 10).decode()}, {"type": "text", "content": "u" * 10}]}])},
     2, (2, 0, 0, "content")),
    ("input tokens as a string (ledger)", {MSGS: dumps([text("user", "u")])},
     "12", (12, 0, 0, "content")),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("attrs", "billed", "expected"), [c[1:] for c in CONTENT_CASES],
                         ids=[c[0] for c in CONTENT_CASES])
def test_content_rules(attrs: dict[str, Any], billed: int | None, expected: tuple[int, int, int, str] | None) -> None:
    assert split(attrs, billed) == expected


def test_custom_memory_rule_replaces_the_default_and_never_raises() -> None:
    attrs = {MSGS: dumps([{"role": "developer", "content": "d" * 10}, text("user", "u" * 10, name="memory")])}
    set_memory_rule(lambda m: m.get("role") == "developer")
    assert split(attrs, 2) == (1, 0, 1, "content")  # the developer message; the named one is prompt now

    def broken(message: Any) -> bool:
        raise KeyError("boom")

    set_memory_rule(broken)
    assert split(attrs, 2) == (2, 0, 0, "content")
    set_memory_rule(None)
    assert split(attrs, 2) == (1, 0, 1, "content")  # the default again: name "memory"
    with pytest.raises(ConfigurationError):
        set_memory_rule("memory")  # type: ignore[arg-type]


def test_part_marker_is_memory_whatever_the_rule() -> None:
    set_memory_rule(lambda m: False)
    attrs = {MSGS: dumps([{"role": "user", "parts": [
        {"type": "text", "content": "m" * 10, "otel_costattr.layer": "memory"},
        {"type": "text", "content": "u" * 10}]}])}
    assert split(attrs, 2) == (1, 0, 1, "content")


# -------------------------------------------------------------------------------------------- explicit rules

WITH_CONTENT = {MSGS: dumps([text("user", "u" * 12)]), TOOLS: dumps([{"name": "f"}])}  # 12 prompt, 12 tool chars

EXPLICIT_CASES: list[tuple[str, dict[str, Any], int, tuple[int, int, int]]] = [
    ("exact", {P: 100, T: 20, M: 30}, 150, (100, 20, 30)),
    ("exact, content ignored", {P: 100, T: 20, M: 30, **WITH_CONTENT}, 150, (100, 20, 30)),
    ("scaled down, proportions kept", {P: 200, T: 100, M: 100}, 100, (50, 25, 25)),
    ("scaled up", {P: 10, T: 10, M: 20}, 80, (20, 20, 40)),
    # 100/3 each: floors 33, the one unit left to the first of the equal remainders
    ("scaled with remainder, ties to the earlier layer", {P: 1, T: 1, M: 1}, 100, (34, 33, 33)),
    ("strings from a ledger", {P: "100", T: "20", M: "30.0"}, 150, (100, 20, 30)),
    ("missing prompt is the remainder", {T: 20, M: 30}, 150, (100, 20, 30)),
    ("missing tool is the remainder", {P: 20, M: 30}, 150, (20, 100, 30)),
    ("two missing, no content: the first missing takes it", {M: 50}, 150, (100, 0, 50)),
    ("two missing, content splits the remainder", {M: 50, **WITH_CONTENT}, 150, (50, 50, 50)),
    ("given exceed the billed input: scaled, missing zero", {P: 300, T: 100}, 100, (75, 25, 0)),
    ("all zero, billed input: first part", {P: 0, T: 0, M: 0}, 10, (10, 0, 0)),
    ("zero billed", {P: 5, T: 5, M: 5}, 0, (0, 0, 0)),
    ("memory hint ignored when explicit", {P: 5, T: 5, M: 0, MEMORY_CHARS_ATTRIBUTE: 100, **WITH_CONTENT}, 10,
     (5, 5, 0)),
    ("invalid counts are absent", {P: -5, T: True, M: "lots", **WITH_CONTENT}, 10, None),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("attrs", "billed", "expected"), [c[1:] for c in EXPLICIT_CASES],
                         ids=[c[0] for c in EXPLICIT_CASES])
def test_explicit_rules(attrs: dict[str, Any], billed: int, expected: tuple[int, int, int] | None) -> None:
    if expected is None:  # the invalid counts fall back to content: 12 prompt and 12 tool characters
        assert split(attrs, billed) == (5, 5, 0, "content")
    else:
        assert split(attrs, billed) == (*expected, "explicit")


# ------------------------------------------------------------------------------------------- apportion, costs


def test_apportion_examples() -> None:
    # at 18 places: 0.0002832 x 3/5 = 0.00016992, x 1/5 = 0.00005664 (exact, no remainder)
    assert apportion(Decimal("0.0002832"), [3, 1, 1]) == [Decimal("0.00016992"), Decimal("0.00005664"),
                                                         Decimal("0.00005664")]
    # 1/3 at 18 places: 0.333...3 three times leaves one unit of 1e-18, which goes to the first part
    thirds = apportion(Decimal(1), [1, 1, 1])
    assert thirds[0] == Decimal("0." + "3" * 17 + "4") and thirds[1] == thirds[2] == Decimal("0." + "3" * 18)
    # an amount finer than 18 places keeps its own scale
    assert [p.as_tuple().exponent for p in apportion(Decimal("1E-20"), [1, 1])] == [-20, -20]
    assert apportion(Decimal("1E-20"), [1, 1]) == [Decimal("1E-20"), Decimal(0)]
    # all weights zero: the whole amount on the first part
    assert apportion(Decimal("2.5"), [0, 0, 0]) == [Decimal("2.5"), 0, 0]
    assert apportion(Decimal(-3), [1, 2]) == [Decimal(-1), Decimal(-2)]
    # huge and very precise at once: no rounding by the 28-digit default context
    big = Decimal("123456789012345678901234567.123456789012345678901")
    assert sum(map(Fraction, apportion(big, [7, 11, 13]))) == Fraction(big)


@pytest.mark.parametrize("bad", [[], [-1, 2], [1.5], [True]])
def test_apportion_rejects_bad_weights(bad: list[Any]) -> None:
    with pytest.raises(ValueError):
        apportion(Decimal(1), bad)


@pytest.mark.parametrize("amount", [Decimal("NaN"), Decimal("Infinity"), 1.5, 3])
def test_apportion_rejects_non_finite_or_non_decimal(amount: Any) -> None:
    with pytest.raises(ValueError):
        apportion(amount, [1])


def test_layer_costs() -> None:
    s = LayerSplit(prompt_tokens=176, tool_tokens=1024, memory_tokens=0, source="content")
    prompt, tool, mem = layer_costs(Decimal("0.0001032"), s)
    assert prompt + tool + mem == Decimal("0.0001032") and mem == 0
    assert layer_costs(Decimal("0.5"), LayerSplit(0, 0, 0, "content")) == (Decimal("0.5"), 0, 0)
    assert s.input_tokens == 1200 and s.as_tuple() == (176, 1024, 0)


# ------------------------------------------------------------------------------------------------ properties

_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "content": st.text(max_size=40)}),
    st.fixed_dictionaries({"type": st.sampled_from(["tool_call", "tool_call_response", "blob", "image", "x"]),
                           "id": st.text(max_size=5)},
                          optional={"arguments": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
                                    "response": st.text(max_size=20), "content": st.text(max_size=10),
                                    "mime_type": st.sampled_from(["text/plain", "image/png"]),
                                    "metadata": st.fixed_dictionaries({"otel_costattr.layer": st.just("memory")})}),
    st.text(max_size=10), st.integers(), st.none(),
)
_message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool", "function", "developer"])},
                          optional={"parts": st.lists(_part, max_size=4), "content": st.one_of(st.text(max_size=40),
                                    st.lists(_part, max_size=3), st.none()),
                                    "name": st.one_of(st.none(), st.sampled_from(["memory", "Context", "bob"])),
                                    "tool_calls": st.lists(st.dictionaries(st.text(max_size=3), st.text(max_size=8),
                                                                           max_size=2), max_size=2)}),
    st.text(max_size=10), st.integers(), st.none(),
)
_count = st.one_of(st.none(), st.integers(min_value=-10, max_value=10**6), st.text(max_size=4),
                   st.floats(allow_nan=True), st.booleans())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.one_of(st.lists(_message, max_size=6).map(dumps), st.text(max_size=30), st.none()),
       tools=st.one_of(st.none(), st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3),
                                           max_size=3).map(dumps), st.text(max_size=10)),
       system=st.one_of(st.none(), st.text(max_size=20), st.lists(_part, max_size=2).map(dumps)),
       hint=_count, explicit=st.tuples(_count, _count, _count),
       billed=st.integers(min_value=0, max_value=10**9))
def test_layers_never_negative_and_sum_to_billed(messages: Any, tools: Any, system: Any, hint: Any,
                                                   explicit: tuple[Any, Any, Any], billed: int) -> None:
    attrs = {k: v for k, v in {MSGS: messages, TOOLS: tools, SYSTEM: system, MEMORY_CHARS_ATTRIBUTE: hint,
                               P: explicit[0], T: explicit[1], M: explicit[2]}.items() if v is not None}
    result = split_layers(attrs, billed)
    if result is None:
        return
    assert min(result.as_tuple()) >= 0
    assert result.prompt_tokens + result.tool_tokens + result.memory_tokens == billed
    assert result.source in ("explicit", "content")


@given(total=st.decimals(allow_nan=False, allow_infinity=False),
       weights=st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=8))
def test_apportion_sums_exactly(total: Decimal, weights: list[int]) -> None:
    parts = apportion(total, weights)
    assert len(parts) == len(weights)
    assert sum(map(Fraction, parts)) == Fraction(total)  # exact, whatever the Decimal context's precision
    if total >= 0:
        assert all(p >= 0 for p in parts)
    else:
        assert all(p <= 0 for p in parts)
    places = max(18, -total.as_tuple().exponent)  # type: ignore[operator]
    assert all(p.as_tuple().exponent == -places for p in parts)
    for p, w in zip(parts, weights):
        if w == 0 and any(weights):
            assert p == 0
    if not any(weights):
        assert parts[0] == total


@given(cost=st.decimals(min_value=0, max_value=10**4, places=12),
       tokens=st.tuples(*[st.integers(min_value=0, max_value=10**7)] * 3))
def test_layer_costs_sum_to_input_cost(cost: Decimal, tokens: tuple[int, int, int]) -> None:
    costs = layer_costs(cost, LayerSplit(*tokens, source="explicit"))
    assert sum(costs) == cost  # within the default context: costs this size add up exactly
    assert all(c >= 0 for c in costs)


# ------------------------------------------------------------------------------------------- context hints


def test_token_layers_nest_and_restore() -> None:
    assert context_attributes() == {}
    with token_layers(prompt=100, memory=7):
        assert context_attributes() == {P: 100, M: 7}
        with token_layers(tool=5, memory=9):
            assert context_attributes() == {P: 100, T: 5, M: 9}  # inner overrides memory, inherits prompt
        assert context_attributes() == {P: 100, M: 7}
    assert context_attributes() == {}


def test_memory_hints_add_up_and_restore() -> None:
    with memory("abc"):
        assert context_attributes() == {MEMORY_CHARS_ATTRIBUTE: 3}
        with memory(10), token_layers(prompt=1):
            assert context_attributes() == {MEMORY_CHARS_ATTRIBUTE: 13, P: 1}
        assert context_attributes() == {MEMORY_CHARS_ATTRIBUTE: 3}
    with memory(""):
        assert context_attributes() == {}  # zero characters is no hint


def test_hints_restore_after_an_exception() -> None:
    with pytest.raises(RuntimeError), token_layers(tool=1), memory("x"):
        raise RuntimeError
    assert context_attributes() == {}


@pytest.mark.parametrize("bad", [{"prompt": -1}, {"tool": 1.5}, {"memory": True}, {"prompt": "12"}])
def test_token_layers_rejects_bad_counts(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        token_layers(**bad)


@pytest.mark.parametrize("bad", [-1, 2.0, None, False, b"bytes"])
def test_memory_rejects_bad_content(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        memory(bad)


def test_decorators_sync_async_and_generators() -> None:
    @token_layers(prompt=3)
    def sync() -> dict[str, Any]:
        return context_attributes()

    @memory("four")
    async def coro() -> dict[str, Any]:
        await asyncio.sleep(0)
        return context_attributes()

    @token_layers(tool=2)
    def gen() -> Iterator[dict[str, Any]]:
        yield context_attributes()

    @token_layers(memory=1)
    async def agen() -> Any:
        yield context_attributes()

    async def collect() -> list[dict[str, Any]]:
        return [x async for x in agen()]

    assert sync() == {P: 3}
    assert asyncio.run(coro()) == {MEMORY_CHARS_ATTRIBUTE: 4}
    assert list(gen()) == [{T: 2}]
    assert asyncio.run(collect()) == [{M: 1}]
    assert context_attributes() == {}


def test_generators_see_hints_only_while_their_body_runs() -> None:
    seen: list[Any] = []

    @token_layers(tool=4)
    def gen() -> Any:
        try:
            received = yield context_attributes()
            seen.append(("sent", received, context_attributes()))
            try:
                yield "second"
            except KeyError:
                seen.append(("thrown", context_attributes()))
            yield "third"
        finally:
            seen.append(("closed", context_attributes()))

    g = gen()
    assert next(g) == {T: 4}
    assert context_attributes() == {}  # the consumer, between steps, has no hints
    assert g.send("hi") == "second"
    assert g.throw(KeyError("k")) == "third"
    g.close()
    assert seen == [("sent", "hi", {T: 4}), ("thrown", {T: 4}), ("closed", {T: 4})]

    @memory("mm")
    async def agen() -> Any:
        try:
            got = yield context_attributes()
            yield (got, context_attributes())
        finally:
            seen.append(("aclosed", context_attributes()))

    async def consume() -> list[Any]:
        a = agen()
        first = await a.__anext__()
        between = context_attributes()
        second = await a.asend("x")
        await a.aclose()
        return [first, between, second]

    assert asyncio.run(consume()) == [{MEMORY_CHARS_ATTRIBUTE: 2}, {}, ("x", {MEMORY_CHARS_ATTRIBUTE: 2})]
    assert seen[-1] == ("aclosed", {MEMORY_CHARS_ATTRIBUTE: 2})

    @token_layers(prompt=1)
    def returns() -> Any:
        yield 1
        return "done"

    def outer() -> Any:
        result = yield from returns()
        return result

    o = outer()
    assert next(o) == 1
    with pytest.raises(StopIteration) as stop:
        next(o)
    assert stop.value.value == "done"


def test_hints_are_per_task_and_async_with() -> None:
    async def worker(n: int) -> dict[str, Any]:
        async with token_layers(prompt=n):
            await asyncio.sleep(0.001 * (3 - n))  # interleave the tasks
            return context_attributes()

    async def main() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(worker(n) for n in range(3))))

    assert asyncio.run(main()) == [{P: 0}, {P: 1}, {P: 2}]


def test_hints_stay_out_of_baggage_and_follow_copied_contexts() -> None:
    from opentelemetry import baggage

    with token_layers(prompt=1), memory("m"):
        assert baggage.get_all() == {}  # never on the wire
        ctx = contextvars.copy_context()
    assert ctx.run(context_attributes) == {P: 1, MEMORY_CHARS_ATTRIBUTE: 1}
    assert context_attributes() == {}


# ---------------------------------------------------------------------------------------------- live stack


def hint_processor() -> Any:
    """A span processor that copies the layer hints onto spans at start: the library's processor will."""
    from opentelemetry.sdk.trace import SpanProcessor

    class HintProcessor(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            hints = context_attributes()
            if hints:
                span.set_attributes(hints)

    return HintProcessor()


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real SDKs and instrumentations, pricing with CostSpanProcessor, against the fake vendor."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import otel_costattr as oc
    from otel_costattr.testing import FakeVendorServer
    from tests.integration.conftest import Telemetry

    with FakeVendorServer(seed=15) as vendor:
        session = Telemetry(vendor)
        session.exporter = InMemorySpanExporter()
        session.provider = TracerProvider()
        session.provider.add_span_processor(hint_processor())
        session.provider.add_span_processor(
            oc.CostSpanProcessor(SimpleSpanProcessor(session.exporter), book=oc.PriceBook.load(env=False)))
        try:
            yield session
        finally:
            session.close()


OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
OPENAI_MESSAGES = [
    {"role": "system", "content": "You are a terse weather bot."},
    {"role": "user", "name": "memory", "content": "Earlier: the user lives in Paris."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21, "sky": "clear"}'},
]


def input_cost(span: Any) -> Decimal:
    return Decimal(repr(span.attributes["gen_ai.cost.input_cost"]))


def test_live_genai_openai_split_and_cost(live: Any) -> None:
    from otel_costattr.testing import Usage, fake_headers

    live.instrument("genai-openai")
    live.openai().chat.completions.create(model="gpt-4o-mini", messages=OPENAI_MESSAGES, tools=OPENAI_TOOLS,
                                          extra_headers=fake_headers(usage=Usage(input=1200, cache_read=1024,
                                                                                 output=30)))
    (span,) = live.spans()
    layers = split_layers(span.attributes, span.attributes["gen_ai.usage.input_tokens"])
    # the same content as RECORDED["genai-openai"]: [45, 296, 33] characters of 374
    assert layers == LayerSplit(144, 950, 106, "content")
    # 176 x $0.15 + 1024 x $0.075 per 1M = 26.4 + 76.8 = 103.2 micro-dollars of input
    cost = input_cost(span)
    assert cost == Decimal("0.0001032")
    parts = layer_costs(cost, layers)
    assert sum(parts) == cost and all(p > 0 for p in parts)


def test_live_traceloop_anthropic_memory_hint_and_explicit(live: Any) -> None:
    from otel_costattr.testing import Usage, fake_headers

    live.instrument("traceloop-anthropic")
    client = live.anthropic()
    notes = "Paris notes: " + "n" * 87  # 100 characters of retrieved memory spliced into the user message
    question = "Weather in Paris?"
    headers = fake_headers(usage=Usage(input=300, output=10))
    with memory(notes):
        client.messages.create(model="claude-haiku-4-5", max_tokens=50, system="Be terse.",
                               messages=[{"role": "user", "content": notes + "\n" + question}],
                               extra_headers=headers)
    with token_layers(prompt=80, memory=200):  # tool left out: the remainder
        client.messages.create(model="claude-haiku-4-5", max_tokens=50, system="Be terse.",
                               messages=[{"role": "user", "content": question}], extra_headers=headers)
    hinted, explicit = live.spans()
    assert hinted.attributes[MEMORY_CHARS_ATTRIBUTE] == 100
    # prompt: 9 system + 118 user characters = 127, of which 100 move to memory: [27, 0, 100] of 127;
    # quotas 63.78 / 236.22: floors 63 + 236, the unit left goes to prompt (remainder .78)
    assert split_layers(hinted.attributes, hinted.attributes["gen_ai.usage.input_tokens"]) == \
        LayerSplit(64, 0, 236, "content")
    assert explicit.attributes[P] == 80 and M not in hinted.attributes
    assert split_layers(explicit.attributes, explicit.attributes["gen_ai.usage.input_tokens"]) == \
        LayerSplit(80, 20, 200, "explicit")
