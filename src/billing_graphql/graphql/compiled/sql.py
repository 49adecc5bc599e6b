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

A document with any field that has no SQL form keeps its Python plan (``compiled``); a request the
SQL plan cannot answer (a permission refused, a bad argument) takes the generic path, as there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import GraphQLEnumType, GraphQLList, get_named_type, get_nullable_type
from sqlalchemy import Boolean, Enum, Integer, JSON, Numeric, String, Text, Uuid, func
from sqlalchemy.types import TypeDecorator
from strawberry.permission import PermissionExtension
from strawberry.types.arguments import convert_arguments
from strawberry.types.info import Info as StrawberryInfo

from billing_graphql.db.types import DecimalText, UTCDateTime
from billing_graphql.graphql.columns import BY_TYPE_NAME, Children, Column, Nested, Parent, RootQuery
from billing_graphql.graphql.common import cursor_at
from billing_graphql.graphql.compiled.dialects import DIALECTS, Postgres, sqlite_functions


class NoSqlForm(Exception):
    """A selected field has no SQL form: the document keeps its Python plan."""


@dataclass(frozen=True)
class SqlRoot:
    """A root list or connection answered by SQL. ``query(context, **arguments)`` is the resolver's own
    statement (the resolver calls the same function): a ``RootQuery``, or None for the empty answer."""

    query: Callable[..., RootQuery | None]
    connection: bool = True
    nested: bool = False  # a field of an object: ``query(context, parent, **arguments)``, None answering null


class Rendering:
    """A dialect with what the SQL forms read from the settings (``public_url`` as a SQL literal)."""

    def __init__(self, dialect: Postgres, public_url: str) -> None:
        self.dialect = dialect
        self.public_url = "'" + public_url.replace("'", "''") + "'"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dialect, name)


# -- SQL forms of fields ------------------------------------------------------------------------------


def field_form(schema: Any, type_name: str, field_name: str) -> Any:
    """The SQL form of ``type_name.field_name``: a builder, ``Nested``, ``Children`` or ``Parent``."""
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


def column_form(model: type, attribute: str, type_name: str) -> Callable[..., str]:
    """The SQL form of a plain field read from ``model``'s column ``attribute``, by the column's type."""
    column = model.__mapper__.columns.get(attribute)
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


MONEY_FIELDS = {"amount": "money_amount", "currency": None, "formatted": "money_formatted"}


def money_text(sql: Any, plan: Any, minor: str, currency: str, nullable: bool) -> str:
    """Money's selected fields over the minor-unit and currency expressions, formatted in SQL."""
    pairs = []
    for sub in plan.fields:
        if sub.typename is not None:
            pairs.append((sub.key, f"'\"{sub.typename}\"'"))
        elif sub.name in MONEY_FIELDS:
            method = MONEY_FIELDS[sub.name]
            pairs.append((sub.key, sql.bare(currency if method is None else getattr(sql, method)(minor, currency))))
        else:
            raise NoSqlForm(f"Money.{sub.name}")
    text = sql.object_text(pairs)
    if nullable:
        return f"(CASE WHEN ({minor}) IS NULL OR ({currency}) IS NULL THEN 'null' ELSE {text} END)"
    return text


def object_text(sql: Any, schema: Any, plan: Any, arguments: tuple[str, ...]) -> str:
    """The JSON text expression of ``plan`` (a ``compiled.ObjectPlan``) over the row ``arguments[0]`` (its
    parents' rows after it), every leaf formatted by the database."""
    pairs = []
    row = arguments[0]
    object_type = schema.type_map[plan.type_name]
    for field_plan in plan.fields:
        key = field_plan.key
        if field_plan.typename is not None:
            pairs.append((key, f"'\"{field_plan.typename}\"'"))
            continue
        where = f"{plan.type_name}.{field_plan.name}"
        if field_plan.node is not None and field_plan.node.arguments:
            raise NoSqlForm(f"{where}: arguments")
        form = field_form(schema, plan.type_name, field_plan.name)
        if isinstance(form, Nested):
            if form.type_name != "Money":
                raise NoSqlForm(f"{where}: a nested {form.type_name}")
            minor, currency = form.arguments(sql, *arguments)
            pairs.append((key, money_text(sql, field_plan.complete, minor, currency, form.nullable)))
        elif isinstance(form, Children):
            alias = f"{row}_{form.table}"
            item = object_text(sql, schema, field_plan.complete.item, (alias, *arguments))
            condition = (form.where(alias, row) if form.where is not None
                         else f"{alias}.{form.foreign_key} = {row}.id")
            source = f"{form.table} AS {alias} WHERE {condition}"
            order = (form.order_by(alias) if callable(form.order_by)
                     else ", ".join(f"{alias}.{column}" for column in form.order_by.split(", ")))
            pairs.append((key, sql.list_text(item, source, order)))
        elif isinstance(form, Parent):
            alias = f"{row}_{form.table}"
            item = object_text(sql, schema, field_plan.complete, (alias, *arguments))
            source = f"{form.table} AS {alias} WHERE {alias}.id = {row}.{form.foreign_key}"
            pairs.append((key, f"coalesce({sql.one_text(item, source)}, 'null')"))
        else:
            pairs.append((key, leaf_text(sql, form(sql, *arguments), object_type.fields[field_plan.name].type, where)))
    return sql.object_text(pairs)


