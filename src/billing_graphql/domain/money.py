"""Money: integer minor units beside an ISO 4217 code, computed as Decimal, never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billing_graphql.domain.errors import BillingError, BillingErrorCode

DEFAULT_CURRENCY = "IDR"  # plans' default currency; an organization's balance before it has one

# ISO 4217 exponents, except IDR: Indonesian processors settle whole rupiah.
EXPONENTS: dict[str, int] = {
    "JPY": 0,
    "KRW": 0,
    "IDR": 0,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "INR": 2,
    "SGD": 2,
    "MYR": 2,
    "KWD": 3,
    "BHD": 3,
}

SYMBOLS: dict[str, str] = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "INR": "₹",
    "JPY": "¥",
    "KRW": "₩",
    "IDR": "Rp",
    "SGD": "S$",
    "MYR": "RM",
}

_MAJOR_PATTERN = re.compile(r"^-?\d+(\.\d+)?$")


class UnknownCurrency(BillingError):
    def __init__(self, currency: object, field: str | None = "currency") -> None:
        super().__init__(
            BillingErrorCode.VALIDATION,
            f"Unknown currency {currency!r}; supported: {', '.join(sorted(EXPONENTS))}.",
            field=field,
        )


def normalize_currency(currency: str, field: str | None = "currency") -> str:
    code = (currency or "").strip().upper()
    if code not in EXPONENTS:
        raise UnknownCurrency(currency, field)
    return code


def exponent(currency: str) -> int:
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(currency) from None


def round_minor(value: Decimal) -> int:
    """Round an exact amount in minor units once, half up (away from zero on .5)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def major_to_minor_exact(amount: Decimal, currency: str, field: str | None = "amount") -> int:
    """Convert a major-unit Decimal that must fit the currency's exponent exactly."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise BillingError(
            BillingErrorCode.VALIDATION,
            f"{amount} has more decimal places than {currency} allows ({exponent(currency)}).",
            field=field,
        )
    return int(scaled)


def parse_major(text: str, currency: str, field: str | None = "amount") -> int:
    """Parse a major-unit string ("19.00", "299000") into minor units, strictly."""
    if not isinstance(text, str) or not _MAJOR_PATTERN.match(text.strip()):
        raise BillingError(
            BillingErrorCode.VALIDATION, f"{text!r} is not a decimal amount.", field=field
        )
    try:
        value = Decimal(text.strip())
    except InvalidOperation:  # pragma: no cover - the pattern already excludes these
        raise BillingError(BillingErrorCode.VALIDATION, f"{text!r} is not a decimal amount.", field=field) from None
    return major_to_minor_exact(value, currency, field)


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError(f"Money.minor must be an int, not {type(self.minor).__name__}")
        exponent(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str, field: str | None = "amount") -> Money:
        return cls(parse_major(text, currency, field), currency)

    @property
    def amount(self) -> Decimal:
        """The amount in major units, with exactly the currency's exponent of places."""
        places = exponent(self.currency)
        return Decimal(self.minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def times(self, factor: Decimal | int) -> Money:
        """Multiply by an exact factor, rounding once, half up."""
        return Money(round_minor(Decimal(self.minor) * Decimal(factor)), self.currency)

    def format(self) -> str:
        """``Rp 1,663,890``, ``$29.00``, ``-S$1.50``, ``KWD 1.234``: ``domain.language.format_money``
        in English, the one way amounts are written (the API's ``Money.formatted``, the PDFs)."""
        from billing_graphql.domain.language import format_money  # it builds on this module

        return format_money(self.minor, self.currency)

    def __str__(self) -> str:
        return self.format()
