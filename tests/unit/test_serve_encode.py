"""serve's attribute encoder: the per-layout packed path writes exactly what the general path writes."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_costattr import PriceBook
from otel_costattr._capture._enrich import Enricher
from otel_costattr._serve._codec import ProtoEnricher

LAYOUTS = [
    {"gen_ai.cost.status": "priced", "gen_ai.cost.total_cost": 0.00472, "gen_ai.cost.input_cost": 0.00172,
     "gen_ai.cost.currency": "USD", "langfuse.observation.cost_details": '{"total": 0.00472}'},
    {"gen_ai.cost.total_cost": 1e-9, "gen_ai.cost.flags": ("fallback:reasoning", "web_search"),
     "gen_ai.cost.input_cost": 0.0},
    {"gen_ai.cost.status": "duplicate", "gen_ai.cost.duplicate_of": "00f067aa0ba902b7"},
    {"gen_ai.cost.total_cost": 2.5, "gen_ai.cost.status": "priced", "gen_ai.cost.output_cost": 2.5},
]


@pytest.mark.parametrize("extra", LAYOUTS)
def test_layout_encoder_matches_the_general_one(extra: dict) -> None:
    pe = ProtoEnricher(Enricher(PriceBook.load(imported=False, env=False)))
    general = b"".join(pe._encode_one(k, v) for k, v in extra.items())
    for _ in range(3):  # first call builds the layout, later ones use it
        assert pe._encode(extra) == general
    other = dict(extra)
    for k, v in other.items():
        if isinstance(v, float):
            other[k] = str(v)  # same keys, other types: must not use the float layout
    assert pe._encode(other) == b"".join(pe._encode_one(k, v) for k, v in other.items())
    span = Span.FromString(general)
    got = {kv.key: kv.value for kv in span.attributes}
    assert list(got) == list(extra)
    for k, v in extra.items():
        if isinstance(v, float):
            assert got[k].double_value == v
        elif isinstance(v, str):
            assert got[k].string_value == v
        else:
            assert tuple(x.string_value for x in got[k].array_value.values) == v


@pytest.mark.parametrize("value", ["", "USD", "é" * 70, "x" * 127, "y" * 128, '{"total": 1}' * 1500, "z" * 20000])
@pytest.mark.parametrize("key", ["gen_ai.cost.status", "k" * 130])
def test_string_attributes_are_the_bytes_protobuf_writes(key: str, value: str) -> None:
    """The hand-built string encoding (cached key bytes, multi-byte length prefixes) against protobuf's own."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    from otel_costattr._serve._codec import _encode_attribute

    want = Span(attributes=[KeyValue(key=key, value=AnyValue(string_value=value))]).SerializeToString()
    assert _encode_attribute(key, value) == want
    assert _encode_attribute(key, value) == want  # second time from the key cache
