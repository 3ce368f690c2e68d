"""OTLP trace data in, :class:`SpanRecord` out: JSON (OTLP/JSON, the collector ``file`` exporter's lines) and
protobuf (one ``ExportTraceServiceRequest``, or the ``file`` exporter's stream of 4-byte big-endian
length-prefixed messages).

Contract: decoding a malformed message raises :class:`OTLPDecodeError` with the reason; :func:`iter_file`
never raises for bad content, it yields the error with its location and carries on with the next span, line or
message, so good data always loads.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ._store import SpanRecord

__all__ = ["OTLPDecodeError", "iter_file", "records_from_json", "records_from_proto", "records_from_request"]

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_KIND_NAMES = {f"SPAN_KIND_{v}": v for v in _KINDS.values()} | {v: v for v in _KINDS.values()}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_STATUS_NAMES = {f"STATUS_CODE_{v}": v for v in _STATUS.values()} | {v: v for v in _STATUS.values()}


class OTLPDecodeError(ValueError):
    """A message that is not valid OTLP trace data; the message says what is wrong."""


# --------------------------------------------------------------------------------------------- JSON


_HEX = re.compile(r"[0-9a-fA-F]+")


def _json_id(value: Any, size: int, what: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise OTLPDecodeError(f"{what} must be a hex string")
    v = value.strip()
    if len(v) == size * 2 and _HEX.fullmatch(v):
        return v.lower()
    try:  # some tools write proto3-JSON (base64) instead of OTLP/JSON (hex)
        raw = base64.b64decode(v, validate=True)
    except (ValueError, TypeError):
        raise OTLPDecodeError(f"{what} {value!r} is neither {size * 2} hex digits nor base64") from None
    if len(raw) != size:
        raise OTLPDecodeError(f"{what} {value!r} decodes to {len(raw)} bytes, expected {size}")
    return raw.hex()


def _json_value(v: Any) -> Any:
    if not isinstance(v, Mapping):
        raise OTLPDecodeError("attribute value must be an object like {\"stringValue\": \"...\"}")
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON number too large for a float, inf
            raise OTLPDecodeError(f"intValue {v['intValue']!r} is not an integer") from None
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond the float range
            raise OTLPDecodeError(f"doubleValue {v['doubleValue']!r} is not a number") from None
    if "arrayValue" in v:
        values = _list(_obj(v["arrayValue"], "arrayValue").get("values"), "arrayValue.values")
        return tuple(_json_value(x) for x in values)
    if "kvlistValue" in v:
        kv = _list(_obj(v["kvlistValue"], "kvlistValue").get("values"), "kvlistValue.values")
        if not all(isinstance(x, Mapping) for x in kv):
            raise OTLPDecodeError("kvlistValue.values entries must be objects")
        return json.dumps({str(x.get("key")): _json_value(x.get("value", {})) for x in kv}, default=str)
    if "bytesValue" in v:
        return str(v["bytesValue"])
    return None  # an empty AnyValue


def _json_attrs(items: Any) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise OTLPDecodeError("attributes must be a list of {key, value}")
    out: dict[str, Any] = {}
    for kv in items:
        if type(kv) is dict:  # what json.loads gives: the common value shapes without the general checks
            key, val = kv.get("key"), kv.get("value")
            if type(key) is str and type(val) is dict:
                sv = val.get("stringValue")
                if type(sv) is str:  # stringValue comes first in _json_value too
                    out[key] = sv
                    continue
                if len(val) == 1:
                    iv = val.get("intValue")
                    if type(iv) is str and len(iv) < 19 and iv.isdigit() and iv.isascii():  # int() refuses >4300
                        out[key] = int(iv)
                        continue
                    dv = val.get("doubleValue")
                    if type(dv) is float:
                        out[key] = dv
                        continue
        if not isinstance(kv, Mapping) or not isinstance(kv.get("key"), str):
            raise OTLPDecodeError("each attribute needs a string `key`")
        val = _json_value(kv.get("value", {}))
        if val is not None:
            out[kv["key"]] = val
    return out


#: The last instant a signed 64-bit count of nanoseconds since 1970 can hold (2262-04-11T23:47:16Z): the
#: ledger's time columns are BIGINT, and OTLP's fixed64 allows twice as much.
MAX_UNIX_NANOS = 2**63 - 1


def _nanos(v: Any, what: str) -> int:
    try:
        n = int(v or 0)
    except (TypeError, ValueError, OverflowError):
        raise OTLPDecodeError(f"{what} {str(v)[:40]!r} is not an integer number of nanoseconds") from None
    if n < 0:
        raise OTLPDecodeError(f"{what} is negative")
    if n > MAX_UNIX_NANOS:
        raise OTLPDecodeError(f"{what} {str(n)[:40]} is out of range (after 2262-04-11, the last time a signed "
                              "64-bit count of nanoseconds can hold)")
    return n


def _obj(v: Any, what: str) -> Mapping[str, Any]:
    """``v`` as an object; an absent value (None) is an empty one."""
    if v is None:
        return {}
    if type(v) is not dict and not isinstance(v, Mapping):
        raise OTLPDecodeError(f"{what} must be an object, got {type(v).__name__}")
    return v


def _list(v: Any, what: str) -> list[Any]:
    """``v`` as a list; an absent value (None) is an empty one."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise OTLPDecodeError(f"{what} must be a list, got {type(v).__name__}")
    return v


