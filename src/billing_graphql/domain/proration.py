"""Recurring prices and proration to the second, as Stripe prorates.

Recurring price of a subscription for one billing period (all in integer minor units):

    recurring = base + seats + add-ons
    base      = the plan's monthly or annual base price
    seats     = per-agent price x max(agents - included_agents, 0) x months in the period
                (the plan's per-agent price is a monthly price per agent above the agents the
                base price includes; an annual period bills twelve of them, with no annual
                discount: the plan's annual base price is where the annual discount lives)
    add-ons   = for each attached add-on: its monthly or annual price x quantity, and for a
                PER_AGENT add-on also x the agent count (every agent, none included)

Proration of a change at instant ``at`` inside the period [start, end):

    fraction = remaining seconds / period seconds = (end - at) / (end - start), exact, in [0, 1]
    credit   = old recurring x fraction                     (the unused part of what was paid)
    charge   = new recurring x fraction                     (same period kept), or
             = new recurring, the whole new period          (a change of billing period, which
                                                             starts a new period now)

Each of credit and charge is rounded once, half up, to whole minor units, so each is within
half a minor unit of its exact rational value. Seconds are whole seconds (sub-second parts of
the instant are dropped), so the same change at the same second always gives the same figures.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from billing_graphql.domain.periods import BillingPeriod, Period

ONE_SECOND = timedelta(seconds=1)
# How old the preview a change confirms may be (Stripe's ``proration_date``): the change is priced at
# the preview's instant, so what was shown as due is what is charged.
MAX_QUOTE_AGE = timedelta(hours=1)


def proration_instant(quoted_at: datetime | None, *, now: datetime, period: Period) -> datetime:
    """The instant a change is prorated at: ``now``, or ``quoted_at`` (the instant of the preview
    it confirms), which must not be in the future, at most ``MAX_QUOTE_AGE`` old, and not before the
    current period (a preview of a period since renewed is refused)."""
    from billing_graphql.domain.errors import validation

    if quoted_at is None:
        return now
    if quoted_at.tzinfo is None:
        raise validation("prorationDate must have a time zone.", "prorationDate")
    if quoted_at > now or now - quoted_at > MAX_QUOTE_AGE or quoted_at < period.start:
        raise validation("This preview is too old or not of the current period; preview the change again.",
                         "prorationDate")
    return quoted_at


def round_half_up(value: Fraction) -> int:
    """Round an exact rational to an integer once, halves away from zero (Decimal's ROUND_HALF_UP)."""
    magnitude = abs(value)
    rounded = (magnitude.numerator * 2 + magnitude.denominator) // (magnitude.denominator * 2)
    return rounded if value >= 0 else -rounded


class RecurringKind(enum.Enum):
    PLAN = "PLAN"
    SEATS = "SEATS"
    ADDON = "ADDON"


class Effective(enum.Enum):
    """When a plan change takes effect: now (prorated) or at the period's end (scheduled)."""

    IMMEDIATE = "IMMEDIATE"
    PERIOD_END = "PERIOD_END"


def billed_agents(gauge: int | None, stored: int) -> int:
    """The agent count seats are billed for: the organization's ``agents`` gauge when one was
    recorded, else the count the subscription last billed (``agent_count``)."""
    return stored if gauge is None else gauge


def cap_too_low(cap: int | None, minimum: int) -> bool:
    """A spending cap below what the current seats cost (its minimum) needs raising."""
    return cap is not None and cap < minimum


@dataclass(frozen=True, slots=True)
class PlanPrice:
    """What a plan charges per period."""

    name: str
    currency: str
    base_monthly: int
    base_annual: int
    per_agent: int  # monthly, per agent above ``included_agents``
    included_agents: int

    def base(self, billing_period: BillingPeriod) -> int:
        return self.base_monthly if billing_period is BillingPeriod.MONTHLY else self.base_annual

    def billable_agents(self, agents: int) -> int:
        return max(agents - self.included_agents, 0)

    def seats(self, billing_period: BillingPeriod, agents: int) -> int:
        return self.per_agent * self.billable_agents(agents) * billing_period.months


@dataclass(frozen=True, slots=True)
class AddonPrice:
    """An attached add-on: its prices, quantity, and whether it is billed per agent."""

    name: str
    monthly: int
    annual: int
    quantity: int = 1
    per_agent: bool = False

    def unit_price(self, billing_period: BillingPeriod) -> int:
        return self.monthly if billing_period is BillingPeriod.MONTHLY else self.annual

    def units(self, agents: int) -> int:
        return self.quantity * agents if self.per_agent else self.quantity

    def amount(self, billing_period: BillingPeriod, agents: int) -> int:
        return self.unit_price(billing_period) * self.units(agents)


@dataclass(frozen=True, slots=True)
class RecurringItem:
    kind: RecurringKind
    description: str
    quantity: int
    unit_amount: int
    amount: int
    detail: dict | None = None  # the description as structure (domain.invoices.LineDraft.detail)


@dataclass(frozen=True, slots=True)
class Recurring:
    """A subscription's recurring price for one period, item by item."""

    plan: PlanPrice
    billing_period: BillingPeriod
    agents: int
    addons: tuple[AddonPrice, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.agents < 0:
            raise ValueError("agents must be >= 0")

    @property
    def currency(self) -> str:
        return self.plan.currency

    def items(self) -> list[RecurringItem]:
        """Plan, seats (when there are billable agents) and add-ons, each with its amount."""
        period = self.billing_period
        label = "monthly" if period is BillingPeriod.MONTHLY else "annual"
        items = [
            RecurringItem(
                RecurringKind.PLAN, f"{self.plan.name} plan ({label})", 1,
                self.plan.base(period), self.plan.base(period),
                detail={"plan": self.plan.name, "period": period.value},
            )
        ]
        extra = self.plan.billable_agents(self.agents)
        if extra:
            unit = self.plan.per_agent * period.months
            items.append(
                RecurringItem(
                    RecurringKind.SEATS,
                    f"Agents above the {self.plan.included_agents} included ({label})",
                    extra, unit, unit * extra,
                    detail={"included": self.plan.included_agents, "period": period.value},
                )
            )
        for addon in self.addons:
            units = addon.units(self.agents)
            description = f"{addon.name} add-on ({label})"
            if addon.per_agent:
                description = f"{addon.name} add-on, per agent ({label})"
            items.append(
                RecurringItem(
                    RecurringKind.ADDON, description, units,
                    addon.unit_price(period), addon.amount(period, self.agents),
                    detail={"addon": addon.name, "per_agent": addon.per_agent, "period": period.value},
                )
            )
        return items

    @property
    def total(self) -> int:
        return sum(item.amount for item in self.items())

    @property
    def seats_amount(self) -> int:
        return self.plan.seats(self.billing_period, self.agents)


def remaining_fraction(period: Period, at: datetime) -> Fraction:
    """Remaining whole seconds of ``period`` after ``at`` over the period's seconds, in [0, 1]."""
    total = (period.end - period.start) // ONE_SECOND
    if at <= period.start:
        return Fraction(1)
    if at >= period.end:
        return Fraction(0)
    remaining = (period.end - at) // ONE_SECOND
    return Fraction(remaining, total)


@dataclass(frozen=True, slots=True)
class Proration:
    fraction: Fraction
    exact_credit: Fraction
    exact_charge: Fraction
    restarts_period: bool

    @property
    def credit(self) -> int:
        """>= 0: given back for the unused old price (``exact_credit`` rounded half up)."""
        return round_half_up(self.exact_credit)

    @property
    def charge(self) -> int:
        """>= 0: asked for the new price (``exact_charge`` rounded half up)."""
        return round_half_up(self.exact_charge)

    @property
    def net(self) -> int:
        """Positive: the customer owes it; negative: it becomes account credit."""
        return self.charge - self.credit


def prorate(
    old_recurring: int, new_recurring: int, period: Period, at: datetime, *, restart_period: bool = False
) -> Proration:
    """Credit the unused part of ``old_recurring``, charge ``new_recurring`` for the rest.

    With ``restart_period`` (a change of billing period) the new price is charged for a whole
    new period starting at ``at``.
    """
    if old_recurring < 0 or new_recurring < 0:
        raise ValueError("recurring prices are never negative")
    fraction = remaining_fraction(period, at)
    exact_credit = old_recurring * fraction
    exact_charge = Fraction(new_recurring) if restart_period else new_recurring * fraction
    return Proration(
        fraction=fraction,
        exact_credit=exact_credit,
        exact_charge=exact_charge,
        restarts_period=restart_period,
    )