ROW = "i"  # the alias of the root field's rows
POSITION = "bgq_position"  # their place in the resolver's order


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


@dataclass(eq=False)
class SqlRootPlan:
    """A root list or connection field answered by one statement, whose JSON text the response carries
    as it comes from the database (``orjson.Fragment``: not parsed, not serialised again)."""

    key: str
    field_plan: Any
    root: SqlRoot
    outer: Any  # the ObjectPlan of the connection, or the ListOf of a list
    schema: Any
    texts: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)  # items_sql, made once

    async def answer(self, run: Any, db: Any, parent: Any = None) -> Any:
        definition = self.field_plan.field_def.extensions["strawberry-definition"]
        info = StrawberryInfo(_raw_info=run.info(self.field_plan), _field=definition)
        strawberry_schema = run.schema._strawberry_schema  # noqa: SLF001
        arguments = convert_arguments(run.arguments(self.field_plan), definition.arguments,
                                      scalar_registry=strawberry_schema.schema_converter.scalar_registry,
                                      config=strawberry_schema.config, info=info)
        await run_permissions(definition, info, arguments)
        if self.root.nested:
            query = self.root.query(info.context, parent, **arguments)
            if query is None:
                return None
        else:
            query = self.root.query(info.context, **arguments)
        if query is None:
            lists, count = [None] * len(self.item_plans()), 0
        else:
            async with db.read() as session:
                dialect = DIALECTS[session.bind.dialect.name]
                if dialect.name == "sqlite":
                    await sqlite_functions(session)
                items = self.items_sql(dialect.name, run.context.settings.public_url)
                *lists, count = (await session.execute(self.statement(dialect, items, query))).one()
        texts = [orjson.Fragment("[" + (text or "") + "]") for text in lists]
        if not self.root.connection:
            return texts[0]
        first, offset = (query.first, query.offset) if query is not None else (0, 0)
        return self.connection_answer(texts, min(count, first), count > first, offset, empty=query is None)

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
                    pairs.append((sub.key, sql.bare(sql.cursor(f"{ROW}.{POSITION} - 1"))))
                else:  # node
                    pairs.append((sub.key, object_text(sql, self.schema, sub.complete, (ROW,))))
            items.append(sql.object_text(pairs))
        return items

    def statement(self, dialect: Postgres, items: list[str], query: RootQuery) -> Any:
        """The resolver's statement, paged as it pages it (one row more, to know whether there is a next
        page), wrapped in the JSON text of its items and their number."""
        statement = query.statement
        ordering = statement._order_by_clauses  # noqa: SLF001
        last = None
        if self.root.connection:
            statement = statement.limit(query.first + 1).offset(query.offset)
            last = query.offset + query.first  # the row past the page is counted, not shown
        # The row number is taken before LIMIT and OFFSET: a page's first row is offset + 1.
        rows = statement.add_columns(func.row_number().over(order_by=ordering).label(POSITION)).subquery(ROW)
        return dialect.page_statement(items, rows, POSITION, last)

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
    if root.connection:
        _check_connection(outer)
    elif not hasattr(outer, "item") or not hasattr(outer.item, "fields"):
        raise NoSqlForm(f"{field_plan.name}: not a list of objects")
    plan = SqlRootPlan(key=field_plan.key, field_plan=field_plan, root=root, outer=outer, schema=schema)
    for name in DIALECTS:  # every field has a SQL form in both dialects, or NoSqlForm now
        plan.make_items_sql(name, "")
    return plan
