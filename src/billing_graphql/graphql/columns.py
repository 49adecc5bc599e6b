"""Column forms: how a GraphQL type's fields come from its table, declared once per field for both paths.

A type built from a row (``common.from_row``) registers its table with ``columns(TypeClass, Model, **forms)``.
A plain field (no resolver) whose name is a column of the model needs no declaration: the generic path
reads the row's attribute, and the compiled path's SQL tier (``graphql.compiled.sql``) derives its SQL
form from the column's type (text, number, boolean, UUID, UTC time, exact decimal, enum name) and
the field's (a Relay ``id`` is the global id of the row's ``id``). A field computed from the row is
declared once, as a ``Form``: its Python value (what ``from_row`` gives the generic path) beside its SQL
expression (what the SQL tier selects), e.g. ``money("total")``, ``amount_due``, ``renamed("number")``.
A leaf's SQL form is an expression of its value (text, number, boolean): the SQL tier writes it as JSON
text the way the field's GraphQL type prints it; Money is given as its minor amount and currency
(``Nested``) and formatted by the database (``Nested(exact=True)``: an exact decimal amount of minor units
that may hold fractions of one, as ``Money.exact`` shows it).
A field with a resolver may declare its SQL form (``resolved(sql)``; e.g. ``pdfUrl``, a child list
``Children``, a list of objects read from a JSON column of the row ``JsonItems``); without one, a selection
of it keeps the document on the Python plan.

The differential tests (``tests/perf/test_compiled_path.py``, ``tests/perf/test_compiled_selections.py``)
hold the two forms of every field to the same bytes on both databases.

Adding a type to the SQL tier: ``columns(NewType, NewRow, computed_field=Form(...), ...)`` beside the type,
and for a root list or connection a ``SqlRoot`` in ``graphql/sql_roots.py`` naming the resolver's own
statement (see there); nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import Integer, cast, false, null, select, type_coerce, union_all
from strawberry import relay

Builder = Callable[..., str]  # (dialect, row alias, *parent aliases) -> a SQL expression of the field's value


@dataclass(frozen=True)
class Nested:
    """An object built from expressions of its row (e.g. Money from an amount column and a currency), or of
    another type read from the same row (``same_row``: ``arguments`` gives the row's and its parents' aliases).
    ``nullable``: null when any argument is null (Money)."""

    type_name: str
    arguments: Callable[..., tuple[str, ...]]
    nullable: bool = False
    exact: bool = False  # Money of an exact decimal of minor units (text or numeric), shown as ``Money.exact`` does


@dataclass(frozen=True)
class Children:
    """A list of rows of ``table`` whose ``foreign_key`` is the parent's ``id``, in ``order_by`` (columns of
    ``table``, or a function of the rows' alias giving the ORDER BY expressions)."""

    table: str
    foreign_key: str | None
    order_by: str | Callable[[str], str]
    where: Callable[[str, str], str] | None = None  # (child alias, parent alias) -> condition, instead of the key


@dataclass(frozen=True)
class JsonItems:
    """A list of objects read from the JSON array in the row's column ``column`` (an empty list when the column is
    null), one per element, in the array's order. The item type's forms read the element with
    ``sql.json_member(alias, key)`` (a member's value as text, SQL NULL for a JSON null or a missing member);
    after the element's alias they are given the row's and its parents' aliases."""

    column: str


@dataclass(frozen=True)
class Parent:
    """The row of ``table`` whose ``id`` is the row's ``foreign_key`` (a many-to-one object field); null when there
    is none."""

    table: str
    foreign_key: str | None
    where: Callable[[str, str], str] | None = None  # (its alias, the row's alias) -> condition, instead of the key


@dataclass(frozen=True)
class Column:
    """A column of another name than the field's (its SQL form derived from the column's type)."""

    name: str


SqlForm = Builder | Nested | Children | JsonItems | Parent | Column


@dataclass(frozen=True)
class Form:
    """One field's two forms: ``python(row, *parents)``, the value ``from_row`` gives it (None: the field
    has a resolver, which is its Python form), and ``sql``, its SQL form (None: none)."""

    python: Callable[..., Any] | None
    sql: SqlForm | None


@dataclass
class TableForms:
    model: type | None  # None: no table (the elements of a JSON column: every field declares its form)
    forms: dict[str, Form] = field(default_factory=dict)  # python field name -> form