def records_from_json(obj: Any, errors: list[str] | None = None) -> list[SpanRecord]:
    """Spans of one OTLP/JSON ``ExportTraceServiceRequest`` (or ``TracesData``) object.

    A span that cannot be decoded (bad ids, a time out of range, bad attribute values) fails the whole message
    by default. With an ``errors`` list it is skipped instead and described there (its path in the message,
    its spanId, the reason), so one bad span does not cost the others of its message.

    Raises:
        OTLPDecodeError: the object is not OTLP trace data (wrong structure or types, or, without ``errors``, a
            bad span); never another exception for any JSON value.
    """
    if not isinstance(obj, Mapping) or "resourceSpans" not in obj:
        raise OTLPDecodeError("not an OTLP trace message: expected an object with `resourceSpans`")
    try:
        return _records_from_json(obj, errors)
    except OTLPDecodeError:
        raise
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:
        # A shape the checks above did not foresee is still a malformed message, never a crash of the caller.
        raise OTLPDecodeError(f"malformed OTLP/JSON: {type(exc).__name__}: {exc}") from None


def _records_from_json(obj: Mapping[str, Any], errors: list[str] | None) -> list[SpanRecord]:
    out: list[SpanRecord] = []
    for i, rs in enumerate(_list(obj.get("resourceSpans"), "resourceSpans")):
        if not isinstance(rs, Mapping):
            raise OTLPDecodeError("resourceSpans entries must be objects")
        res = _json_attrs(_obj(rs.get("resource"), "resource").get("attributes"))
        service = res.get("service.name")
        service = service if isinstance(service, str) else None
        scope_spans = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
        for j, ss in enumerate(_list(scope_spans, "scopeSpans")):
            if not isinstance(ss, Mapping):
                raise OTLPDecodeError("scopeSpans entries must be objects")
            scope = _obj(ss.get("scope") or ss.get("instrumentationLibrary"), "scope").get("name")
            scope = scope if isinstance(scope, str) else None
            for k, sp in enumerate(_list(ss.get("spans"), "spans")):
                if errors is None:
                    out.append(_json_span(sp, service, scope))
                    continue
                try:
                    out.append(_json_span(sp, service, scope))
                except (OTLPDecodeError, AttributeError, TypeError, ValueError, RecursionError) as exc:
                    sid = sp.get("spanId") if isinstance(sp, Mapping) else None
                    errors.append(f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                                  + (f" (spanId {str(sid)[:40]})" if sid else "") + f": {exc}")
    return out


_HEX_DIGITS = "0123456789abcdefABCDEF"


def _hex_id(value: Any, size: int, what: str) -> str:
    """:func:`_json_id`, with the common case (exactly ``2 * size`` hex digits) decided in C."""
    if type(value) is str and len(value) == 2 * size and not value.strip(_HEX_DIGITS):
        return value.lower()  # (strip removes hex digits from both ends: nothing is left only if all are)
    return _json_id(value, size, what)


def _time(v: Any, what: str) -> int:
    """:func:`_nanos`, with the common case (a decimal string of up to 18 ASCII digits) decided in C."""
    if type(v) is str and len(v) < 19 and v.isdigit() and v.isascii():
        return int(v)  # non-negative and below 10**18 < MAX_UNIX_NANOS
    return _nanos(v, what)


