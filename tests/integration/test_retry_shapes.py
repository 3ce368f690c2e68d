"""Seven tenants' agent runs on the real OpenAI and Anthropic SDKs against the fake vendor, recorded in a ledger,
and the report's retry, economics and findings figures against figures computed by hand (issue 23, DESIGN D14).

Prices are the processor's own: gpt-4o-mini at $0.15 / $0.60 per million input / output tokens, claude-haiku-4-5
at $1 / $5. Every call reports 1,000 input and 100 output tokens, so one gpt-4o-mini call costs exactly
$0.00021 and one claude-haiku-4-5 call $0.0015. A call that failed bills nothing (no usage: its cost is unknown,
not zero) and SDK resends are attempts whose cost is unknown too.
"""

from __future__ import annotations

import html
import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode

import otel_costattr as oc
from otel_costattr._analysis._rollup import build_report
from otel_costattr._ledger._store import Ledger
from otel_costattr._report._render import render
from otel_costattr.testing import FakeReply, Usage, fake_headers

USAGE = Usage(input=1000, output=100)
CALL = Decimal("0.00021")  # gpt-4o-mini: 1,000 x $0.15 + 100 x $0.60, per million
HAIKU = Decimal("0.0015")  # claude-haiku-4-5: 1,000 x $1 + 100 x $5, per million
MESSAGES = [{"role": "user", "content": "help"}]
TOOLS = [{"type": "function", "function": {"name": "file_claim", "parameters": {"type": "object"}}}]
SENTENCE = "{}% of {}'s spend went into retry loops before the model produced an answer"


def ask(client: Any, scenario: str | None = None, key: str | None = None) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS,
                                          extra_headers=fake_headers(usage=USAGE, scenario=scenario, request_key=key))


def haiku(client: Any, scenario: str | None = None, key: str | None = None) -> Any:
    return client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
                                  extra_headers=fake_headers(usage=USAGE, scenario=scenario, request_key=key))


def check(t: Any, name: str, ok: bool) -> None:
    """A validation (or tool) span after a call; ERROR when the call's output was rejected."""
    with t.tracer.start_as_current_span(name, attributes={"gen_ai.operation.name": "execute_tool"}
                                        if name.startswith("execute_tool") else {}) as span:
        if not ok:
            span.set_status(Status(StatusCode.ERROR, "rejected"))


def step(t: Any, name: str) -> Any:
    return t.tracer.start_as_current_span(name)


