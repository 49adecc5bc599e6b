"""The compiled path's second tier: a query answered by one SQL statement that writes its JSON.

Where every field a document selects below a root list or connection has a SQL form (``graphql.columns``:
derived from the Strawberry type and its model, or declared once beside the field), its plan
(``compiled.ObjectPlan``) is turned into one statement: the resolver's own ``Select`` (``SqlRoot.query``,
shared with the resolver), paged as the resolver pages it, whose rows are written as JSON text (``dialects``:
concatenated text, one correlated sub-select per child list or parent object) and aggregated into one value
per list of nodes or edges (cursors included). Every leaf is formatted by the database exactly as the
GraphQL types serialise it (Money's amount and display text, times, decimals, global ids, enums), so the
statement's text is the answer's bytes: the response carries it as it is (``orjson.Fragment``), with no
``orjson.loads`` and no second serialisation. Only ``pageInfo`` (from the number of rows) is built in Python.

One object (``SqlRoot(one=True)``, e.g. ``viewer.organization``) is answered the same way by one statement
(``SqlObjectPlan``): its row's selected fields, each as JSON text, and beside it every connection selected
below it (``sql_roots.FIELDS``), paged by its resolver's own statement for that object's id; the object's
answer is put together from those texts. Its parents stay on the Python plan.

A document with any field that has no SQL form keeps its Python plan (``compiled``); a request the
SQL plan cannot answer (a permission refused, a bad argument) takes the generic path, as there.
"""

from __future__ import annotations

import inspect
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from graphql import GraphQLEnumType, GraphQLList, get_named_type, get_nullable_type
from sqlalchemy import (
    JSON, Boolean, Enum, Integer, Numeric, String, Text, Uuid, bindparam, func, literal_column, select, true,
)
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeDecorator
from strawberry.permission import PermissionExtension
from strawberry.types.arguments import convert_arguments
from strawberry.types.info import Info as StrawberryInfo

from billing_graphql.db.prepared import Prepared
from billing_graphql.db.types import DecimalText, UTCDateTime
from billing_graphql.graphql.columns import (
    BY_TYPE_NAME, Children, Column, JsonItems, Nested, Parent, PythonAnswer, RootQuery, Statement,
)
from billing_graphql.graphql.common import cursor_at
from billing_graphql.graphql.compiled.dialects import (
    DIALECTS, MONEY_FIELDS, POSITION, ROW, Postgres, sqlite_functions,
)


class NoSqlForm(Exception):
    """A selected field has no SQL form: the document keeps its Python plan."""


def _node_id(parent: Any) -> uuid.UUID:
    return uuid.UUID(parent.id)


@dataclass(frozen=True)
class SqlRoot:
    """A root list or connection answered by SQL. ``query(context, **arguments)`` is the resolver's own
    statement (the resolver calls the same function): a ``RootQuery``, or None for the empty answer.

    ``nested``: a field of an object, ``query(context, key(parent), **arguments)`` (None answering null), where
    ``key`` gives the parent object's row id (a Relay node's ``id`` by default); below an object answered by
    SQL (``one``) the query is made for that object's ``RootQuery.key``, and the connection is paged in the
    object's statement. ``one``: one object (``connection=False`` too), ``query(context, parent, **arguments)``
    the ``RootQuery`` of its row (None, or no row: null). ``query`` may be a coroutine function: a computed object
    whose row holds values its Python rules find from a first read (``entitlements``), or that gives its whole
    answer when they found it (``columns.PythonAnswer``: no statement); or a computed page (``RootQuery.has_next``:
    ``usageSnapshots``). ``selection``: ``query`` also takes ``selected``, the ``Type.field`` names selected below the
    field (``selected_fields``), so that a first read reads what only some fields need when they are selected
    (``usage``'s and ``usageSnapshots``' amounts). ``python`` (one object, with ``selection``): ``Type.field`` names
    of fields with no SQL form that ``query`` answers on the Python plan: where one is selected, ``query`` gives a
    ``columns.PythonAnswer`` (None: null), its first reads having found all they show (``subscription``'s
    ``upcomingInvoice``, priced in Python from them), and the object's plan has no statement of its own."""

    query: Callable[..., RootQuery | None]
    connection: bool = True
    nested: bool = False
    one: bool = False
    key: Callable[[Any], Any] = _node_id
    selection: bool = False
    python: frozenset[str] = frozenset()