def _json_span(sp: Any, service: str | None, scope: str | None) -> SpanRecord:
    if type(sp) is not dict and not isinstance(sp, Mapping):
        raise OTLPDecodeError("spans entries must be objects")
    get = sp.get
    trace_id = _hex_id(get("traceId"), 16, "traceId")
    span_id = _hex_id(get("spanId"), 8, "spanId")
    if not trace_id.strip("0") or not span_id.strip("0"):  # absent or all zeros
        raise OTLPDecodeError("every span needs a non-zero traceId and spanId")
    kind = get("kind", 0)
    kind = _KINDS.get(kind) if isinstance(kind, int) else _KIND_NAMES.get(str(kind))
    status = get("status")
    if status is None:
        status = "UNSET"
    else:
        status = _obj(status, "status").get("code", 0)
        status = (_STATUS.get(status) if isinstance(status, int) else _STATUS_NAMES.get(str(status))) or "UNSET"
    return SpanRecord(
        trace_id, span_id, _hex_id(get("parentSpanId"), 8, "parentSpanId") or None,
        str(get("name", "")), kind or "UNSPECIFIED", _time(get("startTimeUnixNano"), "startTimeUnixNano"),
        _time(get("endTimeUnixNano"), "endTimeUnixNano"), status, _json_attrs(get("attributes")), service, scope)


# ----------------------------------------------------------------------------------------- protobuf


def _pb_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(_pb_value(x) for x in v.array_value.values)
    if which == "kvlist_value":
        return json.dumps({x.key: _pb_value(x.value) for x in v.kvlist_value.values}, default=str)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _pb_attrs(items: Any) -> dict[str, Any]:
    out = {}
    for kv in items:
        val = _pb_value(kv.value)
        if val is not None:
            out[kv.key] = val
    return out


def _pb_span(sp: Any, service: str | None, scope: str | None) -> SpanRecord:
    if len(sp.trace_id) != 16 or len(sp.span_id) != 8 or not any(sp.trace_id) or not any(sp.span_id):
        raise OTLPDecodeError("every span needs a 16-byte trace_id and an 8-byte span_id, non-zero")
    for what, n in (("start_time_unix_nano", sp.start_time_unix_nano), ("end_time_unix_nano", sp.end_time_unix_nano)):
        if n > MAX_UNIX_NANOS:
            raise OTLPDecodeError(f"{what} {n} is out of range (after 2262-04-11, the last time a signed 64-bit "
                                  "count of nanoseconds can hold)")
    return SpanRecord(
        trace_id=sp.trace_id.hex(), span_id=sp.span_id.hex(),
        parent_span_id=sp.parent_span_id.hex() if len(sp.parent_span_id) == 8 else None,
        name=sp.name, kind=_KINDS.get(sp.kind, "UNSPECIFIED"), start_ns=sp.start_time_unix_nano,
        end_ns=sp.end_time_unix_nano, status_code=_STATUS.get(sp.status.code, "UNSET"),
        attributes=_pb_attrs(sp.attributes), service_name=service, scope_name=scope)


def records_from_request(req: Any, errors: list[str] | None = None) -> list[SpanRecord]:
    """Spans of a decoded ``ExportTraceServiceRequest`` protobuf message.

    A bad span (ids of the wrong size or zero, a time beyond :data:`MAX_UNIX_NANOS`) raises
    :class:`OTLPDecodeError` for the message; with an ``errors`` list it is skipped and described there.
    """
    out: list[SpanRecord] = []
    for i, rs in enumerate(req.resource_spans):
        res = _pb_attrs(rs.resource.attributes)
        service = res.get("service.name")
        service = service if isinstance(service, str) else None
        for j, ss in enumerate(rs.scope_spans):
            scope = ss.scope.name or None
            for k, sp in enumerate(ss.spans):
                if errors is None:
                    out.append(_pb_span(sp, service, scope))
                    continue
                try:
                    out.append(_pb_span(sp, service, scope))
                except OTLPDecodeError as exc:
                    errors.append(f"resource_spans[{i}].scope_spans[{j}].spans[{k}]"
                                  + (f" (span_id {sp.span_id.hex()[:16]})" if sp.span_id else "") + f": {exc}")
    return out


