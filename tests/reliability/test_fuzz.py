"""Bad input, fuzzed for a fixed time budget each (hypothesis; atheris in ``test_fuzz_atheris.py``).

Each target states its contract, i.e. the only outcomes allowed for any input:

* ``read_call`` and ``CostSpanProcessor``: never raise, whatever a span's attributes are; the ledger row built
  from the enriched span (``record_to_row``) and its write never fail either.
* pricing loader (``parse_document``, ``load_file``): returns a validated document or raises ``PricingError``.
* OTLP decoding: ``records_from_proto`` returns records or raises ``OTLPDecodeError``; ``records_from_json``
  the same per its module contract; ``iter_file`` never raises for bad content.

Anything else counts as a crash. Each target runs repeated hypothesis searches with fresh seeds until its
budget (``OTEL_COSTATTR_RELIABILITY_FUZZ_SECONDS``, default 20 s) is spent; executions and crashes are
recorded. A crash fails the test with hypothesis' minimal example.

The bugs these fuzzers found (out-of-range values failing a ledger batch, int64-overflowing span times,
truncated gzip files, JSON nested past the recursion limit, non-OTLPDecodeError exceptions from
``records_from_json``, deeply nested pricing files) are fixed; each has a deterministic test at the end of this
module, and the fuzzers now count any of them as a crash.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import time
import tomllib
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_costattr as oc
from otel_costattr import PricingError
from otel_costattr._ledger._store import COLUMNS, Ledger, LedgerSpanProcessor, SpanRecord, record_to_row
from otel_costattr._ledger._otlp import OTLPDecodeError, iter_file, records_from_json, records_from_proto
from otel_costattr._pricing._schema import load_file, parse_document
from otel_costattr._capture._usage import Call, read_call
from otel_costattr.attributes import PROVIDED_COST, READ
from otel_costattr.testing._otlp_receiver import encode_otlp_json

from _helpers import emit_units
from _settings import FUZZ_SECONDS

ROOT = Path(__file__).resolve().parents[2]
PRICING_FILES = sorted((ROOT / "pricing").glob("*.toml")) + sorted((ROOT / "tests" / "data").glob("*.toml"))
STATUSES = (None, "priced", "partial", "unpriced", "no_usage", "duplicate", "provided")

_SETTINGS = settings(max_examples=500, deadline=None, database=None, derandomize=False, print_blob=False,
                     suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink))


class Campaign:
    """Runs a hypothesis test again and again (fresh seed each time) until the time budget is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.executions = 0
        self.crashes = 0
        self.first_crash: str | None = None
        self.runs = 0

    def hit(self) -> None:
        self.executions += 1

    def run(self, test: Callable[[], None]) -> None:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            self.runs += 1
            try:
                test()
            except Exception as exc:  # noqa: BLE001 - a contract violation found by hypothesis
                self.crashes += 1
                # format_exception shows every sub-exception of a group and hypothesis' falsifying examples.
                self.first_crash = "".join(traceback.format_exception(exc))[-6000:]
                return

    def report(self, figure: Any, what: str) -> None:
        figure.how_much = f"{self.executions:,} inputs in {self.seconds:g} s ({what})"
        figure.lost = f"crashes: {self.crashes}"
        figure.set(executions=self.executions, crashes=self.crashes, hypothesis_runs=self.runs,
                   first_crash=self.first_crash, budget_s=self.seconds)

    def check(self) -> None:
        assert self.crashes == 0, self.first_crash
        assert self.executions > 0


# ------------------------------------------------------------------------------------------------ strategies


class _F(float):
    """A float subclass (what numpy's float64 is): instrumentations do set those as attribute values."""


class _I(int):
    pass


class _S(str):
    pass


KNOWN_KEYS = sorted({n for names in READ.values() for n in names} | set(PROVIDED_COST) | {
    "gen_ai.cost.status", "gen_ai.cost.input_cost", "gen_ai.cost.output_cost", "gen_ai.cost.flags",
    "gen_ai.cost.duplicate_of", "gen_ai.cost.cache_write_cost", "gen_ai.cost.cache_write_1h_cost",
    "http.request.resend_count", "error.type", "customer_id", "task_id", "gen_ai.input.messages"})