def selected_fields(complete: Any) -> frozenset[str]:
    """The ``Type.field`` name of each field selected in ``complete`` (a field's ``ObjectPlan`` or ``ListOf``) and
    below it, ``__typename`` left out."""
    found, plans = set(), [complete]
    while plans:
        plan = plans.pop()
        while hasattr(plan, "item"):
            plan = plan.item
        for sub in getattr(plan, "fields", ()):
            if sub.typename is None:
                found.add(f"{plan.type_name}.{sub.name}")
                plans.append(sub.complete)
    return frozenset(found)


class Rendering:
    """A dialect with what the SQL forms read from the settings (``public_url`` as a SQL literal)."""

    def __init__(self, dialect: Postgres, public_url: str) -> None:
        self.dialect = dialect
        self.public_url = "'" + public_url.replace("'", "''") + "'"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dialect, name)


# -- SQL forms of fields ------------------------------------------------------------------------------


def field_form(schema: Any, type_name: str, field_name: str) -> Any:
    """The SQL form of ``type_name.field_name``: a builder, ``Nested``, ``Children``, ``JsonItems`` or ``Parent``."""
    table = BY_TYPE_NAME.get(type_name)
    if table is None:
        raise NoSqlForm(f"{type_name} has no table")
    graphql_field = schema.type_map[type_name].fields[field_name]
    definition = graphql_field.extensions["strawberry-definition"]
    if definition.extensions:
        raise NoSqlForm(f"{type_name}.{field_name}: field extensions (permissions) on a nested field")
    name = definition.python_name
    form = table.forms.get(name)
    if form is not None:
        if form.sql is None:
            raise NoSqlForm(f"{type_name}.{field_name}")
        return column_form(table.model, form.sql.name, type_name) if isinstance(form.sql, Column) else form.sql
    if name == "_id" and field_name == "id":  # a Relay node's id: the global id of the row's id
        return lambda sql, row, *parents: sql.global_id(type_name, f"{row}.id")
    if definition.base_resolver is None:
        return column_form(table.model, name, type_name)
    raise NoSqlForm(f"{type_name}.{field_name}")


def column_form(model: type | None, attribute: str, type_name: str) -> Callable[..., str]:
    """The SQL form of a plain field read from ``model``'s column ``attribute``, by the column's type."""
    column = None if model is None else model.__mapper__.columns.get(attribute)
    if column is None:
        raise NoSqlForm(f"{type_name}.{attribute}: no such column")
    name, kind = column.name, column.type
    if isinstance(kind, UTCDateTime):
        return lambda sql, row, *parents: sql.datetime(f"{row}.{name}")
    if isinstance(kind, DecimalText | Numeric):
        return lambda sql, row, *parents: sql.decimal(f"{row}.{name}")
    if isinstance(kind, Uuid):
        return lambda sql, row, *parents: sql.uuid_text(f"{row}.{name}")
    if isinstance(kind, Boolean):
        return lambda sql, row, *parents: sql.boolean(f"{row}.{name}")
    if isinstance(kind, Enum | Integer | String | Text) and not isinstance(kind, TypeDecorator | JSON):
        return lambda sql, row, *parents: f"{row}.{name}"
    raise NoSqlForm(f"{type_name}.{attribute}: a column of type {kind!r}")


# -- planning -----------------------------------------------------------------------------------------


SCALAR_TEXT = {  # how a scalar's SQL value becomes its JSON text (the way its ``serialize`` prints it)
    "Boolean": "boolean_text", "Int": "number", "String": "quoted", "ID": "quoted",
    "DateTime": "bare", "Decimal": "bare", "BigInt": "bare",
}


def leaf_text(sql: Any, expression: str, graphql_type: Any, where: str) -> str:
    """The JSON text of a leaf field's SQL value, as the response prints it (SQL NULL: ``null``)."""
    named = get_named_type(graphql_type)
    if isinstance(get_nullable_type(graphql_type), GraphQLList):
        if named.name != "String" or isinstance(get_nullable_type(get_nullable_type(graphql_type).of_type),
                                                GraphQLList):
            raise NoSqlForm(f"{where}: a list of {named.name}")
        return f"coalesce({sql.string_list(expression)}, 'null')"
    if isinstance(named, GraphQLEnumType):
        method = "bare"  # stored as the member's name, which is the GraphQL value
    else:
        method = SCALAR_TEXT.get(named.name)
        if method is None:
            raise NoSqlForm(f"{where}: a {named.name} in SQL")
    return f"coalesce({getattr(sql, method)(expression)}, 'null')"