def records_from_proto(data: bytes, errors: list[str] | None = None) -> list[SpanRecord]:
    """Spans of one serialized ``ExportTraceServiceRequest`` (``errors``: see :func:`records_from_request`).

    Decoded through :data:`WireRequest` (each span attribute kept as its ``KeyValue`` bytes, read by
    :func:`_wire_attrs`); a message whose attributes that reader does not take is decoded again by the
    standard message classes (:func:`_records_from_message`), so every message gives exactly what those give,
    the same records, errors and exceptions (a property test holds the two equal).
    """
    from google.protobuf.message import DecodeError

    try:
        req = WireRequest.FromString(data)
    except (DecodeError, RecursionError, ValueError):
        return _records_from_message(data, errors)  # raises the standard classes' reason
    try:
        return _records_from_wire(req)
    except _Unusual:
        return _records_from_message(data, errors)


def _records_from_message(data: bytes, errors: list[str] | None = None) -> list[SpanRecord]:
    """:func:`records_from_proto` through the standard message classes (the reference; the fallback)."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(data)
    except DecodeError as exc:
        raise OTLPDecodeError(f"not a valid OTLP protobuf message: {exc}") from None
    return records_from_request(req, errors)


def _wire_view_class() -> Any:
    """``ExportTraceServiceRequest`` with ``Span.attributes`` declared ``repeated bytes``.

    A length-delimited field parses as ``bytes`` as well as it parses as a message, and serializes back to the
    same bytes, so this view reads and writes exactly the OTLP wire format. Each attribute stays one ``bytes``
    object (a serialized ``KeyValue``) instead of a ``KeyValue`` and an ``AnyValue`` message wrapper, and
    entries that repeat (most of them: operation, provider, model, attribution keys) are decoded once
    (:func:`_wire_attrs`). Built in a private descriptor pool, so the real classes are untouched.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, trace_pb2, trace_service_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        if module is trace_pb2:
            (span,) = [m for m in proto.message_type if m.name == "Span"]
            (field,) = [f for f in span.field if f.name == "attributes"]
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
            field.ClearField("type_name")
        pool.Add(proto)
    name = trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR.full_name
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


#: ``ExportTraceServiceRequest`` with each span attribute kept as the bytes of its ``KeyValue`` (same field names;
#: see :func:`_wire_view_class`).
WireRequest = _wire_view_class()


class _Unusual(Exception):
    """An attribute entry the wire reader does not take: the message is decoded by the standard classes."""


_DOUBLE = struct.Struct("<d")
#: Decoded attribute entries by their serialized ``KeyValue``, shared by every decode in the process (values are
#: immutable). Bounded (a few MB at most): cleared when full (``cleared`` counts it); entries over 128 bytes (long
#: values, which rarely repeat) are not kept.
_ENTRIES: dict[bytes, tuple[str, Any]] = {}
_ENTRIES_MAX = 1 << 14
_ENTRY_MAX_BYTES = 128
entry_cache_stats = {"cleared": 0}


#: What :func:`simple_value` returns for a value in another shape.
NOT_SIMPLE = object()


def simple_value(b: bytes) -> Any:
    """One serialized ``AnyValue`` in a shape protobuf writers produce for usage, identity and attribution: one
    string shorter than 16 kB, one int below 2**21, one double, one bool (``None`` for an empty value); or
    :data:`NOT_SIMPLE` for anything else (arrays, negative or large ints, bytes, kvlists, a repeated or unknown
    field), which the caller decodes with protobuf. Raises ``UnicodeDecodeError`` for a string that is not UTF-8.
    Shared by the file decoder (:func:`_wire_entry`) and ``serve``'s."""
    n = len(b)
    if n > 1:
        tag = b[0]
        if tag == 0x0A:  # string_value (field 1)
            ln = b[1]
            if ln < 0x80:
                if n == 2 + ln:
                    return b[2:].decode()
            elif n > 2 and b[2] < 0x80 and n == 3 + ((ln & 0x7F) | (b[2] << 7)):
                return b[3:].decode()
        elif tag == 0x18:  # int_value (field 3, varint)
            if n == 2:
                if b[1] < 0x80:
                    return b[1]
            elif n == 3:
                if b[1] >= 0x80 and b[2] < 0x80:
                    return (b[1] & 0x7F) | (b[2] << 7)
            elif n == 4 and b[1] >= 0x80 and b[2] >= 0x80 and b[3] < 0x80:
                return (b[1] & 0x7F) | ((b[2] & 0x7F) << 7) | (b[3] << 14)
        elif tag == 0x21:  # double_value (field 4, fixed64)
            if n == 9:
                return _DOUBLE.unpack_from(b, 1)[0]
        elif tag == 0x10 and n == 2 and b[1] < 2:  # bool_value (field 2, varint)
            return b[1] == 1
    elif not n:
        return None  # an empty AnyValue
    return NOT_SIMPLE


