"""OTLP trace data in, :class:`SpanRecord` out: JSON (OTLP/JSON, the collector ``file`` exporter's lines) and
protobuf (one ``ExportTraceServiceRequest``, or the ``file`` exporter's stream of 4-byte big-endian
length-prefixed messages).

Contract: decoding a malformed message raises :class:`OTLPDecodeError` with the reason; :func:`iter_file`
never raises for bad content, it yields the error with its location and carries on with the next line or
message, so good data always loads.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._ledger import SpanRecord

__all__ = ["OTLPDecodeError", "iter_file", "records_from_json", "records_from_proto", "records_from_request"]

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_KIND_NAMES = {f"SPAN_KIND_{v}": v for v in _KINDS.values()} | {v: v for v in _KINDS.values()}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_STATUS_NAMES = {f"STATUS_CODE_{v}": v for v in _STATUS.values()} | {v: v for v in _STATUS.values()}


class OTLPDecodeError(ValueError):
    """A message that is not valid OTLP trace data; the message says what is wrong."""


# --------------------------------------------------------------------------------------------- JSON


def _json_id(value: Any, size: int, what: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise OTLPDecodeError(f"{what} must be a hex string")
    v = value.strip()
    if len(v) == size * 2 and all(c in "0123456789abcdefABCDEF" for c in v):
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
        except (TypeError, ValueError):
            raise OTLPDecodeError(f"intValue {v['intValue']!r} is not an integer") from None
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
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
        if not isinstance(kv, Mapping) or not isinstance(kv.get("key"), str):
            raise OTLPDecodeError("each attribute needs a string `key`")
        val = _json_value(kv.get("value", {}))
        if val is not None:
            out[kv["key"]] = val
    return out


def _nanos(v: Any, what: str) -> int:
    try:
        n = int(v or 0)
    except (TypeError, ValueError):
        raise OTLPDecodeError(f"{what} {v!r} is not an integer number of nanoseconds") from None
    if n < 0:
        raise OTLPDecodeError(f"{what} is negative")
    return n


def _obj(v: Any, what: str) -> Mapping[str, Any]:
    """``v`` as an object; an absent value (None) is an empty one."""
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise OTLPDecodeError(f"{what} must be an object, got {type(v).__name__}")
    return v


def _list(v: Any, what: str) -> list[Any]:
    """``v`` as a list; an absent value (None) is an empty one."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise OTLPDecodeError(f"{what} must be a list, got {type(v).__name__}")
    return v


def records_from_json(obj: Any) -> list[SpanRecord]:
    """Spans of one OTLP/JSON ``ExportTraceServiceRequest`` (or ``TracesData``) object.

    Raises:
        OTLPDecodeError: the object is not OTLP trace data (wrong structure or types, bad ids, bad
            attribute values); never another exception for any JSON value.
    """
    if not isinstance(obj, Mapping) or "resourceSpans" not in obj:
        raise OTLPDecodeError("not an OTLP trace message: expected an object with `resourceSpans`")
    try:
        return _records_from_json(obj)
    except OTLPDecodeError:
        raise
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:
        # A shape the checks above did not foresee is still a malformed message, never a crash of the caller.
        raise OTLPDecodeError(f"malformed OTLP/JSON: {type(exc).__name__}: {exc}") from None


