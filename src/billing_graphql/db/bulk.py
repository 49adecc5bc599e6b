"""Many rows of one table written in one go, inside the session's transaction.

``insert_rows``: on PostgreSQL, one binary ``COPY ... FROM STDIN`` through the session's asyncpg
connection (one round trip and one executor run for the whole set, where an executemany INSERT
runs the executor once a row: the billing run's batch wrote its 200 invoices in ~40 ms that way,
measured in bench/README.md); on SQLite, an executemany INSERT. Either way every value goes
through its column's SQLAlchemy type first (the same bind processing an INSERT statement gives
it: ``UTCDateTime``, enums by name, JSON text), so the rows read back the same.

``update_rows``: on PostgreSQL, one ``UPDATE ... FROM unnest(<one array a column>)`` for the whole
set (the batch's 200 subscriptions took ~28 ms as an executemany UPDATE); on SQLite, an
executemany UPDATE.

The COPY is a statement of the session's transaction: a constraint it breaks fails it, and the
caller's transaction with it (asyncpg's error, not SQLAlchemy's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` into ``table``: each a mapping of every column's key to its value."""
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        await connection.execute(insert(table), list(rows))
        return
    columns = [(column.key, _processor(column.type, connection.dialect)) for column in table.columns]
    records = [tuple(row[key] if process is None else process(row[key]) for key, process in columns) for row in rows]
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(
        table.name, schema_name=table.schema, columns=[column.name for column in table.columns], records=records)


async def update_rows(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]],
                      columns: Sequence[str], *, key: str = "id") -> None:
    """Set ``columns`` of the rows of ``table`` whose ``key`` column is a row's ``key`` to that
    row's values (``rows``: mappings of column keys to values, ``key`` and ``columns`` among them)."""
    if not rows or not columns:
        return
    connection = await session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        statement = (update(table).where(table.c[key] == bindparam("row_key"))
                     .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns}))
        await connection.execute(statement, [{"row_key": row[key], **{f"new_{name}": row[name] for name in columns}}
                                             for row in rows])
        return
    quote, names = dialect.identifier_preparer.quote, [key, *columns]
    arrays, casts = [], []
    for number, name in enumerate(names, 1):
        column = table.c[name]
        process = _processor(column.type, dialect)
        arrays.append([row[name] if process is None else process(row[name]) for row in rows])
        casts.append(f"${number}::{column.type.compile(dialect=dialect)}[]")
    target = dialect.identifier_preparer.format_table(table)
    statement = (f"UPDATE {target} SET {', '.join(f'{quote(name)} = v.{quote(name)}' for name in columns)} "
                 f"FROM unnest({', '.join(casts)}) AS v({', '.join(quote(name) for name in names)}) "
                 f"WHERE {target}.{quote(key)} = v.{quote(key)}")
    raw = await connection.get_raw_connection()
    await raw.driver_connection.execute(statement, *arrays)


def _processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """What an INSERT statement does to a value of ``type_`` before the driver has it (None: nothing)."""
    return type_.dialect_impl(dialect).bind_processor(dialect)
