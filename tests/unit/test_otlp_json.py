"""OTLP/JSON attribute decoding: the fast path for the common value shapes agrees with the general decoder."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_costattr._ledger._otlp import OTLPDecodeError, _json_attrs, _json_value

_scalars = st.one_of(st.text(max_size=8), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                     st.booleans(), st.none(), st.sampled_from(["12", "007", "-3", "+4", " 5", "٣", "1e3", "NaN"]))
_keys = st.sampled_from(["stringValue", "intValue", "doubleValue", "boolValue", "bytesValue", "other"])
_values = st.dictionaries(_keys, _scalars, max_size=3)


def _reference(items: list) -> dict | type:
    """The general decoder applied entry by entry (what _json_attrs did before its fast path)."""
    out = {}
    try:
        for kv in items:
            if not isinstance(kv.get("key"), str):
                return OTLPDecodeError
            v = _json_value(kv.get("value", {}))
            if v is not None:
                out[kv["key"]] = v
    except OTLPDecodeError:
        return OTLPDecodeError
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(st.lists(st.fixed_dictionaries({"key": st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 2))},
                                      optional={"value": _values}), max_size=5))
def test_fast_path_decodes_exactly_like_the_general_decoder(items: list) -> None:
    want = _reference(items)
    try:
        got = _json_attrs(items)
    except OTLPDecodeError:
        assert want is OTLPDecodeError
        return
    assert want is not OTLPDecodeError and got.keys() == want.keys()
    assert all(_same(got[k], want[k]) for k in got), (got, want)


def test_numbers_out_of_range_are_decode_errors() -> None:
    # json.loads reads 1e400 as inf, and NaN as nan: int() of those raised OverflowError/ValueError past the
    # decoder's contract (found by the property test above)
    for text in ('{"intValue": 1e400}', '{"intValue": NaN}', '{"intValue": "1e400"}'):
        with pytest.raises(OTLPDecodeError, match="intValue"):
            _json_value(json.loads(text))
    with pytest.raises(OTLPDecodeError, match="doubleValue"):  # an integer too large for a float
        _json_value(json.loads('{"doubleValue": 1' + "0" * 400 + "}"))
    # more digits than int() converts, through the fast path and the general one alike
    with pytest.raises(OTLPDecodeError, match="intValue"):
        _json_attrs([{"key": "n", "value": {"intValue": "1" * 5000}}])


_id_texts = st.one_of(st.text(alphabet="0123456789abcdefABCDEFxX -=+/ \u0663", min_size=0, max_size=34),
                      st.sampled_from(["ab" * 16, "AB" * 16, " " + "ab" * 16, "ab" * 8, "0" * 32, "٣" * 16]),
                      st.integers(0, 10), st.none(), st.booleans(), st.lists(st.integers(), max_size=1))


@settings(max_examples=400, deadline=None)
@given(value=_id_texts, size=st.sampled_from([8, 16]))
def test_id_fast_path_is_the_general_reading(value: object, size: int) -> None:
    from otel_costattr._ledger._otlp import _hex_id, _json_id
    for fn in (_hex_id, _json_id):
        try:
            got = ("ok", fn(value, size, "id"))
        except OTLPDecodeError as exc:
            got = ("error", str(exc))
        if fn is _hex_id:
            fast = got
    assert fast == got


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(st.text(alphabet="0123456789 -+_.e\u0663", max_size=22), st.integers(-5, 2**64),
                       st.sampled_from(["9" * 18, "9" * 19, "1" * 30, "", "٣"]), st.none(), st.floats()))
def test_time_fast_path_is_the_general_reading(value: object) -> None:
    from otel_costattr._ledger._otlp import _nanos, _time
    results = []
    for fn in (_time, _nanos):
        try:
            results.append(("ok", fn(value, "t")))
        except OTLPDecodeError as exc:
            results.append(("error", str(exc)))
    assert results[0] == results[1]