SPECIAL_TEXT = ["", " ", "chat", "embeddings", "invoke_agent", "openai", "anthropic", "aws.bedrock", "gpt-4o-mini",
                "claude-haiku-4-5", "claude-sonnet-4-5-20250929", "us.anthropic.claude-3-haiku-20240307-v1:0",
                "batch", "flex", "priority", "eu", "1e9", "-5", "0x10", "١٢٣", "12345678901234", " 42 ", "NaN",
                "inf", "priced", "duplicate", "more_detailed", "\x00", "é" * 300, "x" * 600]
ints = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(min_value=0, max_value=10**7),
                 st.sampled_from([0, 1, 10**12, 10**12 + 1, 2**64, -1]), st.integers().map(_I))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1e6),
                   st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e308, 0.1 + 0.2]), st.floats(0, 1e6).map(_F))
texts = st.one_of(st.text(max_size=40), st.sampled_from(SPECIAL_TEXT), st.text(max_size=10).map(_S))
scalars = st.one_of(ints, floats, texts, st.booleans(), st.none(), st.binary(max_size=20))
values = st.one_of(scalars, st.lists(st.one_of(ints, floats, texts, st.booleans()), max_size=5),
                   st.lists(scalars, max_size=3).map(tuple))
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=20))
attr_dicts = st.dictionaries(keys, values, max_size=25)


# ------------------------------------------------------------------------------------ attribute reader


@pytest.mark.figure("Bad input", "Fuzz `read_call` (span attributes -> usage)")
def test_fuzz_read_call_never_raises(figure) -> None:
    """Proves: for any mapping of attribute names to values, ``read_call`` returns a ``Call`` whose token
    counts are whole numbers in [0, 2^63 - 1] (what an OTLP int carries; the pricer flags implausible ones) or
    None, and never raises."""
    camp = Campaign(FUZZ_SECONDS)

    @_SETTINGS
    @given(attrs=attr_dicts)
    def one(attrs: dict[str, Any]) -> None:
        camp.hit()
        c = read_call(attrs)
        assert isinstance(c, Call)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                     "cache_write_1h_tokens", "reasoning_tokens", "input_audio_tokens", "output_audio_tokens",
                     "web_search_calls"):
            v = getattr(c, name)
            assert v is None or (type(v) is int and 0 <= v <= 2**63 - 1), (name, v)
        assert c.provided_cost is None or (math.isfinite(c.provided_cost) and c.provided_cost >= 0)
        _ = c.is_llm_call, c.has_usage

    camp.run(one)
    camp.report(figure, "random attribute maps, known usage names, odd numeric and text values")
    camp.check()


@pytest.mark.figure("Bad input", "Fuzz the whole processor: CostSpanProcessor -> ledger row -> DuckDB write")
def test_fuzz_processor_and_ledger_rows_never_raise(tmp_path: Path, figure) -> None:
    """Proves: spans with arbitrary attributes, set at start and at end, go through ``CostSpanProcessor``
    without an exception, without an enrichment failure, with a valid status and a finite non-negative
    total when priced; the ledger row built from every enriched span is written to DuckDB."""
    camp = Campaign(FUZZ_SECONDS)
    book = oc.PriceBook.load(env=False)
    exporter = InMemorySpanExporter()
    cost = oc.CostSpanProcessor(SimpleSpanProcessor(exporter), book=book, dedup_size=64)
    tp = TracerProvider(resource=Resource.create({"service.name": "fuzz"}))
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(cost)
    tracer = tp.get_tracer("fuzz")
    ledger = Ledger(tmp_path / "fuzz-ledger", book=book)  # one durable segment per example, as the exporter writes
    written = [0]

    @_SETTINGS
    @given(start=attr_dicts, end=attr_dicts, op=st.sampled_from(["chat", "embeddings", "invoke_agent", None]))
    def one(start: dict[str, Any], end: dict[str, Any], op: str | None) -> None:
        camp.hit()
        first = {"gen_ai.operation.name": op} if op else {}
        with tracer.start_as_current_span("chat", attributes={**first, **start}) as span:
            span.set_attributes(end)
        (out,) = exporter.get_finished_spans()
        exporter.clear()
        status = out.attributes.get("gen_ai.cost.status")
        app = {**start, **end}
        assert status in STATUSES or "gen_ai.cost.status" in app  # only an app-set value may differ
        # A status the library set must come with its total. One the app set is the app's word (the library
        # overwrites it only when it priced the call itself): found by this fuzzer, {"gen_ai.cost.status":
        # "priced"} on a span without usage stays as the app wrote it.
        if status in ("priced", "partial") and "gen_ai.cost.total_cost" not in app and app.get(
                "gen_ai.cost.status") != status:
            total = out.attributes["gen_ai.cost.total_cost"]
            assert isinstance(total, float) and math.isfinite(total) and total >= 0
        row = record_to_row(SpanRecord.from_readable(out), book=book)
        assert not _out_of_column_range(row), row  # see test_one_out_of_range_attribute_does_not_lose_its_batch
        written[0] += ledger.write_rows([row])  # the live exporter's path

    with _quiet_sdk_logs():
        camp.run(one)
    stats = cost.stats.snapshot()
    rows = ledger.count()
    ledger.close()
    tp.shutdown()
    camp.report(figure, "spans with random attributes at start and end")
    figure.set(stats=stats, ledger_rows=rows, ledger_writes=written[0])
    camp.check()
    assert stats.get("enrichment_failed", 0) == 0 and stats.get("downstream_failed", 0) == 0, stats


