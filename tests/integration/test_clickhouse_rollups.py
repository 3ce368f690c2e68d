"""ClickHouse rollups equal the DuckDB ledger's, to the last decimal, over the same priced spans.

One realistic workload is run through the real SDK ``TracerProvider`` and the real ``CostSpanProcessor``; the
enriched spans are written (a) into a DuckDB ledger with ``Ledger.write_spans`` and (b) into chDB's
``otel_traces``, created from the collector clickhouse exporter's own DDL template
(``tests/data/clickhouse_otel_traces.sql``) and filled with rows exactly as that exporter writes them (every
attribute value turned into text by pdata's ``Value.AsString``, reimplemented below). Then every report section
must be identical.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

import otel_costattr as oc
from otel_costattr._analysis._clickhouse import ClickHouseSource, bind_params, is_source_url, money_sql, parse_url
from otel_costattr._errors import ConfigurationError
from otel_costattr._ledger._store import Ledger, SpanRecord
from otel_costattr._analysis._rollup import build_report
from tests.conftest import DATA

chdb_session = pytest.importorskip("chdb.session")

REPO = Path(__file__).resolve().parents[2]
DDL_FILE = DATA / "clickhouse_otel_traces.sql"
_MARKER = "-- ---- upstream template follows ----\n"

# ------------------------------------------------------------------------------------ the exporter's DDL


def exporter_ddl(database: str, table: str = "otel_traces", *, full_text_search: bool = False, ttl: str = "",
                 cluster: str = "", engine: str = "MergeTree()") -> str:
    """The exporter's CREATE TABLE, rendered as its Go text/template is at start-up.

    Only the template's own constructs are handled (``ident``, the plain fields, one if/else with ``{{-``
    trimming); anything else left in the text fails the test rather than being guessed.
    """
    template = DDL_FILE.read_text().split(_MARKER, 1)[1]

    def ident(name: str) -> str:  # the template's `ident`: backticks, embedded backticks escaped
        return "`" + name.replace("`", "\\`") + "`"

    out = template.replace("{{ident .Database}}", ident(database)).replace("{{ident .TableName}}", ident(table))
    out = out.replace("{{.ClusterString}}", cluster).replace("{{.Engine}}", engine).replace("{{.TTL}}", ttl)
    # `{{-` trims the whitespace (newline included) before the action
    branch = re.compile(r"\s*\{\{- if \.HasFullTextSearch\}\}(.*?)\s*\{\{- else\}\}(.*?)\s*\{\{- end\}\}", re.S)
    out = branch.sub(lambda m: m.group(1 if full_text_search else 2), out)
    assert "{{" not in out, out
    return out


# ------------------------------------------------------------------- attribute values as the exporter writes them


def go_float(f: float) -> str:
    """pdata's ``float64AsString`` (opentelemetry-collector ``pdata/pcommon/value.go``, read at 934999f).

    Go's shortest round-trip digits (``strconv.AppendFloat(f, fmt, -1, 64)``), in ``'f'`` form unless
    ``|f| < 1e-6`` or ``>= 1e21``, then ``'e'`` form with a sign and at least two exponent digits, after which a
    leading zero of a negative exponent is dropped (``1.5e-07`` becomes ``1.5e-7``). Python's ``repr`` gives the
    same shortest digits; only the layout differs.
    """
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    sign, digits, exp = Decimal(repr(f)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0")
    exp += len(digits) - len(ds)  # value = ds * 10**exp, ds without trailing zeros
    neg = "-" if sign else ""
    if not ds:
        return neg + "0"
    if f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21):
        sci = exp + len(ds) - 1
        text = f"{neg}{ds[0]}{'.' + ds[1:] if len(ds) > 1 else ''}e{sci:+03d}"
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    if exp >= 0:
        return neg + ds + "0" * exp
    point = len(ds) + exp
    if point > 0:
        return f"{neg}{ds[:point]}.{ds[point:]}"
    return f"{neg}0.{'0' * -point}{ds}"


def _go_json(value: Any) -> str:
    """Go ``encoding/json`` with HTML escaping off (pdata ``marshalJSONNoHTMLEscape``), for array values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)  # encoding/json formats floats with the same ES6 rule
    if isinstance(value, str):
        # json.dumps escapes like Go (\n \r \t \b \f, \u00XX for other controls); Go also escapes U+2028/9
        return json.dumps(value, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    raise TypeError(type(value))


def go_as_string(value: Any) -> str:
    """pdata ``Value.AsString()`` for the value the Python OTLP exporter would send for this attribute.

    The Python SDK maps bool to a bool value, int to int, float to double, str to string and sequences to an
    array value; the collector's clickhouse exporter (``internal.AttributesToMap``) stores ``v.AsString()``:
    ``strconv.FormatBool``, ``strconv.FormatInt``, :func:`go_float`, the string itself, and JSON for arrays.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return _go_json(list(value))
    raise TypeError(f"not an OpenTelemetry attribute value: {type(value).__name__}")


def _lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _map(attrs: Mapping[str, Any]) -> str:
    return "map(" + ", ".join(f"{_lit(k)}, {_lit(go_as_string(v))}" for k, v in attrs.items()) + ")"


def _ts(ns: int) -> str:
    return f"fromUnixTimestamp64Nano(toInt64({ns}), 'UTC')"


_KIND = {"INTERNAL": "Internal", "SERVER": "Server", "CLIENT": "Client", "PRODUCER": "Producer",
         "CONSUMER": "Consumer"}
_STATUS = {"UNSET": "Unset", "OK": "Ok", "ERROR": "Error"}
# The exporter's INSERT column list (internal/sqltemplates/traces_insert.sql).
INSERT_COLUMNS = ("Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, "
                  "ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage, "
                  "`Events.Timestamp`, `Events.Name`, `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, "
                  "`Links.TraceState`, `Links.Attributes`")


def exporter_values(span: ReadableSpan | SpanRecord) -> str:
    """One ``VALUES`` tuple, as the exporter's ``pushTraceData`` binds it for this span.

    Timestamp is the span start; Duration ``end - start`` in ns; ids lower-case hex, ``''`` for no parent;
    SpanKind and StatusCode pdata's names (``Client``, ``Ok``); ServiceName the resource's service.name.
    """
    if isinstance(span, SpanRecord):
        rec, res, scope_version, state, message, events, links = span, {}, "", "", "", [], []
        if span.service_name is not None:
            res = {"service.name": span.service_name}
    else:
        rec = SpanRecord.from_readable(span)
        res = dict(span.resource.attributes) if span.resource is not None else {}
        scope_version = (span.instrumentation_scope.version or "") if span.instrumentation_scope else ""
        state = span.context.trace_state.to_header()
        message = span.status.description or ""
        events = [(e.timestamp, e.name, dict(e.attributes or {})) for e in span.events]
        links = [(format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x"),
                  lk.context.trace_state.to_header(), dict(lk.attributes or {})) for lk in span.links]
    return "(" + ", ".join([
        _ts(rec.start_ns), _lit(rec.trace_id), _lit(rec.span_id), _lit(rec.parent_span_id or ""), _lit(state),
        _lit(rec.name), _lit(_KIND[rec.kind]), _lit(str(res.get("service.name", ""))), _map(res),
        _lit(rec.scope_name or ""), _lit(scope_version), _map(rec.attributes), str(rec.end_ns - rec.start_ns),
        _lit(_STATUS[rec.status_code]), _lit(message),
        "[" + ", ".join(_ts(t) for t, _, _ in events) + "]", "[" + ", ".join(_lit(n) for _, n, _ in events) + "]",
        "[" + ", ".join(_map(a) for _, _, a in events) + "]",
        "[" + ", ".join(_lit(t) for t, _, _, _ in links) + "]", "[" + ", ".join(_lit(s) for _, s, _, _ in links) + "]",
        "[" + ", ".join(_lit(s) for _, _, s, _ in links) + "]", "[" + ", ".join(_map(a) for *_, a in links) + "]",
    ]) + ")"


def insert_sql(database: str, spans: Sequence[ReadableSpan | SpanRecord], table: str = "otel_traces") -> str:
    return (f"INSERT INTO `{database}`.`{table}` ({INSERT_COLUMNS}) VALUES\n"
            + ",\n".join(exporter_values(s) for s in spans))


# ------------------------------------------------------------------------------------------- the workload

DAY = 86_400 * 10**9
T0 = 1_772_150_400 * 10**9  # 2026-02-27T00:00:00Z: four days across a month boundary
CHAT_OPENAI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}


def run_workload() -> list[ReadableSpan]:
    """Agent runs for several customers over four days, priced by the real processor; returns the spans."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "support-agents"}))
    tp.add_span_processor(oc.baggage_processor())
    tp.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exporter)))
    tracer = tp.get_tracer("agents.app", "1.4.2")
    sdk_tracer = tp.get_tracer("anthropic", "0.70.0")

    clock = [0]

    def span(name: str, start: int, dur_ms: int, attrs: dict[str, Any], *, kind: SpanKind = SpanKind.CLIENT,
             error: bool = False, tr: Any = tracer, children: Any = None) -> None:
        with tr.start_as_current_span(name, start_time=start, kind=kind, attributes=attrs,
                                      end_on_exit=False) as s:
            if children is not None:
                children(start)
            if error:
                s.set_status(Status(StatusCode.ERROR, "upstream 529"))
            s.end(end_time=start + dur_ms * 1_000_000)

    def rid() -> str:
        clock[0] += 1
        return f"resp_{clock[0]:04d}"

    def agent_run(day: int, minute: int, agent: str, calls: Any, **tags: Any) -> None:
        start = T0 + day * DAY + minute * 60 * 10**9
        with oc.attribution(**{k: v for k, v in tags.items() if v is not None}):
            def inside(t: int) -> None:
                calls(t + 1_000_000)
                tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_kb"}
                span("execute_tool search_kb", t + 900_000_000, 40, tool, kind=SpanKind.INTERNAL)
            span(f"invoke_agent {agent}", start, 2_000, {"gen_ai.operation.name": "invoke_agent",
                                                         "gen_ai.agent.name": agent}, kind=SpanKind.INTERNAL,
                 children=inside)

    def openai_calls(model: str, response_model: str, inp: int, out: int, cached: int = 0, reasoning: int = 0,
                     route: str = "/chat") -> Any:
        def go(t: int) -> None:
            a = {**CHAT_OPENAI, "gen_ai.request.model": model, "gen_ai.response.model": response_model,
                 "gen_ai.response.id": rid(), "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                 "app.route": route}
            if cached:
                a["gen_ai.usage.cache_read.input_tokens"] = cached
            if reasoning:
                a["gen_ai.usage.reasoning.output_tokens"] = reasoning
            span(f"chat {model}", t, 800, a)
        return go

    def anthropic_pair(detailed_first: bool, inp: int, read: int, w5: int, w1: int, out: int) -> Any:
        """The Anthropic SDK's own span (5m/1h split) and an instrumentor's span of the same call."""
        def go(t: int) -> None:
            r = f"msg_{rid()}"
            common = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                      "gen_ai.request.model": "claude-sonnet-4-5",
                      "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                      "gen_ai.response.id": r, "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                      "gen_ai.usage.cache_read.input_tokens": read, "app.route": "/tickets"}
            detailed = {**common, "gen_ai.usage.cache_creation.input_tokens": w5 + w1,
                        "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": w5,
                        "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": w1}
            plain = {**common, "gen_ai.usage.cache_creation_input_tokens": w5 + w1}

            def inner(t2: int) -> None:
                # the SDK's span is the inner call: it ends first, unless the test wants the reverse order
                span("chat claude-sonnet-4-5", t2 + 1_000, 700,
                     detailed if detailed_first else plain, tr=sdk_tracer)
            span("anthropic.chat", t, 1_000, plain if detailed_first else detailed, children=inner)
        return go

    def several(*parts: Any) -> Any:
        def go(t: int) -> None:
            for i, p in enumerate(parts):
                p(t + i * 2_000_000)
        return go

    acme = dict(customer_id="acme", workload_type="interactive")
    # day 0 (Feb 27)
    agent_run(0, 10, "triage", several(
        openai_calls("gpt-4o", "gpt-4o-2024-11-20", 12_000, 800, cached=4_096),
        openai_calls("o4-mini", "o4-mini-2025-04-16", 3_000, 2_400, reasoning=1_900)),
        task_id="ticket-1", agent_id="triage", **acme)
    agent_run(0, 30, "writer", anthropic_pair(True, 5_050, 1_000, 1_500, 500, 300),
              customer_id="globex", task_id="ticket-2", agent_id="writer", workload_type="interactive")
    # day 1 (Feb 28): a batch job, OpenInference and Traceloop spellings, a tiny call, an unpriced model
    def openinference(t: int) -> None:
        span("ChatCompletion", t, 500, {"llm.provider": "anthropic", "llm.model_name": "claude-haiku-4-5-20251001",
                                        "llm.token_count.prompt": 2_200, "llm.token_count.completion": 180,
                                        "app.route": "/batch"})

    def traceloop(t: int) -> None:
        span("openai.chat", t, 600, {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4.1-mini",
                                     "gen_ai.response.model": "gpt-4.1-mini-2025-04-14", "gen_ai.response.id": rid(),
                                     "gen_ai.usage.prompt_tokens": 900, "gen_ai.usage.completion_tokens": 77,
                                     "llm.request.type": "chat"})

    def tiny(t: int) -> None:  # $0.0000007: Go writes it as 7e-7
        span("chat gpt-4.1-nano", t, 90, {**CHAT_OPENAI, "gen_ai.request.model": "gpt-4.1-nano",
                                          "gen_ai.response.id": rid(), "gen_ai.usage.input_tokens": 3,
                                          "gen_ai.usage.output_tokens": 1, "app.route": "/batch"})

    def unpriced(t: int) -> None:
        span("chat acme-llm-7b", t, 300, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "selfhosted",
                                          "gen_ai.request.model": "acme-llm-7b", "gen_ai.response.id": rid(),
                                          "gen_ai.usage.input_tokens": 4_000, "gen_ai.usage.output_tokens": 500})
    agent_run(1, 5, "summariser", several(openinference, traceloop, tiny, unpriced),
              customer_id="acme", task_id="nightly-digest", agent_id="summariser", workload_type="batch")
    # an untagged run (no customer): its spend is the unattributed share
    agent_run(1, 50, "triage", openai_calls("gpt-4o-mini", "  gpt-4o-mini-2024-07-18 ", 7_000, 350),
              task_id="ticket-9", agent_id="triage")
    # day 2 (Mar 1): errors and partial streams, a provided cost, embeddings, Gemini, the reverse-order pair
    def failed(t: int) -> None:  # an error with no usage: counted as no_usage, never as $0
        span("chat gpt-4o", t, 30_000, {**CHAT_OPENAI, "gen_ai.request.model": "gpt-4o",
                                        "gen_ai.response.id": rid(), "error.type": "timeout"}, error=True)

    def partial(t: int) -> None:  # a stream closed early: input known, output not
        span("chat gpt-4o", t, 1_200, {**CHAT_OPENAI, "gen_ai.request.model": "gpt-4o", "gen_ai.response.id": rid(),
                                       "gen_ai.usage.input_tokens": 1_500})

    def provided(t: int) -> None:  # LiteLLM already priced it
        span("litellm.completion", t, 400, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "mistral",
                                            "gen_ai.request.model": "mistral-large-latest",
                                            "gen_ai.usage.input_tokens": 1_000, "gen_ai.usage.output_tokens": 200,
                                            "gen_ai.usage.cost": 0.0031, "gen_ai.response.id": rid()})

    def embed(t: int) -> None:
        span("embeddings text-embedding-3-small", t, 50, {"gen_ai.operation.name": "embeddings",
                                                          "gen_ai.provider.name": "openai",
                                                          "gen_ai.request.model": "text-embedding-3-small",
                                                          "gen_ai.usage.input_tokens": 8_191})

    def gemini(t: int) -> None:
        span("generate_content gemini-2.5-flash", t, 900, {"gen_ai.operation.name": "generate_content",
                                                           "gen_ai.provider.name": "gcp.gemini",
                                                           "gen_ai.request.model": "gemini-2.5-flash",
                                                           "gen_ai.response.id": rid(),
                                                           "gen_ai.usage.input_tokens": 30_000,
                                                           "gen_ai.usage.output_tokens": 1_024,
                                                           "gen_ai.usage.reasoning.output_tokens": 512})
    agent_run(2, 0, "triage", several(failed, partial, provided), customer_id="initech", task_id="ticket-3",
              agent_id="triage", workload_type="interactive")
    agent_run(2, 20, "indexer", several(embed, gemini), customer_id="globex", task_id="reindex",
              agent_id="indexer", workload_type="batch")
    agent_run(2, 40, "writer", anthropic_pair(False, 20_400, 16_000, 3_000, 1_000, 900),
              customer_id="acme", task_id="ticket-4", agent_id="writer", workload_type="interactive")
    # day 3 (Mar 2): evals, and a second day for the busiest customer
    agent_run(3, 15, "grader", several(openai_calls("gpt-4o", "gpt-4o-2024-11-20", 2_500, 40, route="/eval"),
                                       openai_calls("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", 2_500, 45,
                                                    route="/eval")),
              customer_id="acme", task_id="eval-42", agent_id="grader", workload_type="eval")
    agent_run(3, 45, "triage", openai_calls("gpt-4o", "gpt-4o-2024-11-20", 33_333, 1_111, cached=30_000),
              customer_id="acme", task_id="ticket-5", agent_id="triage", workload_type="interactive")
    # a plain HTTP server span outside any agent: not an LLM call, but a row of `spans`
    span("GET /healthz", T0 + 3 * DAY + 3_600 * 10**9, 2, {"http.request.method": "GET"}, kind=SpanKind.SERVER)
    tp.shutdown()
    return list(exporter.get_finished_spans())


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    """The process's one chDB session (chDB allows one per process); each test uses its own database."""
    s = chdb_session.Session()
    yield s
    s.close()


