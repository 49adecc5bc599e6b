"""Time: aware UTC only."""

from __future__ import annotations

from datetime import UTC, datetime


def require_utc(value: datetime, field: str = "datetime") -> datetime:
    """Accept only timezone-aware datetimes and return them in UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{field} must be timezone-aware")
    return value.astimezone(UTC)