_RANGES = {"DECIMAL": (0, 10**20), "INTEGER": (-(2**31), 2**31), "BIGINT": (-(2**63), 2**63)}
_CHECKED = [(i, _RANGES[kind.split("(")[0].split()[0]]) for i, (_, kind) in enumerate(COLUMNS)
            if kind.split("(")[0].split()[0] in _RANGES]


def _out_of_column_range(row: tuple) -> bool:
    """A value the ledger's column type cannot hold (DECIMAL(38,18), INTEGER, BIGINT); ``record_to_row``
    must never produce one, since a single such value fails the write of its whole batch."""
    return any(row[i] is not None and not isinstance(row[i], bool) and not lo <= row[i] < hi for i, (lo, hi) in _CHECKED)


class _quiet_sdk_logs:
    """The SDK logs a warning for every attribute value type it rejects; thousands of them are noise here."""

    def __enter__(self) -> None:
        import logging
        self._logger = logging.getLogger("opentelemetry.attributes")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


# --------------------------------------------------------------------------------------- pricing loader

VOCAB = ["meta", "model", "discount", "deployment", "providers", "provider", "provider_names", "version",
         "currency", "id", "aliases", "source", "note", "period", "effective_from", "effective_to", "input",
         "output", "cache_read", "cache_write", "cache_write_1h", "reasoning", "input_audio", "output_audio",
         "long_context", "threshold", "comparator", "service_tiers", "batch", "flex", "priority", "multiplier",
         "time_windows", "name", "days", "hours_utc", "per_1k_calls", "web_search", "per_second",
         "geo_multipliers", "region_multipliers", "percent", "region", "unit"]
price_scalars = st.one_of(
    st.sampled_from(["0.15", "1", "-1", "1e3", "NaN", "Infinity", "abc", "", "2025-01-01", "2025-13-45",
                     "2025-06-01T00:00:00Z", ">", ">=", "=>", "mon", "sat", "12:30", "25:00", "USD", "EUR",
                     "openai", "Gpt-4o", "a b", "https://x.invalid"]),
    st.integers(min_value=-(10**20), max_value=10**20), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=12), st.dates(), st.datetimes())
price_trees = st.recursive(
    price_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(VOCAB), st.text(max_size=8)), inner,
                                            max_size=6)),
    max_leaves=40)


def _load_or_pricing_error(data: Any, file: str) -> None:
    try:
        doc = parse_document(data, file=file, origin="user:fuzz")
    except PricingError as exc:
        # The location is part of the contract: the message always starts with the file.
        assert str(exc).startswith(file), str(exc)
        return
    assert doc.tables or doc.discounts or doc.deployments


@pytest.mark.figure("Bad input", "Fuzz the pricing loader: random structures (schema vocabulary)")
def test_fuzz_pricing_loader_random_structures(figure) -> None:
    """Proves: any table-shaped document either loads or raises ``PricingError`` naming the file."""
    camp = Campaign(FUZZ_SECONDS)

    @_SETTINGS
    @given(data=st.one_of(price_trees, st.dictionaries(st.sampled_from(VOCAB), price_trees, max_size=5),
                          st.fixed_dictionaries({"meta": price_trees, "model": st.lists(price_trees, max_size=3)})))
    def one(data: Any) -> None:
        camp.hit()
        _load_or_pricing_error(data, "fuzz.toml")

    camp.run(one)
    camp.report(figure, "random nested tables and lists over the schema's field names")
    camp.check()


