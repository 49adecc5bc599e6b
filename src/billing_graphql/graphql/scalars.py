"""Scalars: ``Decimal`` as a string in major units (strings only on input), aware-UTC ``DateTime``, and
``BigInt``, a 64-bit whole number written as a string of digits (GraphQL's ``Int`` is 32-bit)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NewType

import strawberry
from graphql import GraphQLError, IntValueNode, StringValueNode, ValueNode

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


_BIGINT_PATTERN = re.compile(r"-?[0-9]{1,40}")

BigInt = NewType("BigInt", int)
"""A whole number past 32 bits: counters, limits and quantities that can pass 2^31 - 1."""


def _parse_bigint(value: object) -> int:
    """A JSON integer or a string of digits ("9007199254740993"); never a float or a bool. The
    range is the field's own rule (e.g. an event's quantity), so that it can name the field."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise GraphQLError("BigInt takes a whole number or a string of digits such as \"4294967296\".")
    if isinstance(value, str):
        if not _BIGINT_PATTERN.fullmatch(value):
            raise GraphQLError("BigInt takes a string of at most 40 digits such as \"4294967296\".")
        return int(value)
    if abs(value) >= 10**40:
        raise GraphQLError("BigInt takes at most 40 digits.")
    return value


def _parse_bigint_literal(node: ValueNode, _variables: Any = None) -> int:
    if isinstance(node, StringValueNode):
        return _parse_bigint(node.value)
    if isinstance(node, IntValueNode) and len(node.value) <= 41:
        return _parse_bigint(int(node.value))
    raise GraphQLError("BigInt takes a whole number or a string of digits such as \"4294967296\".")


def _serialize_bigint(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"BigInt cannot represent {type(value).__name__}")
    return str(value)


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

BigIntScalar = strawberry.scalar(
    name="BigInt",
    description="A whole number past 32 bits (usage counters hold up to 2^63 - 1), returned as a string of "
                "digits (\"4294967296\") so that no client rounds it; accepted as a number or such a string.",
    serialize=_serialize_bigint,
    parse_value=_parse_bigint,
    parse_literal=_parse_bigint_literal,
)

SCALAR_MAP = {Decimal: DecimalScalar, datetime: DateTimeScalar, BigInt: BigIntScalar}
