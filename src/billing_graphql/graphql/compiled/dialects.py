"""The SQL dialects of the compiled path's SQL plans: how each builds JSON and formats leaf values.

PostgreSQL formats in SQL expressions; SQLite in SQL where its text storage allows and otherwise in
functions registered on its connections that call the very Python the GraphQL types use."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import literal_column, select
from strawberry import relay

from billing_graphql.domain.proration import round_half_up
from billing_graphql.graphql.scalars import _serialize_decimal


class Postgres:
    name = "postgresql"
    object_function = "json_build_object"
    array_function = "json_build_array"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        return f"{self.object_function}(" + ", ".join(f"'{key}', {value}" for key, value in pairs) + ")"

    def json_array(self, values: tuple[str, ...]) -> str:
        return f"{self.array_function}(" + ", ".join(values) + ")"

    @staticmethod
    def json_rows(item: str, source: str, order_by: str, text: bool = False) -> str:
        """A query of one value: the JSON array of ``item`` over the rows of ``source``, in ``order_by``
        (``text``: as text, for the driver to hand over undecoded)."""
        return f"SELECT coalesce(json_agg({item} ORDER BY {order_by}), '[]'::json){'::text' if text else ''} FROM {source}"

    def json_list(self, item: str, source: str, order_by: str) -> str:
        """``json_rows`` as a value inside a JSON object."""
        return f"({self.json_rows(item, source, order_by)})"

    @staticmethod
    def json_one(item: str, source: str) -> str:
        """The JSON object ``item`` of the one row of ``source`` (null: none), as a value inside a JSON object."""
        return f"(SELECT {item} FROM {source})"

    @staticmethod
    def json_of_rows(item: str, rows: Any, position: str) -> Any:
        """A statement of one text value: the JSON array of ``item`` over ``rows`` (a subquery) in
        ``position`` order, for the driver to hand over undecoded."""
        return select(literal_column(
            f"coalesce(json_agg({item} ORDER BY {position}), '[]'::json)::text")).select_from(rows)

    @staticmethod
    def boolean(column: str) -> str:
        return column

    @staticmethod
    def json_value(column: str) -> str:
        """A JSON column's value, as JSON."""
        return f"({column})::json"

    @staticmethod
    def uuid_text(column: str) -> str:
        return f"({column})::text"

    @staticmethod
    def to_text(expression: str) -> str:
        return f"({expression})::text"

    @staticmethod
    def global_id(type_name: str, column: str) -> str:
        return f"replace(encode(convert_to('{type_name}:' || ({column})::text, 'UTF8'), 'base64'), E'\\n', '')"

    @staticmethod
    def datetime(column: str) -> str:
        utc = f"(({column}) AT TIME ZONE 'UTC')"
        return (f"CASE WHEN {column} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
                f"CASE WHEN extract(microseconds FROM {column})::bigint % 1000000 = 0 THEN '' "
                f"ELSE to_char({utc}, '.US') END || 'Z' END")

    @staticmethod
    def decimal(column: str) -> str:
        return f"(({column})::numeric)::text"

    @staticmethod
    def rounded(column: str) -> str:
        return f"round(({column})::numeric)::bigint"  # numeric round(): halves away from zero

    @staticmethod
    def parameter_uuid(value: uuid.UUID) -> str:
        return str(value)

    @staticmethod
    def cast_uuid(parameter: str) -> str:
        return f"CAST({parameter} AS uuid)"


class Sqlite(Postgres):
    """SQLite's JSON functions; leaf formats in SQL where its text storage allows, else by functions
    registered on the connection (``SQLITE_FUNCTIONS``) that call the types' own Python."""

    name = "sqlite"
    object_function = "json_object"
    array_function = "json_array"

    @staticmethod
    def json_rows(item: str, source: str, order_by: str, text: bool = False) -> str:
        # SQLite 3.40 has no ORDER BY inside an aggregate: it aggregates an ordered sub-select.
        return f"SELECT json_group_array(json(item)) FROM (SELECT {item} AS item FROM {source} ORDER BY {order_by})"

    def json_list(self, item: str, source: str, order_by: str) -> str:
        return f"json(({self.json_rows(item, source, order_by)}))"  # a sub-select's result loses its JSON type

    @staticmethod
    def json_one(item: str, source: str) -> str:
        return f"json((SELECT {item} FROM {source}))"

    @staticmethod
    def json_of_rows(item: str, rows: Any, position: str) -> Any:
        ordered = (select(literal_column(item).label("item")).select_from(rows)
                   .order_by(literal_column(position)).subquery("ordered"))
        return select(literal_column("coalesce(json_group_array(json(ordered.item)), '[]')")).select_from(ordered)

    @staticmethod
    def json_value(column: str) -> str:  # stored as text
        return f"json({column})"

    @staticmethod
    def boolean(column: str) -> str:  # stored as 0/1: JSON true/false
        return f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} THEN json('true') ELSE json('false') END"

    @staticmethod
    def uuid_text(column: str) -> str:  # stored as 32 hex digits
        return " || '-' || ".join(f"substr({column}, {start}, {length})"
                                  for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))

    @staticmethod
    def to_text(expression: str) -> str:
        return expression  # || turns numbers into text

    @staticmethod
    def global_id(type_name: str, column: str) -> str:
        return f"billing_global_id('{type_name}', {column})"

    @staticmethod
    def datetime(column: str) -> str:  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', UTC
        return (f"CASE WHEN {column} IS NULL THEN NULL ELSE replace(substr({column}, 1, 19), ' ', 'T') || "
                f"CASE WHEN substr({column}, 21) IN ('', '000000') THEN '' ELSE '.' || substr({column}, 21) END "
                "|| 'Z' END")

    @staticmethod
    def decimal(column: str) -> str:
        # Stored as str(Decimal): the same text as format(value, "f") unless in exponent form.
        return f"CASE WHEN instr({column}, 'E') = 0 THEN {column} ELSE billing_decimal({column}) END"

    @staticmethod
    def rounded(column: str) -> str:
        # A whole number is itself; anything with a fraction or an exponent rounds in Python.
        return (f"CASE WHEN {column} NOT GLOB '*[^0-9-]*' THEN CAST({column} AS INTEGER) "
                f"ELSE billing_rounded({column}) END")

    @staticmethod
    def parameter_uuid(value: uuid.UUID) -> str:
        return value.hex

    @staticmethod
    def cast_uuid(parameter: str) -> str:
        return parameter


def _nullable(function: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *values: None if values[0] is None else function(*values)


SQLITE_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "billing_global_id": (2, lambda type_name, value: relay.to_base64(type_name, str(uuid.UUID(value)))),
    "billing_decimal": (1, _nullable(lambda value: _serialize_decimal(Decimal(value)))),
    "billing_rounded": (1, _nullable(lambda value: round_half_up(Fraction(Decimal(value))))),
}

DIALECTS = {"postgresql": Postgres(), "sqlite": Sqlite()}


_REGISTERED: weakref.WeakSet = weakref.WeakSet()  # the SQLite driver connections that have them


async def sqlite_functions(session: Any) -> None:
    """Register the leaf formats on this SQLite connection, once."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    if raw.driver_connection not in _REGISTERED:
        await connection.run_sync(_register_functions)
        _REGISTERED.add(raw.driver_connection)


def _register_functions(sync_connection: Any) -> None:
    adapted = sync_connection.connection.dbapi_connection
    for name, (arity, function) in SQLITE_FUNCTIONS.items():
        adapted.create_function(name, arity, function, deterministic=True)