def rate_limited_once(request: Any) -> FakeReply | None:
    """The fake vendor's hook: HTTP 429 on the first attempt of a request keyed ``rate-limited``, then normal."""
    if request.headers.get("x-fake-request-key", "").startswith("rate-limited") and request.attempt == 1:
        body = ({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
                if request.vendor == "anthropic" else
                {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})
        return FakeReply(status=429, body=body, headers={"retry-after-ms": "1"})
    return None


def run_seven_tenants(priced: Any) -> None:
    priced.instrument("traceloop-openai")
    openai_client = priced.openai()
    anthropic_client = priced.anthropic(sdk_tracing=True)  # the SDK's own tracing sets http.request.resend_count
    priced.vendor.on_request(rate_limited_once)

    # tenant-a: a validation loop. Three answers fail validation, the fourth passes; then one more call.
    with oc.attribution(customer_id="tenant-a", agent_id="extractor", task_id="extract"):
        with step(priced, "invoke_agent extractor"):
            for i in range(4):
                ask(openai_client)
                check(priced, "validate claim", ok=i == 3)
            ask(openai_client)  # a summary after the answer: a chain of its own

    # tenant-b: explicit attempt() markers: rejected, errored (HTTP 500, no resend), succeeded.
    with oc.attribution(customer_id="tenant-b", agent_id="triager", task_id="triage"):
        with step(priced, "triage pipeline"):
            with oc.attempt(step="classify", tracer_provider=priced.provider) as a:
                ask(openai_client)
                a.reject("no category")
            with pytest.raises(Exception):
                with oc.attempt(step="classify", tracer_provider=priced.provider):
                    ask(openai_client.with_options(max_retries=0), "error-500")
            with oc.attempt(step="classify", tracer_provider=priced.provider):
                ask(openai_client)

    # tenant-c: three parallel branches that all answer: three chains of one attempt, no waste.
    with oc.attribution(customer_id="tenant-c", agent_id="fanout", task_id="research"):
        with step(priced, "fan out"):
            ctx = otel_context.get_current()
            barrier = threading.Barrier(3)
            errors: list[BaseException] = []

            def branch() -> None:
                token = otel_context.attach(ctx)
                try:
                    barrier.wait(timeout=10)
                    ask(openai_client)
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    errors.append(exc)
                finally:
                    otel_context.detach(token)

            threads = [threading.Thread(target=branch) for _ in range(3)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert not errors

    # tenant-d: a planner with two clean ReAct turns, and a sub-agent whose first answer a tool rejects.
    with oc.attribution(customer_id="tenant-d", agent_id="planner", task_id="plan-trip"):
        with step(priced, "invoke_agent planner"):
            ask(openai_client)
            check(priced, "execute_tool search", ok=True)
            ask(openai_client)
            with step(priced, "invoke_agent researcher"):
                ask(openai_client, "malformed-tool")
                check(priced, "execute_tool book", ok=False)
                ask(openai_client)

    # tenant-e: SDK-level resends only: HTTP 500 then 200, and HTTP 429 then 200 (the Anthropic SDK retries).
    with oc.attribution(customer_id="tenant-e", agent_id="answerer", task_id="answer"):
        with step(priced, "answer step"):
            haiku(anthropic_client, "flaky", "flaky-e")
            haiku(anthropic_client, None, "rate-limited-e")

    # tenant-f: a task that never succeeds: three answers, each rejected.
    with oc.attribution(customer_id="tenant-f", agent_id="reconciler", task_id="reconcile"):
        with step(priced, "invoke_agent reconciler"):
            for _ in range(3):
                ask(openai_client)
                check(priced, "validate ledger", ok=False)

    # tenant-g: a single-attempt failure: the plan call and the one rejected attempt sit under different steps.
    with oc.attribution(customer_id="tenant-g", agent_id="refunder", task_id="refund"):
        with step(priced, "invoke_agent refunder"):
            with step(priced, "plan"):
                ask(openai_client)
            with step(priced, "act"):
                ask(openai_client)
                check(priced, "validate refund", ok=False)


def vendor_statuses(priced: Any) -> list[int]:
    return [r.status for r in priced.vendor.requests]


def test_seven_tenants_figures_match_the_hand_computed_ones(priced: Any, tmp_path) -> None:
    run_seven_tenants(priced)
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    rep = build_report(ledger, by=["customer_id"], findings_by=("customer_id", "task_id"))
    ledger.close()

    spend = {"tenant-a": 5 * CALL, "tenant-b": 2 * CALL, "tenant-c": 3 * CALL, "tenant-d": 4 * CALL,
             "tenant-e": 2 * HAIKU, "tenant-f": 3 * CALL, "tenant-g": 2 * CALL}
    # (retry chains, attempts, loop cost, waste) per tenant, by hand:
    retry = {"tenant-a": (1, 4, 4 * CALL, 3 * CALL),     # rejected x3, then the answer; the summary is no retry
             "tenant-b": (1, 3, 2 * CALL, CALL),         # the errored attempt's call billed nothing
             "tenant-d": (1, 2, 2 * CALL, CALL),         # only the sub-agent's pair is a chain
             "tenant-e": (2, 4, 2 * HAIKU, Decimal(0)),  # each call: one hidden resend, cost unknown, no waste
             "tenant-f": (1, 3, 3 * CALL, 3 * CALL)}     # never answered: all of it is waste
    total = sum(spend.values(), Decimal(0))
    assert Decimal(rep["total"]) == total == Decimal("0.00699")

    r = rep["retry"]
    assert r["retry_chains"] == sum(v[0] for v in retry.values()) == 6
    assert r["attempts"] == sum(v[1] for v in retry.values()) == 16
    assert Decimal(r["loop_cost"]) == sum((v[2] for v in retry.values()), Decimal(0)) == Decimal("0.00531")
    assert Decimal(r["wasted"]) == sum((v[3] for v in retry.values()), Decimal(0)) == Decimal("0.00168")
    assert r["wasted_share"] == "24.03"  # 0.00168 / 0.00699 = 24.034...%
    by_customer = {row["key"]["customer_id"]: row for row in r["by"]["customer_id"]}
    assert set(by_customer) == set(retry)
    for tenant, (chains, attempts, loop, waste) in retry.items():
        row = by_customer[tenant]
        assert (row["retry_chains"], row["attempts"], Decimal(row["loop_cost"]), Decimal(row["wasted"]),
                Decimal(row["spend"])) == (chains, attempts, loop, waste, spend[tenant]), tenant
        assert row["wasted_share_of_spend"] == format((waste / spend[tenant] * 100).quantize(Decimal("0.01")), "f")

    # The findings: one per customer whose retry loops wasted money, largest share first, with the sentence.
    shares = {"tenant-f": "100.00", "tenant-a": "60.00", "tenant-b": "50.00", "tenant-d": "25.00"}
    customers = [f for f in r["findings"] if f["by"] == "customer_id"]
    assert [(f["customer_id"], f["share"]) for f in customers] == list(shares.items())
    for f in customers:
        tenant = f["customer_id"]
        assert Decimal(f["wasted"]) == retry[tenant][3] and Decimal(f["total"]) == spend[tenant]
        assert f["sentence"] == SENTENCE.format(shares[tenant], tenant)
    tasks = {f["task_id"]: f["share"] for f in r["findings"] if f["by"] == "task_id"}
    assert tasks == {"reconcile": "100.00", "extract": "60.00", "triage": "50.00", "plan-trip": "25.00"}

    # Economics: a task instance that never succeeded still cost money and is never counted as successful.
    econ = {row["key"]["task_id"]: row for row in rep["economics"]["by_task"]}
    # (calls, successful instances, cost per successful task); triage's errored call is a call that billed nothing
    expected = {"extract": (5, 1, 5 * CALL), "triage": (3, 1, 2 * CALL), "research": (3, 1, 3 * CALL),
                "plan-trip": (4, 1, 4 * CALL), "answer": (2, 1, 2 * HAIKU), "reconcile": (3, 0, None),
                "refund": (2, 0, None)}
    for task, (calls, successful, per_task) in expected.items():
        row = econ[task]
        assert (row["calls"], row["instances"], row["successful"]) == (calls, 1, successful), task
        got = row["cost_per_successful_task"]
        assert (Decimal(got) if got is not None else None) == per_task, task

    # The vendor saw the resends: [500, 200] and [429, 200] for tenant-e, and nothing was invented for them.
    assert vendor_statuses(priced).count(429) == 1

    # JSON carries the findings as data; the text report prints the sentences.
    assert json.loads(render(rep, "json"))["retry"]["findings"] == r["findings"]
    text = render(rep, "table")
    page = html.unescape(render(rep, "html"))
    for tenant, share in shares.items():
        assert SENTENCE.format(share, tenant) in text
        assert SENTENCE.format(share, tenant) in page  # every customer above the threshold, not only the worst


def test_a_resend_only_trace_is_analysed(priced: Any, tmp_path) -> None:
    """The only sign of retrying is http.request.resend_count (the Anthropic SDK's own tracing sets it)."""
    client = priced.anthropic(sdk_tracing=True)
    with oc.attribution(customer_id="solo", task_id="answer"), step(priced, "answer step"):
        haiku(client, "flaky", "resend-only")
    assert vendor_statuses(priced) == [500, 200]
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    rep = build_report(ledger)
    ledger.close()
    r = rep["retry"]
    assert (r["retry_chains"], r["attempts"], Decimal(r["loop_cost"]), Decimal(r["wasted"])) == (1, 2, HAIKU, 0)
    assert r["traces_analysed"] == 1 and r["findings"] == []  # a loop that wasted nothing is not a finding
    (econ,) = rep["economics"]["by_task"]
    assert econ["successful"] == 1 and Decimal(econ["cost_per_successful_task"]) == HAIKU


def test_a_single_attempt_failure_is_never_a_successful_task(priced: Any, tmp_path) -> None:
    priced.instrument("traceloop-openai")
    client = priced.openai()
    with oc.attribution(customer_id="solo", task_id="refund"), step(priced, "invoke_agent refunder"):
        with step(priced, "plan"):
            ask(client)
        with step(priced, "act"):
            ask(client)
            check(priced, "validate refund", ok=False)
    with oc.attribution(customer_id="solo", task_id="refund"), step(priced, "invoke_agent refunder"):
        with pytest.raises(Exception):  # errored on its only attempt (the SDK's own resends are invisible here)
            ask(client, "error-500", "failed-alone")
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    rep = build_report(ledger)
    ledger.close()
    (econ,) = rep["economics"]["by_task"]
    assert (econ["calls"], econ["instances"], econ["successful"], econ["cost_per_successful_task"]) == (3, 2, 0, None)
    assert Decimal(econ["cost"]) == 2 * CALL  # a failed instance still cost money
    assert rep["retry"]["retry_chains"] == 0  # one attempt is no retry loop


def test_openai_sdk_with_httpx_instrumentation_reports_hidden_attempts(priced: Any, tmp_path) -> None:
    """OpenLLMetry's OpenAI spans carry no resend count; the HTTP client instrumentation's spans show them."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    priced.instrument("traceloop-openai")
    priced.vendor.on_request(rate_limited_once)
    http = HTTPX2ClientInstrumentor()
    http.instrument(tracer_provider=priced.provider)
    try:
        client = priced.openai()
        with oc.attribution(customer_id="acme", task_id="chat"), step(priced, "chat step"):
            ask(client, "flaky", "flaky-openai")        # HTTP 500, then 200
            ask(client, None, "rate-limited-openai")   # HTTP 429, then 200
            ask(client)                                 # one HTTP attempt: no retry
    finally:
        http.uninstrument()
    assert vendor_statuses(priced) == [500, 200, 429, 200, 200]
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    rep = build_report(ledger)
    ledger.close()
    r = rep["retry"]
    # two calls with one hidden attempt each (cost unknown, nothing invented), the third call is no retry
    assert (r["retry_chains"], r["attempts"], Decimal(r["loop_cost"]), Decimal(r["wasted"])) == (2, 4, 2 * CALL, 0)
    (econ,) = rep["economics"]["by_task"]
    assert econ["successful"] == 1  # the HTTP 500 and 429 spans are errors, but the call answered


def test_hidden_attempts_for_429_and_no_double_count_with_resend_count(priced: Any, tmp_path) -> None:
    """With both the Anthropic SDK's resend count and the HTTP spans, a resend is counted once."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    priced.instrument("traceloop-openai")
    priced.vendor.on_request(rate_limited_once)
    http = HTTPX2ClientInstrumentor()
    http.instrument(tracer_provider=priced.provider)
    try:
        openai_client = priced.openai()
        anthropic_client = priced.anthropic(sdk_tracing=True)
        with oc.attribution(customer_id="acme", task_id="chat"), step(priced, "chat step"):
            ask(openai_client, None, "rate-limited-openai")
            haiku(anthropic_client, "flaky-2", "flaky-anthropic")
    finally:
        http.uninstrument()
    assert vendor_statuses(priced) == [429, 200, 500, 500, 200]
    resend = [s.attributes.get("http.request.resend_count") for s in priced.spans() if s.name.startswith("anthropic")]
    assert resend == [2]
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    rep = build_report(ledger)
    ledger.close()
    r = rep["retry"]
    assert (r["retry_chains"], r["attempts"], Decimal(r["loop_cost"])) == (2, 2 + 3, CALL + HAIKU)


# What each set-up reports of an SDK resend (HTTP 500, then 200), as the README states it.
RESEND_REPORTED = {
    "anthropic-sdk": True,          # the Anthropic SDK's own tracing: http.request.resend_count
    "traceloop-openai": False,      # OpenLLMetry (opentelemetry-instrumentation-openai)
    "genai-openai": False,          # opentelemetry-instrumentation-genai-openai
    "traceloop-anthropic": False,   # OpenLLMetry (opentelemetry-instrumentation-anthropic)
    "genai-anthropic": False,       # opentelemetry-instrumentation-genai-anthropic
}


@pytest.mark.parametrize("emitter", sorted(RESEND_REPORTED))
@pytest.mark.parametrize("http_instrumented", [False, True])
def test_which_set_ups_report_resends(priced: Any, tmp_path, emitter: str, http_instrumented: bool) -> None:
    """Pinned so that the README's statement of which set-ups report resends stays true: the emitter alone
    reports a resend only where it records a resend count; with the HTTP client instrumentation every one does."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    if emitter != "anthropic-sdk":
        priced.instrument(emitter)
    http = HTTPX2ClientInstrumentor()
    if http_instrumented:
        http.instrument(tracer_provider=priced.provider)
    try:
        with oc.attribution(customer_id="acme", task_id="chat"), step(priced, "chat step"):
            if "openai" in emitter:
                ask(priced.openai(), "flaky", "resend")
            else:
                haiku(priced.anthropic(sdk_tracing=emitter == "anthropic-sdk"), "flaky", "resend")
    finally:
        if http_instrumented:
            http.uninstrument()
    assert vendor_statuses(priced) == [500, 200]
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    rep = build_report(ledger)
    ledger.close()
    reported = RESEND_REPORTED[emitter] or http_instrumented
    assert (rep["retry"]["retry_chains"], rep["retry"]["attempts"]) == ((1, 2) if reported else (0, 0))


def test_clickhouse_source_gives_the_ledger_figures(priced: Any, tmp_path) -> None:
    """The same spans in the collector clickhouse exporter's otel_traces (chDB): the candidate pre-filter, the
    HTTP attempt flag and the resend count read there give the retry, findings and economics of the ledger."""
    chdb_session = pytest.importorskip("chdb.session")
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    from otel_costattr._analysis._clickhouse import ClickHouseSource
    from tests.integration.test_clickhouse_rollups import exporter_ddl, insert_sql

    http = HTTPX2ClientInstrumentor()
    http.instrument(tracer_provider=priced.provider)
    try:
        run_seven_tenants(priced)
        with oc.attribution(customer_id="tenant-h", task_id="chat"), step(priced, "chat step"):
            ask(priced.openai(), "flaky", "flaky-h")  # a hidden attempt seen only in the HTTP spans
    finally:
        http.uninstrument()
    spans = priced.spans()
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(spans)
    session = chdb_session.Session()
    try:
        session.query("CREATE DATABASE retry_shapes")
        session.query(exporter_ddl("retry_shapes"))
        session.query(insert_sql("retry_shapes", spans))
        with ClickHouseSource(session=session, database="retry_shapes") as ch:
            kw: dict[str, Any] = {"findings_by": ("customer_id", "agent_id")}
            click, duck = build_report(ch, **kw), build_report(ledger, **kw)
    finally:
        session.close()
        ledger.close()
    for section in ("retry", "economics"):
        assert click[section] == duck[section], section
    by_customer = {r["key"]["customer_id"]: r for r in duck["retry"]["by"]["customer_id"]}
    assert (by_customer["tenant-h"]["retry_chains"], by_customer["tenant-h"]["attempts"]) == (1, 2)
    assert duck["retry"]["retry_chains"] == 7 and duck["retry"]["attempts"] == 18