def money_text(sql: Any, plan: Any, minor: str, currency: str, nullable: bool, exact: bool = False) -> str:
    """Money's selected fields over the minor-unit and currency expressions, formatted in SQL (``exact``: the minor
    amount is an exact decimal, ``Money.exact``)."""
    fields = []
    for sub in plan.fields:
        if sub.typename is None and sub.name not in MONEY_FIELDS:
            raise NoSqlForm(f"Money.{sub.name}")
        fields.append((sub.key, sub.name if sub.typename is None else sub.typename))
    if exact:
        text = sql.exact_money_object(fields, minor, currency)
        if nullable:
            text = f"(CASE WHEN ({minor}) IS NULL OR ({currency}) IS NULL THEN 'null' ELSE {text} END)"
        return text
    given = minor, currency
    if "SELECT" in minor.upper() or "SELECT" in currency.upper():
        # A computed amount (sub-selects: an add-on's price, a spending cap's minimum) is evaluated once, not once
        # for each leaf and sign of each currency's branch: SQLite evaluates every occurrence again.
        minor, currency = f"{MONEY_VALUES}.minor", f"{MONEY_VALUES}.currency"
    text = sql.money_object(fields, minor, currency)
    if nullable:
        text = f"(CASE WHEN ({minor}) IS NULL OR ({currency}) IS NULL THEN 'null' ELSE {text} END)"
    if given != (minor, currency):
        text = f"(SELECT {text} FROM (SELECT ({given[0]}) AS minor, ({given[1]}) AS currency) AS {MONEY_VALUES})"
    return text


MONEY_VALUES = "bgq_money"  # the one row of a computed Money's minor amount and currency


def object_text(sql: Any, schema: Any, plan: Any, arguments: tuple[str, ...]) -> str:
    """The JSON text expression of ``plan`` (a ``compiled.ObjectPlan``) over the row ``arguments[0]`` (its
    parents' rows after it), every leaf formatted by the database."""
    return sql.object_text(field_texts(sql, schema, plan, arguments, plan.fields))


def field_texts(sql: Any, schema: Any, plan: Any, arguments: tuple[str, ...],
                fields: list[Any]) -> list[tuple[str, str]]:
    """(response key, JSON text expression) of each of ``fields`` (of ``plan``) over the row ``arguments[0]``."""
    pairs = []
    row = arguments[0]
    object_type = schema.type_map[plan.type_name]
    for field_plan in fields:
        key = field_plan.key
        if field_plan.typename is not None:
            pairs.append((key, f"'\"{field_plan.typename}\"'"))
            continue
        where = f"{plan.type_name}.{field_plan.name}"
        if field_plan.node is not None and field_plan.node.arguments:
            raise NoSqlForm(f"{where}: arguments")
        form = field_form(schema, plan.type_name, field_plan.name)
        if isinstance(form, Nested) and form.type_name != "Money":  # an object of the same row (``same_row``)
            pairs.append((key, object_text(sql, schema, field_plan.complete, form.arguments(sql, *arguments))))
        elif isinstance(form, Nested):
            minor, currency = form.arguments(sql, *arguments)
            pairs.append((key, money_text(sql, field_plan.complete, minor, currency, form.nullable, form.exact)))
        elif isinstance(form, Children):
            alias = f"{row}_{form.table}"
            item = object_text(sql, schema, field_plan.complete.item, (alias, *arguments))
            condition = (form.where(alias, row) if form.where is not None
                         else f"{alias}.{form.foreign_key} = {row}.id")
            source = f"{form.table} AS {alias} WHERE {condition}"
            order = (form.order_by(alias) if callable(form.order_by)
                     else ", ".join(f"{alias}.{column}" for column in form.order_by.split(", ")))
            pairs.append((key, sql.list_text(item, source, order)))
        elif isinstance(form, JsonItems):
            alias = f"{row}_{form.column}"
            item = object_text(sql, schema, field_plan.complete.item, (alias, *arguments))
            source, order = sql.json_elements(f"{row}.{form.column}", alias)
            pairs.append((key, sql.list_text(item, source, order)))
        elif isinstance(form, Parent):
            alias = f"{row}_{form.table}"
            item = object_text(sql, schema, field_plan.complete, (alias, *arguments))
            condition = (form.where(alias, row) if form.where is not None
                         else f"{alias}.id = {row}.{form.foreign_key}")
            source = f"{form.table} AS {alias} WHERE {condition}"
            pairs.append((key, f"coalesce({sql.one_text(item, source)}, 'null')"))
        else:
            pairs.append((key, leaf_text(sql, form(sql, *arguments), object_type.fields[field_plan.name].type, where)))
    return pairs