BY_CLASS: dict[type, TableForms] = {}
BY_TYPE_NAME: dict[str, TableForms] = {}  # GraphQL type name -> its forms


def columns(cls: type, model: type | None, **forms: Form) -> type:
    """Register ``cls`` (a Strawberry type) as built from rows of ``model``, with its computed fields' forms
    (``model`` None: a type read from no table, e.g. the elements of ``JsonItems``, each field's form declared)."""
    table = TableForms(model, forms)
    BY_CLASS[cls] = table
    BY_TYPE_NAME[cls.__strawberry_definition__.name] = table  # type: ignore[attr-defined]
    return cls


def python_values(cls: type, row: Any, parents: tuple[Any, ...], given: dict[str, Any]) -> None:
    """The computed fields' Python values for ``from_row`` (the ones not ``given``)."""
    table = BY_CLASS.get(cls)
    if table is None:
        return
    for name, form in table.forms.items():
        if form.python is not None and name not in given:
            given[name] = form.python(row, *parents)


@dataclass(frozen=True)
class Statement:
    """An ordered ``Select`` made by ``build(*shape, *values)``, where each of ``values`` is only compared in SQL or
    left out when None (``build`` reads nothing else of it in Python) and ``shape`` holds what decides the
    statement's form (flags read in Python, a model: hashable and the same from request to request): the resolver reads the statement made of them; the SQL tier makes it
    once over bind parameters for each shape and pattern of None values, and binds each request's ``values``
    (``compiled.sql.SqlObjectPlan``, ``SqlRootPlan``)."""

    build: Callable[..., Any]
    values: tuple[Any, ...]
    shape: tuple[Any, ...] = ()
    binds_none: bool = False  # every value is bound, None as a NULL of its type (``values_rows``' values)

    def make(self) -> Any:
        return self.build(*self.shape, *self.values)

    def pattern(self) -> tuple:
        """What the statement made over bind parameters depends on: the shape, and which values are None (unless
        they are bound too)."""
        return self.shape, () if self.binds_none else tuple(value is None for value in self.values)


class GenericPathAnswers(Exception):
    """Raised by a root's ``..._query`` function for a case its SQL form does not cover: the generic path answers
    the request (``compiled.execute.Fallback``)."""


@dataclass(frozen=True)
class PythonAnswer:
    """Returned by a computed object's ``..._query`` when its first read and Python rules found the whole answer,
    with nothing more in the database to show (``coupon``: a code refused without its coupon): ``value``, the
    object its resolver returns, completed on the Python plan without a statement."""

    value: Any


def values_row(*values: tuple[str, Any, Any]) -> Any:
    """One row of the (name, value, SQLAlchemy type) given, a computed object's row; None is a NULL of that type."""
    return select(*(cast(null(), kind).label(name) if value is None else type_coerce(value, kind).label(name)
                    for name, value, kind in values))


def typed_row(columns: Sequence[tuple[str, Any]], values: Sequence[Any], *more: tuple[str, Any, Any]) -> Any:
    """``values_row`` of ``values`` for ``columns`` ((name, SQLAlchemy type), in order), and ``more``."""
    return values_row(*((name, value, kind) for (name, kind), value in zip(columns, values, strict=True)), *more)


PLACE, VALUES = "bgq_place", "bgq_values"  # ``values_rows``: a row's place among them; their relation
COMPOUND_TERMS = 500  # SQLite's most SELECTs in one UNION ALL (SQLITE_MAX_COMPOUND_SELECT)


def values_relation(name: str, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]) -> Any:
    """Computed rows as the CTE ``name`` (its rows made once however often a statement reads them): for each of
    ``rows`` its values of ``columns`` ((name, SQLAlchemy type); None is a NULL of that type) and its place (``PLACE``,
    from 1), a UNION ALL of ``values_row``s; no rows, an empty relation of those columns. A computed object's lists
    read such relations (``Children`` of the CTE's name: ``Statement.make`` adds them to its row, ``add_cte``)."""
    if not rows:
        return typed_row(columns, [None] * len(columns), (PLACE, None, Integer)).where(false()).cte(name)
    selects = [typed_row(columns, row, (PLACE, place, Integer)) for place, row in enumerate(rows, 1)]
    while len(selects) > COMPOUND_TERMS:  # UNION ALLs of UNION ALLs
        selects = [select(union_all(*selects[start:start + COMPOUND_TERMS]).subquery())
                   for start in range(0, len(selects), COMPOUND_TERMS)]
    return (union_all(*selects) if len(selects) > 1 else selects[0]).cte(name)