_DB_COUNTER = [0]


def new_database(session: Any, *, full_text_search: bool = False) -> str:
    _DB_COUNTER[0] += 1
    db = f"otel_{_DB_COUNTER[0]}_{int(time.time() * 1000) % 10**8}"
    session.query(f"CREATE DATABASE {db}")
    session.query(exporter_ddl(db, full_text_search=full_text_search))
    return db


@pytest.fixture(scope="module")
def workload() -> list[ReadableSpan]:
    return run_workload()


@pytest.fixture(scope="module")
def sources(session: Any, workload: list[ReadableSpan], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Ledger, ClickHouseSource]]:
    """(DuckDB ledger, ClickHouse source) over the same enriched spans."""
    ledger = Ledger(tmp_path_factory.mktemp("ledger") / "costs.duckdb")
    ledger.write_spans(workload)
    db = new_database(session)
    session.query(insert_sql(db, workload))
    with ClickHouseSource(session=session, database=db) as ch:
        yield ledger, ch
    ledger.close()


def _without_clock(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "generated_at"}


# ---------------------------------------------------------------------------------------------- the tests


def test_the_workload_covers_every_case(workload: list[ReadableSpan]) -> None:
    statuses = [s.attributes.get("gen_ai.cost.status") for s in workload]
    for status in ("priced", "unpriced", "no_usage", "partial", "duplicate", "provided"):
        assert status in statuses, status
    costs = [s.attributes["gen_ai.cost.total_cost"] for s in workload if "gen_ai.cost.total_cost" in s.attributes]
    assert any("e-" in go_float(c) for c in costs)  # at least one cost the exporter writes in exponent form
    flags = [s.attributes.get("gen_ai.cost.flags") for s in workload]
    assert ("more_detailed",) in flags  # the reverse-order pair
    assert len({s.context.trace_id for s in workload}) >= 8


