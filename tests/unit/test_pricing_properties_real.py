"""Properties of the engine over the REAL shipped tables (hypothesis).

Every curated model of every provider, every service tier, every region key and Bedrock geo prefix the tables
know, at any instant from the model's first price period to the end of 2026, with random usage that respects the
OTel GenAI convention (input includes cache reads/writes and audio/image input; output includes reasoning and
audio/image output):

* a priced call's components are non-negative and sum exactly to its total; an unpriced call has no total;
* adding tokens to any class (keeping the convention) never lowers the cost, whole-request tiers included;
* batch and flex never cost more than standard, priority never less; a region or geo uplift never lowers it;
* the result does not depend on what the (cached) book priced before.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_costattr import PriceBook

BOOK = PriceBook.load(imported=False, env=False)
END = datetime(2027, 1, 1, tzinfo=timezone.utc)


def _models() -> list[tuple[str, str, datetime, tuple[str, ...], tuple[str, ...]]]:
    """(provider, model id, first period start, region keys, geo keys) for every curated model."""
    out = []
    for table in BOOK.tables(include_imported=False):
        for mid in sorted(set(table.index.values())):
            entry = table.entry(mid)
            assert entry is not None
            regions = sorted({r for p in entry.periods for r in p.region_multipliers})
            geos = sorted({g for p in entry.periods for g in p.geo_multipliers})
            out.append((table.provider, mid, entry.periods[0].effective_from, tuple(regions), tuple(geos)))
    return out


MODELS = _models()
PROVIDERS = sorted({m[0] for m in MODELS})
BY_PROVIDER = {p: [m for m in MODELS if m[0] == p] for p in PROVIDERS}
TIERS = (None, "batch", "flex", "priority")

counts = st.integers(min_value=0, max_value=600_000)
searches = st.one_of(st.just(0), st.integers(min_value=1, max_value=5))


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    # provider first, so that small tables (DeepSeek, xAI) are drawn as often as OpenAI's
    provider, mid, start, regions, geos = draw(st.sampled_from(BY_PROVIDER[draw(st.sampled_from(PROVIDERS))]))
    name = mid
    if geos and draw(st.booleans()):
        name = f"{draw(st.sampled_from(geos))}.{mid}"
    span = int((END - start).total_seconds())
    at = start + timedelta(seconds=draw(st.integers(min_value=0, max_value=span - 1)))
    cr, cw, cw1, ia, ii = (draw(counts) for _ in range(5))
    rs, oa, oi = (draw(counts) for _ in range(3))
    return dict(model=name, provider=provider, at=at, region=draw(st.sampled_from((None, *regions))),
                input_tokens=cr + cw + cw1 + ia + ii + draw(counts), cache_read_tokens=cr, cache_write_tokens=cw,
                cache_write_1h_tokens=cw1, input_audio_tokens=ia, input_image_tokens=ii,
                output_tokens=rs + oa + oi + draw(counts), reasoning_tokens=rs, output_audio_tokens=oa,
                output_image_tokens=oi, web_search_calls=draw(searches))


def check_cost(c: Any) -> None:
    if c.status == "partial":
        # tokens of a class with no rate (and no documented vendor multiplier) are left out, and flagged
        assert any(f.startswith("unpriced:") for f in c.flags), c.flags
    elif c.status != "priced":
        assert c.status == "unpriced" and c.total is None and c.reason
        return
    assert all(v >= 0 for v in c.components.values()), c.components
    assert sum(c.components.values(), Decimal(0)) == c.total


fast = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_curated_provider_is_sampled() -> None:
    assert set(PROVIDERS) == {"anthropic", "azure", "bedrock", "deepseek", "gemini", "mistral", "openai", "vertex_ai",
                              "xai"}
    assert len(MODELS) >= 150


@fast
@given(call=calls(), tier=st.sampled_from(TIERS))
def test_components_sum_exactly_and_are_never_negative(call: dict[str, Any], tier: str | None) -> None:
    c = BOOK.price(service_tier=tier, **call)
    check_cost(c)
    if call["web_search_calls"] == 0 and tier is None:
        # every curated model is priced in standard mode from its first period on (no gaps, no end dates),
        # in full unless it has cache tokens of a class it has no rate for
        assert c.status in ("priced", "partial"), c.reason


ADD = {  # add k units of one class, keeping the convention (cache and audio/image input are part of input)
    "input": ("input_tokens",),
    "cache_read": ("input_tokens", "cache_read_tokens"),
    "cache_write": ("input_tokens", "cache_write_tokens"),
    "cache_write_1h": ("input_tokens", "cache_write_1h_tokens"),
    "input_audio": ("input_tokens", "input_audio_tokens"),
    "input_image": ("input_tokens", "input_image_tokens"),
    "output": ("output_tokens",),
    "reasoning": ("output_tokens", "reasoning_tokens"),
    "output_audio": ("output_tokens", "output_audio_tokens"),
    "output_image": ("output_tokens", "output_image_tokens"),
    "web_search": ("web_search_calls",),
}


@fast
@given(call=calls(), tier=st.sampled_from(TIERS), cls=st.sampled_from(sorted(ADD)),
       k=st.integers(min_value=1, max_value=400_000))
def test_adding_tokens_never_lowers_the_cost(call: dict[str, Any], tier: str | None, cls: str, k: int) -> None:
    more = dict(call)
    for key in ADD[cls]:
        more[key] += k if key != "web_search_calls" else min(k, 5)
    a = BOOK.price(service_tier=tier, **call)
    b = BOOK.price(service_tier=tier, **more)
    check_cost(a)
    check_cost(b)
    if a.status == b.status and a.status in ("priced", "partial"):
        assert b.total >= a.total, (cls, k, a.components, b.components, b.flags)
    elif b.status == "partial":
        # the added class has no rate: its share is left out (never billed at another class's rate)
        assert f"unpriced:{cls}" in b.flags, b.flags
    elif a.status == "priced":
        # only a per-call fee the model does not have can make the bigger call unpriced
        assert cls == "web_search" and call["web_search_calls"] == 0, b.reason


@fast
@given(call=calls())
def test_service_tiers_are_ordered(call: dict[str, Any]) -> None:
    std = BOOK.price(**call)
    if std.status != "priced":
        return
    for tier in ("batch", "flex"):
        c = BOOK.price(service_tier=tier, **call)
        check_cost(c)
        if c.status == "priced":
            assert c.total <= std.total, (tier, c.components, std.components)
    prio = BOOK.price(service_tier="priority", **call)
    check_cost(prio)
    if prio.status == "priced":
        assert prio.total >= std.total


@fast
@given(call=calls())
def test_region_and_geo_uplifts_never_lower_the_cost(call: dict[str, Any]) -> None:
    model = call["model"]
    head, dot, rest = model.partition(".")
    base = dict(call, region=None)
    if dot and head in {"us", "eu", "apac", "jp", "au", "us-gov", "global"} and call["provider"] == "bedrock":
        base["model"] = rest  # a bare in-region Bedrock id is priced at the base (global) rate
    a, b = BOOK.price(**base), BOOK.price(**call)
    check_cost(a)
    check_cost(b)
    if a.status == b.status and a.status in ("priced", "partial") \
            and {f for f in a.flags if f.startswith("unpriced:")} == {f for f in b.flags if f.startswith("unpriced:")}:
        assert b.total >= a.total


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=calls(), tier=st.sampled_from(TIERS))
def test_warm_book_agrees_with_a_fresh_one(call: dict[str, Any], tier: str | None) -> None:
    warm = BOOK.price(service_tier=tier, **call)
    again = BOOK.price(service_tier=tier, **call)  # may now take the cached fast path
    fresh = PriceBook.load(imported=False, env=False).price(service_tier=tier, **call)
    assert warm.to_dict() == again.to_dict() == fresh.to_dict()
