"""Text a caller may send: no control characters, and no card number in free text.

NUL and the other C0/C1 control characters (and lone UTF-16 surrogates, which no database
can store) are refused in every piece of text that enters the gateway; tab, line feed and
carriage return are allowed (free text such as a cancellation reason may span lines).

Free text (what is stored and shown: labels, names, reasons, addresses, descriptions) must
not hold a payment card number either (``domain.cards``); ``text_refusal`` says why a piece
of free text is refused, whichever rule it breaks. Identifiers with their own format (keys,
tokens, URLs, tax IDs) are checked for control characters only: see ``FORMATTED_FIELDS`` in
``graphql.input_validation``.
"""

from __future__ import annotations

import re

from billing_graphql.domain.cards import contains_card_number

ALLOWED_CONTROLS = "\t\n\r"

# C0 controls except tab, LF, CR; DEL; C1 controls; UTF-16 surrogates.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def forbidden_character(text: str) -> str | None:
    """The first character of ``text`` that text input may not hold, or None."""
    match = _FORBIDDEN.search(text)
    return match.group(0) if match else None


def describe(char: str) -> str:
    """``U+0000`` style name of a character, safe to put in a message."""
    return f"U+{ord(char):04X}"


CARD_NUMBER_REFUSAL = ("text may not contain a payment card number: never send one, pass the token your "
                       "payment processor returned instead")


def text_refusal(text: str, *, free_text: bool = True) -> str | None:
    """Why ``text`` may not enter (a sentence without the text itself), or None. ``free_text``
    False: an identifier with its own format, checked for control characters only."""
    char = forbidden_character(text)
    if char is not None:
        return f"text may not contain control characters (found {describe(char)})"
    if free_text and contains_card_number(text):
        return CARD_NUMBER_REFUSAL
    return None
