"""`otel-costattr ingest` and `otel-costattr report`: OTLP files in, exact rollups out."""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.conftest import DATA


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_costattr", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                        "PATH": "/usr/bin:/bin"})


def kv_json(k: str, v) -> dict:
    if isinstance(v, bool):
        return {"key": k, "value": {"boolValue": v}}
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    if isinstance(v, float):
        return {"key": k, "value": {"doubleValue": v}}
    return {"key": k, "value": {"stringValue": v}}


def span_json(i: int, customer: str | None, model: str = "tiered", inp: int = 1000, out: int = 100,
              day: int = 0, workload: str = "interactive") -> dict:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "rulesco", "gen_ai.request.model": model,
             "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out, "gen_ai.response.id": f"r{i}",
             "task_id": f"task-{i % 3}", "agent_id": "planner", "workload_type": workload}
    if customer:
        attrs["customer_id"] = customer
    start = 1_763_000_000_000_000_000 + day * 86_400 * 10**9 + i * 10**6
    return {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "chat", "kind": 3,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 10**8),
            "attributes": [kv_json(k, v) for k, v in attrs.items()], "status": {}}


def request_json(spans: list[dict]) -> str:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [kv_json("service.name", "svc")]},
                                          "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]})


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[Path, Decimal]:
    """A ledger ingested from a JSON-lines file with one malformed line; returns (db, expected total)."""
    lines, expected = [], Decimal(0)
    plan = [("acme", 1000, 100, 0, "interactive"), ("acme", 2000, 10, 1, "batch"), ("globex", 500, 500, 1, "batch"),
            (None, 7000, 70, 2, "interactive"), ("globex", 10, 1, 2, "eval")]
    for i, (cust, inp, out, day, wl) in enumerate(plan):
        lines.append(request_json([span_json(i, cust, inp=inp, out=out, day=day, workload=wl)]))
        expected += (Decimal(inp) * 3 + Decimal(out) * 15) / 1_000_000  # tiered: $3 in, $15 out
    lines.insert(2, '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}')
    lines.insert(4, "not json at all")
    lines.append(request_json([span_json(99, "hooli", model="no-such-model")]))
    f = tmp_path / "traces.jsonl"
    f.write_text("\n".join(lines) + "\n")
    db = tmp_path / "l.duckdb"
    r = cli("ingest", str(f), "--db", str(db), "--pricing", str(DATA / "rules.toml"))
    assert r.returncode == 1, r.stderr  # some lines were malformed...
    assert f"{f}:3" in r.stderr and f"{f}:5" in r.stderr  # ...named with file and line, on standard error
    assert f"{f}:3" not in r.stdout
    # ...and the good lines still loaded; piped, so no progress display
    assert r.stdout.strip() == "read 6 span(s) from 1 file(s); stored 6 distinct span(s); priced 5 on the way in"
    return db, expected


