"""Catalog rules: names, slugs, codes, prices that fit their currency, limits, features, coupons.

Pure functions over plain values. Each rule raises ``BillingError(VALIDATION, ..., field)`` with
the GraphQL input field it concerns, so a client can show it beside the right control.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from billing_graphql.domain.errors import BillingErrorCode, validation
from billing_graphql.domain.invoices import DiscountKind
from billing_graphql.domain.money import exponent, major_to_minor_exact, normalize_currency

SLUG_PATTERN: Final = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 100
NAME_MAX = 200
DESCRIPTION_MAX = 5000
METRIC_CODE_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*$")
METRIC_CODE_MAX = 64
UNIT_MAX = 64
FEATURE_KEY_PATTERN: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
FEATURE_KEY_MAX = 64
# The feature flags the API knows (Plan.aiAgent, Plan.apiAccess, Plan.dedicatedSupport, entitlements):
# a key outside this list would be stored and never read, so it is refused.
FEATURE_KEYS: Final = ("aiAgent", "apiAccess", "dedicatedSupport")
COUPON_CODE_PATTERN: Final = re.compile(r"^[A-Z0-9][A-Z0-9_-]*$")
COUPON_CODE_MIN = 3
COUPON_CODE_MAX = 64
# Limits and counts travel as GraphQL Int (32-bit signed).
INT_MAX: Final = 2**31 - 1
# Largest amount in minor units a price may have: far inside BIGINT, and inside what any
# processor accepts (10^15 minor units is 10 trillion USD).
MAX_MINOR: Final = 10**15
TRIAL_DAYS_MAX = 730
REPEATING_MONTHS_MAX = 120
ANNUAL_MONTHS_DEFAULT = 10  # annual price defaults to ten months: two months free


class _Keep:
    """The value of a patch field that was left out: keep what is stored."""

    _instance: _Keep | None = None

    def __new__(cls) -> _Keep:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "KEEP"

    def __bool__(self) -> bool:
        return False


KEEP: Final = _Keep()


def given(value: Any) -> bool:
    """True when a patch field was given (possibly as None)."""
    return value is not KEEP


# ---------------------------------------------------------------- names, slugs, codes


def bounded_text(value: str | None, label: str, field: str, max_length: int, *, required: bool = False) -> str:
    """``value`` stripped (None is empty); VALIDATION on ``field`` when it is longer than
    ``max_length``, or empty and ``required``."""
    text = (value or "").strip()
    if required and not text:
        raise validation(f"{label} is required.", field)
    if len(text) > max_length:
        raise validation(f"{label} is at most {max_length} characters.", field)
    return text


def clean_name(name: str | None, field: str = "name", *, max_length: int = NAME_MAX) -> str:
    return bounded_text(name, "Name", field, max_length, required=True)


def clean_description(description: str | None, field: str = "description") -> str:
    return bounded_text(description, "Description", field, DESCRIPTION_MAX)


def check_slug(slug: str | None, field: str = "slug") -> str:
    """A slug: lower-case letters and digits in words joined by single hyphens."""
    text = slug or ""
    if not text:
        raise validation("Slug is required.", field)
    if len(text) > SLUG_MAX:
        raise validation(f"Slug is at most {SLUG_MAX} characters.", field)
    if not SLUG_PATTERN.fullmatch(text):
        raise validation(
            f"Slug {text!r} must be lower-case letters, digits and single hyphens between them (e.g. 'pro-annual').",
            field,
        )
    return text


def check_metric_code(code: str | None, field: str = "code") -> str:
    text = code or ""
    if not text or len(text) > METRIC_CODE_MAX or not METRIC_CODE_PATTERN.fullmatch(text):
        raise validation(
            f"Metric code {text!r} must start with a lower-case letter and hold lower-case letters, digits and"
            f" underscores (at most {METRIC_CODE_MAX}).",
            field,
        )
    return text


def check_unit(unit: str | None, field: str = "unit") -> str:
    return bounded_text(unit, "Unit", field, UNIT_MAX)


def normalize_coupon_code(code: str | None, field: str = "code") -> str:
    """Coupon codes are case-insensitive: stored and compared upper-case."""
    text = (code or "").strip()
    # ASCII first: str.upper() maps some other letters onto ASCII ones ('ı' -> 'I').
    text = text.upper() if text.isascii() else ""
    if not (COUPON_CODE_MIN <= len(text) <= COUPON_CODE_MAX) or not COUPON_CODE_PATTERN.fullmatch(text):
        raise validation(
            f"Coupon code must be {COUPON_CODE_MIN} to {COUPON_CODE_MAX} letters, digits, hyphens or underscores,"
            " starting with a letter or digit.",
            field,
        )
    return text


# ---------------------------------------------------------------- numbers and prices


def check_int_range(value: int | None, field: str, *, low: int, high: int, what: str) -> int:
    if value is None:
        raise validation(f"{what} is required.", field)
    if not low <= value <= high:
        raise validation(f"{what} must be between {low} and {high}.", field)
    return value


def price_minor(amount: Decimal | None, currency: str, field: str) -> int:
    """A price in major units (a Decimal) as minor units of ``currency``.

    It must not be negative, must fit the currency's exponent exactly ("10.5" is not a rupiah
    amount) and stay below ``MAX_MINOR``.
    """
    if amount is None:
        raise validation("A price is required.", field)
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise validation(f"{amount!r} is not a decimal amount.", field)
    if amount < 0:
        raise validation("A price cannot be negative.", field)
    minor = major_to_minor_exact(amount, currency, field)
    if minor > MAX_MINOR:
        largest = format(Decimal(MAX_MINOR).scaleb(-exponent(currency)), "f")
        raise validation(f"A price is at most {largest} {currency}.", field)
    return minor


def positive_amount_minor(amount: Decimal | None, currency: str, field: str) -> int:
    """A discount amount: like a price, but strictly positive."""
    minor = price_minor(amount, currency, field)
    if minor == 0:
        raise validation("The amount must be more than zero.", field)
    return minor


def annual_price_default(monthly_minor: int) -> int:
    return monthly_minor * ANNUAL_MONTHS_DEFAULT


def check_currency(currency: str | None, field: str = "currency") -> str:
    return normalize_currency(currency or "", field)


# ---------------------------------------------------------------- limits and features


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A limit on a metric, by its code; ``limit`` None is unlimited."""

    metric: str
    limit: int | None


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    key: str
    enabled: bool = True


