"""The Decimal scalar takes strings only; DateTime takes aware ISO-8601 only and returns UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from graphql import GraphQLError

from billing_graphql.graphql.scalars import (
    _parse_datetime,
    _parse_decimal,
    _serialize_datetime,
    _serialize_decimal,
)


@pytest.mark.parametrize("value", [19.99, 19, None, "1e5", "abc", "", "1.2.3"])
def test_decimal_refuses_non_strings_and_junk(value):
    with pytest.raises(GraphQLError):
        _parse_decimal(value)


def test_decimal_round_trip():
    assert _parse_decimal("299000") == Decimal("299000")
    assert _serialize_decimal(Decimal("19.00")) == "19.00"


def test_datetime_requires_a_zone_and_returns_utc():
    with pytest.raises(GraphQLError):
        _parse_datetime("2026-01-01T00:00:00")
    parsed = _parse_datetime("2026-01-01T07:00:00+07:00")
    assert parsed == datetime(2026, 1, 1, tzinfo=UTC)
    assert _serialize_datetime(datetime(2026, 1, 1, 7, tzinfo=timezone(timedelta(hours=7)))) == "2026-01-01T00:00:00Z"
    with pytest.raises(ValueError):
        _serialize_datetime(datetime(2026, 1, 1))


@pytest.mark.parametrize("value", [" 12", "12 ", " 12 ", "\t12", "12\n", "1 2", "\u00a012"])
def test_decimal_refuses_surrounding_or_inner_spaces(value):
    with pytest.raises(GraphQLError):
        _parse_decimal(value)


def test_bigint_is_digits_out_and_a_whole_number_in():
    from graphql import IntValueNode, StringValueNode, FloatValueNode

    from billing_graphql.graphql.scalars import _parse_bigint, _parse_bigint_literal, _serialize_bigint

    assert _serialize_bigint(2**63 - 1) == "9223372036854775807"
    assert _parse_bigint(2**53 + 1) == 2**53 + 1 and _parse_bigint("9007199254740993") == 2**53 + 1
    assert _parse_bigint_literal(IntValueNode(value="4294967296")) == 2**32
    assert _parse_bigint_literal(StringValueNode(value="-5")) == -5
    for bad in (1.0, True, None, "1.0", "1e3", " 1", "1\n", "1" * 41, 10**40):
        with pytest.raises(GraphQLError):
            _parse_bigint(bad)
    for node in (FloatValueNode(value="1.5"), IntValueNode(value="9" * 50)):
        with pytest.raises(GraphQLError):
            _parse_bigint_literal(node)
    with pytest.raises(ValueError):
        _serialize_bigint(1.5)
