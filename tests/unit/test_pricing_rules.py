"""Engine rules on a small hand-made table (tests/data/rules.toml); every figure is worked out in the comment."""

from __future__ import annotations

from decimal import Decimal

import pytest

from otel_costattr import PriceBook, PricingError

D = Decimal


@pytest.fixture(scope="module")
def book(request: pytest.FixtureRequest) -> PriceBook:
    from tests.conftest import DATA
    return PriceBook.load([DATA / "rules.toml", DATA / "mini.toml"], builtin=False, imported=False, env=False)


@pytest.fixture(scope="module")
def overlaid() -> PriceBook:
    from tests.conftest import DATA
    return PriceBook.load([DATA / "rules.toml", DATA / "overlay.toml"], builtin=False, imported=False, env=False)


AT = "2025-06-03T12:00:00Z"  # a Tuesday, outside DeepSeek-style peak windows


def test_disjoint_buckets_and_every_class(book: PriceBook) -> None:
    # input 10,000 includes 2,000 cache reads, 1,000 5m writes and 500 1h writes; output 2,000 includes 500
    # reasoning (no reasoning rate: falls back to output).
    c = book.price("tiered", input_tokens=10_000, cache_read_tokens=2_000, cache_write_tokens=1_000,
                   cache_write_1h_tokens=500, output_tokens=2_000, reasoning_tokens=500, at=AT)
    assert c.components == {
        "input": D("0.0195"),        # 6,500 x $3/M
        "cache_read": D("0.0006"),   # 2,000 x $0.30/M
        "cache_write": D("0.00375"),  # 1,000 x $3.75/M
        "output": D("0.0225"),       # 1,500 x $15/M
        "reasoning": D("0.0075"),    # 500 x $15/M (fallback)
        "cache_write_1h": D("0.003"),  # 500 x $6/M
    }
    assert c.total == D("0.05685") == sum(c.components.values())
    assert "fallback:reasoning" in c.flags
    assert c.status == "priced" and c.model == "tiered" and c.provider == "rulesco"


@pytest.mark.parametrize("model,inp,out,expected,tiered", [
    ("tiered", 200_000, 1_000, "0.615", False),        # exactly 200K with ">" stays low: 0.6 + 0.015
    ("tiered", 200_001, 1_000, "1.222506", True),      # whole request re-priced: 1.200006 + 0.0225
    ("inclusive", 199_999, 1_000, "0.409998", False),  # ">=": 199,999 is still low
    ("inclusive", 200_000, 1_000, "0.82", True),       # ">=": exactly 200K is high: 0.8 + 0.02
])
def test_long_context_boundaries(book: PriceBook, model: str, inp: int, out: int, expected: str,
                                 tiered: bool) -> None:
    c = book.price(model, input_tokens=inp, output_tokens=out, at=AT)
    assert c.total == D(expected)
    assert any(f.startswith("long_context:") for f in c.flags) is tiered


def test_long_context_threshold_counts_cached_prompt(book: PriceBook) -> None:
    # 250K prompt of which 200K cache reads: the whole prompt crosses, so cache reads are re-priced too.
    c = book.price("tiered", input_tokens=250_000, cache_read_tokens=200_000, at=AT)
    assert c.components["input"] == D("0.3")       # 50,000 x $6/M
    assert c.components["cache_read"] == D("0.12")  # 200,000 x $0.60/M
    assert c.total == D("0.42")


@pytest.mark.parametrize("tier,inp,cached,out,expected", [
    ("batch", 10_000, 0, 2_000, "0.03"),          # (0.03 + 0.03) x 0.5
    ("batch", 200_001, 0, 0, "0.600003"),         # long-context rate x 0.5
    ("priority", 10_000, 2_000, 1_000, "0.071"),  # explicit 8,000 x $5/M + 2,000 x $0.5/M; output $15 x 2
    ("priority", 200_001, 0, 0, "2.400012"),      # above the threshold the multiplier applies to $6/M
    ("standard", 10_000, 0, 2_000, "0.06"),
])
def test_service_tiers(book: PriceBook, tier: str, inp: int, cached: int, out: int, expected: str) -> None:
    c = book.price("tiered", input_tokens=inp, cache_read_tokens=cached, output_tokens=out, service_tier=tier,
                   at=AT)
    assert c.total == D(expected)


