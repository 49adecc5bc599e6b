"""The dunning schedule: when a failed renewal is charged again, and when retrying stops (pure).

``days`` are counted from the first failure (``BILLING_DUNNING_DAYS``, default 1, 3, 5, 7):
retry n (1-based) is due at ``first_failure + days[n - 1]``. After the last retry fails the
subscription goes UNPAID, and with the final action CANCEL on to CANCELED.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

DEFAULT_DUNNING_DAYS = (1, 3, 5, 7)


class FinalAction(enum.Enum):
    UNPAID = "unpaid"
    CANCEL = "cancel"


def parse_dunning_days(text: str) -> tuple[int, ...]:
    """``"1,3,5,7"`` -> (1, 3, 5, 7): whole days after the first failure, strictly increasing, >= 1.

    An empty text means no retries (UNPAID at the first failure's end of grace: immediately).
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        days = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(f"dunning days are whole numbers separated by commas; got {text!r}") from None
    if any(day < 1 for day in days):
        raise ValueError("dunning days are at least 1")
    if any(later <= earlier for earlier, later in zip(days, days[1:])):
        raise ValueError("dunning days must increase")
    if len(days) > 30:
        raise ValueError("at most 30 dunning retries")
    return days


def retry_at(first_failure: datetime, retries_done: int, days: tuple[int, ...]) -> datetime | None:
    """When the next retry is due after ``retries_done`` retries; None when none is left."""
    if retries_done < 0:
        raise ValueError("retries_done is never negative")
    if retries_done >= len(days):
        return None
    return first_failure + timedelta(days=days[retries_done])


def retries_exhausted(retries_done: int, days: tuple[int, ...]) -> bool:
    return retries_done >= len(days)