@pytest.mark.parametrize("by", [("customer_id",), ("provider", "model"), ("day",), ("month",),
                                ("task_id", "agent_id"), ("workload_type", "provider"), ("app.route",),
                                ("service",), ("status",), ("operation",), ("skill_id",)])
def test_reports_are_identical(sources: tuple[Ledger, ClickHouseSource], by: tuple[str, ...]) -> None:
    ledger, ch = sources
    duck = build_report(ledger, by=by)
    click = build_report(ch, by=by)
    assert _without_clock(click) == _without_clock(duck)
    assert duck["total"] != "0" and duck["rows"]


def test_every_figure_matches_and_is_what_the_spans_say(sources: tuple[Ledger, ClickHouseSource],
                                                        workload: list[ReadableSpan]) -> None:
    ledger, ch = sources
    duck, click = build_report(ledger, by=["customer_id"]), build_report(ch, by=["customer_id"])
    # the total is the exact decimal sum of the counted spans' costs
    counted = [s for s in workload if s.attributes.get("gen_ai.cost.status") in ("priced", "partial", "provided")]
    expected = sum((Decimal(repr(s.attributes["gen_ai.cost.total_cost"])) for s in counted), Decimal(0))
    assert Decimal(click["total"]) == Decimal(duck["total"]) == expected
    for key in ("calls", "unpriced_calls", "no_usage_calls", "partial_calls", "provided_calls", "duplicate_spans",
                "unpriced_models", "unattributed", "vendor_share_by_workload", "by_day", "top"):
        assert click[key] == duck[key], key
    assert duck["unpriced_calls"] == 1 and duck["no_usage_calls"] == 1 and duck["duplicate_spans"] == 2
    assert duck["unattributed"]["calls"] == 1 and duck["unattributed"]["cost"] != "0"
    assert [d["day"] for d in duck["by_day"]] == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]