def check_limits(limits: Sequence[LimitSpec], field: str = "limits") -> list[LimitSpec]:
    """Limits given as a list: each metric once, each limit null (unlimited) or 0..INT_MAX."""
    seen: set[str] = set()
    cleaned: list[LimitSpec] = []
    for index, spec in enumerate(limits):
        code = (spec.metric or "").strip()
        if not code:
            raise validation("A metric code is required.", f"{field}[{index}].metric")
        if code in seen:
            raise validation(f"Metric {code!r} is given twice.", f"{field}[{index}].metric")
        seen.add(code)
        if spec.limit is not None and not 0 <= spec.limit <= INT_MAX:
            raise validation(f"A limit is null (unlimited) or between 0 and {INT_MAX}.", f"{field}[{index}].limit")
        cleaned.append(LimitSpec(code, spec.limit))
    return cleaned


def unknown_metric(limits: Sequence[LimitSpec], known: Iterable[str], field: str = "limits") -> None:
    """Raise VALIDATION for the first limit whose metric is not in the catalog."""
    known_codes = set(known)
    for index, spec in enumerate(limits):
        if spec.metric not in known_codes:
            raise validation(
                f"Unknown metric {spec.metric!r}; known: {', '.join(sorted(known_codes))}.",
                f"{field}[{index}].metric",
            )


def check_features(features: Sequence[FeatureSpec], field: str = "features") -> list[FeatureSpec]:
    seen: set[str] = set()
    cleaned: list[FeatureSpec] = []
    for index, spec in enumerate(features):
        key = (spec.key or "").strip()
        if not key or len(key) > FEATURE_KEY_MAX or not FEATURE_KEY_PATTERN.fullmatch(key):
            raise validation(
                f"Feature key {key!r} must start with a letter and hold letters, digits and underscores"
                f" (at most {FEATURE_KEY_MAX}).",
                f"{field}[{index}].key",
            )
        if key not in FEATURE_KEYS:
            raise validation(f"Unknown feature {key!r}; known: {', '.join(FEATURE_KEYS)}.", f"{field}[{index}].key")
        if key in seen:
            raise validation(f"Feature {key!r} is given twice.", f"{field}[{index}].key")
        seen.add(key)
        cleaned.append(FeatureSpec(key, bool(spec.enabled)))
    return cleaned


# ---------------------------------------------------------------- coupons


class CouponDuration(enum.Enum):
    ONCE = "ONCE"
    REPEATING = "REPEATING"
    FOREVER = "FOREVER"


@dataclass(frozen=True, slots=True)
class CouponTerms:
    """A coupon's discount and duration, checked: exactly one of percent/amount is set."""

    discount_type: DiscountKind
    percent_off: int | None
    amount_off: int | None  # minor units of ``currency``
    currency: str | None
    duration: CouponDuration
    duration_in_months: int | None