def test_reported_standard_tier_names_mean_base_price(book: PriceBook) -> None:
    for name in ("default", "auto", "standard", None):
        assert book.price("tiered", input_tokens=10_000, output_tokens=2_000, service_tier=name,
                          at=AT).total == D("0.06")


def test_service_tier_not_in_table_is_unpriced_not_base(book: PriceBook) -> None:
    c = book.price("tiered", input_tokens=1000, service_tier="flex", at=AT)
    assert c.status == "unpriced" and c.total is None and "flex" in c.reason


@pytest.mark.parametrize("at,window,expected", [
    ("2025-06-02T02:30:00Z", "peak", "1.5"),       # Monday inside 01-04 UTC
    ("2025-06-02T01:00:00Z", "peak", "1.5"),       # window start is inclusive
    ("2025-06-02T04:00:00Z", "off_peak", "0.75"),  # window end is exclusive
    ("2025-06-02T09:59:59Z", "peak", "1.5"),
    ("2025-06-07T02:30:00Z", "off_peak", "0.75"),  # Saturday: off-peak all day
])
def test_time_windows(book: PriceBook, at: str, window: str, expected: str) -> None:
    c = book.price("offpeak", input_tokens=1_000_000, output_tokens=1_000_000, at=at)
    assert c.total == D(expected)
    assert f"time_window:{window}" in c.flags


@pytest.mark.parametrize("model,expected,flag", [
    ("us.tiered", "0.066", "geo:us"),          # +10%
    ("global.tiered", "0.06", "geo:global"),
    ("eu.tiered", "0.06", "geo_unlisted:eu"),  # a prefix the table does not price is flagged, not guessed
])
def test_geo_prefixes(book: PriceBook, model: str, expected: str, flag: str) -> None:
    c = book.price(model, provider="rulesco", input_tokens=10_000, output_tokens=2_000, at=AT)
    assert c.total == D(expected)
    assert flag in c.flags


def test_region_uplift(book: PriceBook) -> None:
    c = book.price("tiered", input_tokens=10_000, output_tokens=2_000, region="EU", at=AT)
    assert c.total == D("0.066") and "region:eu" in c.flags


def test_per_call_fee_is_its_own_component(book: PriceBook) -> None:
    c = book.price("tiered", input_tokens=1_000, web_search_calls=3, at=AT)
    assert c.components["web_search"] == D("0.03")  # 3 x $10/1000
    assert c.total == D("0.033") and "web_search" in c.flags
    no_fee = book.price("inclusive", input_tokens=1_000, web_search_calls=1, at=AT)
    assert no_fee.status == "unpriced"


def test_reasoning_and_audio_rates(book: PriceBook) -> None:
    c = book.price("reasoner", input_tokens=1_000, output_tokens=3_000, reasoning_tokens=2_000, at=AT)
    assert c.components["reasoning"] == D("0.016") and c.total == D("0.021")
    a = book.price("reasoner", input_tokens=1_000, input_audio_tokens=400, output_tokens=500,
                   output_audio_tokens=100, at=AT)
    # 600 x $1 + 400 x $40 + 400 x $4 + 100 x $80, per million
    assert a.total == D("0.0262")
    assert a.components["input_audio"] == D("0.016") and a.components["output_audio"] == D("0.008")


def test_per_second_compute(book: PriceBook) -> None:
    assert book.price("selfhosted", input_tokens=10, duration_s=2.5, at=AT).total == D("0.00275")
    assert book.price("selfhosted", input_tokens=10, at=AT).status == "unpriced"


