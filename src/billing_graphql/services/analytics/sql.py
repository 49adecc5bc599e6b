"""SQL helpers analytics needs on both databases: the calendar month (UTC) of a timestamp.

``month_bucket(column)`` is what to group by (PostgreSQL: ``date_trunc`` on the UTC time, cheap
per row); ``month_label(bucket)`` turns a group's bucket into "YYYY-MM" (once per group).
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType


class month_bucket(FunctionElement):
    type = NullType()
    inherit_cache = True
    name = "month_bucket"


class month_label(FunctionElement):
    type = String()
    inherit_cache = True
    name = "month_label"


@compiles(month_bucket, "postgresql")
def _bucket_postgresql(element, compiler, **kw) -> str:
    return "date_trunc('month', (%s) AT TIME ZONE 'UTC')" % compiler.process(element.clauses, **kw)


@compiles(month_label, "postgresql")
def _label_postgresql(element, compiler, **kw) -> str:
    return "to_char(%s, 'YYYY-MM')" % compiler.process(element.clauses, **kw)


@compiles(month_bucket, "sqlite")
def _bucket_sqlite(element, compiler, **kw) -> str:
    # UTCDateTime stores UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' text on SQLite.
    return "substr(%s, 1, 7)" % compiler.process(element.clauses, **kw)


@compiles(month_label, "sqlite")
def _label_sqlite(element, compiler, **kw) -> str:
    return compiler.process(element.clauses, **kw)