def _real_documents() -> list[tuple[str, Any]]:
    docs = [(p.name, tomllib.loads(p.read_text())) for p in PRICING_FILES]
    # A slice of the imported layer (its full size makes each parse slow), in its own format.
    imported = json.loads((ROOT / "pricing" / "imported" / "litellm.json").read_text())
    for key in sorted(imported["providers"])[:3]:
        block = copy.deepcopy(imported["providers"][key])
        block["model"] = block["model"][:5]
        docs.append((f"litellm.json[{key}]", {"meta": imported["meta"], "providers": {key: block}}))
    return docs


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_documents(draw: Any, docs: list[tuple[str, Any]]) -> tuple[str, Any]:
    name, doc = draw(st.sampled_from(docs))
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["replace", "delete", "add", "dup", "rename"]))
        last = path[-1]
        if op == "replace":
            parent[last] = draw(price_trees)
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(VOCAB))] = draw(price_trees)
        elif op == "dup" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(VOCAB) | st.text(max_size=6))] = parent.pop(last)
    return name, doc


@pytest.mark.figure("Bad input", "Fuzz the pricing loader: mutated real pricing files (structure and bytes)")
def test_fuzz_pricing_loader_mutated_real_files(tmp_path: Path, figure) -> None:
    """Proves: the shipped pricing files, with values replaced, keys deleted, renamed or added, entries
    duplicated, or their bytes flipped, either load or raise ``PricingError`` naming the file."""
    camp = Campaign(FUZZ_SECONDS / 2)
    docs = _real_documents()
    raw = [p.read_bytes() for p in PRICING_FILES]

    @_SETTINGS
    @given(case=mutated_documents(docs))
    def structural(case: tuple[str, Any]) -> None:
        camp.hit()
        _load_or_pricing_error(case[1], case[0])

    camp.run(structural)
    byte_camp = Campaign(FUZZ_SECONDS / 2)
    target = tmp_path / "mutated.toml"

    @_SETTINGS
    @given(i=st.integers(0, len(raw) - 1),
           edits=st.lists(st.tuples(st.integers(0, 10**6),
                                    st.one_of(st.binary(max_size=4), st.sampled_from([b"[" * 30_000, b"{a=" * 3000])),
                                    st.integers(0, 4)), min_size=1, max_size=5))
    def byte_level(i: int, edits: list[tuple[int, bytes, int]]) -> None:
        byte_camp.hit()
        data = bytearray(raw[i])
        for pos, ins, cut in edits:
            pos %= len(data) + 1
            data[pos:pos + cut] = ins
        target.write_bytes(bytes(data))
        try:
            load_file(target)
        except PricingError as exc:
            assert str(exc).startswith(str(target)), str(exc)

    byte_camp.run(byte_level)
    camp.executions += byte_camp.executions
    camp.crashes += byte_camp.crashes
    camp.first_crash = camp.first_crash or byte_camp.first_crash
    camp.seconds = FUZZ_SECONDS
    camp.report(figure, f"{len(docs)} real documents mutated structurally, {len(raw)} files byte-edited")
    figure.set(structural=camp.executions - byte_camp.executions, byte_level=byte_camp.executions)
    camp.check()


# ----------------------------------------------------------------------------------------------- OTLP


