"""OTLP message helpers shared by the tests (ingest's and serve's wire readers, serve's endpoints and load)."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList


def any_value(v: object) -> AnyValue:
    """The OTLP ``AnyValue`` of a Python value: None is a value with nothing set, a list or tuple an array, a dict a
    key-value list."""
    if v is None:
        return AnyValue()
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=any_value(x)) for k, x in v.items()]))
    return AnyValue(string_value=v)


def key_value(key: str, value: object) -> KeyValue:
    """An OTLP attribute entry: ``key`` with :func:`any_value` of ``value``."""
    return KeyValue(key=key, value=any_value(value))
