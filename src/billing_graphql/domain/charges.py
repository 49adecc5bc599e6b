"""Usage charges: the price of a metric's quantity in a billing period (pure).

A charge prices one metric of a plan with one of four models (as Lago's charge models):

- STANDARD: every billable unit at ``unit_amount``;
- PACKAGE: ``unit_amount`` for each started package of ``package_size`` units (12 units in
  packages of 10 are 2 packages);
- GRADUATED: each tier prices its own units (units 1..100 at the first tier's price, 101..1000
  at the second's, ...), plus each reached tier's ``flat_amount``;
- VOLUME: every unit at the price of the tier the total reaches, plus that tier's flat amount.

``included_units`` are free: they are taken off the quantity before pricing (None: every unit is
included, i.e. nothing is billed, as a plan with unlimited messages has no overage). Included
units are per billing month: a period holding n billing months (``domain.overage.usage_month_keys``:
a monthly period one, an annual one twelve) includes n times as many (``included_in_period``).

Amounts are exact ``Decimal`` minor units of the plan's currency (a unit may cost a fraction of a
minor unit: Rp 0.5 per API call). Tier amounts stay exact; the line's amount is their sum rounded
once, half up (``domain.money.round_minor``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing_graphql.domain.errors import validation
from billing_graphql.domain.money import exponent, round_minor

# A unit amount carries at most six places of a minor unit (as prorated invoice lines do).
UNIT_PLACES = 6
MAX_MINOR_AMOUNT = Decimal(10) ** 15
MAX_UNITS = 2**63 - 1


class ChargeModel(enum.Enum):
    STANDARD = "STANDARD"
    GRADUATED = "GRADUATED"
    VOLUME = "VOLUME"
    PACKAGE = "PACKAGE"


@dataclass(frozen=True, slots=True)
class Tier:
    """Units up to ``up_to`` (inclusive; None: no upper bound) at ``unit_amount`` each, plus
    ``flat_amount`` once when the tier is reached (minor units, exact)."""

    up_to: int | None
    unit_amount: Decimal
    flat_amount: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Charge:
    model: ChargeModel
    included_units: int | None = 0  # None: every unit included
    unit_amount: Decimal = Decimal(0)  # STANDARD, PACKAGE (minor units, exact)
    package_size: int | None = None  # PACKAGE
    tiers: tuple[Tier, ...] = ()  # GRADUATED, VOLUME


@dataclass(frozen=True, slots=True)
class TierUse:
    """How many units one tier priced, and for how much (exact minor units)."""

    from_unit: int
    to_unit: int | None
    units: int
    unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Priced:
    """A charge applied to a quantity: the billable units, the exact amount, the amount rounded
    once (``amount``), and the tiers used (GRADUATED, VOLUME)."""

    quantity: int
    billable: int
    exact: Decimal
    amount: int
    tiers: tuple[TierUse, ...] = ()


def included_in_period(included_units: int | None, months: int) -> int | None:
    """Free units of a period holding ``months`` billing months (at least one)."""
    return None if included_units is None else included_units * max(months, 1)


def _graduated(units: int, tiers: Sequence[Tier]) -> tuple[TierUse, ...]:
    used: list[TierUse] = []
    lower = 0  # units priced by the tiers before this one
    for tier in tiers:
        if units <= lower:
            break
        upper = units if tier.up_to is None else min(units, tier.up_to)
        count = upper - lower
        used.append(TierUse(lower + 1, tier.up_to, count, tier.unit_amount, tier.flat_amount,
                            tier.unit_amount * count + tier.flat_amount))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return tuple(used)


def _volume(units: int, tiers: Sequence[Tier]) -> tuple[TierUse, ...]:
    if units == 0:
        return ()
    lower = 0
    for tier in tiers:
        if tier.up_to is None or units <= tier.up_to:
            return (TierUse(lower + 1, tier.up_to, units, tier.unit_amount, tier.flat_amount,
                            tier.unit_amount * units + tier.flat_amount),)
        lower = tier.up_to
    raise ValueError("the last tier has no upper bound")  # check_tiers guarantees it


def price(charge: Charge, quantity: int, *, included: int | None = None) -> Priced:
    """Price ``quantity`` units (the period's, never negative) under ``charge``; ``included``
    overrides ``charge.included_units`` (the period's free units, ``included_in_period``)."""
    if quantity < 0:
        raise ValueError("a quantity is never negative")
    free = charge.included_units if included is None else included
    if charge.included_units is None:
        free = None
    billable = 0 if free is None else max(quantity - free, 0)
    tiers: tuple[TierUse, ...] = ()
    if charge.model is ChargeModel.STANDARD:
        exact = charge.unit_amount * billable
    elif charge.model is ChargeModel.PACKAGE:
        size = charge.package_size or 1
        exact = charge.unit_amount * (-(-billable // size))
    elif charge.model is ChargeModel.GRADUATED:
        tiers = _graduated(billable, charge.tiers)
        exact = sum((tier.amount for tier in tiers), Decimal(0))
    else:
        tiers = _volume(billable, charge.tiers)
        exact = sum((tier.amount for tier in tiers), Decimal(0))
    return Priced(quantity, billable, exact, round_minor(exact), tiers)


# ---- checking a charge as given -------------------------------------------------------------


def amount_minor(amount: Decimal | None, currency: str, field: str, *, required: bool = True) -> Decimal:
    """A charge amount in major units of ``currency`` as exact minor units: a finite,
    non-negative decimal with at most the currency's places plus six."""
    if amount is None:
        if required:
            raise validation("An amount is required.", field)
        return Decimal(0)
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise validation(f"{amount!r} is not a decimal amount.", field)
    if amount < 0:
        raise validation("An amount cannot be negative.", field)
    minor = amount.scaleb(exponent(currency))
    places = exponent(currency) + UNIT_PLACES
    if minor != minor.quantize(Decimal(1).scaleb(-UNIT_PLACES)):
        raise validation(f"{amount} has more than {places} decimal places for {currency}.", field)
    if minor > MAX_MINOR_AMOUNT:
        raise validation("The amount is too large.", field)
    return plain(minor)


def plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and never in exponent form ("100", "0.15", not "1E+2")."""
    return Decimal(format(value.normalize(), "f")) if value else Decimal(0)


def check_tiers(tiers: Sequence[Tier], field: str) -> tuple[Tier, ...]:
    """Tiers strictly increasing in ``up_to`` (each at least 1), the last one unbounded."""
    if not tiers:
        raise validation("GRADUATED and VOLUME charges need at least one tier.", field)
    previous = 0
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if tier.up_to is None:
            if not last:
                raise validation("Only the last tier has no upper bound (upTo null).", f"{field}[{index}].upTo")
            continue
        if last:
            raise validation("The last tier has no upper bound: its upTo is null.", f"{field}[{index}].upTo")
        if not previous < tier.up_to <= MAX_UNITS:
            raise validation(f"Tiers are strictly increasing: upTo must be more than {previous}.",
                             f"{field}[{index}].upTo")
        previous = tier.up_to
    return tuple(tiers)


def check_charge(charge: Charge, field: str) -> Charge:
    """The model's own fields given, the others left out; VALIDATION with the field otherwise."""
    if charge.included_units is not None and not 0 <= charge.included_units <= MAX_UNITS:
        raise validation("includedUnits is at least 0.", f"{field}.includedUnits")
    tiered = charge.model in (ChargeModel.GRADUATED, ChargeModel.VOLUME)
    if tiered:
        check_tiers(charge.tiers, f"{field}.tiers")
        if charge.unit_amount:
            raise validation(f"A {charge.model.value} charge prices its tiers: leave unitAmount out.",
                             f"{field}.unitAmount")
    elif charge.tiers:
        raise validation(f"A {charge.model.value} charge takes no tiers.", f"{field}.tiers")
    if charge.model is ChargeModel.PACKAGE:
        if charge.package_size is None or not 1 <= charge.package_size <= MAX_UNITS:
            raise validation("A PACKAGE charge needs packageSize of at least 1.", f"{field}.packageSize")
    elif charge.package_size is not None:
        raise validation(f"A {charge.model.value} charge takes no packageSize.", f"{field}.packageSize")
    return charge


# ---- a plan's charges as given (createPlan, updatePlan) -------------------------------------


@dataclass(frozen=True, slots=True)
class TierSpec:
    """A tier as given: amounts in major units of the plan's currency."""

    up_to: int | None
    unit_amount: Decimal | None = None
    flat_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ChargeSpec:
    """A charge as given: the metric by code, amounts in major units of the plan's currency."""

    metric: str
    model: ChargeModel
    included_units: int = 0
    unit_amount: Decimal | None = None
    package_size: int | None = None
    tiers: Sequence[TierSpec] = ()


@dataclass(frozen=True, slots=True)
class MetricCharge:
    """A checked charge on the metric ``metric`` (a code), amounts in exact minor units."""

    metric: str
    charge: Charge


def checked_charges(specs: Sequence[ChargeSpec], currency: str, field: str = "charges") -> list[MetricCharge]:
    """Each metric at most once; amounts non-negative decimals of ``currency``; tiers strictly
    increasing with the last unbounded; each model's own fields (``check_charge``)."""
    seen: set[str] = set()
    checked: list[MetricCharge] = []
    for index, spec in enumerate(specs):
        at = f"{field}[{index}]"
        code = (spec.metric or "").strip()
        if not code:
            raise validation("A metric code is required.", f"{at}.metric")
        if code in seen:
            raise validation(f"Metric {code!r} has a charge already: one charge per metric.", f"{at}.metric")
        seen.add(code)
        tiers = tuple(
            Tier(tier.up_to, amount_minor(tier.unit_amount, currency, f"{at}.tiers[{position}].unitAmount"),
                 amount_minor(tier.flat_amount, currency, f"{at}.tiers[{position}].flatAmount", required=False))
            for position, tier in enumerate(spec.tiers)
        )
        tiered = spec.model in (ChargeModel.GRADUATED, ChargeModel.VOLUME)
        unit = (amount_minor(spec.unit_amount, currency, f"{at}.unitAmount", required=not tiered)
                if spec.unit_amount is not None or not tiered else Decimal(0))
        if tiered and spec.unit_amount is not None:
            raise validation(f"A {spec.model.value} charge prices its tiers: leave unitAmount out.", f"{at}.unitAmount")
        charge = check_charge(Charge(spec.model, spec.included_units, unit, spec.package_size, tiers), at)
        checked.append(MetricCharge(code, charge))
    return checked


def standard_charge(unit_amount: int, included_units: int | None) -> Charge:
    """``overageMessagePrice`` as a charge: STANDARD on messages, the messages limit included."""
    return Charge(ChargeModel.STANDARD, included_units, Decimal(unit_amount))


def overage_message_price(charge: Charge | None) -> int:
    """``overageMessagePrice`` read from the messages charge: its unit amount when it is STANDARD
    and a whole number of minor units, else 0 (a tiered price is no single unit price)."""
    if charge is None or charge.model is not ChargeModel.STANDARD:
        return 0
    if charge.unit_amount != charge.unit_amount.to_integral_value():
        return 0
    return int(charge.unit_amount)


OVERAGE_METRIC = "messages"
