"""Catalog rules: slugs, codes, prices that fit their currency, limits, features, coupon shape and refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.catalog import (
    INT_MAX,
    KEEP,
    MAX_MINOR,
    CouponState,
    DiscountKind,
    CouponDuration,
    FeatureSpec,
    LimitSpec,
    annual_price_default,
    check_features,
    check_limits,
    check_max_uses,
    check_slug,
    check_validity_window,
    clean_name,
    coupon_refusal,
    coupon_terms,
    given as was_given,
    normalize_coupon_code,
    price_minor,
    unknown_metric,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.money import EXPONENTS, Money

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _fails(field: str, call, *args, **kwargs) -> BillingError:
    with pytest.raises(BillingError) as caught:
        call(*args, **kwargs)
    assert caught.value.code is BillingErrorCode.VALIDATION
    assert caught.value.field == field, caught.value
    return caught.value


# ------------------------------------------------------------------ slugs and names


@pytest.mark.parametrize("slug", ["pro", "pro-annual", "starter-idr", "a", "2026-promo", "x1-y2-z3"])
def test_good_slugs_pass(slug):
    assert check_slug(slug) == slug


@pytest.mark.parametrize(
    "slug", ["", "Pro", "pro plan", "pro_plan", "-pro", "pro-", "pro--annual", "pró", "pro\n", "a" * 101]
)
def test_bad_slugs_are_validation_errors_on_slug(slug):
    _fails("slug", check_slug, slug)


@given(st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), min_size=1, max_size=6))
def test_words_joined_by_hyphens_are_slugs(words):
    slug = "-".join(words)
    if len(slug) <= 100:
        assert check_slug(slug) == slug


@given(st.text(min_size=1, max_size=30))
def test_a_slug_never_holds_upper_case_or_spaces(text):
    try:
        check_slug(text)
    except BillingError:
        return
    assert text == text.lower() and " " not in text and not text.startswith("-") and not text.endswith("-")


def test_names_are_trimmed_and_required():
    assert clean_name("  Pro  ") == "Pro"
    _fails("name", clean_name, "   ")
    _fails("name", clean_name, "x" * 201)


# ------------------------------------------------------------------ prices


def test_price_in_idr_must_be_whole_rupiah():
    assert price_minor(Decimal("299000"), "IDR", "basePriceMonthly") == 299000
    error = _fails("basePriceMonthly", price_minor, Decimal("10.5"), "IDR", "basePriceMonthly")
    assert "IDR" in error.message


def test_price_in_usd_has_cents_at_most():
    assert price_minor(Decimal("29.00"), "USD", "perAgentPrice") == 2900
    assert price_minor(Decimal("0.01"), "USD", "perAgentPrice") == 1
    _fails("perAgentPrice", price_minor, Decimal("0.001"), "USD", "perAgentPrice")


def test_trailing_zeros_beyond_the_exponent_are_fine():
    assert price_minor(Decimal("10.000"), "IDR", "p") == 10
    assert price_minor(Decimal("1.230"), "USD", "p") == 123


def test_negative_and_huge_prices_are_refused():
    _fails("basePriceMonthly", price_minor, Decimal("-1"), "USD", "basePriceMonthly")
    _fails("basePriceMonthly", price_minor, Decimal(MAX_MINOR + 1), "IDR", "basePriceMonthly")
    assert price_minor(Decimal(MAX_MINOR), "IDR", "p") == MAX_MINOR


@given(st.integers(min_value=0, max_value=MAX_MINOR), st.sampled_from(sorted(EXPONENTS)))
def test_every_amount_money_prints_parses_back_to_itself(minor, currency):
    assert price_minor(Money(minor, currency).amount, currency, "p") == minor


@given(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=1, max_value=9),
    st.sampled_from(sorted(EXPONENTS)),
)
def test_one_more_nonzero_digit_than_the_exponent_is_refused(minor, digit, currency):
    places = EXPONENTS[currency]
    text = str(Money(minor, currency).amount)
    too_precise = Decimal(text + ("" if places else ".") + str(digit))
    _fails("p", price_minor, too_precise, currency, "p")


@given(st.integers(min_value=0, max_value=MAX_MINOR // 10))
def test_annual_default_is_ten_months(monthly):
    assert annual_price_default(monthly) == monthly * 10


# ------------------------------------------------------------------ limits and features


def test_limits_accept_null_for_unlimited_and_refuse_duplicates_and_negatives():
    assert check_limits([LimitSpec("agents", 3), LimitSpec("contacts", None)]) == [
        LimitSpec("agents", 3),
        LimitSpec("contacts", None),
    ]
    _fails("limits[1].metric", check_limits, [LimitSpec("agents", 3), LimitSpec("agents", 4)])
    _fails("limits[0].limit", check_limits, [LimitSpec("agents", -1)])
    _fails("limits[0].limit", check_limits, [LimitSpec("agents", INT_MAX + 1)])
    _fails("limits[0].metric", check_limits, [LimitSpec(" ", 1)])


def test_unknown_metric_names_its_index():
    error = _fails(
        "limits[1].metric", unknown_metric, [LimitSpec("agents", 1), LimitSpec("seats", 2)], ["agents", "contacts"]
    )
    assert "seats" in error.message
    unknown_metric([LimitSpec("agents", 1)], ["agents"])  # known: no error


def test_feature_keys():
    assert check_features([FeatureSpec("aiAgent", True), FeatureSpec("apiAccess", False)]) == [
        FeatureSpec("aiAgent", True),
        FeatureSpec("apiAccess", False),
    ]
    # only the keys the API reads: an unknown one would be stored and ignored
    assert "dedicatedSupport" in _fails("features[1].key", check_features,
                                        [FeatureSpec("aiAgent"), FeatureSpec("ai_agent")]).message
    _fails("features[0].key", check_features, [FeatureSpec("api_access")])
    _fails("features[1].key", check_features, [FeatureSpec("aiAgent"), FeatureSpec("aiAgent")])
    _fails("features[0].key", check_features, [FeatureSpec("ai agent")])
    _fails("features[0].key", check_features, [FeatureSpec("1st")])


# ------------------------------------------------------------------ coupon codes and shapes


@pytest.mark.parametrize("code,stored", [("welcome10", "WELCOME10"), (" Launch-2026 ", "LAUNCH-2026"), ("abc", "ABC")])
def test_coupon_codes_are_stored_upper_case(code, stored):
    assert normalize_coupon_code(code) == stored


@pytest.mark.parametrize("code", ["", "ab", "-abc", "a b c", "x" * 65, "diskon%", "prıme"])
def test_bad_coupon_codes_are_validation_errors_on_code(code):
    _fails("code", normalize_coupon_code, code)


@given(st.text(min_size=0, max_size=70))
def test_a_normalized_code_is_upper_case_ascii(text):
    try:
        code = normalize_coupon_code(text)
    except BillingError:
        return
    assert code == code.upper() and code.isascii() and 3 <= len(code) <= 64


def _terms(**overrides):
    values = dict(
        discount_type=DiscountKind.PERCENTAGE,
        percent_off=20,
        amount_off=None,
        currency=None,
        duration=CouponDuration.ONCE,
        duration_in_months=None,
    )
    values.update(overrides)
    return coupon_terms(**values)


@given(st.integers(min_value=1, max_value=100))
def test_every_percentage_from_1_to_100_is_accepted(percent):
    assert _terms(percent_off=percent).percent_off == percent


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=101)))
def test_percentages_outside_1_to_100_are_refused_on_percent_off(percent):
    _fails("percentOff", _terms, percent_off=percent)


def test_percentage_shape():
    _fails("percentOff", _terms, percent_off=None)
    _fails("amountOff", _terms, amount_off=Decimal("5"))
    _fails("currency", _terms, currency="USD")


def test_fixed_shape_needs_currency_and_a_positive_amount_that_fits_it():
    fixed = dict(discount_type=DiscountKind.FIXED, percent_off=None)
    terms = _terms(**fixed, amount_off=Decimal("50000"), currency="idr")
    assert (terms.amount_off, terms.currency) == (50000, "IDR")
    assert _terms(**fixed, amount_off=Decimal("5.50"), currency="USD").amount_off == 550
    _fails("currency", _terms, **fixed, amount_off=Decimal("5"), currency=None)
    _fails("currency", _terms, **fixed, amount_off=Decimal("5"), currency="XYZ")
    _fails("amountOff", _terms, **fixed, amount_off=None, currency="USD")
    _fails("amountOff", _terms, **fixed, amount_off=Decimal("0"), currency="USD")
    _fails("amountOff", _terms, **fixed, amount_off=Decimal("10.5"), currency="IDR")
    _fails("percentOff", _terms, discount_type=DiscountKind.FIXED, percent_off=10, amount_off=Decimal(5), currency="USD")


def test_duration_shape():
    assert _terms(duration=CouponDuration.REPEATING, duration_in_months=3).duration_in_months == 3
    _fails("durationInMonths", _terms, duration=CouponDuration.REPEATING, duration_in_months=None)
    _fails("durationInMonths", _terms, duration=CouponDuration.REPEATING, duration_in_months=0)
    _fails("durationInMonths", _terms, duration=CouponDuration.ONCE, duration_in_months=3)
    _fails("durationInMonths", _terms, duration=CouponDuration.FOREVER, duration_in_months=1)
    assert _terms(duration=CouponDuration.FOREVER).duration_in_months is None


def test_validity_window_and_max_uses():
    check_validity_window(NOW, NOW + timedelta(seconds=1))
    check_validity_window(None, NOW)
    _fails("validUntil", check_validity_window, NOW, NOW)
    _fails("validUntil", check_validity_window, NOW, NOW - timedelta(days=1))
    assert check_max_uses(None) is None
    assert check_max_uses(5, current_uses=5) == 5
    _fails("maxUses", check_max_uses, 0)
    _fails("maxUses", check_max_uses, 4, current_uses=5)


# ------------------------------------------------------------------ coupon refusal


def _state(**overrides) -> CouponState:
    values = dict(
        is_active=True,
        valid_from=None,
        valid_until=None,
        max_uses=None,
        current_uses=0,
        discount_type=DiscountKind.PERCENTAGE,
        currency=None,
        plan_ids=frozenset(),
    )
    values.update(overrides)
    return CouponState(**values)


def test_a_plain_coupon_is_usable_on_any_plan():
    assert coupon_refusal(_state(), now=NOW) is None
    assert coupon_refusal(_state(), now=NOW, plan_id=uuid.uuid4(), plan_currency="IDR") is None


def test_refusal_reasons():
    pro, team = uuid.uuid4(), uuid.uuid4()
    assert coupon_refusal(_state(is_active=False), now=NOW) is BillingErrorCode.COUPON_INVALID
    assert coupon_refusal(_state(valid_from=NOW + timedelta(seconds=1)), now=NOW) is BillingErrorCode.COUPON_INVALID
    assert coupon_refusal(_state(valid_from=NOW), now=NOW) is None
    assert coupon_refusal(_state(valid_until=NOW), now=NOW) is BillingErrorCode.COUPON_EXPIRED
    assert coupon_refusal(_state(valid_until=NOW + timedelta(seconds=1)), now=NOW) is None
    assert coupon_refusal(_state(max_uses=5, current_uses=5), now=NOW) is BillingErrorCode.COUPON_EXHAUSTED
    assert coupon_refusal(_state(max_uses=5, current_uses=4), now=NOW) is None
    restricted = _state(plan_ids=frozenset({pro}))
    assert coupon_refusal(restricted, now=NOW, plan_id=pro) is None
    assert coupon_refusal(restricted, now=NOW, plan_id=team) is BillingErrorCode.COUPON_NOT_APPLICABLE
    fixed_usd = _state(discount_type=DiscountKind.FIXED, currency="USD")
    assert coupon_refusal(fixed_usd, now=NOW, plan_id=pro, plan_currency="USD") is None
    assert (
        coupon_refusal(fixed_usd, now=NOW, plan_id=pro, plan_currency="IDR")
        is BillingErrorCode.COUPON_NOT_APPLICABLE
    )


@given(st.integers(min_value=1, max_value=1000), st.integers(min_value=0, max_value=1000))
def test_a_coupon_is_exhausted_exactly_when_its_uses_reach_the_cap(max_uses, current_uses):
    refusal = coupon_refusal(_state(max_uses=max_uses, current_uses=current_uses), now=NOW)
    assert (refusal is BillingErrorCode.COUPON_EXHAUSTED) == (current_uses >= max_uses)


def test_keep_is_a_falsy_singleton_apart_from_none():
    assert not KEEP and repr(KEEP) == "KEEP"
    assert was_given(None) and not was_given(KEEP)
