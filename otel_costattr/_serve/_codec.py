"""OTLP trace messages for ``otel-costattr serve``: decode, validate, enrich in place, encode.

Everything here works on the ``ExportTraceServiceRequest`` protobuf message itself, parsed as
:data:`WireRequest` (each span attribute kept as its serialized bytes): spans are never converted to SDK
objects, and the message that is forwarded is the one that was received, with cost attributes appended to
its spans. Attributes a span already has are never overwritten, and a span that already carries
``gen_ai.cost.status`` is passed through untouched (never priced twice).

Contracts:

* :meth:`ProtoEnricher.decode` raises :class:`~otel_costattr._ledger._otlp.OTLPDecodeError` (with the reason) for
  anything that is not a valid OTLP trace message, and never anything else; :func:`gunzip` raises
  :class:`BodyTooLarge` when decompression would exceed the limit.
* :meth:`ProtoEnricher.enrich` never raises on span data; it raises only on bugs, which the caller counts
  while still forwarding the batch.

All functions are pure apart from the :class:`~otel_costattr._capture._enrich.Enricher`'s de-duplication index, and
can be called from any thread (one message must not be enriched by two threads at once).
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from .. import attributes as A
from .._capture._enrich import UNRENDERED, Enricher
from .._ledger._otlp import NOT_SIMPLE, OTLPDecodeError, WireRequest, simple_value

__all__ = ["BodyTooLarge", "DecodedRequest", "EnrichCounts", "ProtoEnricher", "encode_response", "gunzip"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# Every attribute the Enricher reads or checks for presence: only these are converted to Python values.
_READ_NAMES = frozenset(name for names in A.READ.values() for name in names) | frozenset(A.PROVIDED_COST)
_WRITTEN_NAMES = frozenset(getattr(A, n) for n in A.__all__ if n.startswith("COST_")) | {A.LANGFUSE_COST_DETAILS}
_WANTED = _READ_NAMES | _WRITTEN_NAMES
# A span can only be an LLM call if it names an operation or a model (see Call.is_llm_call): a span with
# none of these is skipped after one pass over its keys, which is what most spans of a trace are.
_TRIGGER = frozenset(A.READ["operation"] + A.READ["request_model"] + A.READ["response_model"])
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


class BodyTooLarge(Exception):
    """The decompressed body would exceed the configured limit."""


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing more than ``limit`` bytes of output (a zip bomb costs nothing).

    Raises :class:`BodyTooLarge` past the limit and :class:`OTLPDecodeError` for a corrupt or truncated body.
    Concatenated gzip members are accepted, as ``gzip.decompress`` does.
    """
    out: list[bytes] = []
    total = 0
    rest = data
    while True:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            chunk = inflater.decompress(rest, limit - total + 1)
        except zlib.error as exc:
            raise OTLPDecodeError(f"invalid gzip body: {exc}") from None
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"the decompressed body exceeds {limit} bytes")
        out.append(chunk)
        if not inflater.eof:
            if inflater.unconsumed_tail:  # stopped by max_length exactly at the limit: more output pending
                raise BodyTooLarge(f"the decompressed body exceeds {limit} bytes")
            raise OTLPDecodeError("truncated gzip body")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # trailing padding after the last member is tolerated, like gzip(1)
            return b"".join(out)


# -------------------------------------------------------------------------------------------- wire view


# The request class :meth:`ProtoEnricher.decode` parses into is :data:`~otel_costattr._ledger._otlp.WireRequest`: the
# OTLP message with each span attribute kept as the bytes of its ``KeyValue`` (the ledger's OTLP decoder reads
# files through the same view). Serve only decodes the few attributes pricing reads: reading a span's attributes
# this way costs about a third of reading them through the message classes (measured in bench_serve's workload).


# ----------------------------------------------------------------------------------------------- decode

_ID_KEYS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


