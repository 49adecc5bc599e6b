"""Several reads in one statement: each read's rows as one JSON column (``JsonRows``), read back as plain records.

A use case that reads a few small row sets of one object (``services.billing.renewal_reads``: a subscription's
renewal inputs) sends them as one statement of one row, one column a read: its ordered rows as a JSON array of
arrays (PostgreSQL: ``json_agg(json_build_array(...) ORDER BY ...)``, SQLite: ``json_group_array(json_array(...))``
over the read's ordered rows), and reads each back as plain records (``SimpleNamespace``: the columns' keys as
attributes) with each value as SQLAlchemy gives it for the column's type (UUIDs, enums, exact decimals, aware UTC
times), for code that reads attributes only. One round trip instead of one per read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Enum, Uuid, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from billing_graphql.db.types import DecimalText, UTCDateTime

NUMBER = "bgq_n"  # a read's rows' place in its order


class _json_values(FunctionElement):
    """One row's values as a JSON array."""

    inherit_cache = True


@compiles(_json_values, "postgresql")
def _json_values_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return f"json_build_array({compiler.process(element.clauses, **kw)})"


@compiles(_json_values, "sqlite")
def _json_values_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    # A JSON column is stored as text: json() puts it in as JSON, not as a string.
    return "json_array(" + ", ".join(
        f"json({compiler.process(clause, **kw)})" if isinstance(clause.type, JSON) else compiler.process(clause, **kw)
        for clause in element.clauses) + ")"


class _json_rows(FunctionElement):
    """The rows' JSON arrays (``_json_values``) as one JSON array in the order of the second argument."""

    inherit_cache = True


@compiles(_json_rows, "postgresql")
def _json_rows_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    values, order = element.clauses
    # As text: the driver's json codec would parse it with the json module; ``records`` parses it with orjson.
    return f"json_agg({compiler.process(values, **kw)} ORDER BY {compiler.process(order, **kw)})::text"


@compiles(_json_rows, "sqlite")
def _json_rows_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    # SQLite 3.40 has no ORDER BY inside an aggregate: it aggregates the rows in the order of the ordered sub-select.
    values, _ = element.clauses
    return f"json_group_array({compiler.process(values, **kw)})"


def _utc(text: str) -> datetime:
    """A time as JSON has it: PostgreSQL's ISO text with its offset, SQLite's stored UTC text without one."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _decoder(kind: Any) -> Callable[[Any], Any] | None:
    """A JSON value of a column of type ``kind`` as SQLAlchemy gives the column's value (None: as it is)."""
    if isinstance(kind, Uuid):
        return uuid.UUID  # PostgreSQL's text, SQLite's 32 hex digits
    if isinstance(kind, UTCDateTime):
        return _utc
    if isinstance(kind, DecimalText):
        return Decimal
    if isinstance(kind, Enum) and kind.enum_class is not None:
        members = kind.enum_class.__members__  # stored by name
        return members.__getitem__
    if isinstance(kind, Boolean):
        return bool  # SQLite's 0 and 1
    return None


class JsonRows:
    """A read (an ordered ``Select`` whose columns have distinct keys) as one column of an enclosing statement
    (``column``), and that column's value back as records (``records``)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        columns = list(statement.selected_columns)
        self.keys = tuple(column.key for column in columns)
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"columns of one key: {self.keys}")
        self.decoders = tuple(_decoder(column.type) for column in columns)

    def column(self) -> Any:
        """The read's rows as one JSON array (NULL or '[]' for none), a scalar sub-select; their order is the
        read's (its ORDER BY, numbered before its LIMIT)."""
        statement = self.statement
        numbered = statement.add_columns(
            func.row_number().over(order_by=statement._order_by_clauses).label(NUMBER)).subquery()  # noqa: SLF001
        values = _json_values(*(numbered.c[key] for key in self.keys))
        return select(_json_rows(values, numbered.c[NUMBER])).scalar_subquery()

    def records(self, text: str | None) -> list[SimpleNamespace]:
        """The rows of the column's value (the driver's text), as records."""
        if text is None:
            return []
        keys, decoders = self.keys, self.decoders
        return [SimpleNamespace(**{key: value if decode is None or value is None else decode(value)
                                   for key, decode, value in zip(keys, decoders, row, strict=True)})
                for row in orjson.loads(text)]
