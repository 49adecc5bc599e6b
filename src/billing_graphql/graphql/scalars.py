"""Scalars: ``Decimal`` as a string in major units (strings only on input) and aware-UTC ``DateTime``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import strawberry
from graphql import GraphQLError

_DECIMAL_PATTERN = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _parse_decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise GraphQLError("Decimal takes a string such as \"19.00\", not a number.")
    # fullmatch: no surrounding spaces, and no trailing newline (which "$" would let through).
    if not _DECIMAL_PATTERN.fullmatch(value):
        raise GraphQLError(f"{value!r} is not a decimal string such as \"19.00\".")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - excluded by the pattern
        raise GraphQLError(f"{value!r} is not a decimal string.") from None


def _serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError("DateTime takes an ISO-8601 string with a time zone.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GraphQLError(f"{value!r} is not an ISO-8601 date-time.") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise GraphQLError(f"{value!r} has no time zone; give one, e.g. 'Z' or '+07:00'.")
    return parsed.astimezone(UTC)


def _serialize_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("refusing to serialize a naive datetime")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description="An exact decimal amount in major units, as a string (\"299000\", \"19.00\").",
    serialize=_serialize_decimal,
    parse_value=_parse_decimal,
)

DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="A timezone-aware instant, ISO-8601, always returned in UTC.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)

SCALAR_MAP = {Decimal: DecimalScalar, datetime: DateTimeScalar}