def _json_ids_to_b64(node: Any) -> None:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping wants base64. Rewrite them in place."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for key, child in cur.items():
                size = _ID_KEYS.get(key)
                if size is not None and isinstance(child, str):
                    if child == "":
                        continue
                    if len(child) != 2 * size:
                        raise OTLPDecodeError(f"{key} {child[:40]!r} must be {2 * size} hex digits")
                    try:
                        raw = bytes.fromhex(child)
                    except ValueError:
                        raise OTLPDecodeError(f"{key} {child[:40]!r} is not hex") from None
                    cur[key] = base64.b64encode(raw).decode("ascii")
                elif isinstance(child, (dict, list)):
                    stack.append(child)
        elif isinstance(cur, list):
            stack.extend(c for c in cur if isinstance(c, (dict, list)))


def _parse_body(payload: bytes, content_type: str) -> Any:
    """Parse an uncompressed body of ``content_type`` (protobuf or OTLP/JSON) into a :data:`WireRequest`.

    Validates the whole message except the inside of each span attribute entry, which the wire view keeps as
    bytes: :meth:`ProtoEnricher.decode` validates those as it reads them. (Parsing the body a second time as the
    standard message only to validate them cost as much as all the rest of decoding.) Raises
    :class:`OTLPDecodeError` with the reason.
    """
    if content_type == PROTOBUF:
        try:
            return WireRequest.FromString(payload)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OTLPDecodeError(f"not a valid OTLP protobuf message: {exc}") from None
    message = _decode_json(payload)  # validated in full by the JSON parser
    try:
        return WireRequest.FromString(message.SerializeToString())
    except (DecodeError, RecursionError, ValueError) as exc:  # e.g. nesting deeper than protobuf parses
        raise OTLPDecodeError(f"not a valid OTLP/JSON trace message: {exc}") from None


def _decode_json(payload: bytes) -> ExportTraceServiceRequest:
    try:
        obj = json.loads(payload)
    except UnicodeDecodeError:
        raise OTLPDecodeError("the JSON body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise OTLPDecodeError(f"not JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(obj, dict):
        raise OTLPDecodeError("an OTLP/JSON body must be an object with `resourceSpans`")
    _json_ids_to_b64(obj)
    try:
        return json_format.ParseDict(obj, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, AttributeError, OverflowError) as exc:
        # ParseError is the documented failure; the others are what odd shapes (a list where a message is
        # expected, huge numbers, deep nesting) raise from inside json_format.
        raise OTLPDecodeError(f"not a valid OTLP/JSON trace message: {str(exc)[:300]}") from None


def encode_response(content_type: str, rejected: int = 0, message: str = "") -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's encoding, with ``partial_success`` if spans were rejected."""
    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    if content_type == PROTOBUF:
        return resp.SerializeToString()
    return json_format.MessageToJson(resp, indent=None).encode()


# ----------------------------------------------------------------------------------------------- enrich

_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})
# Wanted attribute keys as the bytes they appear as on the wire. All are shorter than 128 bytes, so each one's
# KeyValue starts 0x0A <one-byte length> <key>, which is what the reader below relies on.
_WANTED_BYTES = {name.encode(): name for name in _WANTED}
assert all(len(k) < 0x80 for k in _WANTED_BYTES)
_DOUBLE = struct.Struct("<d")


def _wire_value(b: bytes) -> Any:
    """One serialized ``AnyValue`` as :func:`_value` returns it: the shapes protobuf writers produce for usage and
    identity are decoded by :func:`~otel_costattr._ledger._otlp.simple_value`; anything else is parsed by
    protobuf itself, so every valid encoding reads the same."""
    value = simple_value(b)
    return _value(AnyValue.FromString(b)) if value is NOT_SIMPLE else value


def _value(v: Any) -> Any:
    """A protobuf ``AnyValue`` as the Python value the Enricher expects (tuples for arrays)."""
    which = v.WhichOneof("value")
    if which in _SCALARS:
        return getattr(v, which)
    if which == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    if which is None:
        return None
    # kvlist and bytes values are never usage or identity: keep their presence, not their content.
    return which


