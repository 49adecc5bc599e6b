"""Time: aware UTC only, from an injectable clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FrozenClock:
    """A clock that stands still at one instant (the test clock's value for one request)."""

    at: datetime

    def __post_init__(self) -> None:
        require_utc(self.at)

    def now(self) -> datetime:
        return self.at


def require_utc(value: datetime, field: str = "datetime") -> datetime:
    """Accept only timezone-aware datetimes and return them in UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{field} must be timezone-aware")
    return value.astimezone(UTC)
