"""The SQL tier's leaves as the database writes them (``graphql.compiled.dialects``) are the bytes the
response would print for the Python value (orjson of what the GraphQL type serialises), on both databases:
Money's amount and display text in every currency at the edges (zero, negatives, one minor unit, groups of
thousands, the largest amounts), and strings with every character JSON escapes."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from billing_graphql.domain.money import EXPONENTS
from billing_graphql.graphql.common import Money, cursor_at
from billing_graphql.graphql.compiled.dialects import DIALECTS, sqlite_functions
from billing_graphql.graphql.scalars import _serialize_decimal

MINORS = [0, 1, -1, 5, -5, 99, 100, 101, 999, 1000, 1001, -1999, 123456, 1663890, 10**9, -(10**12) - 7,
          9_223_372_036_854_775_807, -9_223_372_036_854_775_807]
STRINGS = ["", "plain", 'quote " and \\ backslash', "control \x01\x08\t\n\x0c\r\x1f end", "ünïcödé € ₹ Rp",
           "line\u2028separator", "slash / and del \x7f", "'single'"]


async def _values(db, expressions: list[str], parameters: dict) -> list[str]:
    async with db.read() as session:
        if session.bind.dialect.name == "sqlite":
            connection = await session.connection()
            await sqlite_functions((await connection.get_raw_connection()).driver_connection)
        return list((await session.execute(text("SELECT " + ", ".join(expressions)), parameters)).one())


async def test_money_is_written_as_the_api_prints_it(db):
    sql = DIALECTS[db.engine.dialect.name]
    for currency in EXPONENTS:
        expressions, expected = [], []
        for index, minor in enumerate(MINORS):
            money = Money.of(minor, currency)
            expressions += [sql.money_amount(f":m{index}", ":c"), sql.money_formatted(f":m{index}", ":c")]
            expected += [_serialize_decimal(money.amount), money.formatted]
        values = await _values(db, expressions, {"c": currency, **{f"m{i}": m for i, m in enumerate(MINORS)}})
        assert values == expected, currency


async def test_strings_cursors_and_booleans_are_written_as_orjson_writes_them(db):
    sql = DIALECTS[db.engine.dialect.name]
    expressions = [sql.quoted(f":s{index}") for index in range(len(STRINGS))]
    expressions += [sql.bare(sql.cursor(str(position))) for position in (0, 9, 10, 12345)]
    expressions += [sql.boolean_text("1 = 1"), sql.boolean_text("1 = 0")]
    values = await _values(db, expressions, {f"s{index}": value for index, value in enumerate(STRINGS)})
    expected = [orjson.dumps(value).decode() for value in STRINGS]
    expected += [orjson.dumps(cursor_at(position)).decode() for position in (0, 9, 10, 12345)]
    assert values == [*expected, "true", "false"]


@pytest.mark.parametrize("minor", [0, -1, 1663890])
async def test_an_object_of_them_is_orjsons_bytes(db, minor):
    sql = DIALECTS[db.engine.dialect.name]
    money = Money.of(minor, "USD")
    pairs = [("amount", sql.bare(sql.money_amount(":m", "'USD'"))), ("__typename", "'\"Money\"'"),
             ("f", sql.bare(sql.money_formatted(":m", "'USD'"))), ("none", "coalesce(NULL, 'null')")]
    (value,) = await _values(db, [sql.object_text(pairs)], {"m": minor})
    assert value.encode() == orjson.dumps({"amount": _serialize_decimal(money.amount), "__typename": "Money",
                                           "f": money.formatted, "none": None})



@pytest.mark.parametrize("minor", [0, -1, 1663890, -(10**12) - 7])
async def test_money_objects_are_orjsons_bytes(db, minor):
    """``money_object``: a Money object of any selection of its fields, aliased, with ``__typename`` (SQLite:
    one printf a currency's number of places, for the whole object), in every currency."""
    sql = DIALECTS[db.engine.dialect.name]
    selections = [[("amount", "amount")], [("formatted", "formatted"), ("currency", "currency")],
                  [("t", "Money"), ("a", "amount"), ("c", "currency"), ("f", "formatted"), ("a2", "amount")]]
    for currency in EXPONENTS:
        money = Money.of(minor, currency)
        leaves = {"amount": _serialize_decimal(money.amount), "currency": currency, "formatted": money.formatted}
        values = await _values(db, [sql.money_object(fields, ":m", ":c") for fields in selections],
                               {"m": minor, "c": currency})
        assert values == [orjson.dumps({key: leaves.get(name, name) for key, name in fields}).decode()
                          for fields in selections], currency


@pytest.mark.parametrize("size", [1, 100, 101, 130])
async def test_objects_of_any_size_are_orjsons_bytes(db, size):
    """SQLite writes an object with one printf up to 100 fields and joins its parts with ``||`` beyond
    (a function takes at most 127 arguments)."""
    sql = DIALECTS[db.engine.dialect.name]
    pairs = [(f"f{index}", sql.number(f"{index} * :m")) for index in range(size)]
    (value,) = await _values(db, [sql.object_text(pairs)], {"m": 3})
    assert value.encode() == orjson.dumps({f"f{index}": 3 * index for index in range(size)})


DECIMALS = ["0", "1", "-1", "7", "0.5", "-0.5", "2.5", "-2.5", "0.49999", "-0.49999", "9.999999", "-9.5", "1.05",
            "180129.032258", "-180129.032258", "123456789012.5", "-123456789012.4999", "1E+2", "-125E-2", "2.5E-1"]


async def test_rounded_amounts_are_the_domains_halves_away_from_zero(db):
    """``rounded`` (a line's unit amount): SQLite rounds the stored text of a plain fraction in SQL and only
    an exponent form in Python; PostgreSQL's numeric round(). Both as ``round_half_up``."""
    from decimal import Decimal
    from fractions import Fraction

    from billing_graphql.domain.proration import round_half_up

    sql = DIALECTS[db.engine.dialect.name]
    as_stored = (lambda text: text) if db.is_sqlite else Decimal  # DecimalText's str(Decimal); a numeric
    values = await _values(db, [sql.rounded(f":d{index}") for index in range(len(DECIMALS))],
                           {f"d{index}": as_stored(value) for index, value in enumerate(DECIMALS)})
    assert values == [round_half_up(Fraction(Decimal(value))) for value in DECIMALS]


async def test_global_ids_are_relays(db):
    import uuid

    from strawberry import relay

    sql = DIALECTS[db.engine.dialect.name]
    ids = [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4(), uuid.uuid4()]
    # SQLite stores 32 hex digits (an upper-case one too); PostgreSQL a uuid column.
    stored = [value.hex for value in ids] + [ids[2].hex.upper()] if db.is_sqlite else [*map(str, ids), str(ids[2])]
    column = "{}" if db.is_sqlite else "CAST({} AS uuid)"
    names = ["Invoice", "Payment", "Refund", "CreditNote", "Invoice"]
    values = await _values(db, [sql.global_id(name, column.format(f":i{index}")) for index, name in enumerate(names)],
                           {f"i{index}": value for index, value in enumerate(stored)})
    assert values == [relay.to_base64(name, str(value)) for name, value in zip(names, [*ids, ids[2]], strict=True)]


async def test_times_are_the_scalars_isoformat_in_utc(db):
    """``datetime``: what ``DateTime`` serialises (``isoformat`` in UTC, ``Z``, microseconds only when there are
    any), from the column as each database stores it; NULL stays NULL for the caller's ``null``. (asyncpg sends
    ``datetime.min``/``max`` as -infinity/infinity: not times the gateway stores.)"""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import bindparam

    from billing_graphql.db.types import UTCDateTime
    from billing_graphql.graphql.scalars import _serialize_datetime

    jakarta = timezone(timedelta(hours=7))
    times = [datetime(2026, 12, 6, 16, 0, tzinfo=UTC), datetime(2026, 12, 6, 16, 0, 0, 1, tzinfo=UTC),
             datetime(2026, 12, 6, 16, 0, 0, 999_999, tzinfo=UTC), datetime(2026, 12, 6, 16, 0, 0, 500_000, tzinfo=UTC),
             datetime(2026, 12, 7, 6, 59, 59, 100_000, tzinfo=jakarta), datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
             datetime(9999, 12, 31, 23, 59, 59, 999_998, tzinfo=UTC), datetime(2000, 2, 29, 0, 0, 0, 10, tzinfo=UTC)]
    sql = DIALECTS[db.engine.dialect.name]
    names = [f"t{index}" for index in range(len(times))] + ["none"]
    statement = text("SELECT " + ", ".join(sql.datetime(f":{name}") for name in names)).bindparams(
        *(bindparam(name, type_=UTCDateTime()) for name in names))
    async with db.read() as session:
        values = list((await session.execute(statement, {**dict(zip(names, times)), "none": None})).one())
    assert values == [*map(_serialize_datetime, times), None]
