"""SQL helpers analytics needs on both databases."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class month_of(FunctionElement):
    """The calendar month (UTC) of a timestamp column as "YYYY-MM"."""

    type = String()
    inherit_cache = True
    name = "month_of"


@compiles(month_of, "postgresql")
def _month_of_postgresql(element, compiler, **kw) -> str:
    return "to_char((%s) AT TIME ZONE 'UTC', 'YYYY-MM')" % compiler.process(element.clauses, **kw)


@compiles(month_of, "sqlite")
def _month_of_sqlite(element, compiler, **kw) -> str:
    # UTCDateTime stores UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' text on SQLite.
    return "substr(%s, 1, 7)" % compiler.process(element.clauses, **kw)