def _valid_request() -> ExportTraceServiceRequest:
    """A real export request: the workload's spans as the SDK's OTLP encoder serialises them."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "fuzz", "deployment.environment": "test"}))
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exporter), book=oc.PriceBook.load(env=False)))
    emit_units(tp.get_tracer("fuzz"), range(2))
    tp.shutdown()
    return encode_spans(exporter.get_finished_spans())


OTLP_VOCAB = ["resourceSpans", "resource", "attributes", "scopeSpans", "instrumentationLibrarySpans", "scope",
              "instrumentationLibrary", "name", "spans", "traceId", "spanId", "parentSpanId", "kind", "status",
              "code", "startTimeUnixNano", "endTimeUnixNano", "key", "value", "stringValue", "intValue",
              "doubleValue", "boolValue", "arrayValue", "kvlistValue", "bytesValue", "values"]
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False), st.text(max_size=20),
                         st.sampled_from(["0" * 32, "a" * 32, "0102030405060708", "AQIDBAUGBwg=", "SPAN_KIND_SERVER",
                                          "STATUS_CODE_ERROR", "-1", "1e3", "gen_ai.usage.input_tokens"]))
json_trees = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(OTLP_VOCAB), st.text(max_size=6)), inner, max_size=5)),
    max_leaves=40)


@st.composite
def mutated_json(draw: Any, base: dict) -> Any:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["replace", "delete", "add", "dup"]))
        if op == "replace":
            parent[path[-1]] = draw(json_trees)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(OTLP_VOCAB))] = draw(json_trees)
        elif op == "dup" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return doc


@pytest.mark.figure("Bad input", "Fuzz OTLP/JSON decoding (`records_from_json`)")
def test_fuzz_otlp_json(figure) -> None:
    """Proves: random and mutated OTLP/JSON messages decode to records or raise ``OTLPDecodeError``; no
    other exception escapes."""
    camp = Campaign(FUZZ_SECONDS)
    base = json.loads(encode_otlp_json(_valid_request()))

    @_SETTINGS
    @given(obj=st.one_of(mutated_json(base), json_trees,
                         st.fixed_dictionaries({"resourceSpans": st.lists(json_trees, max_size=3)})))
    def one(obj: Any) -> None:
        camp.hit()
        try:
            for rec in records_from_json(obj):
                assert isinstance(rec.trace_id, str) and len(rec.trace_id) == 32
                assert isinstance(rec.attributes, dict)
        except OTLPDecodeError:
            pass

    camp.run(one)
    camp.report(figure, "mutated real export requests, random OTLP-shaped JSON")
    camp.check()


@pytest.mark.figure("Bad input", "Fuzz OTLP/protobuf decoding (`records_from_proto`)")
def test_fuzz_otlp_proto(figure) -> None:
    """Proves: random bytes and byte-mutated real export requests decode to records or raise
    ``OTLPDecodeError``; nothing else escapes."""
    camp = Campaign(FUZZ_SECONDS)
    valid = _valid_request().SerializeToString()

    @_SETTINGS
    @given(data=st.one_of(
        st.binary(max_size=300),
        st.tuples(st.lists(st.tuples(st.integers(0, len(valid)), st.binary(max_size=4), st.integers(0, 8)),
                           min_size=1, max_size=6)).map(lambda t: _edit(valid, t[0]))))
    def one(data: bytes) -> None:
        camp.hit()
        try:
            records = records_from_proto(data)
        except OTLPDecodeError:
            return
        for rec in records:
            assert len(rec.trace_id) == 32 and len(rec.span_id) == 16
            row = record_to_row(rec)  # decoded records must also make ledger rows
            assert row[0] == rec.trace_id

    camp.run(one)
    camp.report(figure, "random bytes and byte-edited real export requests")
    camp.check()


def _edit(data: bytes, edits: list[tuple[int, bytes, int]]) -> bytes:
    b = bytearray(data)
    for pos, ins, cut in edits:
        pos %= len(b) + 1
        b[pos:pos + cut] = ins
    return bytes(b)


@pytest.mark.figure("Bad input", "Fuzz OTLP file ingest (`iter_file`: JSON lines, protobuf streams, gzip)")
def test_fuzz_otlp_iter_file_never_raises(tmp_path: Path, figure) -> None:
    """Proves: for any file content (JSON lines with good and bad lines, length-prefixed protobuf streams,
    either gzip-compressed, truncated or not), ``iter_file`` yields records or located errors and never
    raises; good lines still load next to bad ones."""
    camp = Campaign(FUZZ_SECONDS)
    req = _valid_request()
    good_json = encode_otlp_json(req)
    good_pb = req.SerializeToString()
    target = tmp_path / "in.otlp"

    lines = st.one_of(st.just(good_json), json_trees.map(lambda t: json.dumps(t).encode()), st.binary(max_size=60),
                      st.just(good_json[:50]), st.just(b"[" * 5000))
    json_file = st.lists(lines, min_size=1, max_size=5).map(lambda ls: b"{}\n" + b"\n".join(ls))
    pb_file = st.lists(st.one_of(st.just(good_pb), st.binary(max_size=40)), min_size=1, max_size=4).map(
        lambda ms: b"".join(len(m).to_bytes(4, "big") + m for m in ms))
    content = st.one_of(json_file, pb_file, st.binary(max_size=200))

    @_SETTINGS
    @given(data=content, gz=st.booleans(), cut=st.integers(0, 40))
    def one(data: bytes, gz: bool, cut: int) -> None:
        camp.hit()
        if gz:
            data = gzip.compress(data)
            data = data[:len(data) - cut] if cut < len(data) else data
        target.write_bytes(data)
        for where, got in iter_file(target):
            assert where.startswith(str(target))
            assert isinstance(got, (list, OTLPDecodeError))

    camp.run(one)
    camp.report(figure, "JSON-lines, protobuf streams and random bytes, gzip-compressed and truncated")
    camp.check()


# ------------------------------------------------------------- bugs the fuzzers found, fixed and pinned


def _three_lines() -> tuple[bytes, int]:
    """Three JSON lines (the same request with distinct span ids per line) and the spans per line."""
    base = json.loads(encode_otlp_json(_valid_request()))
    lines = []
    for k in range(3):
        doc = copy.deepcopy(base)
        for sp in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            sp["spanId"] = f"{k:02x}" + sp["spanId"][2:]
        lines.append(json.dumps(doc).encode())
    return b"\n".join(lines) + b"\n", len(base["resourceSpans"][0]["scopeSpans"][0]["spans"])


def test_iter_file_reports_a_truncated_gzip_file_and_keeps_what_came_before(tmp_path: Path) -> None:
    """Proves: a gzip file cut short yields the complete lines before the cut, then one error naming the file
    and the line where the cut is; ``ingest`` loads those spans and reports the file. (Before: EOFError out of
    iter_file, so `otel-costattr ingest` died with a traceback and skipped the remaining files.)"""
    from otel_costattr._ledger._ingest import ingest_files

    text, per_line = _three_lines()
    z = gzip.compress(text)
    cut_at = len(gzip.compress(text[:len(text) * 5 // 6]))  # well into the third line's compressed data
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(z[:min(cut_at, len(z) - 12)])
    results = list(iter_file(p))
    assert [type(r).__name__ for _, r in results] == ["list", "list", "OTLPDecodeError"], results
    assert [len(r) for _, r in results[:2]] == [per_line, per_line]
    assert results[2][0] == f"{p}:3" and "truncated gzip stream" in str(results[2][1])
    ledger = Ledger(tmp_path / "l.duckdb", book=oc.PriceBook.load(env=False))
    try:
        other = tmp_path / "after.jsonl"
        other.write_bytes(text.splitlines()[2] + b"\n")
        result = ingest_files([p, other], ledger, ledger.book)  # the file after the broken one still loads
        stored = ledger.count()
    finally:
        ledger.close()
    assert stored == 3 * per_line and [w for w, _ in result.errors] == [f"{p}:3"]


def test_iter_file_reads_nothing_of_a_corrupt_gzip_member_but_keeps_intact_members(tmp_path: Path) -> None:
    """Proves: a corrupt gzip member (its bytes could be wrong before the CRC check at its end says so) is not
    read at all, members before it are, and the damage is reported once; nothing raises."""
    text, per_line = _three_lines()
    first, second = text.splitlines(keepends=True)[0], b"".join(text.splitlines(keepends=True)[1:])
    bad = bytearray(gzip.compress(second))
    bad[-8] ^= 0xFF  # the CRC-32 of the second member
    p = tmp_path / "corrupt.jsonl.gz"
    p.write_bytes(gzip.compress(first) + bytes(bad))
    results = list(iter_file(p))
    assert [type(r).__name__ for _, r in results] == ["list", "OTLPDecodeError"]
    assert len(results[0][1]) == per_line and "corrupt gzip stream" in str(results[1][1])


def test_iter_file_truncated_gzip_protobuf_stream_keeps_complete_messages(tmp_path: Path) -> None:
    """Proves: the collector file exporter's length-prefixed protobuf stream, gzip-compressed and cut in its
    last message, yields the complete messages and one error at the byte offset of the cut."""
    msg = _valid_request().SerializeToString()
    stream = b"".join(len(msg).to_bytes(4, "big") + msg for _ in range(3))
    p = tmp_path / "cut.pb.gz"
    p.write_bytes(gzip.compress(stream)[:len(gzip.compress(stream[:-len(msg) // 2]))])
    results = list(iter_file(p))
    kinds = [type(r).__name__ for _, r in results]
    assert kinds[-1] == "OTLPDecodeError" and "truncated" in str(results[-1][1])
    assert kinds[:-1] == ["list"] * (len(kinds) - 1) and len(kinds) - 1 >= 2
    assert results[-1][0] == f"{p}@{(len(kinds) - 1) * (4 + len(msg))}"


def test_iter_file_reports_a_deeply_nested_json_line_instead_of_raising(tmp_path: Path) -> None:
    """Proves: a pathologically nested line is one bad line, reported with file and line number; the good line
    after it loads. (Before: json.loads raised RecursionError out of iter_file and aborted the ingest.)"""
    p = tmp_path / "deep.jsonl"
    p.write_bytes(b"{\"resourceSpans\": " + b"[" * 100_000 + b"\n" + encode_otlp_json(_valid_request()) + b"\n")
    results = list(iter_file(p))
    assert [w for w, _ in results] == [f"{p}:1", f"{p}:2"]
    assert isinstance(results[0][1], OTLPDecodeError) and "nested too deeply" in str(results[0][1])
    assert isinstance(results[1][1], list) and len(results[1][1]) == 20


_SPAN = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat"}


@pytest.mark.parametrize("obj,message", [
    ({"resourceSpans": [{"resource": [1]}]}, "resource must be an object"),
    ({"resourceSpans": [{"scopeSpans": 5}]}, "scopeSpans must be a list"),
    ({"resourceSpans": [{"scopeSpans": [{"scope": "x", "spans": []}]}]}, "scope must be an object"),
    ({"resourceSpans": 7}, "resourceSpans must be a list"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]}, "spans must be a list"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{**_SPAN, "status": [2]}]}]}]}, "status must be an object"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{**_SPAN, "attributes": [
        {"key": "k", "value": {"arrayValue": [1]}}]}]}]}]}, "arrayValue must be an object"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{**_SPAN, "attributes": [
        {"key": "k", "value": {"kvlistValue": {"values": [3]}}}]}]}]}]}, "kvlistValue.values entries"),
], ids=["resource-list", "scopeSpans-int", "scope-str", "resourceSpans-int", "spans-object", "status-list",
        "arrayValue-list", "kvlist-entry-int"])
def test_records_from_json_raises_only_otlp_decode_error(obj: dict, message: str) -> None:
    """Proves: structurally wrong OTLP/JSON raises the documented ``OTLPDecodeError``, saying which field is
    wrong. (Before: AttributeError or TypeError, which a direct caller, e.g. an HTTP endpoint, would have
    turned into a server error.)"""
    with pytest.raises(OTLPDecodeError, match=message):
        records_from_json(obj)


@pytest.mark.parametrize("attribute,value,column", [
    ("gen_ai.usage.cost", 1e20, "cost_total"), ("gen_ai.usage.cost", 10**30, "cost_total"),
    ("gen_ai.cost.cache_write_cost", 1e20, "cost_cache_write"),
    ("http.request.resend_count", 2**31, "resend_count"), ("http.request.resend_count", -(2**31) - 1, "resend_count"),
    ("http.request.resend_count", 2**64, "resend_count"),
    ("gen_ai.cost.layer_prompt_tokens", 2**63, "layer_prompt_tokens")])
def test_one_out_of_range_attribute_does_not_lose_its_batch(tmp_path: Path, attribute: str, value: Any,
                                                            column: str) -> None:
    """Proves: one span with an out-of-range attribute (found by the processor fuzzer: a cost >= 1e20 for
    DECIMAL(38,18), a resend count outside INTEGER, a count outside BIGINT) costs the ledger nothing else in
    its batch; the value itself is stored as NULL, marked in ``cost_flags``, kept in ``attributes``, and
    counted. (Before: the Arrow conversion or DuckDB's CAST failed the whole batch, up to 2,048 spans.)"""
    book = oc.PriceBook.load(env=False)
    proc = LedgerSpanProcessor(tmp_path / "l.duckdb", book=book, schedule_delay_millis=60_000)
    tp = TracerProvider()
    tp.add_span_processor(oc.CostSpanProcessor(proc, book=book))
    tracer = tp.get_tracer("app")
    n = emit_units(tracer, range(10))
    with tracer.start_as_current_span("bad", attributes={"gen_ai.operation.name": "chat",
                                                         "gen_ai.request.model": "gpt-4o-mini", attribute: value}):
        pass
    tp.force_flush()
    stored = proc.ledger.count()
    (flags, attrs, status), = proc.ledger.query(f"SELECT cost_flags, attributes, cost_status FROM spans "
                                                f"WHERE name = 'bad' AND {column} IS NULL")
    counted = proc.ledger.out_of_range_values
    tp.shutdown()
    assert stored == n + 1, f"{n + 1 - stored} of {n + 1} spans lost for one bad attribute"
    assert f"out_of_range:{column}" in flags.split(",")
    assert float(json.loads(attrs)[f"otel_costattr.out_of_range.{column}"]) == float(value)
    assert counted == 1
    if column == "cost_total":
        assert status == "unpriced"  # an unknown cost is never summed as $0


def test_ingest_reports_an_out_of_range_timestamp_and_loads_the_rest(tmp_path: Path) -> None:
    """Proves: a span with an impossible timestamp (beyond what a signed 64-bit count of nanoseconds holds) is
    reported with its file, line and place in the message, and the other spans of the same line load.
    (Before: the decoder accepted it, the Arrow conversion of the whole batch raised OverflowError and
    `otel-costattr ingest` died with a traceback, loading nothing of the file.)"""
    from otel_costattr._ledger._ingest import ingest_files

    req = json.loads(encode_otlp_json(_valid_request()))
    spans = req["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[3]["startTimeUnixNano"] = str(10**20)
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps(req) + "\n")
    ledger = Ledger(tmp_path / "l.duckdb", book=oc.PriceBook.load(env=False))
    try:
        result = ingest_files([p], ledger, ledger.book)
        stored = ledger.count()
        (missing,), = ledger.query("SELECT count(*) FROM spans WHERE span_id = ?", [spans[3]["spanId"]])
    finally:
        ledger.close()
    assert stored == len(spans) - 1 and missing == 0
    ((where, why),) = result.errors
    assert where == f"{p}:1"
    assert f"spans[3] (spanId {spans[3]['spanId']})" in why and "startTimeUnixNano" in why and "out of range" in why


def test_protobuf_span_time_beyond_int64_is_reported_per_span() -> None:
    """Proves: the same holds for protobuf (fixed64 times can reach 2^64 - 1): the bad span is described in
    ``errors`` and skipped, or, without ``errors``, the message raises ``OTLPDecodeError`` (never an
    OverflowError later in the ledger)."""
    req = _valid_request()
    req.resource_spans[0].scope_spans[0].spans[5].end_time_unix_nano = 2**64 - 1
    errors: list[str] = []
    records = records_from_proto(req.SerializeToString(), errors)
    assert len(records) == len(req.resource_spans[0].scope_spans[0].spans) - 1
    assert len(errors) == 1 and "spans[5]" in errors[0] and "end_time_unix_nano" in errors[0]
    with pytest.raises(OTLPDecodeError, match="out of range"):
        records_from_proto(req.SerializeToString())


@pytest.mark.parametrize("suffix,text", [(".toml", "a = " + "[" * 50_000), (".json", "[" * 50_000)])
def test_deeply_nested_pricing_file_raises_pricing_error(tmp_path: Path, suffix: str, text: str) -> None:
    """Proves: a pathologically nested pricing file is refused with ``PricingError`` naming it, by the loader,
    by ``PriceBook.load`` and by ``pricing validate`` (exit 1, no traceback). (Before: RecursionError from
    tomllib/json escaped read_file, so the CLI died with a traceback and configure() raised RecursionError.)"""
    import subprocess
    import sys

    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(PricingError, match=f"^{path}: .*nested too deeply"):
        load_file(path)
    with pytest.raises(PricingError, match="nested too deeply"):
        oc.PriceBook.load([path], env=False)
    with pytest.raises(oc.ConfigurationError, match="nested too deeply"):
        oc.configure(env={}, pricing=[str(path)], tracer_provider=TracerProvider(), set_global=False,
                     instrument_threading=False)
    cli = subprocess.run([sys.executable, "-m", "otel_costattr", "pricing", "validate", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr and str(path) in cli.stdout + cli.stderr, cli