def _wire_entry(kv: bytes) -> tuple[str, Any]:
    """One serialized ``KeyValue`` in the layout protobuf writers produce (``0x0A <key length> <key> 0x12
    <value length> <AnyValue>``, a key shorter than 128 bytes) with a :func:`simple_value`, as ``(key, value)``
    with the value as :func:`_pb_value` gives it. Raises :class:`_Unusual` for anything else (other layouts,
    other values, invalid UTF-8), which the standard classes then decode or refuse."""
    try:
        if kv[0] == 0x0A:
            kl = kv[1]
            if kl < 0x80:
                i = kl + 2
                if kv[i] == 0x12:
                    vl = kv[i + 1]
                    if vl < 0x80:
                        j = i + 2
                    elif kv[i + 2] < 0x80:  # a value of 128 bytes or more (a two-byte length)
                        j, vl = i + 3, (vl & 0x7F) | (kv[i + 2] << 7)
                    else:
                        raise _Unusual
                    if len(kv) == j + vl:
                        value = simple_value(kv[j:])
                        if value is not NOT_SIMPLE:
                            return kv[2:i].decode(), value
    except (IndexError, UnicodeDecodeError):
        pass
    raise _Unusual


def _wire_attrs(entries: Any) -> dict[str, Any]:
    """A span's attributes from its serialized ``KeyValue`` entries, as :func:`_pb_attrs` gives them (a value-less
    entry adds nothing; a repeated key keeps its last value). Raises :class:`_Unusual` (see :func:`_wire_entry`)."""
    out: dict[str, Any] = {}
    cache = _ENTRIES
    get = cache.get
    for kv in entries:
        e = get(kv)
        if e is None:
            e = _wire_entry(kv)
            if len(kv) <= _ENTRY_MAX_BYTES:
                if len(cache) >= _ENTRIES_MAX:
                    cache.clear()
                    entry_cache_stats["cleared"] += 1
                cache[kv] = e
        if e[1] is not None:
            out[e[0]] = e[1]
    return out


_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def _records_from_wire(req: Any) -> list[SpanRecord]:
    """:func:`records_from_request` for a :data:`WireRequest` whose spans are all good; raises :class:`_Unusual`
    for a bad span (the standard classes then describe it, or find the message broken) or an unusual entry."""
    out: list[SpanRecord] = []
    append = out.append
    kinds, statuses = _KINDS, _STATUS
    limit = MAX_UNIX_NANOS
    for rs in req.resource_spans:
        res = _pb_attrs(rs.resource.attributes)
        service = res.get("service.name")
        service = service if isinstance(service, str) else None
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for sp in ss.spans:
                tid, sid = sp.trace_id, sp.span_id
                start, end = sp.start_time_unix_nano, sp.end_time_unix_nano
                if len(tid) != 16 or len(sid) != 8 or tid == _ZERO_TRACE or sid == _ZERO_SPAN or start > limit \
                        or end > limit:
                    raise _Unusual  # the standard classes say why (or that the message is broken)
                parent = sp.parent_span_id
                append(SpanRecord(tid.hex(), sid.hex(), parent.hex() if len(parent) == 8 else None, sp.name,
                                  kinds.get(sp.kind, "UNSPECIFIED"), start, end,
                                  statuses.get(sp.status.code, "UNSET"), _wire_attrs(sp.attributes), service,
                                  scope))
    return out


# --------------------------------------------------------------------------------------------- files


_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    """Decompress every gzip member of ``data``; returns ``(bytes, damage)``.

    ``damage`` is None for an intact file. A *truncated* stream (the file ends before the member does) keeps
    what decoded before the cut: those bytes are exactly the file's, only the rest is missing. A *corrupt*
    member (bad deflate data, CRC or length mismatch) keeps nothing of that member, since its bytes may be
    wrong without any error until the check at its end; members before it passed their checks and are kept.
    """
    out: list[bytes] = []
    rest = data
    while rest:
        if not rest.startswith(_GZIP_MAGIC):
            if rest.strip(b"\0"):  # zero padding after the last member is common and harmless
                return b"".join(out), f"{len(rest)} byte(s) after the gzip stream are not gzip data (not read)"
            break
        d = zlib.decompressobj(wbits=31)  # gzip header and trailer, CRC-32 and length checked
        member: list[bytes] = []
        try:
            for i in range(0, len(rest), _CHUNK):
                member.append(d.decompress(rest[i:i + _CHUNK]))
                if d.eof:
                    break
            member.append(d.flush())
        except zlib.error as exc:
            return b"".join(out), f"corrupt gzip stream ({exc}); the damaged part was not read"
        out.extend(member)
        if not d.eof:
            return b"".join(out), "truncated gzip stream (the file ends before the compressed data does)"
        rest = d.unused_data
    return b"".join(out), None


