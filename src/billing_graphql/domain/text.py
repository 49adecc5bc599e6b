"""Text a caller may send: no control characters.

NUL and the other C0/C1 control characters (and lone UTF-16 surrogates, which no database
can store) are refused in every piece of text that enters the gateway; tab, line feed and
carriage return are allowed (free text such as a cancellation reason may span lines).
"""

from __future__ import annotations

import re

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
