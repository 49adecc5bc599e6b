"""The one reader of JSON bodies that arrive outside GraphQL (inbound gateway webhooks: Razorpay,
the sandbox, and any processor added to ``http.webhooks.VERIFIERS``, e.g. Stripe).

A body is accepted when it is UTF-8 JSON (RFC 8259: no ``NaN``/``Infinity``), nested at most
``MAX_DEPTH`` levels, every string in it (object keys included) passes the text rule of all input
(``domain.text``: no control characters, no lone surrogates such as ``"\\ud800"``), and every number
the number rule (``domain.numbers``: finite, within 64 bits). Anything else is ``BodyRefused`` with
a reason for the 400, before anything is applied. The body's signature is checked on the raw bytes
before this runs.
"""

from __future__ import annotations

from typing import Any

import orjson

from billing_graphql.domain.numbers import INT64_MAX, number_out_of_range
from billing_graphql.domain.text import describe, forbidden_character

MAX_DEPTH = 32


class BodyRefused(ValueError):
    """A body that breaks the rules above; the message is the reason, safe to send back."""


def read_json_body(body: bytes) -> Any:
    """The parsed body, or ``BodyRefused``."""
    try:
        value = orjson.loads(body)  # refuses bad UTF-8, lone surrogates, NaN, nesting past 1024
    except orjson.JSONDecodeError as error:
        raise BodyRefused(f"The body is not valid JSON ({error.msg}).") from None
    check_json_value(value)
    return value


def check_json_value(value: Any) -> None:
    """Walk a parsed JSON value once, without recursion, and refuse what breaks the rules."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            char = forbidden_character(item)
            if char is not None:
                raise BodyRefused(f"The body holds text with a control character ({describe(char)}).")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float):
            if number_out_of_range(item):
                raise BodyRefused(f"The body holds a number outside -{INT64_MAX}..{INT64_MAX}.")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BodyRefused(f"The body is nested more than {MAX_DEPTH} levels deep.")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