def test_focus_export_is_the_same_from_clickhouse(sources: tuple[Ledger, ClickHouseSource],
                                                   tmp_path: Path) -> None:
    """`export focus` streams day by day through portable SQL: ClickHouse gives the ledger's rows, byte for byte."""
    from otel_costattr._finance._focus import iter_focus_rows, write_focus

    ledger, ch = sources
    for granularity in ("day", "hour"):
        duck = write_focus(iter_focus_rows(ledger, granularity=granularity), tmp_path / f"duck-{granularity}.csv")
        click = write_focus(iter_focus_rows(ch, granularity=granularity), tmp_path / f"click-{granularity}.csv")
        assert duck.rows > 4 and (duck.rows, duck.billed_cost) == (click.rows, click.billed_cost)
        assert (tmp_path / f"duck-{granularity}.csv").read_bytes() == (tmp_path / f"click-{granularity}.csv").read_bytes()
    days: list[int] = []
    list(iter_focus_rows(ch, since_ns=1772236800 * 10**9, progress=lambda done, total: days.append(total)))
    assert days and days[-1] == 3  # 2026-02-28 .. 2026-03-02: the window's days, not the workload's four


def test_filters_and_required_keys(sources: tuple[Ledger, ClickHouseSource]) -> None:
    ledger, ch = sources
    for since, until in ((T0 + DAY, T0 + 3 * DAY), (T0 + 2 * DAY + 30 * 60 * 10**9, None), (None, T0 + DAY)):
        for required in (("customer_id",), ("customer_id", "task_id", "skill_id")):
            kw = dict(by=["customer_id", "provider"], since_ns=since, until_ns=until, required_keys=required, top=3,
                      sections=False)
            assert _without_clock(build_report(ch, **kw)) == _without_clock(build_report(ledger, **kw))