def _set_value(target: Any, v: Any) -> None:
    """Write a Python attribute value into a protobuf ``AnyValue``."""
    t = type(v)
    if t is str:
        target.string_value = v
    elif t is float:
        target.double_value = v
    elif t is bool:
        target.bool_value = v
    elif t is int:
        target.int_value = v
    elif t is tuple or t is list:
        target.array_value.SetInParent()
        values = target.array_value.values
        for item in v:
            _set_value(values.add(), item)
    else:
        target.string_value = str(v)


#: What :func:`_read_entry` returns for an attribute the Enricher does not read.
_SKIP = ("", None)


def _read_entry(kv: bytes) -> tuple[str, Any]:
    """One serialized ``KeyValue`` as ``(key, value)`` if the Enricher reads that key, else :data:`_SKIP`.

    Also validates it: raises :class:`OTLPDecodeError` for bytes that are not a valid ``KeyValue`` (invalid
    UTF-8 in the key or a string value included), as parsing the standard message would. Protobuf writers put
    the key first, then the value: ``0x0A <key length> <key> 0x12 <value length> <AnyValue>``. For a key the
    Enricher reads, that layout is read here, with the value's length checked against the entry's and the
    value fully decoded (which validates it); everything else (keys it does not read, an empty key, a value of
    16 kB or more, fields in another order) is parsed by protobuf.
    """
    try:
        if kv[0] == 0x0A:
            kl = kv[1]  # keys the Enricher reads are shorter than 128 bytes: a one-byte length
            i = kl + 2
            if kv[i] == 0x12:
                name = _WANTED_BYTES.get(kv[2:i])
                if name is not None:
                    vl = kv[i + 1]
                    if vl < 0x80:
                        if len(kv) == i + 2 + vl:
                            return name, _wire_value(kv[i + 2:])
                    elif kv[i + 2] < 0x80 and len(kv) == i + 3 + ((vl & 0x7F) | (kv[i + 2] << 7)):
                        return name, _wire_value(kv[i + 3:])
    except (IndexError, UnicodeDecodeError, DecodeError, RecursionError):
        pass  # shorter than its prefix claims, or a value that does not decode: protobuf says what it is
    try:
        m = KeyValue.FromString(kv)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OTLPDecodeError(f"a span attribute is not a valid KeyValue ({exc}): {bytes(kv[:60])!r}") from None
    key = m.key
    return (key, _value(m.value)) if key in _WANTED else _SKIP


# Appending attributes as protobuf wire bytes: a span's serialized form followed by more `attributes` entries
# (field 9) parses as the span with those attributes appended, so one MergeFromString per span replaces
# building a KeyValue message per attribute (half the cost of the whole append, measured in bench_serve).
_SPAN_ATTRIBUTE_TAG = b"\x4a"  # Span.attributes: field 9, length-delimited
_KEY_TAG, _VALUE_TAG = b"\x0a", b"\x12"  # KeyValue.key (1), KeyValue.value (2)
_STRING_TAG, _DOUBLE_TAG = b"\x0a", b"\x21"  # AnyValue.string_value (1), AnyValue.double_value (4, fixed64)
_pack_double = _DOUBLE.pack
_STRING_CACHE_MAX = 4096
_STRING_CACHE_VALUE_MAX = 128
_LAYOUTS_MAX = 256
_ENTRY_CACHE_MAX = 8192
_ENTRY_CACHE_ENTRY_MAX = 256  # bytes: attribute values worth caching are short; prompts are not


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


_VARINT1 = [bytes((i,)) for i in range(0x80)]  # one-byte varints, the usual length prefix here
_KEY_FIELDS: dict[str, bytes] = {}  # attribute key -> its KeyValue.key field bytes; bounded, see below


