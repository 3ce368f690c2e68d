"""Retry chains over traces recorded from the real SDK pipeline (real SDKs, real instrumentation, priced).

Each scenario is what an agent framework does: an agent step span, LLM calls under it, tool / validation spans
after them. Costs are the processor's own (gpt-4o-mini $0.15 / $0.075 / $0.60 per M; claude-haiku-4-5 $1 / $5).
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
from otel_costattr._analysis._chains import spans_from_readable
from otel_costattr.testing import Usage, fake_headers

USAGE = Usage(input=1000, output=100)
CALL = Decimal("0.00021")  # 1,000 x $0.15 + 100 x $0.60, per million
MESSAGES = [{"role": "user", "content": "file my claim"}]
TOOLS = [{"type": "function", "function": {"name": "file_claim", "parameters": {"type": "object"}}}]


def chains_of(t: Any) -> list[oc.Chain]:
    (trace_id, spans), = spans_from_readable(t.spans()).items()
    return [c for c in oc.build_chains(trace_id, spans)]


def ask(t: Any, client: Any, scenario: str | None = None, key: str | None = None) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS,
                                          extra_headers=fake_headers(usage=USAGE, scenario=scenario, request_key=key))


def test_repair_after_malformed_tool_result(priced: Any) -> None:
    priced.instrument("traceloop-openai")
    client = priced.openai()
    with priced.tracer.start_as_current_span("invoke_agent claims", attributes={"gen_ai.operation.name": "invoke_agent"}):
        for scenario in ("malformed-tool", None):
            reply = ask(priced, client, scenario)
            args = reply.choices[0].message.tool_calls[0].function.arguments
            with priced.tracer.start_as_current_span("execute_tool file_claim",
                                                     attributes={"gen_ai.operation.name": "execute_tool"}) as tool:
                try:
                    json.loads(args)
                except ValueError:
                    tool.set_status(Status(StatusCode.ERROR, "arguments are not JSON"))
    (chain,) = chains_of(priced)
    assert [a.outcome for a in chain.attempts] == ["rejected", "succeeded"]
    assert chain.cost == 2 * CALL and chain.wasted == CALL and chain.succeeded and chain.step == "invoke_agent claims"


def test_validation_retry_loop(priced: Any) -> None:
    priced.instrument("genai-openai")
    client = priced.openai()
    with priced.tracer.start_as_current_span("extract step"):
        for i in range(5):
            ask(priced, client)
            with priced.tracer.start_as_current_span("validate output") as v:
                if i < 4:
                    v.set_status(Status(StatusCode.ERROR, "schema mismatch"))
    (chain,) = chains_of(priced)
    assert chain.attempt_count == 5 and chain.wasted == 4 * CALL and chain.cost == 5 * CALL


def test_error_then_retry_and_sdk_resends(priced: Any) -> None:
    client = priced.anthropic(sdk_tracing=True)
    with priced.tracer.start_as_current_span("answer step"):
        with pytest.raises(Exception):
            client.with_options(max_retries=0).messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
                extra_headers=fake_headers(usage=USAGE, scenario="error-500"))
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES,
                               extra_headers=fake_headers(usage=USAGE, scenario="flaky", request_key="k1"))
    (chain,) = chains_of(priced)
    assert [a.outcome for a in chain.attempts] == ["errored", "succeeded"]
    assert chain.attempts[1].hidden_resends == 1  # the SDK resent once after a 500 (http.request.resend_count)
    assert chain.attempt_count == 3 and chain.unknown_cost_attempts == 1
    assert chain.cost == Decimal("0.0015") and chain.wasted == 0  # 1,000 x $1 + 100 x $5; failures bill nothing


def test_sub_agents_and_react_turns_are_not_retries(priced: Any) -> None:
    priced.instrument("traceloop-openai")
    client = priced.openai()
    with priced.tracer.start_as_current_span("invoke_agent planner", attributes={"gen_ai.operation.name": "invoke_agent"}):
        ask(priced, client)
        with priced.tracer.start_as_current_span("execute_tool search", attributes={"gen_ai.operation.name": "execute_tool"}):
            pass
        ask(priced, client)  # the next ReAct turn, after a successful tool call: a new chain
        with priced.tracer.start_as_current_span("invoke_agent researcher",
                                                 attributes={"gen_ai.operation.name": "invoke_agent"}):
            ask(priced, client, "malformed-tool")
            with priced.tracer.start_as_current_span("execute_tool x") as bad:
                bad.set_status(Status(StatusCode.ERROR))
            ask(priced, client)
    chains = chains_of(priced)
    by_step = {(c.step, len(c.attempts)) for c in chains}
    assert by_step == {("invoke_agent planner", 1), ("invoke_agent researcher", 2)}
    assert sum(c.wasted for c in chains) == CALL


def test_parallel_branches_are_not_retries(priced: Any) -> None:
    priced.instrument("genai-openai")
    client = priced.openai()
    barrier = threading.Barrier(3)
    with priced.tracer.start_as_current_span("fan out"):
        ctx = otel_context.get_current()

        def branch(i: int) -> None:
            token = otel_context.attach(ctx)
            try:
                barrier.wait(timeout=10)
                try:
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                   extra_headers=fake_headers(usage=USAGE, scenario="error-500"
                                                                              if i == 0 else None))
                except Exception:
                    pass
            finally:
                otel_context.detach(token)

        threads = [threading.Thread(target=branch, args=(i,)) for i in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    chains = chains_of(priced)
    assert all(len(c.attempts) == 1 for c in chains) and len(chains) == 3


def test_explicit_attempt_markers(priced: Any) -> None:
    priced.instrument("traceloop-openai")
    client = priced.openai()
    with priced.tracer.start_as_current_span("claims pipeline"):
        for i in range(3):
            with oc.attempt(step="extract-claim", tracer_provider=priced.provider) as a:
                ask(priced, client)
                if i < 2:
                    a.reject("missing policy number")
    (chain,) = chains_of(priced)
    assert chain.step == "extract-claim" and [a.outcome for a in chain.attempts] == ["rejected", "rejected",
                                                                                       "succeeded"]
    assert chain.wasted == 2 * CALL and chain.cost == 3 * CALL


def test_missing_parent_spans_are_tolerated(priced: Any) -> None:
    priced.instrument("traceloop-openai")
    client = priced.openai()
    with priced.tracer.start_as_current_span("lost step"):
        ask(priced, client, "malformed-tool")
        with priced.tracer.start_as_current_span("validate") as v:
            v.set_status(Status(StatusCode.ERROR))
        ask(priced, client)
    (trace_id, spans), = spans_from_readable(priced.spans()).items()
    kept = [s for s in spans if s.name != "lost step"]  # the parent never arrived
    (chain,) = oc.build_chains(trace_id, kept)
    assert chain.step == "(missing parent)" and len(chain.attempts) == 2 and chain.wasted == CALL


def test_ledger_report_quantifies_a_tenant_dominated_by_a_retry_loop(priced: Any, tmp_path) -> None:
    from otel_costattr._ledger._store import Ledger
    from otel_costattr._analysis._rollup import build_report

    priced.instrument("traceloop-openai")
    client = priced.openai()
    with oc.attribution(customer_id="globex-bank", agent_id="claims-bot", task_id="intake"):
        with priced.tracer.start_as_current_span("invoke_agent claims-bot"):
            for i in range(6):  # five rejected attempts, then an answer
                ask(priced, client, "malformed-tool" if i < 5 else None)
                with priced.tracer.start_as_current_span("execute_tool file_claim",
                                                         attributes={"gen_ai.operation.name": "execute_tool"}) as t:
                    if i < 5:
                        t.set_status(Status(StatusCode.ERROR, "bad arguments"))
    with oc.attribution(customer_id="acme-retail", agent_id="support-bot", task_id="faq"):
        with priced.tracer.start_as_current_span("invoke_agent support-bot"):
            for _ in range(4):  # four clean turns
                ask(priced, client)
                with priced.tracer.start_as_current_span("execute_tool lookup",
                                                         attributes={"gen_ai.operation.name": "execute_tool"}):
                    pass
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    rep = build_report(ledger, by=["customer_id"])
    retry = rep["retry"]
    assert retry["retry_chains"] == 1 and Decimal(retry["wasted"]) == 5 * CALL
    globex = retry["by"]["customer_id"][0]
    assert globex["key"] == {"customer_id": "globex-bank"}
    # 5 of its 6 calls were wasted: 83.33% of the tenant's spend went into the loop before the answer
    assert globex["wasted_share_of_spend"] == "83.33" and globex["loop_share_of_spend"] == "100.00"
    (worst,) = retry["worst"]
    assert worst["attempts"] == 6 and worst["customer_id"] == "globex-bank" and len(worst["trace_id"]) == 32
    econ = {r["key"]["task_id"]: r for r in rep["economics"]["by_task"]}
    assert econ["intake"]["cost_per_call"] == str(CALL) and econ["intake"]["cost_per_successful_task"] == str(6 * CALL)
    assert econ["faq"]["cost_per_successful_task"] == str(4 * CALL)
    from otel_costattr._report._render import render

    page = render(rep, "html")
    assert "Retry waste by customer" in page and worst["trace_id"] in page
    assert ("83.33% of globex-bank's spend went into retry loops before the model produced an answer"
            in html.unescape(page))
    assert "Cost per call vs cost per successful task" in page


def test_token_layers_reach_the_span_the_ledger_and_the_report(priced: Any, tmp_path) -> None:
    from otel_costattr._capture._layers import token_layers
    from otel_costattr._ledger._store import Ledger
    from otel_costattr._analysis._rollup import build_report

    priced.instrument("traceloop-openai")
    client = priced.openai()
    with oc.attribution(agent_id="support-bot"), token_layers(prompt=100, tool=300, memory=600):
        ask(priced, client)
    (span,) = [s for s in priced.spans() if s.attributes.get("gen_ai.cost.status") == "priced"]
    a = span.attributes
    assert (a["gen_ai.cost.layer_prompt_tokens"], a["gen_ai.cost.layer_tool_tokens"],
            a["gen_ai.cost.layer_memory_tokens"], a["gen_ai.cost.layer_source"]) == (100, 300, 600, "explicit")
    # the input cost (1,000 x $0.15 / M) split 10 / 30 / 60 %, exactly
    parts = [Decimal(repr(a[f"gen_ai.cost.layer_{k}_cost"])) for k in ("prompt", "tool", "memory")]
    assert parts == [Decimal("0.000015"), Decimal("0.000045"), Decimal("0.00009")]
    assert sum(parts) == Decimal(repr(a["gen_ai.cost.input_cost"]))
    ledger = Ledger(tmp_path / "l.duckdb", book=priced.book)
    ledger.write_spans(priced.spans())
    (row,) = build_report(ledger, by=["agent_id"])["layers"]["rows"]
    assert row["key"] == {"agent_id": "support-bot"} and row["memory_share"] == "60.00"
    assert row["memory_cost"] == "0.00009" and row["calls_with_layers"] == 1