def test_spans_relation_matches_the_ledger_row_for_row(sources: tuple[Ledger, ClickHouseSource]) -> None:
    """Every ledger column the rollups read (and the parent links retry chains will need) agrees per span."""
    ledger, ch = sources
    cols = ("trace_id, span_id, parent_span_id, name, kind, service_name, scope_name, start_ns, end_ns, status_code, "
            "error_type, is_llm, operation, provider, request_model, response_model, response_id, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, reasoning_tokens, "
            "usage_detail, cost_status, cost_total, cost_input, cost_output, cost_cache_read, cost_cache_write, "
            "cost_reasoning, pricing_model, pricing_version, duplicate_of, cost_flags, counted, customer_id, "
            "process_id, task_id, agent_id, skill_id, workload_type")
    sql = f"SELECT {cols} FROM spans ORDER BY span_id"
    assert ch.query(sql) == ledger.query(sql)
    (n,), = ledger.query("SELECT count(*) FROM spans WHERE parent_span_id IS NULL")
    assert n >= 8  # one root per trace, and children point at their parents on both sides


def test_clickhouse_connect_client_path(sources: tuple[Ledger, ClickHouseSource]) -> None:
    """The path `clickhouse://` URLs take: the real clickhouse-connect client (its chDB backend, sharing this
    process's engine, stands in for the HTTP transport), its settings and Native-format decoding."""
    clickhouse_connect = pytest.importorskip("clickhouse_connect")
    ledger, ch = sources
    client = clickhouse_connect.get_client(interface="chdb")
    try:
        with ClickHouseSource(client=client, database=ch.target.database) as via_client:
            assert via_client.snapshot_table is not None  # the client keeps one session: the snapshot works
            for by in (["customer_id"], ["provider", "model"], ["day"]):
                assert _without_clock(build_report(via_client, by=by)) == _without_clock(build_report(ledger, by=by))
            with pytest.raises(ConfigurationError, match="ClickHouse query failed"):
                via_client.query("SELECT no_such_column FROM calls")
    finally:
        client.close()


def test_live_queries_equal_the_snapshot(sources: tuple[Ledger, ClickHouseSource], session: Any) -> None:
    """Without a snapshot every query maps otel_traces itself (the fallback for read-only users): same report."""
    ledger, ch = sources
    with ClickHouseSource(session=session, database=ch.target.database, snapshot=False) as live:
        assert live.snapshot_table is None
        for by in (["customer_id"], ["task_id", "agent_id"]):
            assert _without_clock(build_report(live, by=by)) == _without_clock(build_report(ledger, by=by))