async def run_permissions(definition: Any, info: Any, arguments: dict[str, Any]) -> None:
    """The field's permission classes, as ``PermissionExtension`` runs them (an async ``has_permission``
    awaited); a refusal raises, and the generic path answers with the error the schema defines."""
    for extension in definition.extensions:
        for permission in extension.permissions:
            allowed = permission.has_permission(None, info, **arguments)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                raise PermissionError(permission.message)


async def field_query(run: Any, field_plan: Any, root: SqlRoot, parent: Any = None, key: Any = None,
                      selected: frozenset[str] = frozenset()) -> Any:
    """A field answered by SQL: its arguments converted as Strawberry converts them, its permission classes
    run (a refusal raises), and its ``RootQuery`` (None: none) made by the resolver's own function (given the
    ``selected`` fields where it asks for them: ``SqlRoot.selection``)."""
    definition = field_plan.field_def.extensions["strawberry-definition"]
    info = StrawberryInfo(_raw_info=run.info(field_plan), _field=definition)
    strawberry_schema = run.schema._strawberry_schema  # noqa: SLF001
    arguments = convert_arguments(run.arguments(field_plan), definition.arguments,
                                  scalar_registry=strawberry_schema.schema_converter.scalar_registry,
                                  config=strawberry_schema.config, info=info)
    await run_permissions(definition, info, arguments)
    if root.selection:
        arguments["selected"] = selected
    if root.one:
        query = root.query(info.context, parent, **arguments)
    elif root.nested:
        query = root.query(info.context, root.key(parent) if key is None else key, **arguments)
    else:
        query = root.query(info.context, **arguments)
    return await query if inspect.isawaitable(query) else query