def test_report_json_contract_and_exact_totals(loaded: tuple[Path, Decimal]) -> None:
    db, expected = loaded
    r = cli("report", "--db", str(db), "--format", "json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["currency"] == "USD" and Decimal(rep["total"]) == expected
    assert sum(Decimal(row["cost"]) for row in rep["rows"] if row["cost"] is not None) == expected
    keys = {row["key"]["customer_id"]: row for row in rep["rows"]}
    assert set(keys) == {"acme", "globex", None, "hooli"}  # a missing key is null, never a made-up value
    assert Decimal(keys["acme"]["cost"]) == Decimal("0.0045") + Decimal("0.00615")  # (1,000x3 + 100x15) + (2,000x3 + 10x15)
    assert keys["acme"]["calls"] == 2 and keys["acme"]["input_tokens"] == 3000 and keys["acme"]["output_tokens"] == 110
    assert keys["hooli"]["unpriced_calls"] == 1 and keys["hooli"]["cost"] is None  # unknown, not $0
    assert rep["unpriced_calls"] == 1 and rep["unpriced_models"][0]["model"] == "no-such-model"
    un = rep["unattributed"]
    assert Decimal(un["cost"]) == Decimal("0.02205") and un["calls"] == 1  # 7,000 x 3 + 70 x 15
    assert {"by_day", "top", "vendor_share_by_workload"} <= set(rep)


def test_report_by_combinations_days_and_windows(loaded: tuple[Path, Decimal]) -> None:
    db, _ = loaded
    rep = json.loads(cli("report", "--db", str(db), "--by", "customer_id,workload_type", "--format", "json").stdout)
    assert {tuple(r["key"].values()) for r in rep["rows"]} >= {("acme", "interactive"), ("acme", "batch")}
    days = json.loads(cli("report", "--db", str(db), "--by", "day", "--format", "json").stdout)
    assert [r["calls"] for r in sorted(days["rows"], key=lambda r: r["key"]["day"])] == [2, 2, 2]
    window = json.loads(cli("report", "--db", str(db), "--since", "2025-11-14", "--until", "2025-11-15",
                            "--format", "json").stdout)
    assert window["calls"] == 2  # only day 1 (2025-11-14 UTC)
    top = json.loads(cli("report", "--db", str(db), "--top", "1", "--format", "json").stdout)
    assert len(top["rows"]) == 1 and top["other"]["rows"] == 3
    share = json.loads(cli("report", "--db", str(db), "--format", "json").stdout)["vendor_share_by_workload"]
    assert {(s["workload_type"], s["provider"], s["share"]) for s in share} >= {("batch", "rulesco", "100.00")}


def test_table_and_csv(loaded: tuple[Path, Decimal]) -> None:
    db, expected = loaded
    table = cli("report", "--db", str(db), "--by", "task_id")
    assert table.returncode == 0 and f"total ${expected}" in table.stdout and "unattributed" in table.stdout
    rows = list(csv.DictReader(io.StringIO(cli("report", "--db", str(db), "--format", "csv").stdout)))
    assert sum(Decimal(r["cost"]) for r in rows if r["cost"]) == expected  # empty: unpriced, unknown


def test_report_errors_name_the_fix(tmp_path: Path, loaded: tuple[Path, Decimal]) -> None:
    db, _ = loaded
    missing = cli("report", "--db", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 2 and "otel-costattr demo" in missing.stderr
    bad_key = cli("report", "--db", str(db), "--by", "customer_id;drop table spans")
    assert bad_key.returncode == 2 and "not a valid attribute name" in bad_key.stderr
    bad_time = cli("report", "--db", str(db), "--since", "last tuesday")
    assert bad_time.returncode == 2 and "relative period" in bad_time.stderr


def test_ingest_protobuf_stream_gzip_and_idempotency(tmp_path: Path) -> None:
    def pb_span(i: int) -> Span:
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "rulesco",
                 "gen_ai.request.model": "tiered", "gen_ai.usage.input_tokens": 1000,
                 "gen_ai.usage.output_tokens": 10, "customer_id": "acme"}
        kvs = [KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v))
               for k, v in attrs.items()]
        return Span(trace_id=bytes.fromhex(f"{i + 1:032x}"), span_id=bytes.fromhex(f"{i + 1:016x}"), name="chat",
                    kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=1_763_000_000_000_000_000,
                    end_time_unix_nano=1_763_000_000_100_000_000, attributes=kvs)

    stream = b""
    for batch in range(3):
        req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(
            spans=[pb_span(batch * 10 + j) for j in range(10)])])])
        body = req.SerializeToString()
        stream += struct.pack(">I", len(body)) + body
    f = tmp_path / "traces.pb.gz"
    f.write_bytes(gzip.compress(stream))
    db = tmp_path / "p.duckdb"
    said = []
    for _ in range(2):  # the second load replaces, it does not add
        r = cli("ingest", str(f), "--db", str(db), "--pricing", str(DATA / "rules.toml"))
        assert r.returncode == 0, r.stdout + r.stderr
        said.append(r.stdout.strip())
    assert said == ["read 30 span(s) from 1 file(s); stored 30 distinct span(s); priced 30 on the way in",
                    "read 30 span(s) from 1 file(s); stored 30 distinct span(s) (30 replaced a copy already in the "
                    "ledger); priced 30 on the way in"]
    twice = cli("ingest", str(f), str(f), "--db", str(db), "--pricing", str(DATA / "rules.toml"))
    assert twice.stdout.strip() == ("read 60 span(s) from 2 file(s); stored 30 distinct span(s) (30 repeated a span "
                                    "read earlier in this load; 30 replaced a copy already in the ledger); priced 60 "
                                    "on the way in")
    rep = json.loads(cli("report", "--db", str(db), "--format", "json").stdout)
    assert rep["calls"] == 30 and Decimal(rep["total"]) == Decimal("0.0945")  # 30 x (3,000 + 150) / 1M