class _NoTemporaryTables:
    """A chDB session that refuses CREATE TEMPORARY TABLE, as a `readonly=1` user's server does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def query(self, sql: str, fmt: str = "CSV") -> Any:
        if sql.startswith("CREATE TEMPORARY TABLE"):
            from chdb import ChdbError
            raise ChdbError("Code: 164. DB::Exception: Cannot execute query in readonly mode. (READONLY)")
        return self.inner.query(sql, fmt)


def test_snapshot_falls_back_to_live_queries_and_refreshes(sources: tuple[Ledger, ClickHouseSource],
                                                          session: Any, workload: list[ReadableSpan]) -> None:
    ledger, ch = sources
    with ClickHouseSource(session=_NoTemporaryTables(session), database=ch.target.database) as readonly:
        assert readonly.snapshot_table is None
        assert _without_clock(build_report(readonly, sections=False)) == \
            _without_clock(build_report(ledger, sections=False))
    # a snapshot is stable while spans keep arriving, until refresh()
    db = new_database(session)
    first, rest = workload[:10], workload[10:]
    session.query(insert_sql(db, first))
    with ClickHouseSource(session=session, database=db) as snap:
        before = snap.query("SELECT count(*) FROM spans")
        session.query(insert_sql(db, rest))
        assert snap.query("SELECT count(*) FROM spans") == before == [(10,)]
        snap.refresh()
        assert snap.query("SELECT count(*) FROM spans") == [(len(workload),)]
        name = snap.snapshot_table
    assert name not in str(session.query("SHOW TEMPORARY TABLES", "TSV"))  # close() dropped it


def test_both_index_variants_of_the_ddl(session: Any, workload: list[ReadableSpan]) -> None:
    """Servers new enough for `text` indexes get the other branch of the template; the rollups do not care."""
    plain = new_database(session)
    fts = new_database(session, full_text_search=True)
    for db in (plain, fts):
        session.query(insert_sql(db, workload))
    reports = []
    for db in (plain, fts):
        with ClickHouseSource(session=session, database=db) as src:
            reports.append(build_report(src, by=["customer_id"], sections=False))
    a, b = reports
    assert _without_clock(a) == _without_clock(b)
    ddl = str(session.query(f"SHOW CREATE TABLE {fts}.otel_traces", "TabSeparatedRaw"))
    assert "TYPE text(tokenizer = 'array')" in ddl and "SpanAttributeItems" in ddl


def test_cross_process_duplicates_collapse_like_ingest(session: Any, tmp_path: Path) -> None:
    """Two processes priced the same call (each saw one span): counted once, like `ingest` (replace=True)."""
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model":
            "claude-sonnet-4-5", "gen_ai.response.id": "msg_shared", "gen_ai.usage.input_tokens": 3050,
            "gen_ai.usage.output_tokens": 300, "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.cost.status": "priced", "customer_id": "acme"}
    a = SpanRecord("d" * 32, "1" * 16, None, "chat", "CLIENT", T0, T0 + 10**9, "UNSET",
                   {**base, "gen_ai.usage.cache_creation.input_tokens": 2000, "gen_ai.cost.total_cost": 0.01245})
    b = SpanRecord("e" * 32, "2" * 16, None, "chat", "CLIENT", T0, T0 + 2 * 10**9, "UNSET",
                   {**base, "gen_ai.usage.cache_creation.input_tokens": 2000,
                    "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 1500,
                    "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 500,
                    "gen_ai.cost.total_cost": 0.013575})
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.write_records([a, b], replace=True)
    db = new_database(session)
    session.query(insert_sql(db, [a, b]))
    with ClickHouseSource(session=session, database=db) as ch:
        sql = "SELECT span_id, cost_total FROM calls"
        assert ch.query(sql) == ledger.query(sql) == [("2" * 16, Decimal("0.013575"))]
        assert _without_clock(build_report(ch)) == _without_clock(build_report(ledger))


# ----------------------------------------------------------------------- float -> text -> decimal, exactly

# Costs are token counts times published rates: decimals with at most 15 significant digits, which a double
# holds exactly in its shortest repr. Exponents reach far below 1e-18 so that rounding at 18 places and Go's
# exponent form are both exercised.
_costs = st.builds(lambda m, e: float(Decimal(m).scaleb(e)), st.integers(1, 10**15 - 1), st.integers(-33, 4))


@pytest.fixture(scope="module")
def money_db(session: Any) -> str:
    return new_database(session)


@pytest.fixture(scope="module")
def money_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path_factory.mktemp("money") / "m.duckdb")
    yield ledger
    ledger.close()


_EXAMPLE = [0]


@settings(max_examples=40, deadline=None)
@given(costs=st.lists(_costs | st.sampled_from([0.0, 7e-7, 1.5e-7, 0.00045, 1e-6, 9.99e-7, 5e-19, 1.5e-18]),
                      min_size=1, max_size=60))
def test_float_text_decimal_path_is_exact(session: Any, money_db: str, money_ledger: Ledger,
                                          costs: list[float]) -> None:
    """The exporter's text of a cost, parsed by ClickHouse, equals the ledger's DECIMAL(38,18) of the float."""
    _EXAMPLE[0] += 1
    trace = f"{_EXAMPLE[0]:032x}"
    recs = [SpanRecord(trace, f"{i:016x}", None, "chat", "CLIENT", T0 + i, T0 + i + 1, "UNSET",
                       {**CHAT_OPENAI, "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1,
                        "gen_ai.usage.output_tokens": 1, "gen_ai.cost.status": "priced", "gen_ai.cost.total_cost": c,
                        "gen_ai.cost.input_cost": c})
            for i, c in enumerate(costs)]
    money_ledger.write_records(recs)
    session.query(insert_sql(money_db, recs))
    ch = ClickHouseSource(session=session, database=money_db, snapshot=False)  # the live mapping, per query
    sql = f"SELECT span_id, cost_total, cost_input FROM spans WHERE trace_id = '{trace}' ORDER BY span_id"
    got, want = ch.query(sql), money_ledger.query(sql)
    assert got == want
    total = f"SELECT sum(cost_total) FROM calls WHERE trace_id = '{trace}'"
    assert ch.query(total) == money_ledger.query(total)


@pytest.mark.parametrize(("f", "text"), [
    (0.00045, "0.00045"), (1.5e-7, "1.5e-7"), (1e-7, "1e-7"), (1e-6, "0.000001"), (9.99e-7, "9.99e-7"),
    (1.234567890123456e-10, "1.234567890123456e-10"), (3.0, "3"), (100.0, "100"), (1e20, "100000000000000000000"),
    (1e21, "1e+21"), (-0.0, "-0"), (0.0, "0"), (123456789012345.6, "123456789012345.6"), (5e-324, "5e-324"),
    (1.5e-100, "1.5e-100"), (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
])
def test_go_float_format(f: float, text: str) -> None:
    """Spot checks of the Go layout the helper reproduces (values from pdata's own rules)."""
    assert go_float(f) == text


def test_go_as_string_of_other_types() -> None:
    assert go_as_string(True) == "true" and go_as_string(42) == "42" and go_as_string("x") == "x"
    assert go_as_string(("more_detailed", "a<b")) == '["more_detailed","a<b"]'
    assert go_as_string([1.5e-7, 2]) == "[1.5e-7,2]"


def test_money_sql_rounds_like_duckdb(session: Any) -> None:
    import duckdb

    for text in ("0.0000000000000000005", "0.0000000000000000015", "1.5e-18", "2.5e-18", "4.999e-19", "1e-30",
                 "123.456", "1e+21"):
        (ch,), = [tuple(r.values()) for r in session.query(f"SELECT {money_sql(_lit(text))} AS v",
                                                           "ArrowTable").to_pylist()]
        try:
            (duck,), = duckdb.sql(f"SELECT CAST('{text}' AS DECIMAL(38,18))").fetchall()
        except duckdb.Error:
            duck = None  # out of range: DuckDB refuses, ClickHouse gives NULL
        assert ch == duck, text


# ------------------------------------------------------------------------------------ URLs and failures


def test_url_forms() -> None:
    t = parse_url("clickhouse://reader:p%40ss@ch.internal:9123/otel?table=traces_v2")
    assert (t.scheme, t.host, t.port, t.user, t.password, t.database, t.table, t.secure) == (
        "clickhouse", "ch.internal", 9123, "reader", "p@ss", "otel", "traces_v2", False)
    assert "p@ss" not in repr(t) and "p@ss" not in t.display()
    t = parse_url("clickhouse://ch.internal")
    assert (t.port, t.user, t.password, t.database, t.table) == (8123, "default", "", "default", "otel_traces")
    t = parse_url("clickhouses://u:p@ch.example.com/otel")
    assert (t.port, t.secure, t.display()) == (8443, True, "https://ch.example.com:8443 as u (table otel.otel_traces)")
    assert parse_url("clickhouse://h/?database=logs").database == "logs"
    t = parse_url("chdb:///var/lib/otel-chdb?table=otel_traces&database=otel")
    assert (t.scheme, t.path, t.database, t.table) == ("chdb", "/var/lib/otel-chdb", "otel", "otel_traces")
    assert parse_url("chdb://data/dir").path == "data/dir"
    assert parse_url("chdb://").path is None and parse_url("chdb://:memory:").path is None
    assert is_source_url("clickhouse://h") and is_source_url("CHDB:///x") and not is_source_url("costs.duckdb")


@pytest.mark.parametrize(("url", "message"), [
    ("postgres://u:pw@h/db", "unsupported source 'postgres://u:***@h/db'"),
    ("clickhouse:///db", "names no host"),
    ("clickhouse://h:notaport/db", "invalid port"),
    ("clickhouse://h/db?table=otel;drop", "not a plain identifier"),
    ("clickhouse://h/my-db", "not a plain identifier"),
    ("clickhouse://h/db?tabel=x", "unknown option(s) tabel"),
])
def test_bad_urls_say_what_is_accepted(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_url(url)


def test_params_are_bound_outside_quotes() -> None:
    assert bind_params("SELECT '?', \"a?\" FROM t WHERE a >= ? AND b < ?", [1, 2]) == \
        "SELECT '?', \"a?\" FROM t WHERE a >= 1 AND b < 2"
    assert bind_params("x = ? AND y = ?", ["it's", None]) == "x = 'it\\'s' AND y = NULL"
    with pytest.raises(ValueError):
        bind_params("a = ?", [])
    with pytest.raises(ValueError):
        bind_params("a = 1", [1])


def test_missing_clickhouse_connect_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "clickhouse_connect", None)  # import now raises ImportError
    with pytest.raises(ConfigurationError, match=re.escape("pip install 'otel-costattr[clickhouse]'")):
        ClickHouseSource("clickhouse://localhost:8123/default")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error() -> None:
    pytest.importorskip("clickhouse_connect")
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        ClickHouseSource(f"clickhouse://reader:s3cret@127.0.0.1:{port}/otel")
    text = str(info.value)
    assert f"cannot reach ClickHouse at http://127.0.0.1:{port} as reader" in text
    assert "HTTP interface (8123" in text and "s3cret" not in text
    assert time.monotonic() - started < 30


def test_missing_table_and_chdb_directory(session: Any, tmp_path: Path) -> None:
    db = new_database(session)
    with pytest.raises(ConfigurationError, match=r"no table .*\.nope .*\?table=NAME"):
        ClickHouseSource(session=session, database=db, table="nope")
    with pytest.raises(ConfigurationError, match="chDB directory .* does not exist"):
        ClickHouseSource(f"chdb://{tmp_path}/absent")


# -------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_costattr", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def test_cli_report_from_chdb_equals_report_from_ledger(workload: list[ReadableSpan], tmp_path: Path) -> None:
    """`report --source chdb:///dir` on a chDB directory (built in another process: one chDB per process)."""
    ledger_path = tmp_path / "costs.duckdb"
    ledger = Ledger(ledger_path)
    ledger.write_spans(workload)
    ledger.close()
    data = tmp_path / "chdb"
    script = tmp_path / "load.sql"
    script.write_text(exporter_ddl("otel") + "\n;;\n" + insert_sql("otel", workload))
    load = textwrap.dedent(f"""
        from chdb.session import Session
        s = Session({str(data)!r})
        s.query("CREATE DATABASE IF NOT EXISTS otel")
        for statement in open({str(script)!r}).read().split("\\n;;\\n"):
            s.query(statement)
        s.close()
    """)
    subprocess.run([sys.executable, "-c", load], check=True, timeout=300)
    by = "customer_id,provider"
    duck = _cli("report", "--db", str(ledger_path), "--by", by, "--format", "json")
    click = _cli("report", "--source", f"chdb://{data}?database=otel", "--by", by, "--format", "json")
    assert duck.returncode == 0, duck.stderr
    assert click.returncode == 0, click.stderr
    assert _without_clock(json.loads(click.stdout)) == _without_clock(json.loads(duck.stdout))
    table = _cli("report", "--source", f"chdb://{data}?database=otel", "--by", "day")
    assert table.returncode == 0 and "2026-03-01" in table.stdout


def test_cli_unreachable_clickhouse_exits_2_with_the_fix() -> None:
    pytest.importorskip("clickhouse_connect")
    r = _cli("report", "--source", f"clickhouse://u:hunter2@127.0.0.1:{_free_port()}/otel")
    assert r.returncode == 2
    assert "cannot reach ClickHouse" in r.stderr and "hunter2" not in r.stderr


# ------------------------------------------------------------------------------- implausible token counts



def _both_sources_agree(session: Any, spans: Sequence[ReadableSpan], tmp_path: Path, sql: str) -> dict[str, Any]:
    """Write ``spans`` into a ledger and into chDB's otel_traces; both answer ``sql`` alike and give the same
    report, which is returned."""
    ledger = Ledger(tmp_path / "l")
    ledger.write_spans(spans)
    db = new_database(session)
    session.query(insert_sql(db, spans))
    with ClickHouseSource(session=session, database=db) as ch:
        assert ch.query(sql) == ledger.query(sql)
        duck, click = _without_clock(build_report(ledger)), _without_clock(build_report(ch))
    ledger.close()
    assert click == duck
    return duck

def test_implausible_counts_are_kept_flagged_and_summed_exactly_on_both_sources(session: Any,
                                                                                   tmp_path: Path) -> None:
    """Token counts far above any model's limits (a bug or a hostile client), up to the largest int64: the usage
    reader takes them, the processor prices them as reported and flags them ``implausible:``. Both sources keep
    them (ClickHouse used to drop counts above 10**12 from its token totals), sum them without overflow (two
    counts of 2**62 pass the Int64 range), and the report says how many calls carry such a count."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exporter)))
    tracer = tp.get_tracer("app")
    counts = [(1200, 300), (5 * 10**12, 10), (2**62, 10), (2**62, 10), (2**63 - 1, 10)]
    for i, (n_in, n_out) in enumerate(counts):
        with tracer.start_as_current_span("chat gpt-4o-mini", start_time=T0 + i * 10**9, end_on_exit=False,
                                          attributes={"gen_ai.operation.name": "chat",
                                                      "gen_ai.provider.name": "openai",
                                                      "gen_ai.request.model": "gpt-4o-mini",
                                                      "gen_ai.usage.input_tokens": n_in,
                                                      "gen_ai.usage.output_tokens": n_out}) as s:
            s.end(end_time=T0 + i * 10**9 + 10**8)
    spans = list(exporter.get_finished_spans())
    assert [s.attributes["gen_ai.cost.status"] for s in spans] == ["priced"] * 5
    assert sum("implausible:input_tokens" in s.attributes.get("gen_ai.cost.flags", ()) for s in spans) == 4
    duck = _both_sources_agree(session, spans, tmp_path, "SELECT span_id, input_tokens FROM calls ORDER BY start_ns")
    assert sum(r["input_tokens"] for r in duck["rows"]) == sum(n for n, _ in counts)  # exact, past int64
    assert (duck["calls"], duck["implausible_calls"], duck["no_usage_calls"]) == (5, 4, 0)


@pytest.mark.filterwarnings("ignore:coroutine 'AsyncAPIResponse.parse' was never awaited:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_twin_without_usage_that_ended_first_is_not_a_call_on_either_source(session: Any, priced: Any,
                                                                             tmp_path: Path) -> None:
    """openai-agents streamed under OpenInference (real SDKs, fake vendor): the OpenAI span without usage ends
    before the bridge's span with usage, which supersedes it. ClickHouse counts one call, as the ledger does."""
    from tests.integration.test_capture_emitters import GPT4O_MINI, run_agents

    priced.instrument("openinference-agents", "openinference-openai")
    run_agents(priced, streamed=True)
    spans = priced.spans()
    duck = _both_sources_agree(session, spans, tmp_path, "SELECT span_id, cost_status, duplicate_of, counted "
                               "FROM spans WHERE is_llm ORDER BY span_id")
    assert (duck["calls"], duck["no_usage_calls"], Decimal(duck["total"])) == (1, 0, GPT4O_MINI)