def _encode_string_attribute(key: str, value: str) -> bytes:
    """``_encode_attribute`` for a string value, with the key's bytes cached (the cost keys are a few dozen)."""
    kf = _KEY_FIELDS.get(key)
    if kf is None:
        kf = _field(_KEY_TAG, key.encode())
        if len(_KEY_FIELDS) < _STRING_CACHE_MAX:  # keys come from our own Enricher, but bound it anyway
            _KEY_FIELDS[key] = kf
    b = value.encode()
    n = len(b)
    vn = _VARINT1[n] if n < 0x80 else _varint(n)
    any_len = 1 + len(vn) + n
    va = _VARINT1[any_len] if any_len < 0x80 else _varint(any_len)
    kv_len = len(kf) + 1 + len(va) + any_len
    return b"".join((_SPAN_ATTRIBUTE_TAG, _VARINT1[kv_len] if kv_len < 0x80 else _varint(kv_len), kf, _VALUE_TAG,
                     va, _STRING_TAG, vn, b))


def _encode_attribute(key: str, value: Any) -> bytes:
    """One ``Span.attributes`` entry (tag, length, KeyValue) as wire bytes."""
    if type(value) is str:
        return _encode_string_attribute(key, value)
    else:
        kv = KeyValue()
        _set_value(kv.value, value)
        any_value = kv.value.SerializeToString()
    return _field(_SPAN_ATTRIBUTE_TAG, _field(_KEY_TAG, key.encode()) + _field(_VALUE_TAG, any_value))


# The eight doubles of the standard priced set, in the Enricher's order, and the struct that packs them after
# their constant key prefixes; the two statuses that set has, pre-encoded (see ProtoEnricher._render).
_STANDARD_DOUBLES = (A.COST_TOTAL, A.COST_INPUT, A.COST_OUTPUT, A.COST_UNCACHED_INPUT, A.COST_CACHE_READ,
                     A.COST_CACHE_WRITE, A.COST_TEXT_OUTPUT, A.COST_REASONING)
_STANDARD_PREFIXES = tuple(_encode_attribute(k, 0.0)[:-8] for k in _STANDARD_DOUBLES)
_pack_standard = struct.Struct("<" + "".join(f"{len(p)}sd" for p in _STANDARD_PREFIXES)).pack
_STATUS_ENTRIES = {s: _encode_attribute(A.COST_STATUS, s) for s in ("priced", "partial")}


class EnrichCounts:
    """What :meth:`ProtoEnricher.enrich` did to one message. ``statuses`` maps status -> spans."""

    __slots__ = ("kept_existing", "passthrough", "spans", "statuses")

    def __init__(self) -> None:
        self.spans = 0
        self.passthrough = 0  # LLM spans that already carried gen_ai.cost.status
        self.kept_existing = 0  # computed attributes not written because the span already had that key
        self.statuses: dict[str, int] = {}


class DecodedRequest:
    """A request :meth:`ProtoEnricher.decode` accepted, for :meth:`ProtoEnricher.enrich`.

    ``request`` is the :data:`WireRequest` (spans with unusable ids already removed), ``accepted`` and
    ``rejected`` count spans, and ``calls`` holds, for each span that may be an LLM call, ``(span, span id, trace
    id, instrumentation scope name, the attributes the Enricher reads)``, read while the body was validated so
    that they are read once; ``enrich`` empties it.
    """

    __slots__ = ("accepted", "calls", "rejected", "request")

    def __init__(self, request: Any, accepted: int, rejected: int,
                 calls: list[tuple[Any, bytes, bytes, str, dict[str, Any]]]) -> None:
        self.request = request
        self.accepted = accepted
        self.rejected = rejected
        self.calls = calls