@dataclass(eq=False)
class SqlRootPlan:
    """A root list or connection field answered by one statement, whose JSON text the response carries
    as it comes from the database (``orjson.Fragment``: not parsed, not serialised again)."""

    key: str
    field_plan: Any
    root: SqlRoot
    outer: Any  # the ObjectPlan of the connection, or the ListOf of a list
    schema: Any
    selected: frozenset[str] = frozenset()  # ``selected_fields`` below the field (``SqlRoot.selection``)
    texts: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)  # items_sql, made once
    bound: dict[tuple, Prepared] = field(default_factory=dict, repr=False)  # over bind parameters, compiled once

    async def prepare(self, run: Any, parent: Any = None, key: Any = None) -> RootQuery | None:
        """The field's permissions run (a refusal raises), and its ``RootQuery`` (None: none); a nested field's
        for its parent object, or for the row id ``key`` (below an object answered by SQL)."""
        return await field_query(run, self.field_plan, self.root, parent, key, selected=self.selected)

    async def answer(self, run: Any, db: Any, parent: Any = None) -> Any:
        query = await self.prepare(run, parent)
        if self.root.nested and query is None:
            return None
        if query is None or query.source is None:  # nothing to read (a computed page of no rows: no statement)
            lists, count = [None] * len(self.item_plans()), 0
        else:
            prepared, values = self.statement_and_values(db.engine.dialect, run.context.settings.public_url, query)
            *lists, count = (await _rows(prepared, db, values))[0]
        texts = [orjson.Fragment("[" + (text or "") + "]") for text in lists]
        if not self.root.connection:
            return texts[0]
        first, offset = (query.first, query.offset) if query is not None else (0, 0)
        has_next = count > first if query is None or query.has_next is None else query.has_next
        return self.connection_answer(texts, min(count, first), has_next, offset, empty=query is None)

    def item_plans(self) -> list[tuple[Any, Any]]:
        """What each aggregated column of the statement holds: (the edges field plan, the edge's plan) for
        each ``edges`` of a connection, or (None, the node plan) for a list."""
        if not self.root.connection:
            return [(None, self.outer.item)]
        return [(sub, sub.complete.item) for sub in self.outer.fields if sub.typename is None and sub.name == "edges"]

    def items_sql(self, dialect: str, public_url: str) -> list[str]:
        """The JSON text expression of each aggregated column: a node, or an edge (cursor and node); made on
        the plan's first answer and kept with the plan (the plan cache bounds them)."""
        key = (dialect, public_url)
        items = self.texts.get(key)
        if items is None:
            items = self.texts[key] = self.make_items_sql(dialect, public_url)
        return items

    def make_items_sql(self, dialect: str, public_url: str) -> list[str]:
        sql = Rendering(DIALECTS[dialect], public_url)
        items = []
        for edges, plan in self.item_plans():
            if edges is None:
                items.append(object_text(sql, self.schema, plan, (ROW,)))
                continue
            pairs = []
            for sub in plan.fields:
                if sub.typename is not None:
                    pairs.append((sub.key, f"'\"{sub.typename}\"'"))
                elif sub.name == "cursor":
                    pairs.append((sub.key, sql.bare(sql.cursor(f"{sql.position} - 1"))))
                else:  # node
                    pairs.append((sub.key, object_text(sql, self.schema, sub.complete, (ROW,))))
            items.append(sql.object_text(pairs))
        return items

    def statement_and_values(self, engine_dialect: Any, public_url: str,
                             query: RootQuery) -> tuple[Prepared, dict[str, Any]]:
        """The statement, compiled for ``engine_dialect`` (SQLAlchemy's), and the values of its bind parameters.
        Where the resolver's statement is a ``columns.Statement``, it is made and compiled once over bind
        parameters (kept with the plan, by dialect, public URL and which of its values are None) and each request
        binds its values and page bounds: building the statement and its cache key was about a tenth of the
        invoices page's CPU. Else it is made for this request."""
        dialect = DIALECTS[engine_dialect.name]
        items = self.items_sql(dialect.name, public_url)
        source = query.source
        if not isinstance(source, Statement):
            return Prepared.of(self.statement(dialect, items, query), engine_dialect), {}
        values = _bound_values(query, "bgq_r")
        if self.root.connection:
            values.update(_page_values(query, "bgq_r", "bgq_last"))
        key = (dialect.name, public_url, source.pattern())
        prepared = self.bound.get(key)
        if prepared is None:
            prepared = self.bound[key] = Prepared.of(self.statement(
                dialect, items, _over_parameters(query, "bgq_r"), _bound_page("bgq_r")), engine_dialect)
        return prepared, values

    def statement(self, dialect: Postgres, items: list[str], query: RootQuery, bounds: tuple | None = None) -> Any:
        """The resolver's statement, paged as it pages it (one row more, to know whether there is a next
        page), wrapped in the JSON text of its items and their number. ``bounds``: the page's (limit, offset,
        last row shown) as bind parameters (default: ``page_bounds(query)``'s values)."""
        statement = query.statement
        ordering = statement._order_by_clauses  # noqa: SLF001
        last = None
        position = func.row_number().over(order_by=ordering)
        if self.root.connection and query.has_next is not None:  # a computed page: its rows are the page
            position = position + (query.offset if bounds is None else bounds[1])
        elif self.root.connection:
            limit, offset, last = page_bounds(query) if bounds is None else bounds
            statement = statement.limit(limit).offset(offset)
        # The row number is taken before LIMIT and OFFSET: a page's first row is offset + 1.
        rows = dialect.page_rows(statement, position.label(POSITION))
        return dialect.page_statement(items, rows, last)

    def connection_answer(self, edges: list[Any], size: int, has_next: bool, offset: int, empty: bool) -> dict:
        cursors = (cursor_at(offset), cursor_at(offset + size - 1)) if size else (None, None)
        page_info = {"hasNextPage": has_next, "hasPreviousPage": offset > 0 and not empty,
                     "startCursor": cursors[0], "endCursor": cursors[1]}
        edges_texts = iter(edges)
        answer: dict[str, Any] = {}
        for field_plan in self.outer.fields:
            if field_plan.typename is not None:
                answer[field_plan.key] = field_plan.typename
            elif field_plan.name == "pageInfo":
                answer[field_plan.key] = {
                    sub.key: sub.typename if sub.typename is not None else page_info[sub.name]
                    for sub in field_plan.complete.fields}
            else:  # edges, in the order of ``item_plans``
                answer[field_plan.key] = next(edges_texts)
        return answer


async def _rows(prepared: Prepared, db: Any, values: dict[str, Any]) -> list[Any]:
    """The rows of a SQL-tier statement: the leaf formats registered first on SQLite's connection."""
    return await prepared.rows(db, values, sqlite_functions if db.is_sqlite else None)


def page_bounds(query: RootQuery) -> tuple[int, int, int]:
    """A connection's (limit, offset, last row shown): one row more than the page, to know whether there is a
    next page; the row past the page is counted, not shown."""
    return query.first + 1, query.offset, query.offset + query.first


