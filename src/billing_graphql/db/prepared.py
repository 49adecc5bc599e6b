"""Statements compiled once for the database's driver and run on its own connection (``Database.fetch``).

The compiled path's SQL tier runs its statements so (``graphql.compiled.sql``), and so do a few one-row reads on
the way to them (``services.usage.reading.usage_basis``): SQLAlchemy's own execution of an already compiled
statement, and a session's bookkeeping, cost more than PostgreSQL answering a one-row read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement compiled once for the database's driver: its text in the driver's parameter style, for each
    parameter in order its name, its default and its type's bind processing (what SQLAlchemy applies to a value
    before the driver has it), and for each column its type's result processing (``values``)."""

    text: str
    parameters: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    results: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(cls, statement: Any, dialect: Any) -> Prepared:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None or compiled.literal_execute_params or compiled.post_compile_params:
            raise RuntimeError("a statement whose text SQLAlchemy finishes at execution")  # expanding IN, literals
        return cls(compiled.string, tuple(
            (name, compiled.binds[name].value,
             compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup), tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in compiled._result_columns))  # noqa: SLF001

    def arguments(self, values: dict[str, Any]) -> list[Any]:
        arguments = []
        for name, default, process in self.parameters:
            value = values.get(name, default)
            arguments.append(value if process is None or value is None else process(value))
        return arguments

    async def rows(self, db: Any, values: dict[str, Any],
                   setup: Callable[[Any], Awaitable[None]] | None = None) -> list[Any]:
        """The driver's rows (its own values: the SQL tier's statements return text and numbers)."""
        return await db.fetch(self.text, self.arguments(values), setup)

    async def values(self, db: Any, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows with each column's values as SQLAlchemy gives them (UUIDs, enums, aware UTC times)."""
        return [tuple(value if process is None or value is None else process(value)
                      for process, value in zip(self.results, row, strict=True))
                for row in await self.rows(db, values)]


def constants_written(statement: Any, dialect: Any) -> Any:
    """``statement`` with each constant it was made with (a bind parameter given its value: a status, a kind, a 0)
    written in its text for ``dialect``; the parameters given at each execution stay parameters. PostgreSQL plans a
    prepared statement anew at each execution while its plan for any parameters (the generic plan) costs more than
    those: with its constants as parameters too, that plan cannot use them and never does."""

    def written(element: Any) -> Any:
        if (isinstance(element, BindParameter) and not element.required and not element.expanding
                and element.callable is None and element.value is not None):
            render = element.type.dialect_impl(dialect).literal_processor(dialect)
            if render is not None:
                return literal_column(render(element.value), element.type)
        return None

    return visitors.replacement_traverse(statement, {}, written)


class Compiled:
    """One statement, made ``Prepared`` once for each database dialect it runs on, with its constants written in its
    text (``constants_written``)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self.by_dialect: dict[str, Prepared] = {}

    def on(self, dialect: Any) -> Prepared:
        prepared = self.by_dialect.get(dialect.name)
        if prepared is None:
            prepared = self.by_dialect[dialect.name] = Prepared.of(constants_written(self.statement, dialect), dialect)
        return prepared