def values_rows(columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]) -> Any:
    """Computed rows (a computed page's, ``RootQuery.has_next``), in order: ``values_relation`` of ``rows`` (at least
    one) as the CTE ``VALUES``, selected in their order. A relation with no table, keyed by its place
    (``dialects.Sqlite.page_rows``)."""
    relation = values_relation(VALUES, columns, rows)
    return select(relation).order_by(relation.c[PLACE])


@dataclass(frozen=True)
class RootQuery:
    """What a root list or connection reads: the ordered ``Select`` of its rows (or the ``Statement`` that
    makes it), and for a connection the page (for one object: the ``Select`` of its one row, and its id). Its
    resolver reads the rows of it; the SQL tier wraps the same statement in JSON."""

    source: Any  # a Select, or a Statement
    first: int = 0
    offset: int = 0
    key: Any = None  # one object (``SqlRoot(one=True)``): its row's id, which the connections below it are read for
    # A computed page (``values_rows``, e.g. ``usageSnapshots``): whether a next page follows, known from its first
    # read. Its statement's rows are the page itself, ``first`` of them (the SQL tier neither limits nor offsets
    # them, and their positions count on from ``offset``); ``source`` None: a page of no rows, no statement.
    has_next: bool | None = None

    @property
    def statement(self) -> Any:
        source = self.source
        return source.make() if isinstance(source, Statement) else source


# -- the usual forms ----------------------------------------------------------------------------------


def renamed(column: str) -> Form:
    """The value of another column."""
    return Form(attrgetter(column), Column(column))


def resolved(sql: SqlForm) -> Form:
    """A field with a resolver (its Python form), and its SQL form."""
    return Form(None, sql)


def computed(python: Callable[..., Any], sql: SqlForm | None) -> Form:
    return Form(python, sql)


def money(column: str, currency: str = "currency") -> Form:
    """Money of a minor-unit column in the row's currency column."""
    from billing_graphql.graphql.common import Money

    return Form(lambda row, *parents: Money.of(getattr(row, column), getattr(row, currency)),
                Nested("Money", lambda sql, row, *parents: (f"{row}.{column}", f"{row}.{currency}")))


def money_or_null(column: str, currency: str = "currency") -> Form:
    """Money of a nullable minor-unit column (null when it or the currency is)."""
    from billing_graphql.graphql.common import Money

    return Form(lambda row, *parents: Money.maybe(getattr(row, column), getattr(row, currency)),
                Nested("Money", lambda sql, row, *parents: (f"{row}.{column}", f"{row}.{currency}"), nullable=True))


def same_row(type_name: str) -> Form:
    """A non-null object of type ``type_name`` whose fields' forms read the same row (and parents) as its parent's."""
    return Form(None, Nested(type_name, lambda sql, row, *parents: (row, *parents)))


def global_id(type_name: str) -> Form:
    """An ``id: ID`` field holding the row's global id (types that are not Relay nodes)."""
    import strawberry

    return Form(lambda row, *parents: strawberry.ID(relay.to_base64(type_name, row.id)),
                lambda sql, row, *parents: sql.global_id(type_name, f"{row}.id"))


def model_sql(model: type, attribute: str, row: str, dialect_name: str) -> str:
    """A model's SQL expression (a hybrid property's class-level form) over the alias ``row`` of its table,
    as SQL text for ``dialect_name``: the expression is written once, in the model."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.sql.util import ClauseAdapter

    expression = ClauseAdapter(model.__table__.alias(row)).traverse(getattr(model, attribute).expression)
    dialect = postgresql.dialect() if dialect_name == "postgresql" else sqlite.dialect()
    return f"({expression.compile(dialect=dialect, compile_kwargs={'literal_binds': True})})"


def money_of(model: type, attribute: str, currency: str = "currency") -> Form:
    """Money of a model's computed minor amount (a hybrid property: one definition for Python and SQL)."""
    from billing_graphql.graphql.common import Money

    return Form(lambda row, *parents: Money.of(getattr(row, attribute), getattr(row, currency)),
                Nested("Money", lambda sql, row, *parents: (model_sql(model, attribute, row, sql.name),
                                                            f"{row}.{currency}")))
