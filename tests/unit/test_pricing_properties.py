"""Properties of the engine that must hold for every input (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_costattr import PriceBook, PricingError
from tests.conftest import DATA

BOOK = PriceBook.load([DATA / "rules.toml", DATA / "mini.toml"], builtin=False, imported=False, env=False)
MODELS = ["tiered", "inclusive", "offpeak", "reasoner", "us.tiered", "acme-large"]
TIERS = [None, "standard", "batch", "priority"]
counts = st.integers(min_value=0, max_value=2_000_000)
instants = st.datetimes(min_value=__import__("datetime").datetime(2025, 1, 1),
                        max_value=__import__("datetime").datetime(2027, 1, 1)).map(lambda d: d.isoformat() + "Z")


@st.composite
def usage(draw: st.DrawFn) -> dict:
    cr, cw, cw1, ia = draw(counts), draw(counts), draw(counts), draw(counts)
    rs, oa = draw(counts), draw(counts)
    return dict(input_tokens=cr + cw + cw1 + ia + draw(counts), cache_read_tokens=cr, cache_write_tokens=cw,
                cache_write_1h_tokens=cw1, input_audio_tokens=ia, output_tokens=rs + oa + draw(counts),
                reasoning_tokens=rs, output_audio_tokens=oa)


fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(model=st.sampled_from(MODELS), u=usage(), tier=st.sampled_from(TIERS), at=instants)
def test_components_sum_exactly_and_never_negative(model: str, u: dict, tier: str | None, at: str) -> None:
    c = BOOK.price(model, service_tier=tier, at=at, **u)
    if c.status not in ("priced", "partial"):
        assert c.total is None and c.reason
        return
    assert sum(c.components.values(), Decimal(0)) == c.total
    assert all(v >= 0 for v in c.components.values())
    assert c.total >= 0
    assert abs(c.total_float() - float(c.total)) <= 1e-12 * max(1.0, float(c.total))


ADD = {  # adding k tokens of a class, keeping the OTel convention consistent (cache is part of input)
    "input": lambda u, k: dict(u, input_tokens=u["input_tokens"] + k),
    "cache_read": lambda u, k: dict(u, input_tokens=u["input_tokens"] + k,
                                    cache_read_tokens=u["cache_read_tokens"] + k),
    "cache_write": lambda u, k: dict(u, input_tokens=u["input_tokens"] + k,
                                     cache_write_tokens=u["cache_write_tokens"] + k),
    "output": lambda u, k: dict(u, output_tokens=u["output_tokens"] + k),
    "reasoning": lambda u, k: dict(u, output_tokens=u["output_tokens"] + k,
                                   reasoning_tokens=u["reasoning_tokens"] + k),
}


@fast
@given(model=st.sampled_from(MODELS), u=usage(), cls=st.sampled_from(sorted(ADD)),
       k=st.integers(min_value=1, max_value=100_000), tier=st.sampled_from(TIERS), at=instants)
def test_cost_never_decreases_when_tokens_are_added(model: str, u: dict, cls: str, k: int, tier: str | None,
                                                    at: str) -> None:
    before = BOOK.price(model, service_tier=tier, at=at, **u)
    after = BOOK.price(model, service_tier=tier, at=at, **ADD[cls](u, k))
    if before.priced and after.priced:
        assert after.total >= before.total


@fast
@given(value=st.one_of(st.floats(allow_nan=True), st.text(max_size=5), st.integers(max_value=-1),
                       st.lists(st.integers(), max_size=2), st.none().map(lambda _: object())),
       arg=st.sampled_from(["input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens",
                            "cache_write_1h_tokens", "web_search_calls"]))
def test_garbage_gives_a_clear_error(value: object, arg: str) -> None:
    with pytest.raises(PricingError, match=arg):
        BOOK.price("tiered", **{arg: value})


@fast
@given(model=st.text(max_size=40))
def test_any_model_name_is_priced_or_marked_unpriced(model: str) -> None:
    if not model.strip():
        with pytest.raises(PricingError):
            BOOK.price(model, input_tokens=1)
        return
    c = BOOK.price(model, input_tokens=10, output_tokens=10)
    assert c.status in ("priced", "partial", "unpriced")
    assert (c.total is None) == (c.status == "unpriced")


@pytest.mark.parametrize("value", [0.0, [], "", None, -1, True])
@pytest.mark.parametrize("arg", ["web_search_calls", "input_audio_tokens", "output_image_tokens", "input_tokens"])
def test_a_warm_book_checks_arguments_like_a_cold_one(value: object, arg: str) -> None:
    # The per-(model, provider) plan cache is a fast path; it must not let through what the general path refuses.
    book = PriceBook.load(imported=False, env=False)
    cold_error = cold = None
    try:
        cold = book.price("gpt-4o", provider="openai", **{arg: value}).to_dict()
    except PricingError as exc:
        cold_error = str(exc)
    book.price("gpt-4o", provider="openai", input_tokens=10, output_tokens=5)  # builds the plan
    if cold_error is None:
        assert book.price("gpt-4o", provider="openai", **{arg: value}).to_dict() == cold
    else:
        with pytest.raises(PricingError, match=arg):
            book.price("gpt-4o", provider="openai", **{arg: value})
