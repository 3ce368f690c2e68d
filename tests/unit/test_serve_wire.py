"""serve's wire view: span attributes read from their serialized bytes must read exactly as protobuf reads them.

The reader takes the layout protobuf writers produce (key, then value) itself and hands anything else to
protobuf; these tests hold both routes to what the standard message classes say, and check that the
entry cache is bounded and never changes a result.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_costattr import attributes as A
from otel_costattr._capture._enrich import UNRENDERED, Enricher
from otel_costattr._pricing._book import default_book
from otel_costattr._serve._codec import (
    _SKIP,
    _WANTED,
    PROTOBUF,
    ProtoEnricher,
    _read_entry,
    _value,
    _wire_value,
)
from tests.otlp_support import any_value

WANTED_KEYS = sorted(_WANTED)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.one_of(
    st.text(max_size=40), st.text(min_size=120, max_size=300), INT64, st.integers(0, 2**22),
    st.floats(allow_nan=True), st.booleans(),
)




VALUES = st.one_of(
    SCALARS, st.none(), st.binary(max_size=20), st.tuples(SCALARS, SCALARS), st.dictionaries(st.text(max_size=5),
                                                                                               SCALARS, max_size=2),
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_any_value_bytes_read_as_protobuf_reads_them(v: object) -> None:
    av = any_value(v)
    assert _same(_wire_value(av.SerializeToString()), _value(av))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.sampled_from(WANTED_KEYS), st.text(max_size=20), st.text(min_size=128, max_size=200)), VALUES)
def test_key_value_entries_read_as_protobuf_reads_them(key: str, v: object) -> None:
    kv = KeyValue(key=key, value=any_value(v))
    got = _read_entry(kv.SerializeToString())
    if key in _WANTED:
        assert got[0] == key and _same(got[1], _value(kv.value))
    else:
        assert got is _SKIP


def _field(num: int, payload: bytes) -> bytes:
    assert len(payload) < 0x80
    return bytes((num << 3 | 2, len(payload))) + payload


def test_unusual_but_valid_layouts_go_to_protobuf() -> None:
    key = "gen_ai.usage.input_tokens"
    value = AnyValue(int_value=1234).SerializeToString()
    # the value before the key
    assert _read_entry(_field(2, value) + _field(1, key.encode())) == (key, 1234)
    # an unknown field after the value (a newer schema)
    assert _read_entry(_field(1, key.encode()) + _field(2, value) + _field(9, b"x")) == (key, 1234)
    # the value field twice: protobuf merges them, and for a oneof scalar the last one wins
    second = AnyValue(int_value=99).SerializeToString()
    assert _read_entry(_field(1, key.encode()) + _field(2, value) + _field(2, second)) == (key, 99)
    # a value of 16 kB and more (a three-byte length)
    long = "m" * 20_000
    assert _read_entry(KeyValue(key="gen_ai.request.model", value=AnyValue(string_value=long)).SerializeToString()) \
        == ("gen_ai.request.model", long)
    # an empty key is absent from the wire: not an attribute the Enricher reads
    assert _read_entry(KeyValue(key="", value=AnyValue(int_value=5)).SerializeToString()) is _SKIP
    assert _read_entry(b"") is _SKIP
    # ints that need more than three varint bytes, and negative ones
    for n in (2**21, 2**40, -1, -(2**63)):
        assert _read_entry(KeyValue(key=key, value=AnyValue(int_value=n)).SerializeToString()) == (key, n)
    # a double and a non-canonical bool
    assert _read_entry(_field(1, b"gen_ai.cost.total_cost") + b"\x12\x09\x21" + struct.pack("<d", 0.5)) == \
        ("gen_ai.cost.total_cost", 0.5)
    assert _read_entry(_field(1, b"gen_ai.request.stream") + _field(2, b"\x10\x02")) == ("gen_ai.request.stream", True)


class _Recorder:
    """An Enricher stand-in that records the attributes serve hands it."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def compute_attributes(self, attrs: dict, **_: object) -> tuple:
        self.seen.append(dict(attrs))
        return None, None, None, None


