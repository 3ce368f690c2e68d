"""read_call's compiled per-shape readers agree with the interpreted reader on any attribute values."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_costattr._capture import _usage
from otel_costattr.attributes import PROVIDED_COST, READ

NAMES = sorted({n for names in READ.values() for n in names} | set(PROVIDED_COST))
FIELDS = [f for f in vars(_usage.Call) if not f.startswith("_") and f not in ("has_usage", "is_llm_call", "bad")]
VALUES = st.one_of(
    st.integers(min_value=-5, max_value=10**13), st.floats(allow_nan=True), st.booleans(), st.none(),
    st.text(max_size=8), st.sampled_from(["chat", " openai ", "gpt-4o", "12", "", "embeddings", "batch"]),
    st.lists(st.integers(), max_size=2), st.text(min_size=300, max_size=600))


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=12))
def test_compiled_reader_matches_the_interpreted_one(attrs: dict) -> None:
    compiled = _usage.read_call(attrs)
    present = _usage._KNOWN.intersection(attrs)
    interpreted = _usage._read_generic(attrs, present) if present else _usage.Call()
    for f in FIELDS:
        assert _same(getattr(compiled, f), getattr(interpreted, f)), f
    # The compiled reader stops at the first valid alias, so it reports a subset of what the interpreter,
    # which looks at every alias, reports as unusable.
    assert set(compiled.bad) <= set(interpreted.bad)
    assert set(compiled.bad) <= set(attrs)


def test_reader_cache_is_bounded_and_counts_what_it_does_not_keep(monkeypatch) -> None:
    monkeypatch.setattr(_usage, "_READERS", {})
    monkeypatch.setattr(_usage, "_READERS_MAX", 2)
    monkeypatch.setattr(_usage, "reader_cache_stats", {"size": 0, "uncached": 0})
    shapes = [{"gen_ai.usage.input_tokens": 1}, {"gen_ai.usage.output_tokens": 2},
              {"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4}]
    calls = [_usage.read_call(a) for a in shapes]
    assert len(_usage._READERS) == 2 and _usage.reader_cache_stats["uncached"] == 1
    assert (calls[2].input_tokens, calls[2].output_tokens, calls[2].detail) == (3, 4, 2)


def test_per_emitter_conventions_bring_usage_to_the_genai_one() -> None:
    """botocore's Bedrock spans report the raw inputTokens, which exclude cache reads and writes (D16)."""
    from otel_costattr import attributes as A
    from otel_costattr._capture._usage import read_call

    scope = "opentelemetry.instrumentation.botocore.bedrock-runtime"
    assert A.INPUT_EXCLUDES_CACHE in A.EMITTER_CONVENTIONS[scope]
    converse = {"gen_ai.system": "aws.bedrock", "gen_ai.request.model": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cache_creation.input_tokens": 2000}
    c = read_call(converse, scope)
    assert (c.input_tokens, c.cache_read_tokens, c.cache_write_tokens, c.flags) == (3050, 1000, 2000, ())
    assert read_call(converse).input_tokens == 50  # another scope (or none): read as written
    invoke = {k: v for k, v in converse.items() if "cache" not in k}
    c = read_call(invoke, scope)
    assert c.input_tokens == 50 and c.flags == ("input_may_exclude_cache",)


def test_emitter_provider_names_map_to_pricing_tables() -> None:
    from otel_costattr import attributes as A
    from otel_costattr._pricing._book import PriceBook

    book = PriceBook.load(imported=False, env=False)
    for name, provider in A.PROVIDER_NAMES.items():
        assert name == name.lower() and book.canonical_provider(provider) == provider, name
        assert book.canonical_provider(name) in (None, provider), name  # never a different table


def test_readers_found_by_attribute_names_are_bounded_counted_and_read_what_read_call_reads(monkeypatch) -> None:
    """The enricher finds an SDK span's reader by the span's attribute names in order (issue 18): the map is
    bounded, the spans read without it once full are counted, and every span reads as read_call reads it (the
    emitter's convention included), whichever way its reader was found."""
    from opentelemetry.sdk.trace import TracerProvider

    from otel_costattr._capture import _enrich
    from otel_costattr._capture._enrich import Enricher
    from otel_costattr._pricing._book import default_book

    monkeypatch.setattr(_enrich, "_NAMES_MAX", 3)
    # read_call's own compiled-reader cache, as in a fresh process: earlier tests (the fuzzers) may have filled it,
    # and a full cache compiles no reader for a new shape (it interprets instead), so there would be none to keep
    monkeypatch.setattr(_usage, "_READERS", {})
    enricher = Enricher(default_book())
    calls = []
    real = _enrich.Enricher._pair

    def spy(self, call, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(call)
        return real(self, call, *args, **kwargs)

    monkeypatch.setattr(_enrich.Enricher, "_pair", spy)
    scope = "opentelemetry.instrumentation.botocore.bedrock-runtime"  # an emitter with a convention
    tracer = TracerProvider().get_tracer(scope)
    shapes = [{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10,
               f"app.extra.{i}": i, "gen_ai.usage.output_tokens": 5, "gen_ai.usage.cache_read.input_tokens": 4}
              for i in range(5)]
    expected = []
    for attrs in shapes * 2:
        span = tracer.start_span("chat", attributes=attrs)
        span.end()
        enricher.compute(span)
        expected.append(_usage.read_call(dict(span.attributes), scope))
    assert len(enricher._by_names) == 3 and enricher.names_full == 4  # 2 unkept shapes, each seen twice
    assert [c.__dict__ for c in calls] == [c.__dict__ for c in expected]
    assert calls[0].input_tokens == 14  # botocore's input count excludes cache reads: the convention applied