def test_effective_dated_history(book: PriceBook) -> None:
    kw = dict(input_tokens=1_000, output_tokens=100)
    assert book.price("acme-large", at="2025-06-09T23:59:59Z", **kw).total == D("0.0028")  # $2 / $8
    assert book.price("acme-large", at="2025-06-10T00:00:00Z", **kw).total == D("0.0014")  # $1 / $4
    before = book.price("acme-large", at="2024-12-31", **kw)
    assert before.status == "unpriced" and "no price period" in before.reason


def test_clamping_is_flagged(book: PriceBook) -> None:
    c = book.price("tiered", input_tokens=100, cache_read_tokens=200, output_tokens=10, reasoning_tokens=20, at=AT)
    assert c.components["input"] == 0 and c.components["output"] == 0
    assert {"clamped:input", "clamped:output"} <= set(c.flags)
    assert c.total == D("0.00006") + D("0.0003")  # 200 x $0.30/M + 20 x $15/M


def test_unknown_model_is_unpriced_never_zero(book: PriceBook) -> None:
    c = book.price("tiered-v9", input_tokens=1_000, at=AT)
    assert c.status == "unpriced" and c.total is None and c.components == {}
    assert "--pricing" in c.reason and "OTEL_COSTATTR_PRICING" in c.reason
    assert c.to_dict()["total"] is None


def test_overlay_overrides_discounts_and_deployments(overlaid: PriceBook) -> None:
    over = overlaid.price("inclusive", input_tokens=1_000, output_tokens=1_000, at=AT)
    assert over.total == D("0.006") and over.origin.startswith("user:")
    disc = overlaid.price("tiered", input_tokens=10_000, output_tokens=2_000, at=AT)
    assert disc.list_total == D("0.06") and disc.total == D("0.054")
    assert sum(disc.components.values()) == disc.total and "discount:10%" in disc.flags
    dep = overlaid.price("prod-tiered-eu", provider="rulesco", input_tokens=10_000, output_tokens=2_000, at=AT)
    assert dep.model == "tiered" and "region:eu" in dep.flags
    assert dep.total == D("0.0594")  # 0.06 x 1.1 x 0.9


def test_fast_path_matches_general_path(book: PriceBook) -> None:
    kw = dict(input_tokens=10_000, cache_read_tokens=2_000, cache_write_1h_tokens=100, output_tokens=2_000,
              reasoning_tokens=500, at=AT)
    first = book.price("tiered-20250101", **kw)   # general path, builds the plan
    second = book.price("tiered-20250101", **kw)  # planned path
    assert first.to_dict() == second.to_dict()
    clamped = dict(kw, cache_read_tokens=20_000)
    assert book.price("tiered-20250101", **clamped).to_dict() == PriceBook.load(
        [__import__("tests.conftest").conftest.DATA / "rules.toml"], builtin=False, imported=False,
        env=False).price("tiered-20250101", **clamped).to_dict()


def test_exact_despite_hostile_global_decimal_context(book: PriceBook) -> None:
    import decimal
    with decimal.localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_DOWN
        c = book.price("tiered", input_tokens=123_457, output_tokens=98_765, at=AT)
    assert c.total == D("0.370371") + D("1.481475")


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_tokens=-1), "input_tokens"),
    (dict(output_tokens=1.5), "output_tokens"),
    (dict(cache_read_tokens="12"), "cache_read_tokens"),
    (dict(reasoning_tokens=float("nan")), "reasoning_tokens"),
    (dict(service_tier="turbo"), "service tier"),
    (dict(at="yesterday"), "ISO-8601"),
])
def test_garbage_arguments_raise_clear_errors(book: PriceBook, kwargs: dict, match: str) -> None:
    with pytest.raises(PricingError, match=match):
        book.price("tiered", **kwargs)