class ProtoEnricher:
    """Decodes OTLP trace requests and adds ``gen_ai.cost.*`` attributes to their spans, in place.

    :meth:`decode` runs on one thread (serve's event loop); :meth:`enrich` on any, each request by one thread
    at a time (the Enricher's index has its own lock; the caches here are only added to, atomic for a dict
    under the GIL, or emptied under a lock; their values are immutable).
    """

    def __init__(self, enricher: Enricher) -> None:
        self.enricher = enricher
        # key -> wire bytes of everything before the 8 bytes of a double value (constant per key)
        self._double_prefix: dict[str, bytes] = {}
        # (key, value) -> wire bytes, for the short strings that repeat (status, currency, model, version)
        self._strings: dict[tuple[str, str], bytes] = {}
        # attribute-key layout of an Enricher result -> its encoder (or False: use the general loop)
        self._layouts: dict[tuple[str, ...], Any] = {}
        # serialized KeyValue -> what _read_entry makes of it. Most attributes of LLM spans repeat (operation,
        # provider, model, service and tenant tags), and a hit costs a hash instead of a parse. Bounded: only
        # short entries, and emptied when full (counted in ``entry_cache_clears``), so values that never
        # repeat (ids, token counts) cannot hold it.
        self._entries: dict[bytes, tuple[str, Any]] = {}
        self._clear_lock = threading.Lock()
        self.entry_cache_clears = 0
        # id(pricing entry) -> (entry, wire bytes of its currency, provider, model and version attributes), for
        # _render. Holding the entry keeps its id from being reused while cached. Keys come from the price book,
        # not from spans, so the book's size bounds it; the cap (emptied when reached) guards a book that grows.
        self._entry_tails: dict[int, tuple[Any, bytes]] = {}

    def _clear_entries(self) -> None:
        # Rare (once per ~8k distinct entries): the lock keeps the count exact if two threads decode at once.
        with self._clear_lock:
            if len(self._entries) >= _ENTRY_CACHE_MAX:
                self._entries.clear()
                self.entry_cache_clears += 1

    def decode(self, payload: bytes, content_type: str) -> DecodedRequest:
        """Parse and validate an uncompressed body of ``content_type`` (protobuf or OTLP/JSON).

        Raises :class:`OTLPDecodeError` with the reason for anything malformed, nested attribute values and
        UTF-8 included, so a malformed body is refused before it reaches the queue. Spans without a usable id
        (16-byte trace id, 8-byte span id, both non-zero) are removed and counted in ``rejected``: they cannot
        be stored or de-duplicated anywhere downstream (Langfuse rejects a whole batch for one of them), so the
        client hears of them in ``partial_success`` instead.

        The attributes of every other span are validated and read here, in the one pass that validation needs
        anyway, through a cache of the entries seen before (a cached entry is a valid one).
        """
        req = _parse_body(payload, content_type)
        calls: list[tuple[Any, bytes, bytes, str, dict[str, Any]]] = []
        add_call = calls.append
        trigger = _TRIGGER
        entries = self._entries
        entries_get = entries.get
        entry_max, entry_cap = _ENTRY_CACHE_ENTRY_MAX, _ENTRY_CACHE_MAX
        read_entry = _read_entry
        skip = _SKIP
        zero_trace, zero_span = _ZERO_TRACE, _ZERO_SPAN
        accepted = rejected = 0
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                spans = ss.spans
                scope = ss.scope.name  # pairing tells instrumentations apart by it (D16)
                bad: list[int] = []
                for i, sp in enumerate(spans):
                    t, s = sp.trace_id, sp.span_id  # each read builds a bytes object: once each
                    if len(t) != 16 or len(s) != 8 or t == zero_trace or s == zero_span:
                        bad.append(i)
                        continue
                    # Only the attributes the Enricher reads are converted to Python values: every key it checks
                    # for presence is among them, so `attrs` answers those checks exactly.
                    attrs: dict[str, Any] = {}
                    for kv in sp.attributes:
                        short = len(kv) <= entry_max
                        hit = entries_get(kv) if short else None
                        if hit is None:
                            try:
                                hit = read_entry(kv)
                            except OTLPDecodeError as exc:
                                raise OTLPDecodeError(f"span {s.hex()}: {exc}") from None
                            if short:
                                if len(entries) >= entry_cap:
                                    self._clear_entries()
                                entries[kv] = hit
                        if hit is not skip:
                            attrs[hit[0]] = hit[1]
                    if not trigger.isdisjoint(attrs):
                        add_call((sp, s, t, scope, attrs))
                for i in reversed(bad):  # the wrappers held in `calls` stay bound to their spans
                    del spans[i]
                rejected += len(bad)
                accepted += len(spans)
        return DecodedRequest(req, accepted, rejected, calls)

    def enrich(self, decoded: DecodedRequest) -> EnrichCounts:
        """Price every LLM span of ``decoded`` and append the cost attributes it lacks. Returns what was done."""
        counts = EnrichCounts()
        counts.spans = decoded.accepted
        statuses = counts.statuses
        compute = self.enricher.compute_attributes
        status_key = A.COST_STATUS
        calls, decoded.calls = decoded.calls, []  # read once; not held while the batch is forwarded
        for sp, span_id, trace_id, scope, attrs in calls:
            if status_key in attrs:
                counts.passthrough += 1
                continue
            parent = sp.parent_span_id
            extra, status, _call, cost = compute(
                # ids and scope pair two instrumentations' spans of one call that share no response id (D16)
                attrs, span_id=span_id.hex(), start_ns=sp.start_time_unix_nano or None,
                end_ns=sp.end_time_unix_nano or None, trace_id=trace_id.hex(),
                parent_span_id=parent.hex() if parent else None, scope=scope, render=False)
            if extra is None or status is None:
                continue
            statuses[status] = statuses.get(status, 0) + 1
            if extra is UNRENDERED:  # the standard priced set, none of it on the span yet
                sp.MergeFromString(self._render(cost, status))
                continue
            if not _WRITTEN_NAMES.isdisjoint(attrs):
                extra = _keep_existing(extra, attrs, counts)
            sp.MergeFromString(self._encode(extra))
        return counts

    def _render(self, cost: Any, status: str) -> bytes:
        """The wire bytes of what ``compute_attributes`` returns as :data:`UNRENDERED`: the same attributes in the
        same order as ``_encode(Enricher._priced_attributes(cost, status))`` (a test holds them equal), without
        building the dict. The run of eight doubles is one struct call; the strings that follow depend only on
        the pricing entry and are cached per entry."""
        entry = cost._entry  # noqa: SLF001
        tail = self._entry_tails.get(id(entry))
        if tail is None or tail[0] is not entry:
            if len(self._entry_tails) >= _STRING_CACHE_MAX:
                self._entry_tails.clear()
            tail = (entry, b"".join([self._encode_one(A.COST_CURRENCY, "USD"),
                                     self._encode_one(A.COST_PROVIDER, entry.provider),
                                     self._encode_one(A.COST_MODEL, entry.id),
                                     self._encode_one(A.COST_PRICING_VERSION, entry.version)]))
            self._entry_tails[id(entry)] = tail
        total, f_in, f_out, fi, fcr, fcw, fo, fr, details = self.enricher.standard_figures(cost)
        p = _STANDARD_PREFIXES
        head = _STATUS_ENTRIES.get(status) or self._encode_one(A.COST_STATUS, status)
        run = _pack_standard(p[0], total, p[1], f_in, p[2], f_out, p[3], fi, p[4], fcr, p[5], fcw, p[6], fo, p[7], fr)
        if details is None:
            return b"".join((head, run, tail[1]))
        return b"".join((head, run, tail[1], _encode_string_attribute(A.LANGFUSE_COST_DETAILS, details)))

    def _encode(self, extra: Mapping[str, Any]) -> bytes:
        """``extra`` as ``Span.attributes`` wire bytes, in order.

        The Enricher returns a handful of attribute layouts (same keys, same value types), so each layout gets
        an encoder that packs its run of doubles with one precompiled ``struct`` call; other values use the
        bounded caches below. Other layouts (or a cache that is full) take the general loop.
        """
        keys = tuple(extra)
        layout = self._layouts.get(keys)
        if layout is None:
            layout = self._layout(keys, extra)
        if layout is not False:
            types, encode = layout
            values = tuple(extra.values())
            if tuple(map(type, values)) == types:
                return encode(values)
        return b"".join([self._encode_one(k, v) for k, v in extra.items()])

    def _layout(self, keys: tuple[str, ...], extra: Mapping[str, Any]) -> Any:
        types = tuple(map(type, extra.values()))
        double_at = tuple(i for i, t in enumerate(types) if t is float)
        if len(self._layouts) >= _LAYOUTS_MAX:
            return False
        if not double_at or double_at != tuple(range(double_at[0], double_at[-1] + 1)):
            # no doubles, or other values between them: packing them together would reorder attributes
            self._layouts[keys] = False
            return False
        # One generated function per layout, in attribute order: the run of doubles is one "<N>s" prefix per key
        # plus a "d" per value, packed by a single struct call; short strings come from the (key, value) cache,
        # others go through _encode_one. Only positions and our own names go into the source; keys and values
        # are passed in the namespace, never pasted into it.
        prefixes = [_encode_attribute(keys[i], 0.0)[:-8] for i in double_at]
        fmt = struct.Struct("<" + "".join(f"{len(p)}sd" for p in prefixes))
        namespace: dict[str, Any] = {"_pack": fmt.pack, "_one": self._encode_one, "_get": self._strings.get}
        namespace.update({f"p{j}": p for j, p in enumerate(prefixes)})
        namespace.update({f"k{i}": k for i, k in enumerate(keys)})
        lines, parts = [], []
        for i, t in enumerate(types):
            if i == double_at[0]:
                parts.append("_pack(" + ", ".join(f"p{j}, v[{d}]" for j, d in enumerate(double_at)) + ")")
            elif i in double_at:
                continue
            elif t is str:
                lines.append(f" s{i} = _get((k{i}, v[{i}])) or _one(k{i}, v[{i}])")
                parts.append(f"s{i}")
            else:
                parts.append(f"_one(k{i}, v[{i}])")
        src = "def encode(v):\n" + "".join(line + "\n" for line in lines) + f" return b''.join(({', '.join(parts)},))"
        exec(src, namespace)  # noqa: S102 - see comment above
        layout = (types, namespace["encode"])
        self._layouts[keys] = layout
        return layout

    def _encode_one(self, key: str, value: Any) -> bytes:
        t = type(value)
        if t is float:
            prefix = self._double_prefix.get(key)
            if prefix is None:
                prefix = _encode_attribute(key, 0.0)[:-8]
                if len(self._double_prefix) < _STRING_CACHE_MAX:
                    self._double_prefix[key] = prefix
            return prefix + _pack_double(value)
        if t is str:
            ck = (key, value)
            enc = self._strings.get(ck)
            if enc is None:
                enc = _encode_attribute(key, value)
                # Bounded: model names come from untrusted spans; long values (JSON details) never repeat.
                if len(value) <= _STRING_CACHE_VALUE_MAX and len(self._strings) < _STRING_CACHE_MAX:
                    self._strings[ck] = enc
            return enc
        return _encode_attribute(key, value)


def _keep_existing(extra: Mapping[str, Any], attrs: Mapping[str, Any], counts: EnrichCounts) -> dict[str, Any]:
    """``extra`` without the keys the span already has: what a span says is never overwritten.

    The Enricher flags that it *replaced* unusable upstream cost attributes, which is not what happens here:
    the flag then says that they were kept.
    """
    out = {k: v for k, v in extra.items() if k not in attrs}
    counts.kept_existing += len(extra) - len(out)
    flags = out.get(A.COST_FLAGS)
    if flags and "replaced_upstream_cost" in flags:
        out[A.COST_FLAGS] = tuple("kept_upstream_cost" if f == "replaced_upstream_cost" else f for f in flags)
    return out