def _request(spans: list[list[tuple[str, object]]]) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i, attrs in enumerate(spans):
        sp = ss.spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="s")
        sp.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attrs)
    return req.SerializeToString()


ATTRS = st.lists(st.tuples(st.sampled_from([*WANTED_KEYS[:12], A.READ["operation"][0], "customer_id", "http.route"]),
                           VALUES), max_size=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(st.just("gen_ai.operation.name"), st.just("chat")), min_size=1, max_size=1)
                .flatmap(lambda head: ATTRS.map(lambda rest: head + rest)), min_size=1, max_size=6))
def test_serve_reads_the_attributes_the_standard_message_has(spans: list) -> None:
    body = _request(spans)
    rec = _Recorder()
    pe = ProtoEnricher(rec)  # type: ignore[arg-type]
    for _ in range(2):  # the second pass reads through the entry cache
        rec.seen.clear()
        pe.enrich(pe.decode(body, PROTOBUF))
        want = []
        for sp in ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans:
            d = {}
            for kv in sp.attributes:  # duplicate keys: the last one wins, as in a dict
                if kv.key in _WANTED:
                    d[kv.key] = _value(kv.value)
            want.append(d)
        assert len(rec.seen) == len(want)
        for got, exp in zip(rec.seen, want):
            assert got.keys() == exp.keys() and all(_same(got[k], exp[k]) for k in exp)


def test_entry_cache_is_bounded_and_counts_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    import otel_costattr._serve._codec as codec

    monkeypatch.setattr(codec, "_ENTRY_CACHE_MAX", 50)
    spans = [[("gen_ai.operation.name", "chat"), ("gen_ai.usage.input_tokens", i), ("url.path", f"/o/{i}"),
              ("prompt", "p" * 400)] for i in range(200)]
    rec = _Recorder()
    pe = ProtoEnricher(rec)  # type: ignore[arg-type]
    pe.enrich(pe.decode(_request(spans), PROTOBUF))
    assert len(pe._entries) <= 50
    # two new short entries per span (the operation repeats; the 400-byte one is never held)
    assert pe.entry_cache_clears >= (200 * 2) // 50 - 1
    assert all(len(k) <= codec._ENTRY_CACHE_ENTRY_MAX for k in pe._entries)
    assert [s["gen_ai.usage.input_tokens"] for s in rec.seen] == list(range(200))


def test_wire_request_round_trips_the_bytes() -> None:
    body = _request([[("gen_ai.operation.name", "chat"), ("gen_ai.usage.input_tokens", 7), ("k", (1, "a"))]])
    req = ProtoEnricher(_Recorder()).decode(body, PROTOBUF).request  # type: ignore[arg-type]
    assert req.SerializeToString() == body
    standard = ExportTraceServiceRequest.FromString(req.SerializeToString())
    assert standard == ExportTraceServiceRequest.FromString(body)
    span = standard.resource_spans[0].scope_spans[0].spans[0]
    assert isinstance(span, Span) and span.attributes[1].value.int_value == 7


def _raw_request(entries: list[bytes]) -> bytes:
    """A one-span request whose attribute entries are the given bytes, valid or not (the wire view takes any)."""
    from otel_costattr._serve._codec import WireRequest

    req = WireRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add(trace_id=(1).to_bytes(16, "big"),
                                                              span_id=(1).to_bytes(8, "big"), name="s")
    sp.attributes.extend(entries)
    return req.SerializeToString()


def _standard_accepts(body: bytes) -> bool:
    try:
        ExportTraceServiceRequest.FromString(body)
    except Exception:  # noqa: BLE001 - any refusal
        return False
    return True


def _serve_accepts(pe: ProtoEnricher, body: bytes) -> bool:
    from otel_costattr._ledger._otlp import OTLPDecodeError

    try:
        pe.decode(body, PROTOBUF)
    except OTLPDecodeError:
        return False
    return True


