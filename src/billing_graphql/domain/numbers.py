"""Numbers a caller may send where a door reads free-form data (an inbound webhook's JSON): finite,
and whole or not, within the signed 64-bit range, the widest integer column. Anything larger or
not finite is no amount, count or id this gateway stores; refusing it where input enters keeps it
from overflowing a column or a date later. (GraphQL's own scalars narrow this further: ``Int`` is
32-bit, ``BigInt`` and ``Decimal`` check their fields' ranges.)
"""

from __future__ import annotations

import math

INT64_MAX = 2**63 - 1


def number_out_of_range(value: int | float) -> bool:
    """True when ``value`` is not finite or lies outside -(2^63 - 1) .. 2^63 - 1."""
    if isinstance(value, float) and not math.isfinite(value):
        return True
    return not -INT64_MAX <= value <= INT64_MAX
