"""``ingest`` prices a call without writing its cost attributes into the span and reading them back (issue 17):
the row's cost columns come from the figures. These tests hold that row equal to the one the rendered
attributes give, for any usage, and show the general path still marks a total too large for its column."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import otel_costattr as oc
from otel_costattr._capture._enrich import UNRENDERED, Enricher
from otel_costattr._ledger._ingest import _price_missing, ingest_files
from otel_costattr._ledger._store import Ledger, Priced, SpanRecord, record_to_row

BOOK = oc.PriceBook.load(env=False)
_MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-sonnet-4-5"),
           ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"), ("openai", "o3-mini")]
_COUNT = st.one_of(st.none(), st.integers(0, 2_000_000), st.integers(0, 2**63 - 1))


def _record(i: int, provider: str, model: str, usage: dict[str, int | None], other: dict | None = None,
            ) -> SpanRecord:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
             "customer_id": "acme", **{k: v for k, v in usage.items() if v is not None}, **(other or {})}
    return SpanRecord(trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", parent_span_id=None, name="chat",
                      kind="CLIENT", start_ns=1_763_000_000_000_000_000 + i, end_ns=1_763_000_001_000_000_000 + i,
                      status_code="UNSET", attributes=attrs, scope_name="opentelemetry.instrumentation.openai")


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, len(_MODELS) - 1), n_in=_COUNT, n_out=_COUNT, cache_read=_COUNT, reasoning=_COUNT,
       other=st.sampled_from([{}, {"error.type": "timeout"}, {"http.request.resend_count": 2},
                              {"http.request.resend_count": 2**40, "error.type": "x" * 300}]))
def test_row_from_figures_equals_the_row_from_rendered_attributes(which: int, n_in: int | None, n_out: int | None,
                                                                  cache_read: int | None, reasoning: int | None,
                                                                  other: dict) -> None:
    """Proves: for any usage, the row ``ingest`` stores from a ``Priced`` call is the row the rendered attributes
    give (every column), beside other attributes the row reads (an error type, a resend count, out of range or
    too long), and ``_price_missing`` takes that path for the standard priced set."""
    provider, model = _MODELS[which]
    usage = {"gen_ai.usage.input_tokens": n_in, "gen_ai.usage.output_tokens": n_out,
             "gen_ai.usage.cache_read.input_tokens": cache_read, "gen_ai.usage.reasoning_tokens": reasoning}
    fast, slow = _record(0, provider, model, usage, other), _record(0, provider, model, usage, other)
    _, (got,) = _price_missing([fast], Enricher(BOOK, langfuse=False))
    extra, status, call, cost = Enricher(BOOK, langfuse=False).compute_attributes(
        slow.attributes, span_id=slow.span_id, start_ns=slow.start_ns, end_ns=slow.end_ns, trace_id=slow.trace_id,
        scope=slow.scope_name or "")
    slow.attributes.update(extra or {})
    _, _, _, plain_cost = Enricher(BOOK, langfuse=False).compute_attributes(
        dict(fast.attributes), span_id=None, start_ns=fast.start_ns, end_ns=fast.end_ns, render=False)
    if type(got) is Priced:
        assert "gen_ai.cost.status" not in fast.attributes  # nothing written into the span
        assert got.status == status
    else:  # flags, a sixth component, no usage, unpriced: the attributes are written as before
        assert fast.attributes == slow.attributes
    assert record_to_row(fast, call=got) == record_to_row(slow, call=call)
    if plain_cost is not None and status in ("priced", "partial") and len(plain_cost._units) == 5 \
            and not plain_cost.flags and not call.flags and not call.bad:
        assert type(got) is Priced, "the standard priced set should take the fast path"


def test_a_total_too_large_for_its_column_is_marked_unpriced_on_the_fast_path_too(tmp_path: Path) -> None:
    """Proves: a call priced above what DECIMAL(38,18) holds (an overlay with an absurd rate) is stored as NULL,
    marked ``out_of_range:cost_total`` and ``unpriced`` (the general path), never summed, and not lost."""
    overlay = tmp_path / "absurd.toml"
    overlay.write_text('[meta]\nprovider = "absurdco"\nversion = "x-1"\n\n[[model]]\nid = "absurd-1"\n'
                       'source = "https://example.invalid/absurd"\n  [[model.period]]\n'
                       '  effective_from = "2025-01-01"\n  input = "1e20"\n  output = "1"\n')
    book = oc.PriceBook.load([overlay], builtin=False, imported=False, env=False)
    attrs = [{"key": k, "value": v} for k, v in (
        ("gen_ai.operation.name", {"stringValue": "chat"}), ("gen_ai.request.model", {"stringValue": "absurd-1"}),
        ("gen_ai.provider.name", {"stringValue": "absurdco"}), ("gen_ai.usage.input_tokens", {"intValue": "5000000"}),
        ("gen_ai.usage.output_tokens", {"intValue": "10"}))]
    spans = [{"traceId": "ab" * 16, "spanId": f"{i + 1:016x}", "name": "chat", "attributes": attrs,
              "startTimeUnixNano": "1763000000000000000", "endTimeUnixNano": "1763000001000000000"}
             for i in range(3)]
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n")
    ledger = Ledger(tmp_path / "costs.duckdb", book=book)
    try:
        result = ingest_files([src], ledger, book)
        rows = ledger.query("SELECT cost_status, cost_total, cost_flags, attributes FROM spans ORDER BY span_id")
    finally:
        ledger.close()
    assert result.spans == 3 and len(rows) == 3
    for status, total, flags, kept in rows:
        assert (status, total) == ("unpriced", None)
        assert "out_of_range:cost_total" in flags.split(",")
        assert float(json.loads(kept)["otel_costattr.out_of_range.cost_total"]) == 5e20  # 5M tokens at 1e20 per million


def test_unrendered_is_what_the_enricher_returns_for_the_standard_set() -> None:
    """Proves: the fast path is reached at all (a plain priced chat span is the standard set)."""
    rec = _record(1, "openai", "gpt-4o", {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300})
    extra, status, _, _ = Enricher(BOOK, langfuse=False).compute_attributes(
        dict(rec.attributes), span_id=rec.span_id, start_ns=rec.start_ns, end_ns=rec.end_ns, render=False)
    assert extra is UNRENDERED and status == "priced"
    n, (got,) = _price_missing([rec], Enricher(BOOK, langfuse=False))
    assert n == 1 and type(got) is Priced
