"""Card numbers: the Luhn check, and spotting text that looks like a card number.

A payment method holds a processor's token, never a card number (PAN). Any free text we are
about to store (a token, a label, a brand) is refused when it contains something that looks
like one: any run of 13 to 19 digits that passes Luhn once the separators between its digit
groups are removed.

A separator is any run of characters that are neither letters nor digits: spaces, tabs,
newlines, dashes, dots, slashes, underscores, colons, plus signs and other punctuation or
symbols ("4111.1111.1111.1111", "4111/1111/1111/1111", "4111\t1111 ..."). Letters are not
separators, so prose around a short number ("Visa ending 4242") is left alone.

What counts as a candidate:
- a run of digits with no separators: the whole run, when it has 13..19 digits (a longer
  unseparated run, such as a 20-digit virtual account number, is not a card);
- digit groups joined by separators: every run of consecutive groups with 13..19 digits in
  total, so that a card number followed by another group ("4242 4242 4242 4242 12 29") is
  still found.

The functions never echo the text they inspect; callers must not either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MIN_CARD_DIGITS = 13
MAX_CARD_DIGITS = 19

# Digit groups joined by separators (runs of neither letters nor digits: [\W_] in Unicode).
# The two classes are disjoint, so the pattern cannot backtrack badly.
_GROUPED_DIGITS = re.compile(r"\d+(?:[\W_]+\d+)*")
_SEPARATOR = re.compile(r"[\W_]+")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only 0-9, at least two) passes the Luhn mod-10 check."""
    if len(digits) < 2 or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload + digit`` pass Luhn."""
    if not payload.isascii() or not payload.isdigit():
        raise ValueError("payload must be ASCII digits")
    for candidate in "0123456789":
        if luhn_valid(payload + candidate):
            return candidate
    raise AssertionError("unreachable: one of ten digits always completes a Luhn number")


def _candidates(text: str) -> Iterator[str]:
    for match in _GROUPED_DIGITS.finditer(text):
        groups = _SEPARATOR.split(match.group(0))
        if len(groups) == 1:
            if MIN_CARD_DIGITS <= len(groups[0]) <= MAX_CARD_DIGITS:
                yield groups[0]
            continue
        for start in range(len(groups)):
            joined = ""
            for group in groups[start:]:
                joined += group
                if len(joined) > MAX_CARD_DIGITS:
                    break
                if len(joined) >= MIN_CARD_DIGITS:
                    yield joined


def contains_card_number(text: str | None) -> bool:
    """True when ``text`` contains something that looks like a payment card number."""
    if not text:
        return False
    # Full-width and other Unicode decimal digits would slip past an ASCII check; fold them.
    if not text.isascii():
        text = "".join(str(int(char)) if char.isdecimal() else char for char in text)
    return any(luhn_valid(candidate) for candidate in _candidates(text))