def _read(path: Path) -> tuple[bytes, str | None]:
    """The file's content (gunzipped when it is gzip) and what is wrong with the gzip stream, if anything."""
    data = path.read_bytes()
    return _gunzip(data) if data[:2] == _GZIP_MAGIC else (data, None)


def _length_prefixed(data: bytes, *, partial_tail: bool = False) -> list[tuple[int, bytes]] | None:
    """Split the file exporter's proto stream; None if ``data`` is not such a stream.

    With ``partial_tail`` (the data is known to be cut short) an incomplete last message is left out instead
    of making the whole stream unrecognisable.
    """
    out, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            return (out or None) if partial_tail else None
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        if n == 0:
            return None
        if pos + 4 + n > len(data):
            return (out or None) if partial_tail else None
        out.append((pos, data[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return out or None


def _decoded(where: str, decode: Any, message: Any) -> Iterator[tuple[str, list[SpanRecord] | OTLPDecodeError]]:
    """One message's good spans, then one error per bad span, all at the message's location."""
    errors: list[str] = []
    try:
        records = decode(message, errors)
    except OTLPDecodeError as exc:
        yield where, exc
        return
    if records or not errors:
        yield where, records
    for e in errors:
        yield where, OTLPDecodeError(e)


def iter_file(path: str | Path, progress: Callable[[float], None] | None = None,
              ) -> Iterator[tuple[str, list[SpanRecord] | OTLPDecodeError]]:
    """Yield ``(location, records or error)`` for each line (JSON) or message (protobuf) of ``path``.

    A message with bad spans (e.g. a time out of range) yields its good spans, then one error per bad span,
    at the message's location (``file:line`` or ``file@offset``).

    The format is detected from the content: JSON lines start with ``{``; anything else is protobuf.
    Gzip-compressed files are accepted. A truncated gzip file yields the complete lines or messages before the
    cut, then one error at the cut (the incomplete line or message is not read); a corrupt one, what preceded
    the damaged gzip member, then one error. Only a file that cannot be read at all raises (``OSError``).

    ``progress(fraction)`` is called before each line or message with the share of the (decompressed) content
    read so far, from 0.0 to below 1.0 (for a progress display; never raises into it).
    """
    p = Path(path)
    data, damage = _read(p)
    if damage is not None and not data:
        yield str(p), OTLPDecodeError(damage)
        return
    if data.lstrip()[:1] == b"{":
        if damage is not None:  # the last line may stop mid-way: read only the lines that ended
            data = data[:data.rfind(b"\n") + 1]
        lines = data.splitlines()
        step = max(1, len(lines) // 200)
        for no, line in enumerate(lines, start=1):
            if progress is not None and no % step == 0:
                progress(no / len(lines))
            if not line.strip():
                continue
            where = f"{p}:{no}"
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield where, OTLPDecodeError(f"not JSON: {exc.msg if hasattr(exc, 'msg') else exc}")
                continue
            except RecursionError:  # json's C decoder recurses per nesting level; one hostile line, not the run
                yield where, OTLPDecodeError("JSON nested too deeply to decode; OTLP/JSON needs a few levels only")
                continue
            yield from _decoded(where, records_from_json, obj)
        if damage is not None:
            yield f"{p}:{len(lines) + 1}", OTLPDecodeError(
                f"{damage}; the {len(lines)} complete line(s) before it were read")
        return
    stream = _length_prefixed(data, partial_tail=damage is not None)
    size = max(1, len(data))
    for offset, msg in stream if stream is not None else [(0, data)]:
        if progress is not None:
            progress(offset / size)
        yield from _decoded(f"{p}@{offset}", records_from_proto, msg)
    if damage is not None:
        if stream is not None:
            cut = stream[-1][0] + 4 + len(stream[-1][1])
            yield f"{p}@{cut}", OTLPDecodeError(f"{damage}; the {len(stream)} complete message(s) before it were read")
        else:
            yield f"{p}@0", OTLPDecodeError(f"{damage}; what was decompressed was read as one message")
