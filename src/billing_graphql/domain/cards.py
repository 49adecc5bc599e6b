"""Card numbers: the Luhn check, and spotting text that looks like a card number.

A payment method holds a processor's token, never a card number (PAN); free text a caller
sends (a label, a reason, an address, a description) must not hold one either. Text is
refused when it contains something that looks like one: a run of 13 to 19 digits that
passes Luhn once the separators between its digit groups are removed.

How text is read (issue 19, item 5):
- it is normalized with NFKC first, so superscript, subscript, circled and full-width digits
  are digits ("⁴¹¹¹", "④①①①", "４１１１"), and any other Unicode decimal digit counts as its
  ASCII digit;
- a separator between digit groups is any run of characters that are neither letters nor
  digits (spaces, dashes, dots, slashes, underscores, punctuation, symbols, invisible
  characters) with at most ONE letter in it: "4111a1111a1111a1111", "4111 x 1111 ...", and
  the long-vowel mark "ー" (a letter) are separators; two letters are not, so prose around a
  short number ("Visa ending 4242", "BCA VA 8077 0812") is left alone;
- candidates: digit groups joined by separators, every run of consecutive groups with 13..19
  digits in total (so a number followed by another group, "4242 4242 4242 4242 12 29", is still
  found), and, in a single group of 20 or more digits (a card glued to other digits), every
  window of 13..19 digits. A 20-digit run therefore almost always counts as a card: long
  numbers belong in the fields that have their own format (see ``graphql.input_validation``).
- canonical UUIDs (8-4-4-4-12 hexadecimal) are skipped: their digits around single hex letters
  would otherwise read as a long number.

The functions never echo the text they inspect; callers must not either.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

MIN_CARD_DIGITS = 13
MAX_CARD_DIGITS = 19

# A digit run, one letter, or a run of neither (the three are disjoint: no backtracking).
_TOKENS = re.compile(r"(\d+)|([^\W\d_])|[\W_]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ASCII_DIGITS = str.maketrans("", "", "0123456789")


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


def _chains(text: str) -> Iterator[list[str]]:
    """Digit groups joined by separators (at most one letter between two groups)."""
    chain: list[str] = []
    letters = 0
    for match in _TOKENS.finditer(text):
        digits, letter = match.group(1), match.group(2)
        if digits is not None:
            if chain and letters > 1:
                yield chain
                chain = []
            chain.append(digits)
            letters = 0
        elif letter is not None:
            letters += 1
    if chain:
        yield chain


def _windows(run: str) -> Iterator[str]:
    for size in range(MIN_CARD_DIGITS, MAX_CARD_DIGITS + 1):
        for start in range(len(run) - size + 1):
            yield run[start:start + size]


def _candidates(text: str) -> Iterator[str]:
    for groups in _chains(text):
        for group in groups:
            if len(group) > MAX_CARD_DIGITS:
                yield from _windows(group)  # a card glued to other digits
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


def normalized(text: str) -> str:
    """NFKC, then every Unicode decimal digit as its ASCII digit."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() else char for char in text)


def contains_card_number(text: str | None) -> bool:
    """True when ``text`` contains something that looks like a payment card number."""
    if not text:
        return False
    text = normalized(text)
    if len(text) - len(text.translate(_ASCII_DIGITS)) < MIN_CARD_DIGITS:
        return False  # the common case: too few digits to hold a card number
    text = _UUID.sub(" ", text)
    return any(luhn_valid(candidate) for candidate in _candidates(text))
