"""Tax: a rate on a share of the price, computed exactly and rounded once.

    tax = round_half_up(taxable x rate x base_numerator / base_denominator)

where ``taxable`` is the amount after discounts (discounts apply before tax). PPN for IDR is
12% on a base of 11/12 of the price (PMK 131/2024), i.e. 11% effective: 150000 -> 16500.
A negative taxable amount (a credit) gives the negative of the tax on its magnitude, so a credit
hands back exactly the tax a charge of the same size would have taken.

The base the rate applies to (Indonesian invoices' DPP, *Dasar Pengenaan Pajak*; "DPP Nilai
Lain 11/12" for PPN) is ``taxable x base_numerator / base_denominator``. Documents state it
rounded once to the currency's unit (``tax_base``); the tax is the rate on the exact base,
rounded once, so the rate times the stated base may differ from the tax by less than one unit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing_graphql.domain.proration import round_half_up


@dataclass(frozen=True, slots=True)
class TaxRule:
    name: str
    rate: Decimal  # 0.12 for 12%
    base_numerator: int = 1
    base_denominator: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal):
            raise TypeError("rate must be a Decimal")
        if self.rate < 0:
            raise ValueError("a tax rate is never negative")
        if self.base_numerator <= 0 or self.base_denominator <= 0:
            raise ValueError("the taxable base must be a positive fraction")

    @property
    def exact_factor(self) -> Fraction:
        return _exact_factor(self.rate, self.base_numerator, self.base_denominator)

    @property
    def effective_rate(self) -> Decimal:
        """rate x base, for display (PPN: 0.11). Exact when the base divides out, else 10 places."""
        factor = self.exact_factor
        exact = Decimal(factor.numerator) / Decimal(factor.denominator)
        return exact.quantize(Decimal("1e-10")).normalize()

    def tax_on(self, taxable: int) -> int:
        """The tax on ``taxable`` minor units, rounded once, half up (away from zero)."""
        return round_half_up(taxable * self.exact_factor)

    def base_on(self, taxable: int) -> int:
        """The base (DPP) of ``taxable`` minor units, as documents state it."""
        return tax_base(taxable, self.base_numerator, self.base_denominator)


@functools.lru_cache(maxsize=256)  # a few rules, each asked on every invoice
def _exact_factor(rate: Decimal, base_numerator: int, base_denominator: int) -> Fraction:
    return Fraction(rate) * Fraction(base_numerator, base_denominator)


def tax_on(taxable: int, rule: TaxRule | None) -> int:
    """Tax under ``rule``; no rule means no tax."""
    return 0 if rule is None else rule.tax_on(taxable)


def tax_base(taxable: int, base_numerator: int, base_denominator: int) -> int:
    """The base the rate applies to (the DPP): ``taxable x numerator / denominator``, rounded once,
    half up (away from zero). PPN: 1,080,000 -> 990,000."""
    return round_half_up(Fraction(taxable * base_numerator, base_denominator))


def in_proportion(value: int, part: int, whole: int) -> int:
    """``value x part / whole`` rounded once, half up: the share of an invoice's tax (or DPP) that a
    payment or refund of ``part`` of its ``whole`` total carries. A zero whole has no share."""
    if whole == 0:
        return 0
    return round_half_up(Fraction(value * part, whole))
