"""Golden check for the ledger's write path: `ingest` of a varied OTLP corpus must store the same rows.

Not a benchmark: a tool for changing ``_ledger/_otlp.py``, ``_ledger/_ingest.py`` or ``record_to_row`` without
changing what is stored. ``save FILE`` ingests a deterministic corpus (protobuf, JSON lines, gzip, repeats,
malformed lines, every attribute value type, priced and unpriced spans of many providers, duplicates and pairs,
out-of-range values, content, layers) with the code as it is, and writes a hash of every stored row (all
columns, sorted), each load's result (counts, errors) and the segments' flags; ``check FILE`` does the same and
compares, printing the first rows that differ. Run ``save`` on the old code, ``check`` after each change::

    .venv/bin/python benchmarks/golden_ingest.py save /tmp/golden.json
    .venv/bin/python benchmarks/golden_ingest.py check /tmp/golden.json
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from otel_costattr._ledger._ingest import ingest_files
from otel_costattr._ledger._store import Ledger
from otel_costattr._pricing._book import PriceBook

_MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "o3-mini"), ("anthropic", "claude-sonnet-4-5"),
           ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"), ("gcp.gemini", "gemini-2.0-flash"),
           ("openai", "text-embedding-3-small"), ("openai", "deepseek-chat"), ("openai", "unknown-x"),
           ("OpenAI", "gpt-4o-2024-08-06"), (None, "gpt-4o"), ("aws", "claude-haiku-4-5-20251001")]
_KIND_NAMES = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
_SCOPES = ["", "opentelemetry.instrumentation.openai", "openinference.instrumentation.openai",
           "opentelemetry.instrumentation.botocore.bedrock-runtime", "bench"]


def _span(rng: random.Random, i: int) -> dict[str, Any]:
    """One span as {ids, name, kind, times, status, attributes (list of (key, typed value))}."""
    trace = rng.randrange(1, 2**128) if rng.random() < 0.7 else (i // 5 + 1)
    span = {"trace": trace, "span": i + 1, "parent": (i if rng.random() < 0.6 else None),
            "name": rng.choice(["chat gpt-4o", "invoke_agent planner", "GET /x", "ünïcode ✓", ""]),
            "kind": rng.randrange(0, 6), "start": 1_763_000_000_000_000_000 + i * 1_000_000,
            "status": rng.choice([0, 0, 0, 1, 2])}
    span["end"] = span["start"] + rng.randrange(0, 5_000_000_000)
    attrs: list[tuple[str, str, Any]] = []
    llm = rng.random() < 0.6
    if llm:
        provider, model = rng.choice(_MODELS)
        op = rng.choice(["chat", "chat", "embeddings", "text_completion", None])
        if op:
            attrs.append(("gen_ai.operation.name", "s", op))
        if provider is not None:
            attrs.append((rng.choice(["gen_ai.provider.name", "gen_ai.system", "llm.provider"]), "s", provider))
        attrs.append((rng.choice(["gen_ai.request.model", "llm.model_name"]), "s", model))
        if rng.random() < 0.7:
            attrs.append(("gen_ai.response.model", "s", model + ("-2024" if rng.random() < 0.2 else "")))
        if rng.random() < 0.7:  # repeated response ids make duplicates
            attrs.append(("gen_ai.response.id", "s", f"resp-{rng.randrange(0, 8000)}"))
        if rng.random() < 0.9:
            attrs.append((rng.choice(["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"]), "i",
                          rng.choice([0, 1, 17, 1200, 123_456, rng.randrange(0, 200_000)])))
        if rng.random() < 0.85:
            attrs.append(("gen_ai.usage.output_tokens", "i", rng.randrange(0, 5000)))
        if rng.random() < 0.3:
            attrs.append(("gen_ai.usage.cache_read.input_tokens", "i", rng.randrange(0, 1000)))
        if rng.random() < 0.15:
            attrs.append(("gen_ai.usage.cache_creation.input_tokens", "i", rng.randrange(0, 1000)))
        if rng.random() < 0.05:
            attrs.append(("anthropic.usage.cache_creation.ephemeral_1h_input_tokens", "i", rng.randrange(0, 500)))
        if rng.random() < 0.1:
            attrs.append(("gen_ai.usage.reasoning.output_tokens", "i", rng.randrange(0, 800)))
        if rng.random() < 0.05:
            attrs.append(("openai.response.service_tier", "s", rng.choice(["batch", "flex", "default", "priority"])))
        if rng.random() < 0.03:
            attrs.append(("gen_ai.usage.input_tokens", "d", rng.choice([float("nan"), -3.0, 12.5])))
        if rng.random() < 0.03:
            attrs.append(("gen_ai.usage.cost", "d", round(rng.random(), 6)))
        if rng.random() < 0.2:  # already priced upstream
            attrs += [("gen_ai.cost.status", "s", rng.choice(["priced", "partial", "duplicate", "provided",
                                                               "unpriced"])),
                      ("gen_ai.cost.total_cost", "d", rng.choice([0.00472, 1.5e-05, 3.0000000000000004e-05, 2.5e20,
                                                                   0.1 + 0.2, 7]))]
            if rng.random() < 0.5:
                attrs += [("gen_ai.cost.input_cost", "d", 0.00172), ("gen_ai.cost.output_cost", "d", 0.003),
                          ("gen_ai.cost.model", "s", model), ("gen_ai.cost.cache_creation_cost", "d", 1e-6),
                          ("gen_ai.cost.cache_creation_1h_cost", "d", 2e-6)]
            if rng.random() < 0.3:
                attrs += [("gen_ai.cost.duplicate_of", "s", f"{rng.randrange(1, i + 2):016x}"),
                          ("gen_ai.cost.flags", "a", ["more_detailed"])]
        if rng.random() < 0.05:
            attrs += [("otel_costattr.layer.prompt_tokens", "i", 100), ("otel_costattr.layer.tool_tokens", "i", 50)]
        if rng.random() < 0.05:
            attrs.append(("gen_ai.input.messages", "s", json.dumps([{"role": "user", "parts": [
                {"type": "text", "content": "hello " * rng.randrange(1, 20)}]}])))
    else:
        attrs.append(("gen_ai.operation.name", "s", rng.choice(["invoke_agent", "execute_tool", "plan"]))) \
            if rng.random() < 0.5 else None
        if rng.random() < 0.5:
            attrs += [("http.request.method", "s", "GET"), ("http.response.status_code", "i", 200),
                      ("url.full", "s", f"https://x.example/{rng.randrange(0, 50)}")]
    for key in ("customer_id", "task_id", "agent_id", "user_id", "workload_type"):
        r = rng.random()
        if r < 0.5:
            attrs.append((key, "s", f"{key[:4]}-{rng.randrange(0, 40)}"))
        elif r < 0.53:
            attrs.append((key, "s", "x" * rng.choice([255, 256, 300, 5000])))
        elif r < 0.56:
            attrs.append((key, "i", rng.randrange(0, 100)))
    extra = rng.random()
    if extra < 0.05:
        attrs.append(("error.type", "s", rng.choice(["timeout", "429", "x" * 400])))
    elif extra < 0.1:
        attrs.append(("http.request.resend_count", "i", rng.choice([1, 3, 2**31, -1])))
    elif extra < 0.15:
        attrs += [("tags", "a", ["a", "b"]), ("nums", "a", [1, 2.5, True]), ("flag", "b", rng.random() < 0.5),
                  ("ratio", "d", rng.choice([0.25, float("inf"), -0.0, 1e300]))]
    elif extra < 0.18:
        attrs += [("obj", "kv", {"a": 1, "b": "x"}), ("blob", "bytes", b"\x00\x01hi"), ("empty", "none", None)]
    elif extra < 0.2:
        attrs += [("gen_ai.prompt.0.content", "s", "secret"), ("big", "i", 2**62), ("neg", "i", -5)]
    if rng.random() < 0.02:  # a repeated key: the last one wins
        attrs.append(("customer_id", "s", "repeated"))
    span["attrs"] = attrs
    return span


def _pb_value(kind: str, v: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
    if kind == "s":
        return AnyValue(string_value=v)
    if kind == "i":
        return AnyValue(int_value=v)
    if kind == "d":
        return AnyValue(double_value=v)
    if kind == "b":
        return AnyValue(bool_value=v)
    if kind == "a":
        return AnyValue(array_value=ArrayValue(values=[_pb_value(_kind_of(x), x) for x in v]))
    if kind == "kv":
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=_pb_value(_kind_of(x), x))
                                                          for k, x in v.items()]))
    if kind == "bytes":
        return AnyValue(bytes_value=v)
    return AnyValue()


def _kind_of(x: Any) -> str:
    return "b" if isinstance(x, bool) else "i" if isinstance(x, int) else "d" if isinstance(x, float) else "s"


def _json_value(kind: str, v: Any, rng: random.Random) -> Any:
    if kind == "s":
        return {"stringValue": v}
    if kind == "i":
        return {"intValue": str(v) if rng.random() < 0.9 else v}
    if kind == "d":
        return {"doubleValue": v if v == v and abs(v) != float("inf") else str(v).replace("inf", "Infinity")
                .replace("nan", "NaN")}
    if kind == "b":
        return {"boolValue": v}
    if kind == "a":
        return {"arrayValue": {"values": [_json_value(_kind_of(x), x, rng) for x in v]}}
    if kind == "kv":
        return {"kvlistValue": {"values": [{"key": k, "value": _json_value(_kind_of(x), x, rng)}
                                           for k, x in v.items()]}}
    if kind == "bytes":
        return {"bytesValue": base64.b64encode(v).decode()}
    return {}


def _groups(spans: list[dict[str, Any]], rng: random.Random) -> list[tuple[dict[str, Any], list[list[Any]]]]:
    """Messages: (resource attributes, [[scope name, spans], ...]), a few resources and scopes each."""
    out, i = [], 0
    while i < len(spans):
        n = rng.randrange(1, 600)
        chunk, i = spans[i:i + n], i + n
        res = rng.choice([{"service.name": "svc-a"}, {"service.name": "svc-b", "host.name": "h"}, {},
                          {"service.name": 5}])
        scopes, j = [], 0
        while j < len(chunk):
            m = rng.randrange(1, 300)
            scopes.append([rng.choice(_SCOPES), chunk[j:j + m]])
            j += m
        out.append((res, scopes))
    return out


def write_corpus(d: Path, n: int, seed: int = 17) -> list[list[Path]]:
    """The loads, in order: each a list of files (protobuf stream, JSON lines, gzip, a re-load, bad lines)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    rng = random.Random(seed)
    spans = [_span(rng, i) for i in range(n)]
    half = n // 2
    pb_msgs = []
    for res, scopes in _groups(spans[:half], rng):
        rs = ResourceSpans(resource=Resource(attributes=[KeyValue(key=k, value=_pb_value(_kind_of(v), v))
                                                         for k, v in res.items()]))
        for scope, ss in scopes:
            pbs = []
            for s in ss:
                pbs.append(Span(trace_id=s["trace"].to_bytes(16, "big"), span_id=s["span"].to_bytes(8, "big"),
                                parent_span_id=s["parent"].to_bytes(8, "big") if s["parent"] else b"",
                                name=s["name"], kind=s["kind"], start_time_unix_nano=s["start"],
                                end_time_unix_nano=s["end"], status=Status(code=s["status"]),
                                attributes=[KeyValue(key=k, value=_pb_value(t, v)) for k, t, v in s["attrs"]]))
            rs.scope_spans.append(ScopeSpans(scope=InstrumentationScope(name=scope), spans=pbs))
        pb_msgs.append(ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString())
    pb = d / "a.pb"
    pb.write_bytes(b"".join(struct.pack(">I", len(m)) + m for m in pb_msgs))
    lines = []
    for res, scopes in _groups(spans[half:], rng):
        scope_spans = []
        for scope, ss in scopes:
            js = []
            for s in ss:
                tid = f"{s['trace']:032x}" if rng.random() < 0.95 else base64.b64encode(
                    s["trace"].to_bytes(16, "big")).decode()
                j = {"traceId": tid.upper() if rng.random() < 0.05 else tid, "spanId": f"{s['span']:016x}",
                     "parentSpanId": f"{s['parent']:016x}" if s["parent"] else "", "name": s["name"],
                     "kind": s["kind"] if rng.random() < 0.8 else f"SPAN_KIND_{_KIND_NAMES[s['kind']]}",
                     "startTimeUnixNano": str(s["start"]),
                     "endTimeUnixNano": s["end"] if rng.random() < 0.1 else str(s["end"]),
                     "attributes": [{"key": k, "value": _json_value(t, v, rng)} for k, t, v in s["attrs"]]}
                if s["status"]:
                    j["status"] = {"code": s["status"] if rng.random() < 0.5 else
                                   ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"][s["status"]]}
                js.append(j)
            scope_spans.append({"scope": {"name": scope}, "spans": js})
        lines.append(json.dumps({"resourceSpans": [{"resource": {"attributes": [
            {"key": k, "value": _json_value(_kind_of(v), v, rng)} for k, v in res.items()]},
            "scopeSpans": scope_spans}]}))
    # malformed lines and spans among good ones
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "00" * 16, "spanId": "11" * 8},
        {"traceId": "ab" * 16, "spanId": "cd" * 8, "startTimeUnixNano": "1" * 30},
        {"traceId": "ab" * 16, "spanId": "ce" * 8, "name": "ok"}]}]}]}))
    lines.insert(9, json.dumps({"nope": 1}))
    js = d / "b.jsonl"
    js.write_text("\n".join(lines) + "\n")
    gz = d / "c.jsonl.gz"
    gz.write_bytes(gzip.compress("\n".join(lines[: len(lines) // 3]).encode() + b"\n"))
    one = d / "d.pb"  # one message, no length prefix
    one.write_bytes(pb_msgs[0])
    return [[pb, js], [gz, one], [js]]  # the later loads repeat spans of the first: replacements


def _row_digest(row: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr(row).encode()).hexdigest()


def snapshot(n: int = 30_000) -> dict[str, Any]:
    import pyarrow.parquet as pq

    tmp = Path(tempfile.mkdtemp(prefix="costattr-golden-"))
    try:
        loads = write_corpus(tmp, n)
        book = PriceBook.load()
        led = Ledger(tmp / "ledger", book=book)
        results = []
        for files in loads:
            r = ingest_files(files, led, book)
            results.append([r.files, r.spans, r.priced_now, r.distinct, r.replaced,
                            [(Path(w).name, e) for w, e in r.errors]])
        segs = led.segments()
        flags = sorted(s.flags for s in segs)
        rows = []
        for s in segs:
            t = pq.read_table(s.path)
            rows.extend(tuple(r.values()) for r in t.to_pylist())
        digests = sorted(_row_digest(r) for r in rows)
        calls = led.query("SELECT count(*), sum(cost_total), count(DISTINCT span_id) FROM calls")
        spans = led.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")
        led.close()
        by_digest = {_row_digest(r): repr(r) for r in rows}
        return {"results": results, "flags": flags, "rows": len(rows), "digests": digests,
                "all": hashlib.sha256("".join(digests).encode()).hexdigest(),
                "calls": repr(calls), "spans": repr(spans), "_examples": by_digest}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "check"):
        print(__doc__)
        return 2
    path = Path(sys.argv[2])
    snap = snapshot()
    examples = snap.pop("_examples")
    if sys.argv[1] == "save":
        path.write_text(json.dumps({**snap, "examples": examples}))
        print(f"saved {snap['rows']} row digests ({snap['all'][:16]}), results {snap['results']!s:.200}")
        return 0
    old = json.loads(path.read_text())
    old_examples = old.pop("examples")
    same = True
    for k in ("results", "flags", "rows", "calls", "spans", "all"):
        if old[k] != snap[k] and not (k == "results" and json.loads(json.dumps(snap[k])) == old[k]):
            same = False
            print(f"DIFFERENT {k}: old {str(old[k])[:300]}\n          new {str(snap[k])[:300]}")
    if old["all"] != snap["all"]:
        gone = sorted(set(old["digests"]) - set(snap["digests"]))
        new = sorted(set(snap["digests"]) - set(old["digests"]))
        print(f"{len(gone)} old row(s) missing, {len(new)} new row(s)")
        for g in gone[:3]:
            print("  old:", old_examples[g][:1500])
        for g in new[:3]:
            print("  new:", examples[g][:1500])
    print("SAME" if same else "CHANGED", f"({snap['rows']} rows, {snap['all'][:16]})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