def _check_connection(connection: Any) -> None:
    """``NoSqlForm`` for a connection selection of anything but edges (cursors, nodes) and pageInfo."""
    for sub in connection.fields:
        if sub.typename is not None:
            continue
        if sub.name == "pageInfo":
            if any(leaf.typename is None and leaf.name not in
                   {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"} for leaf in sub.complete.fields):
                raise NoSqlForm("pageInfo")
        elif sub.name == "edges":
            for edge_field in sub.complete.item.fields:
                if edge_field.typename is None and edge_field.name not in {"node", "cursor"}:
                    raise NoSqlForm(f"edges.{edge_field.name}")
        else:
            raise NoSqlForm(f"connection.{sub.name}")


def root_plan(field_plan: Any, roots: dict[Any, SqlRoot], schema: Any, parent: str | None = None) -> SqlRootPlan:
    """The SQL plan of a root list or connection field (or of a field of ``parent``), or ``NoSqlForm``."""
    root = roots.get(field_plan.name if parent is None else (parent, field_plan.name))
    if root is None or field_plan.attribute is not None or field_plan.complete is None:
        raise NoSqlForm(field_plan.name)
    definition = field_plan.field_def.extensions["strawberry-definition"]
    if any(not isinstance(extension, PermissionExtension) for extension in definition.extensions):
        raise NoSqlForm(f"{field_plan.name}: field extensions")
    outer = field_plan.complete
    if root.one:
        return object_plan(field_plan, root, outer, roots, schema)
    if root.connection:
        _check_connection(outer)
    elif not hasattr(outer, "item") or not hasattr(outer.item, "fields"):
        raise NoSqlForm(f"{field_plan.name}: not a list of objects")
    plan = SqlRootPlan(key=field_plan.key, field_plan=field_plan, root=root, outer=outer, schema=schema,
                       selected=selected_fields(outer) if root.selection else frozenset())
    items = {name: plan.make_items_sql(name, "") for name in DIALECTS}  # a SQL form in both dialects, or NoSqlForm
    # A page's items are selected in a sub-select of the page statement; below an object, that is a sub-select too.
    parses_on_sqlite(items["sqlite"], 2 if root.nested else 1, field_plan.name)
    return plan


def parses_on_sqlite(texts: list[str], levels: int, where: str) -> None:
    """``NoSqlForm`` when SQLite's parser cannot read one of the JSON text expressions ``texts`` as the statement holds
    them (in ``levels`` sub-selects of FROM clauses): its stack is short (YYSTACKDEPTH, 100 entries in SQLite 3.40), and
    a deep selection (lists of objects with lists of objects with Money...) overflows it. The statement would fail,
    one statement more than the generic path: the document keeps its Python plan (on both databases, as one plan serves
    both). Checked once per plan, on an empty in-memory database: parsing comes before names are looked up."""
    connection = sqlite3.connect(":memory:")
    try:
        for text in texts:
            statement = f"SELECT {text} AS bgq_item"
            for level in range(levels):
                statement = f"SELECT 1 FROM ({statement}) AS bgq_{level}"
            try:
                connection.execute(f"EXPLAIN {statement}")
            except sqlite3.Error as error:
                if "parser stack overflow" in str(error):
                    raise NoSqlForm(f"{where}: too deep for SQLite's parser") from None
    finally:
        connection.close()


# -- one object ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class SqlObjectPlan:
    """One object (e.g. ``viewer.organization``) answered by one statement: its row's selected fields, each as
    JSON text (one column each), and every connection selected below it (``sql_roots.FIELDS``) paged in the same
    statement (its items and number of rows, as ``SqlRootPlan`` writes them). The answer is put together from
    those texts (``orjson.Fragment``) and the connections' ``pageInfo``."""

    key: str
    field_plan: Any
    root: SqlRoot
    outer: Any  # the object's ObjectPlan
    schema: Any
    connections: dict[str, SqlRootPlan]  # response key -> the connection's plan
    selected: frozenset[str] = frozenset()  # ``selected_fields`` of the object (``SqlRoot.selection``)
    in_python: bool = False  # a field of ``SqlRoot.python`` is selected: the query's ``PythonAnswer`` is the answer
    texts: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)
    bound: dict[tuple, Prepared] = field(default_factory=dict, repr=False)  # over bind parameters, compiled once

    def fields_sql(self, dialect: str, public_url: str) -> list[str]:
        """The JSON text expression of each selected field but ``__typename`` and the connections, in order."""
        key = (dialect, public_url)
        texts = self.texts.get(key)
        if texts is None:
            sql = Rendering(DIALECTS[dialect], public_url)
            fields = [sub for sub in self.outer.fields if sub.typename is None and sub.key not in self.connections]
            texts = self.texts[key] = [text for _, text in field_texts(sql, self.schema, self.outer, (ROW,), fields)]
        return texts

    async def answer(self, run: Any, db: Any, parent: Any = None) -> Any:
        query = await field_query(run, self.field_plan, self.root, parent, selected=self.selected)
        if query is None:
            return self._null()
        if isinstance(query, PythonAnswer):  # nothing to read: the Python plan completes the object
            (answer,) = await run.complete(self.outer, [query.value])
            return answer
        if self.in_python:
            raise RuntimeError(f"{self.key}: a field answered in Python is selected and its query read no answer")
        nested = {key: await plan.prepare(run, key=query.key) for key, plan in self.connections.items()}
        public_url = run.context.settings.public_url
        prepared, values = self.statement_and_values(db.engine.dialect, public_url, query, nested)
        rows = await _rows(prepared, db, values)
        if not rows:
            return self._null()
        row = rows[0]
        texts = len(self.fields_sql(db.engine.dialect.name, public_url))
        values, paged = iter(row[:texts]), iter(row[texts:])  # the fields' texts, then the connections' pages
        answer: dict[str, Any] = {}
        for sub in self.outer.fields:
            if sub.typename is not None:
                answer[sub.key] = sub.typename
            elif sub.key in self.connections:
                connection, page = self.connections[sub.key], nested[sub.key]
                if page is None:
                    answer[sub.key] = None
                    continue
                *lists, count = (next(paged) for _ in range(len(connection.item_plans()) + 1))
                texts = [orjson.Fragment("[" + (text or "") + "]") for text in lists]
                answer[sub.key] = connection.connection_answer(texts, min(count, page.first), count > page.first,
                                                               page.offset, empty=False)
            else:
                answer[sub.key] = orjson.Fragment(next(values))
        return answer

    def _null(self) -> None:
        if not self.outer.nullable:
            raise NoRow(f"{self.key}: no row for a non-null object")
        return None

    def statement_and_values(self, engine_dialect: Any, public_url: str, query: RootQuery,
                             nested: dict[str, Any]) -> tuple[Prepared, dict[str, Any]]:
        """The statement, compiled for ``engine_dialect`` (SQLAlchemy's), and the values of its bind parameters.
        Where the object's and every connection's statement is a ``columns.Statement``, the statement is made and
        compiled once over bind parameters (kept with the plan, by dialect, public URL and which connections are
        null) and each request binds its own values: building the statement and its cache key each time was half
        of a request's time. Else it is made for this request."""
        dialect = DIALECTS[engine_dialect.name]
        pages = {number: page for number, page in enumerate(nested.values()) if page is not None}
        if not all(isinstance(part.source, Statement) for part in (query, *pages.values())):
            return Prepared.of(self.statement(dialect, public_url, query, nested), engine_dialect), {}
        values = _bound_values(query, "bgq_o")
        for number, page in pages.items():
            name = f"bgq_c{number}"
            values.update(_bound_values(page, name))
            values.update(_page_values(page, name, f"{name}_bgq_last"))
        key = (dialect.name, public_url, query.source.pattern(),
               tuple(None if page is None else page.source.pattern() for page in nested.values()))
        prepared = self.bound.get(key)
        if prepared is None:
            # The last row shown is the page statement's own ``bgq_last``, which ``_own_page`` names <name>_bgq_last.
            bounds = {f"bgq_c{number}": _bound_page(f"bgq_c{number}") for number in pages}
            prepared = self.bound[key] = Prepared.of(self.statement(
                dialect, public_url, _over_parameters(query, "bgq_o"),
                {key: None if page is None else _over_parameters(page, f"bgq_c{number}")
                 for number, (key, page) in enumerate(nested.items())}, bounds), engine_dialect)
        return prepared, values

    def statement(self, dialect: Postgres, public_url: str, query: RootQuery, nested: dict[str, Any],
                  bounds: dict[str, tuple] | None = None) -> Any:
        """The object's row (``query``'s statement, aliased as a root's rows are) with its fields' texts, beside
        one row per connection: its page's items and number of rows (no row of the object: no row at all).
        ``bounds``: each connection's page bounds as bind parameters, by its subquery's name."""
        rows = query.statement.subquery(ROW)
        columns: list[Any] = [literal_column(text) for text in self.fields_sql(dialect.name, public_url)]
        source = rows
        for number, (key, page) in enumerate(nested.items()):
            if page is None:
                continue
            connection, name = self.connections[key], f"bgq_c{number}"
            paged, paged_columns = _own_page(connection.statement(
                dialect, connection.items_sql(dialect.name, public_url), page, (bounds or {}).get(name)), name)
            columns.extend(paged_columns)
            source = source.join(paged, true())  # one row each: no row of the object, no row
        # Only ``__typename`` selected: whether there is a row (SQLite has no SELECT of no columns).
        return select(*(columns or [literal_column("1")])).select_from(source)


def _bound_values(query: RootQuery, name: str) -> dict[str, Any]:
    """The values ``_over_parameters(query, name)``'s statement binds (a None value has no parameter, unless the
    statement ``binds_none``)."""
    source = query.source
    return {f"{name}_v{index}": value for index, value in enumerate(source.values)
            if value is not None or source.binds_none}


def _bound_page(name: str) -> tuple[Any, Any, int]:
    """A page's limit and offset as the bind parameters ``<name>_limit``, ``<name>_offset`` (``statement``'s
    ``bounds``; its last row shown is the page statement's own ``bgq_last``)."""
    return bindparam(f"{name}_limit", type_=Integer), bindparam(f"{name}_offset", type_=Integer), 0


def _page_values(query: RootQuery, name: str, last: str) -> dict[str, int]:
    """The values of ``_bound_page(name)``'s parameters, and of the last row shown (the parameter ``last``)."""
    return dict(zip((f"{name}_limit", f"{name}_offset", last), page_bounds(query), strict=True))


def _over_parameters(query: RootQuery, name: str) -> RootQuery:
    """``query`` with its statement made over the bind parameters ``<name>_v<n>`` instead of its values (a value
    None stays None: the builder leaves its condition out; unless the statement ``binds_none``)."""
    source = query.source
    parameters = tuple(None if value is None and not source.binds_none else bindparam(f"{name}_v{index}")
                       for index, value in enumerate(source.values))
    return replace(query, source=replace(source, values=parameters))


class NoRow(Exception):
    """A non-null object whose statement found no row: the generic path answers (with its error)."""


def _own_page(statement: Any, name: str) -> tuple[Any, list[Any]]:
    """A page statement (``dialects.page_statement``) as the subquery ``name`` of an object's statement, and
    its columns there: its aggregates' bound ``bgq_last`` renamed (several connections' pages in one statement
    keep their own values) and its columns labelled. Built from the statement's own column list: its
    ``selected_columns`` and a subquery's ``c`` make column proxies that cost a quarter of a millisecond each."""
    columns, renamed, filters = [], 0, 0
    for number, column in enumerate(statement._raw_columns):  # noqa: SLF001
        criterion = getattr(column, "criterion", None)  # an aggregate's FILTER (WHERE position <= :bgq_last)
        filters += criterion is not None
        bound = getattr(criterion, "right", None)
        if isinstance(bound, BindParameter) and not bound.unique:
            column = column.func.filter(criterion.operator(
                criterion.left, bindparam(f"{name}_{bound.key}", bound.value, type_=bound.type)))
            renamed += 1
        columns.append(column.label(f"{name}_{number}"))
    if renamed != filters:  # a page of no nodes (only pageInfo) has no filter, and nothing to rename
        raise RuntimeError("a page statement's filter without its bgq_last: two pages would share one bound")
    paged = statement.with_only_columns(*columns).subquery(name)
    return paged, [literal_column(f"{name}.{name}_{number}") for number in range(len(columns))]


def object_plan(field_plan: Any, root: SqlRoot, outer: Any, roots: dict[Any, SqlRoot], schema: Any) -> SqlObjectPlan:
    """The SQL plan of one object field, or ``NoSqlForm``: each field selected has a SQL form, or is a connection
    with a SQL plan of its own (``sql_roots.FIELDS``)."""
    if not hasattr(outer, "fields"):
        raise NoSqlForm(f"{field_plan.name}: not an object")
    selected = selected_fields(outer) if root.selection else frozenset()
    if root.python & selected:  # the query's answer, completed by the Python plan: nothing of it in SQL
        return SqlObjectPlan(key=field_plan.key, field_plan=field_plan, root=root, outer=outer, schema=schema,
                             connections={}, selected=selected, in_python=True)
    connections = {}
    for sub in outer.fields:
        if sub.typename is None and (outer.type_name, sub.name) in roots and sub.resolve is not None:
            nested = root_plan(sub, roots, schema, parent=outer.type_name)
            if not isinstance(nested, SqlRootPlan) or not nested.root.connection or not nested.root.nested:
                raise NoSqlForm(f"{outer.type_name}.{sub.name}: not a connection")
            connections[sub.key] = nested
    plan = SqlObjectPlan(key=field_plan.key, field_plan=field_plan, root=root, outer=outer, schema=schema,
                         connections=connections, selected=selected)
    for name in DIALECTS:  # every field has a SQL form in both dialects, or NoSqlForm now
        plan.fields_sql(name, "")
    parses_on_sqlite(plan.fields_sql("sqlite", ""), 0, field_plan.name)  # the statement's own columns
    return plan