def _records_from_json(obj: Mapping[str, Any]) -> list[SpanRecord]:
    out: list[SpanRecord] = []
    for rs in _list(obj.get("resourceSpans"), "resourceSpans"):
        if not isinstance(rs, Mapping):
            raise OTLPDecodeError("resourceSpans entries must be objects")
        res = _json_attrs(_obj(rs.get("resource"), "resource").get("attributes"))
        service = res.get("service.name")
        scope_spans = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
        for ss in _list(scope_spans, "scopeSpans"):
            if not isinstance(ss, Mapping):
                raise OTLPDecodeError("scopeSpans entries must be objects")
            scope = _obj(ss.get("scope") or ss.get("instrumentationLibrary"), "scope").get("name")
            for sp in _list(ss.get("spans"), "spans"):
                if not isinstance(sp, Mapping):
                    raise OTLPDecodeError("spans entries must be objects")
                trace_id = _json_id(sp.get("traceId"), 16, "traceId")
                span_id = _json_id(sp.get("spanId"), 8, "spanId")
                if not trace_id or not span_id or set(trace_id) == {"0"} or set(span_id) == {"0"}:
                    raise OTLPDecodeError("every span needs a non-zero traceId and spanId")
                kind = sp.get("kind", 0)
                kind = _KINDS.get(kind) if isinstance(kind, int) else _KIND_NAMES.get(str(kind))
                status = _obj(sp.get("status"), "status").get("code", 0)
                status = _STATUS.get(status) if isinstance(status, int) else _STATUS_NAMES.get(str(status))
                out.append(SpanRecord(
                    trace_id=trace_id, span_id=span_id,
                    parent_span_id=_json_id(sp.get("parentSpanId"), 8, "parentSpanId") or None,
                    name=str(sp.get("name", "")), kind=kind or "UNSPECIFIED",
                    start_ns=_nanos(sp.get("startTimeUnixNano"), "startTimeUnixNano"),
                    end_ns=_nanos(sp.get("endTimeUnixNano"), "endTimeUnixNano"),
                    status_code=status or "UNSET", attributes=_json_attrs(sp.get("attributes")),
                    service_name=service if isinstance(service, str) else None,
                    scope_name=scope if isinstance(scope, str) else None))
    return out


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


def records_from_request(req: Any) -> list[SpanRecord]:
    """Spans of a decoded ``ExportTraceServiceRequest`` protobuf message."""
    out: list[SpanRecord] = []
    for rs in req.resource_spans:
        res = _pb_attrs(rs.resource.attributes)
        service = res.get("service.name")
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for sp in ss.spans:
                if len(sp.trace_id) != 16 or len(sp.span_id) != 8 or not any(sp.trace_id) or not any(sp.span_id):
                    raise OTLPDecodeError("every span needs a 16-byte trace_id and an 8-byte span_id, non-zero")
                out.append(SpanRecord(
                    trace_id=sp.trace_id.hex(), span_id=sp.span_id.hex(),
                    parent_span_id=sp.parent_span_id.hex() if len(sp.parent_span_id) == 8 else None,
                    name=sp.name, kind=_KINDS.get(sp.kind, "UNSPECIFIED"), start_ns=sp.start_time_unix_nano,
                    end_ns=sp.end_time_unix_nano, status_code=_STATUS.get(sp.status.code, "UNSET"),
                    attributes=_pb_attrs(sp.attributes), service_name=service if isinstance(service, str) else None,
                    scope_name=scope))
    return out


def records_from_proto(data: bytes) -> list[SpanRecord]:
    """Spans of one serialized ``ExportTraceServiceRequest``."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(data)
    except DecodeError as exc:
        raise OTLPDecodeError(f"not a valid OTLP protobuf message: {exc}") from None
    return records_from_request(req)


# --------------------------------------------------------------------------------------------- files


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _length_prefixed(data: bytes) -> list[tuple[int, bytes]] | None:
    """Split the file exporter's proto stream; None if ``data`` is not such a stream."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            return None
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        if n == 0 or pos + 4 + n > len(data):
            return None
        out.append((pos, data[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return out or None


def iter_file(path: str | Path) -> Iterator[tuple[str, list[SpanRecord] | OTLPDecodeError]]:
    """Yield ``(location, records or error)`` for each line (JSON) or message (protobuf) of ``path``.

    The format is detected from the content: JSON lines start with ``{``; anything else is protobuf.
    Gzip-compressed files are accepted.
    """
    p = Path(path)
    data = _read(p)
    if data.lstrip()[:1] == b"{":
        for no, line in enumerate(data.splitlines(), start=1):
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
            try:
                yield where, records_from_json(obj)
            except OTLPDecodeError as exc:
                yield where, exc
        return
    messages = _length_prefixed(data)
    if messages is None:
        messages = [(0, data)]
    for offset, msg in messages:
        where = f"{p}@{offset}"
        try:
            yield where, records_from_proto(msg)
        except OTLPDecodeError as exc:
            yield where, exc