_ENTRY_KEYS = st.sampled_from(["gen_ai.request.model", "gen_ai.usage.input_tokens", "customer_id", "http.route"])


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(_ENTRY_KEYS, VALUES), min_size=1, max_size=4), st.data())
def test_decode_refuses_exactly_the_attribute_bytes_protobuf_refuses(attrs: list, data: st.DataObject) -> None:
    """Attribute entries are validated by serve itself (read once, cached when valid), not by parsing the body a
    second time: mutated entries must be refused exactly when the standard message refuses them, whether the
    key is one the Enricher reads or not, on first sight and through the entry cache."""
    entries = [bytearray(KeyValue(key=k, value=any_value(v)).SerializeToString()) for k, v in attrs]
    for _ in range(data.draw(st.integers(1, 3))):
        e = entries[data.draw(st.integers(0, len(entries) - 1))]
        op = data.draw(st.sampled_from(["utf8", "utf8", "flip", "truncate", "insert"]))
        pos = data.draw(st.integers(0, max(len(e) - 1, 0)))
        if op == "utf8" and e:
            e[pos] = data.draw(st.sampled_from([0xFF, 0xC0, 0xED, 0x80]))  # bytes that break UTF-8
        elif op == "flip" and e:
            e[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "truncate":
            del e[pos:]
        elif op == "insert":
            e[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    body = _raw_request([bytes(e) for e in entries])
    pe = ProtoEnricher(_Recorder())  # type: ignore[arg-type]
    want = _standard_accepts(body)
    assert _serve_accepts(pe, body) is want
    assert _serve_accepts(pe, body) is want  # again, through the entry cache


def test_invalid_attribute_bytes_are_refused_with_the_span_named() -> None:
    from otel_costattr._ledger._otlp import OTLPDecodeError

    def entry(key: bytes, value: bytes) -> bytes:
        return _field(1, key) + _field(2, value)

    pe = ProtoEnricher(_Recorder())  # type: ignore[arg-type]
    for bad in (entry(b"gen_ai.request.model", b"\x0a\x02\xff\xfe"),  # a read key, invalid UTF-8 value
                entry(b"customer_id", b"\x0a\x02\xc3\x28"),  # a key it does not read, invalid value
                entry(b"cust\xffomer", b"\x0a\x01a"),  # invalid UTF-8 in the key
                entry(b"gen_ai.usage.input_tokens", b"\x18")):  # a varint cut short
        assert not _standard_accepts(_raw_request([bad]))
        with pytest.raises(OTLPDecodeError, match="span 0000000000000001: a span attribute is not a valid KeyValue"):
            pe.decode(_raw_request([KeyValue(key="customer_id", value=AnyValue(string_value="x")).SerializeToString(),
                                    bad]), PROTOBUF)


# ------------------------------------------------------------------ the standard priced set, rendered directly

class _RenderAlways(Enricher):
    """The library's Enricher with ``render=False`` ignored: serve then encodes every result from its dict."""

    def compute_attributes(self, attrs, **kw):  # noqa: ANN001, ANN003, ANN201
        kw["render"] = True
        return super().compute_attributes(attrs, **kw)


MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"),
          ("openai", "gpt-4.1-mini"), ("anthropic", "claude-3-5-haiku-20241022"), ("openai", "o3-mini")]
COUNTS = st.one_of(st.none(), st.integers(0, 3_000_000))
CALLS = st.tuples(st.sampled_from(MODELS), COUNTS, COUNTS, COUNTS, COUNTS, COUNTS, st.booleans(), COUNTS)


def _call_attrs(call: tuple, i: int) -> list[tuple[str, object]]:
    (provider, model), n_in, n_out, cache_read, cache_write, reasoning, embed, write_1h = call
    attrs: list[tuple[str, object]] = [
        ("gen_ai.operation.name", "embeddings" if embed else "chat"), ("gen_ai.provider.name", provider),
        ("gen_ai.request.model", model), ("gen_ai.response.id", f"r-{i}")]
    for key, n in (("gen_ai.usage.input_tokens", n_in), ("gen_ai.usage.output_tokens", n_out),
                   ("gen_ai.usage.cache_read.input_tokens", cache_read),
                   ("gen_ai.usage.cache_creation.input_tokens", cache_write),
                   ("gen_ai.usage.reasoning.output_tokens", reasoning),
                   ("anthropic.usage.cache_creation.ephemeral_1h_input_tokens", write_1h)):
        if n is not None:
            attrs.append((key, n))
    return attrs


@settings(max_examples=200, deadline=None)
@given(st.lists(CALLS, min_size=1, max_size=8), st.booleans())
def test_rendered_priced_set_equals_the_encoded_dict(calls: list, langfuse: bool) -> None:
    book = default_book()
    body = _request([_call_attrs(c, i) for i, c in enumerate(calls)])
    fast, slow = ProtoEnricher(Enricher(book, langfuse=langfuse)), ProtoEnricher(_RenderAlways(book, langfuse=langfuse))
    got, want = fast.decode(body, PROTOBUF), slow.decode(body, PROTOBUF)
    c1, c2 = fast.enrich(got), slow.enrich(want)
    assert c1.statuses == c2.statuses
    assert got.request.SerializeToString() == want.request.SerializeToString()


def test_render_is_taken_for_the_standard_set_and_only_then() -> None:
    # serve skips its "already on the span" check for UNRENDERED results: the Enricher's check must cover it
    from otel_costattr._capture._enrich import _COST_KEYS
    from otel_costattr._serve._codec import _WRITTEN_NAMES

    assert _WRITTEN_NAMES <= _COST_KEYS
    book = default_book()
    e = Enricher(book)
    base = dict(_call_attrs((("openai", "gpt-4o"), 1200, 300, 1024, None, None, False, None), 0))
    extra, status, _, cost = e.compute_attributes(base, span_id="00000000000000aa", start_ns=1_760_000_000 * 10**9,
                                                  end_ns=None, render=False)
    assert extra is UNRENDERED and status == "priced"
    pe = ProtoEnricher(e)
    rendered = pe._render(cost, status)
    assert rendered == pe._encode(e._priced_attributes(cost, status))
    kv = Span.FromString(rendered).attributes
    assert [a.key for a in kv][:2] == [A.COST_STATUS, A.COST_TOTAL] and kv[-1].key == A.LANGFUSE_COST_DETAILS
    # an upstream cost on the span, token layers, a 1h cache write or a flag: the dict, as before
    for more in ({A.COST_TOTAL: "bad"}, {"gen_ai.cost.layer_tool_tokens": 10},
                 {"anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 100},
                 {"anthropic.response.service_tier": "batch"}):
        attrs = {**base, "gen_ai.response.id": f"r-{more}", "gen_ai.provider.name": "anthropic",
                 "gen_ai.request.model": "claude-sonnet-4-5", **more}
        extra, status, _, _ = e.compute_attributes(attrs, span_id="00000000000000ab", start_ns=1_760_000_000 * 10**9,
                                                   end_ns=None, render=False)
        assert extra is not UNRENDERED and status in ("priced", "partial"), (more, status)
    # callers that do not ask never see the marker
    extra, *_ = e.compute_attributes({**base, "gen_ai.response.id": "r-x"}, span_id="00000000000000ac",
                                     start_ns=1_760_000_000 * 10**9, end_ns=None)
    assert extra is not UNRENDERED and extra[A.COST_STATUS] == "priced"


def test_render_entry_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import otel_costattr._serve._codec as codec

    monkeypatch.setattr(codec, "_STRING_CACHE_MAX", 2)
    pe = ProtoEnricher(Enricher(default_book()))
    body = _request([_call_attrs((m, 1000, 10, None, None, None, False, None), i) for i, m in enumerate(MODELS * 2)])
    pe.enrich(pe.decode(body, PROTOBUF))
    assert len(pe._entry_tails) <= 2
