"""Card numbers as a caller may write them (issue 19, item 5): 35 formats, each a Luhn-valid
13..19-digit number once NFKC-normalized and its separators (at most one letter each) removed."""

from __future__ import annotations

from billing_graphql.domain.cards import luhn_check_digit

VISA = "4111111111111111"
NINETEEN = "411111111111111111" + luhn_check_digit("411111111111111111")


def _digits(number: str, zero: int) -> str:
    """``number`` written with the digits of another script (``zero`` is the code of its 0)."""
    return "".join(chr(zero + int(digit)) for digit in number)


_SUPERSCRIPT = dict(zip("0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079", strict=True))
_CIRCLED = dict(zip("0123456789", "\u24ea\u2460\u2461\u2462\u2463\u2464\u2465\u2466\u2467\u2468", strict=True))


def _grouped(number: str, separator: str) -> str:
    return separator.join(number[i:i + 4] for i in range(0, len(number), 4))


CARD_FORMATS = [
    VISA,
    "4242424242424242",
    "5555555555554444",  # Mastercard
    "378282246310005",  # Amex, 15 digits
    "4222222222222",  # Visa, 13 digits
    NINETEEN,  # 19 digits
    _grouped(VISA, " "),
    _grouped(VISA, "-"),
    _grouped(VISA, "."),
    _grouped(VISA, "/"),
    _grouped(VISA, "_"),
    _grouped(VISA, "\u00a0"),  # no-break space
    _grouped(VISA, "\u3000"),  # ideographic space
    _grouped(VISA, "\u200b"),  # zero-width space
    _grouped(VISA, "\u2014"),  # em dash
    _grouped(VISA, "\u2022"),  # bullet
    "3782 822463 10005",
    "".join(_SUPERSCRIPT[d] for d in VISA),  # ⁴¹¹¹…
    "".join(_CIRCLED[d] for d in VISA),  # ④①①①…
    _digits(VISA, 0xFF10),  # full-width
    _digits(VISA, 0x2080),  # subscript
    _digits(VISA, 0x0660),  # Arabic-Indic
    _digits(VISA, 0x0966),  # Devanagari
    _grouped(VISA, "a"),  # 4111a1111a1111a1111
    _grouped(VISA, "x"),
    _grouped(VISA, " x "),
    _grouped(VISA, "\u30fc"),  # the long-vowel mark ー
    _grouped(VISA, "\uff70"),  # its half-width form
    _grouped("5555555555554444", "a"),
    VISA + "1234",  # a 20-digit run
    "9876" + VISA,  # a 20-digit run, the card at its end
    "card " + VISA + " exp 12/29",
    "pm_" + VISA,
    " ".join(VISA),  # one digit at a time
    "(4111) [1111] {1111} <1111>",
]
assert len(CARD_FORMATS) == 35 and len(set(CARD_FORMATS)) == 35
