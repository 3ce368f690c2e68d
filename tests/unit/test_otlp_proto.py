"""OTLP/protobuf decoding: the wire reader (span attributes kept as bytes, decoded once per distinct entry)
gives exactly what the standard message classes give, for valid, odd and broken messages alike."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (AnyValue, InstrumentationScope, KeyValue)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otel_costattr._ledger import _otlp
from otel_costattr._ledger._otlp import OTLPDecodeError, _records_from_message, records_from_proto
from tests.otlp_support import any_value

_texts = st.one_of(st.sampled_from(["", "chat", "gpt-4o", "ü✓", "x" * 126, "x" * 127, "x" * 128, "y" * 16_381,
                                    "y" * 16_384, "z" * 20_000]), st.text(max_size=40))
_ints = st.one_of(st.integers(0, 2**21 + 5), st.integers(-2**63, 2**63 - 1))
_floats = st.floats(allow_nan=True, allow_infinity=True)




_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, _texts, st.binary(max_size=6))
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3), st.dictionaries(st.text(max_size=3), _scalars,
                                                                                max_size=2))
_keys = st.one_of(st.sampled_from(["", "gen_ai.request.model", "customer_id", "k" * 130]), st.text(max_size=12))
_ids = st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from([b"", bytes(16), b"\x01" * 3]))
_sids = st.one_of(st.binary(min_size=8, max_size=8), st.sampled_from([b"", bytes(8), b"\x01" * 9]))
_times = st.one_of(st.integers(0, 2**63 - 1), st.integers(2**63, 2**64 - 1))


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    spans = [Span(trace_id=draw(_ids), span_id=draw(_sids), parent_span_id=draw(st.sampled_from([b"", b"\x02" * 8,
                                                                                                b"\x03" * 4])),
                  name=draw(_texts), kind=draw(st.integers(0, 7)), start_time_unix_nano=draw(_times),
                  end_time_unix_nano=draw(_times), status=Status(code=draw(st.integers(0, 3))),
                  attributes=[KeyValue(key=k, value=any_value(v))
                              for k, v in draw(st.lists(st.tuples(_keys, _values), max_size=6))])
             for _ in range(draw(st.integers(0, 4)))]
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[KeyValue(key="service.name", value=any_value(draw(st.one_of(_texts, _ints))))]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name=draw(_texts)), spans=spans)])])
    data = req.SerializeToString()
    for pos, junk in draw(st.lists(st.tuples(st.integers(0, max(len(data), 1)), st.binary(max_size=3)),
                                   max_size=2)):
        data = data[:pos] + junk + data[pos + len(junk):]  # byte-level damage, sometimes
    return data


def _norm(x: object) -> object:
    """Records compared by value, with NaN equal to itself (repr keeps int/float/bool apart)."""
    return repr(x).replace("nan", "NaN")


def _decode(fn: object, data: bytes, with_errors: bool) -> object:
    errors: list[str] | None = [] if with_errors else None
    try:
        records = fn(data, errors)  # type: ignore[operator]
    except OTLPDecodeError as exc:
        return ("raised", str(exc), errors)
    return (_norm(records), errors)


@settings(max_examples=400, deadline=None)
@given(data=_requests(), with_errors=st.booleans())
def test_wire_reader_decodes_exactly_like_the_message_classes(data: bytes, with_errors: bool) -> None:
    assert _decode(records_from_proto, data, with_errors) == _decode(_records_from_message, data, with_errors)


def test_entry_cache_is_bounded_and_repeats_decode_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_otlp, "_ENTRIES", {})
    monkeypatch.setattr(_otlp, "_ENTRIES_MAX", 8)
    cleared = _otlp.entry_cache_stats["cleared"]
    spans = [Span(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"),
                  attributes=[KeyValue(key="n", value=AnyValue(int_value=i)),
                              KeyValue(key="op", value=AnyValue(string_value="chat")),
                              KeyValue(key="d", value=AnyValue(double_value=math.pi))]) for i in range(50)]
    data = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]) \
        .SerializeToString()
    for _ in range(2):
        got = records_from_proto(data)
        assert [r.attributes for r in got] == [{"n": i, "op": "chat", "d": math.pi} for i in range(50)]
        assert len(_otlp._ENTRIES) <= 8
    assert _otlp.entry_cache_stats["cleared"] > cleared