def coupon_terms(
    *,
    discount_type: DiscountKind,
    percent_off: int | None,
    amount_off: Decimal | None,
    currency: str | None,
    duration: CouponDuration,
    duration_in_months: int | None,
) -> CouponTerms:
    """Check a coupon's shape. PERCENTAGE takes ``percentOff`` 1..100 and nothing else;
    FIXED takes ``amountOff`` (> 0, fitting the currency) and ``currency``. REPEATING takes
    ``durationInMonths`` (1..120); ONCE and FOREVER take none."""
    if discount_type is DiscountKind.PERCENTAGE:
        if percent_off is None:
            raise validation("A PERCENTAGE coupon needs percentOff (1 to 100).", "percentOff")
        if not 1 <= percent_off <= 100:
            raise validation("percentOff must be between 1 and 100.", "percentOff")
        if amount_off is not None:
            raise validation("A PERCENTAGE coupon takes no amountOff.", "amountOff")
        if currency is not None:
            raise validation("A PERCENTAGE coupon takes no currency.", "currency")
        amount_minor = None
        code = None
    else:
        if percent_off is not None:
            raise validation("A FIXED coupon takes no percentOff.", "percentOff")
        if currency is None or not currency.strip():
            raise validation("A FIXED coupon needs a currency.", "currency")
        code = check_currency(currency)
        if amount_off is None:
            raise validation("A FIXED coupon needs amountOff.", "amountOff")
        amount_minor = positive_amount_minor(amount_off, code, "amountOff")
    if duration is CouponDuration.REPEATING:
        if duration_in_months is None:
            raise validation("A REPEATING coupon needs durationInMonths.", "durationInMonths")
        check_int_range(
            duration_in_months, "durationInMonths", low=1, high=REPEATING_MONTHS_MAX, what="durationInMonths"
        )
    elif duration_in_months is not None:
        raise validation(f"A {duration.value} coupon takes no durationInMonths.", "durationInMonths")
    return CouponTerms(discount_type, percent_off, amount_minor, code, duration, duration_in_months)


def check_validity_window(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise validation("validUntil must be after validFrom.", "validUntil")


def check_max_uses(max_uses: int | None, current_uses: int = 0) -> int | None:
    if max_uses is None:
        return None
    if not 1 <= max_uses <= INT_MAX:
        raise validation(f"maxUses is null (no cap) or between 1 and {INT_MAX}.", "maxUses")
    if max_uses < current_uses:
        raise validation(f"maxUses cannot be below the {current_uses} redemptions already made.", "maxUses")
    return max_uses


@dataclass(frozen=True, slots=True)
class CouponState:
    """What decides whether a coupon can be redeemed now, for a plan."""

    is_active: bool
    valid_from: datetime | None
    valid_until: datetime | None
    max_uses: int | None
    current_uses: int
    discount_type: DiscountKind
    currency: str | None
    plan_ids: frozenset[uuid.UUID]  # empty: every plan


def coupon_refusal(
    coupon: CouponState, *, now: datetime, plan_id: uuid.UUID | None = None, plan_currency: str | None = None
) -> BillingErrorCode | None:
    """Why a coupon cannot be redeemed now (for ``plan_id``), or None when it can.

    Inactive and not-yet-valid coupons are COUPON_INVALID, exactly as unknown codes are, so
    that a tenant cannot tell a hidden coupon from none. Past ``validUntil``: COUPON_EXPIRED;
    all uses taken: COUPON_EXHAUSTED; restricted to other plans, or FIXED in another currency
    than the plan's: COUPON_NOT_APPLICABLE.
    """
    if not coupon.is_active:
        return BillingErrorCode.COUPON_INVALID
    if coupon.valid_from is not None and now < coupon.valid_from:
        return BillingErrorCode.COUPON_INVALID
    if coupon.valid_until is not None and now >= coupon.valid_until:
        return BillingErrorCode.COUPON_EXPIRED
    if coupon.max_uses is not None and coupon.current_uses >= coupon.max_uses:
        return BillingErrorCode.COUPON_EXHAUSTED
    if plan_id is not None:
        if coupon.plan_ids and plan_id not in coupon.plan_ids:
            return BillingErrorCode.COUPON_NOT_APPLICABLE
        if (
            coupon.discount_type is DiscountKind.FIXED
            and plan_currency is not None
            and coupon.currency != plan_currency
        ):
            return BillingErrorCode.COUPON_NOT_APPLICABLE
    return None


REFUSAL_MESSAGES: Final[dict[BillingErrorCode, str]] = {
    BillingErrorCode.COUPON_INVALID: "This coupon code is not valid.",
    BillingErrorCode.COUPON_EXPIRED: "This coupon has expired.",
    BillingErrorCode.COUPON_EXHAUSTED: "This coupon has been used up.",
    BillingErrorCode.COUPON_NOT_APPLICABLE: "This coupon does not apply to this plan.",
    BillingErrorCode.PLAN_NOT_FOUND: "Plan not found.",
}
