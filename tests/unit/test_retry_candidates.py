"""The retry pre-filter is complete: the report's retry and economics figures built from the candidate traces
only are the figures built from every trace (issue 23, DESIGN D14). Random agent traces with every retry
signal: errored calls, failed tool and validation spans, resend counts, HTTP attempts, attempt markers,
single-attempt failures under their own step, missing parents."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest

from otel_costattr._analysis import _economics
from otel_costattr._analysis._chains import OUTCOME_ATTRIBUTE, STEP_ATTRIBUTE
from otel_costattr._analysis._source import Filters
from otel_costattr._errors import ConfigurationError
from otel_costattr._ledger._store import Ledger, SpanRecord

COST = 0.00021


class _Trace:
    def __init__(self, rng: random.Random, number: int) -> None:
        self.rng, self.trace_id, self.n, self.t = rng, f"{number + 1:032x}", 0, 1_763_000_000_000_000_000
        self.records: list[SpanRecord] = []
        self.attribution = {"customer_id": f"cust-{rng.randrange(4)}", "task_id": f"task-{rng.randrange(3)}",
                            "agent_id": "bot", "workload_type": rng.choice(["batch", "interactive"])}

    def span(self, parent: str | None, name: str, *, kind: str = "INTERNAL", error: bool = False,
             attrs: dict[str, Any] | None = None, duration: int = 1000, keep: bool = True) -> str:
        self.n += 1
        sid = f"{int(self.trace_id, 16) % 10**6:06d}{self.n:010d}"
        start = self.t
        self.t += duration + 10
        if keep:
            self.records.append(SpanRecord(trace_id=self.trace_id, span_id=sid, parent_span_id=parent, name=name,
                                           kind=kind, start_ns=start, end_ns=start + duration,
                                           status_code="ERROR" if error else "UNSET",
                                           attributes={**self.attribution, **(attrs or {})}, service_name="t"))
        return sid

    def call(self, parent: str | None) -> str:
        rng = self.rng
        errored = rng.random() < 0.15
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o-mini"}
        if not errored:
            attrs.update({"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                          "gen_ai.cost.status": "priced", "gen_ai.cost.total_cost": COST})
        if rng.random() < 0.1:
            attrs["http.request.resend_count"] = rng.randrange(1, 3)
        sid = self.span(parent, "chat gpt-4o-mini", kind="CLIENT", error=errored, attrs=attrs)
        if rng.random() < 0.2:  # HTTP attempts under the call: every one but the last failed
            tries = rng.randrange(1, 4)
            for k in range(tries):
                self.span(sid, "POST", kind="CLIENT", error=k < tries - 1 or errored,
                          attrs={"http.request.method": "POST", "http.response.status_code": 500})
        if rng.random() < 0.35:
            self.span(parent, rng.choice(["validate output", "execute_tool search"]), error=rng.random() < 0.35,
                      attrs={"gen_ai.operation.name": "execute_tool"} if rng.random() < 0.5 else {})
        return sid

    def build(self) -> list[SpanRecord]:
        rng = self.rng
        root = self.span(None, "invoke_agent bot", keep=rng.random() > 0.1)  # sometimes the parent never arrived
        for _ in range(rng.randrange(1, 4)):
            shape = rng.random()
            if shape < 0.15:  # explicit attempt markers
                for _ in range(rng.randrange(1, 4)):
                    outcome = rng.choice(["succeeded", "rejected", "errored", None])
                    attrs = {STEP_ATTRIBUTE: "extract", **({OUTCOME_ATTRIBUTE: outcome} if outcome else {})}
                    marker = self.span(root, "attempt extract", attrs=attrs, error=outcome == "errored")
                    self.call(marker)
            elif shape < 0.3:  # each call under its own step (a single-attempt failure stays alone)
                self.call(self.span(root, "plan"))
                self.call(self.span(root, "act"))
            else:
                for _ in range(rng.randrange(1, 4)):
                    self.call(root)
        return self.records


def _ledger(tmp_path: Any, traces: int, seed: int) -> Ledger:
    rng = random.Random(seed)
    ledger = Ledger(tmp_path / f"c{seed}.duckdb")
    ledger.write_records([r for i in range(traces) for r in _Trace(rng, i).build()])
    return ledger


def _figures(ledger: Ledger) -> tuple[Any, ...]:
    f = Filters()
    (total,), = ledger.query("SELECT sum(cost_total) FROM calls")
    found = _economics.chains_for(ledger, f)
    retry = _economics.retry_analysis(ledger, f, Decimal(total), chains=found,
                                      findings_by=("customer_id", "task_id"))
    retry.pop("traces_analysed")
    return (retry, _economics.economics(ledger, f, found[0], "task_id"),
            _economics.economics(ledger, f, found[0], "workload_type"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_candidates_give_the_figures_of_every_trace(tmp_path: Any, seed: int, monkeypatch) -> None:
    ledger = _ledger(tmp_path, 300, seed)
    try:
        from_candidates = _figures(ledger)
        candidates = set(_economics._candidate_traces(ledger, Filters()))
        every = [r[0] for r in ledger.query("SELECT DISTINCT trace_id FROM spans ORDER BY 1")]
        monkeypatch.setattr(_economics, "_candidate_traces", lambda src, f: every)
        from_every = _figures(ledger)
        # the pre-filter skipped clean traces (it is a filter), yet nothing it skipped had a retry or failure
        assert len(candidates) < len(every)
        assert from_candidates == from_every
        chains, _ = _economics.chains_for(ledger, Filters())
        assert {c.trace_id for c, _ in chains if c.is_retry or not c.succeeded} <= candidates
        assert from_every[0]["retry_chains"] > 0 and any(r["successful"] < r["instances"] for r in from_every[1])
    finally:
        ledger.close()


def test_findings_keys_are_checked(tmp_path: Any) -> None:
    ledger = _ledger(tmp_path, 5, 7)
    try:
        with pytest.raises(ConfigurationError, match="customer_id, agent_id, task_id, skill_id"):
            _economics.retry_analysis(ledger, Filters(), Decimal(1), findings_by=("model",))
    finally:
        ledger.close()


def test_cli_report_prints_findings_and_refuses_unknown_keys(tmp_path: Any, capsys) -> None:
    from otel_costattr._cli import main

    _ledger(tmp_path, 200, 11).close()
    db = str(tmp_path / "c11.duckdb")
    assert main(["report", "--db", db, "--findings-by", "customer_id,task_id"]) == 0
    text = capsys.readouterr().out
    assert "retry loops:" in text and "% of cust-" in text and "% of task-" in text
    assert "'s spend went into retry loops before the model produced an answer." in text
    assert main(["report", "--db", db, "--format", "json", "--findings-by", "agent_id"]) == 0
    findings = json.loads(capsys.readouterr().out)["retry"]["findings"]
    assert findings and {f["by"] for f in findings} == {"agent_id"} and findings[0]["agent_id"] == "bot"
    assert main(["report", "--db", db, "--findings-by", "model"]) == 2
    err = capsys.readouterr().err
    assert "retry findings are given per customer_id, agent_id, task_id, skill_id" in err and "Traceback" not in err
