"""The compiled path's second tier: a query answered by one SQL statement that builds its JSON.

Where every field a document selects below a root list or connection has a SQL form (``graphql.columns``:
derived from the Strawberry type and its model, or declared once beside the field), its plan
(``compiled.ObjectPlan``) is turned into one statement: the resolver's own ``Select`` (``SqlRoot.query``,
shared with the resolver), paged as the resolver pages it, wrapped in ``json_build_object``/``json_agg`` on
PostgreSQL, ``json_object``/``json_group_array`` on SQLite, one correlated sub-select per child list or
parent object. Leaf values are formatted in the database exactly as the types serialise them
(``dialects``); value objects such as Money come out of SQL as their arguments and are finished in Python,
once per distinct value. The connection around the nodes (cursors, ``pageInfo``) is assembled in Python.

A document with any field that has no SQL form keeps its Python plan (``compiled``); a request the
SQL plan cannot answer (a permission refused, a bad argument) takes the generic path, as there.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Boolean, Enum, Integer, JSON, Numeric, String, Text, Uuid, func, literal_column, select
from sqlalchemy.types import TypeDecorator
from strawberry.permission import PermissionExtension
from strawberry.types.arguments import convert_arguments
from strawberry.types.info import Info as StrawberryInfo

from billing_graphql.db.types import DecimalText, UTCDateTime
from billing_graphql.graphql.columns import BY_TYPE_NAME, Children, Column, Finished, Nested, Parent, RootQuery
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


def money_fields(minor: int, currency: str) -> dict[str, Any]:
    """Money's fields as the type serialises them (``common.Money.of``)."""
    from billing_graphql.graphql.common import Money
    from billing_graphql.graphql.scalars import _serialize_decimal

    money = Money.of(minor, currency)
    return {"amount": _serialize_decimal(money.amount), "currency": currency, "formatted": money.formatted}


# Value objects SQL gives as their arguments and Python finishes (cached: a page repeats amounts).
FINISHED: dict[str, tuple[frozenset[str], Callable[..., dict[str, Any]]]] = {
    "Money": (frozenset(("amount", "currency", "formatted")), money_fields),
}


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


Finish = Callable[[dict[str, Any]], None]


def object_sql(sql: Any, schema: Any, plan: Any, arguments: tuple[str, ...]) -> tuple[str, Finish | None]:
    """The JSON object expression of ``plan`` (a ``compiled.ObjectPlan``) over the row ``arguments[0]``
    (its parents' rows after it), and what completes the loaded object in Python (None: nothing)."""
    pairs, steps = [], []
    row = arguments[0]
    for field_plan in plan.fields:
        key = field_plan.key
        if field_plan.typename is not None:
            pairs.append((key, f"'{field_plan.typename}'"))
            continue
        if field_plan.node is not None and field_plan.node.arguments:
            raise NoSqlForm(f"{plan.type_name}.{field_plan.name}: arguments")
        form = field_form(schema, plan.type_name, field_plan.name)
        if isinstance(form, Nested) and form.type_name in FINISHED:
            values = form.arguments(sql, *arguments)
            expression = sql.json_array(values)
            if form.nullable:
                expression = (f"CASE WHEN {' OR '.join(f'{value} IS NULL' for value in values)} THEN NULL "
                              f"ELSE {expression} END")
            pairs.append((key, expression))
            steps.append(_finish_value(key, form.type_name, field_plan.complete))
        elif isinstance(form, Children):
            alias = f"{row}_{form.table}"
            item, finish = object_sql(sql, schema, field_plan.complete.item, (alias, *arguments))
            condition = (form.where(alias, row) if form.where is not None
                         else f"{alias}.{form.foreign_key} = {row}.id")
            source = f"{form.table} AS {alias} WHERE {condition}"
            order = (form.order_by(alias) if callable(form.order_by)
                     else ", ".join(f"{alias}.{column}" for column in form.order_by.split(", ")))
            pairs.append((key, sql.json_list(item, source, order)))
            if finish is not None:
                steps.append(_finish_items(key, finish))
        elif isinstance(form, Parent):
            alias = f"{row}_{form.table}"
            item, finish = object_sql(sql, schema, field_plan.complete, (alias, *arguments))
            pairs.append((key, sql.json_one(item, f"{form.table} AS {alias} WHERE {alias}.id = {row}.{form.foreign_key}")))
            if finish is not None:
                steps.append(_finish_object(key, finish))
        elif isinstance(form, Finished):
            pairs.append((key, sql.json_array(tuple(f"{row}.{name}" for name in form.columns))))
            steps.append(_finish_leaf(key, form, BY_TYPE_NAME[plan.type_name].model, field_plan.complete))
        elif isinstance(form, Nested):
            raise NoSqlForm(f"{plan.type_name}.{field_plan.name}: a nested {form.type_name}")
        else:
            pairs.append((key, form(sql, *arguments)))
    return sql.json_object(pairs), _finish_steps(steps)


def _finish_value(key: str, type_name: str, plan: Any) -> Finish:
    """Replace the arguments array at ``key`` by the selected fields of the finished value object."""
    fields, finish = FINISHED[type_name]
    selected = []
    for sub in plan.fields:
        if sub.typename is None and sub.name not in fields:
            raise NoSqlForm(f"{type_name}.{sub.name}")
        selected.append((sub.key, sub.name, sub.typename))

    @functools.lru_cache(maxsize=16384)  # a value object's fields depend on its arguments alone
    def selection(*arguments: Any) -> dict[str, Any]:
        values = finish(*arguments)
        return {out: typename if typename is not None else values[name] for out, name, typename in selected}

    def step(output: dict[str, Any]) -> None:
        arguments = output[key]
        if arguments is not None:
            output[key] = selection(*arguments)  # shared between answers: read-only from here on

    return step


class _Columns:
    """The columns a ``Finished`` leaf reads, as the row's attributes."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _finish_leaf(key: str, form: Finished, model: type, leaf: Any) -> Finish:
    """Replace the columns array at ``key`` by ``form.python`` of them, serialised as the leaf type does."""
    converters = []
    for name in form.columns:
        kind = model.__mapper__.columns[name].type
        if isinstance(kind, Enum):
            converters.append(lambda value, enum_class=kind.enum_class: None if value is None else enum_class[value])
        elif isinstance(kind, Integer | String | Text) and not isinstance(kind, TypeDecorator):
            converters.append(None)
        else:
            raise NoSqlForm(f"{model.__name__}.{name}: a column of type {kind!r} read by Python")
    names, python, serialize = form.columns, form.python, leaf.serialize

    @functools.lru_cache(maxsize=4096)
    def value(*arguments: Any) -> Any:
        row = _Columns({name: argument if convert is None else convert(argument)
                        for name, convert, argument in zip(names, converters, arguments, strict=True)})
        result = python(row)
        return None if result is None else serialize(result)

    def step(output: dict[str, Any]) -> None:
        output[key] = value(*output[key])

    return step


def _finish_object(key: str, finish: Finish) -> Finish:
    def step(output: dict[str, Any]) -> None:
        if output[key] is not None:
            finish(output[key])

    return step


def _finish_items(key: str, finish: Finish) -> Finish:
    def step(output: dict[str, Any]) -> None:
        for item in output[key]:
            finish(item)

    return step


def _finish_steps(steps: list[Finish]) -> Finish | None:
    if not steps:
        return None

    def finish(output: dict[str, Any]) -> None:
        for step in steps:
            step(output)

    return finish


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
    """A root list or connection field answered by one statement."""

    key: str
    field_plan: Any
    root: SqlRoot
    outer: Any  # the ObjectPlan of the connection, or the ListOf of a list
    node_plan: Any  # the ObjectPlan of each node
    schema: Any

    async def answer(self, run: Any, db: Any) -> Any:
        definition = self.field_plan.field_def.extensions["strawberry-definition"]
        info = StrawberryInfo(_raw_info=run.info(self.field_plan), _field=definition)
        strawberry_schema = run.schema._strawberry_schema  # noqa: SLF001
        arguments = convert_arguments(run.arguments(self.field_plan), definition.arguments,
                                      scalar_registry=strawberry_schema.schema_converter.scalar_registry,
                                      config=strawberry_schema.config, info=info)
        await run_permissions(definition, info, arguments)
        query = self.root.query(info.context, **arguments)
        nodes: list[Any] = []
        if query is not None:
            async with db.read() as session:
                dialect = DIALECTS[session.bind.dialect.name]
                if dialect.name == "sqlite":
                    await sqlite_functions(session)
                node, finish = self.node_sql(dialect.name, run.context.settings.public_url)
                document = await session.scalar(self.statement(dialect, node, query))
            nodes = orjson.loads(document) if document else []
            if finish is not None:
                for item in nodes[:query.first] if self.root.connection else nodes:
                    finish(item)
        if not self.root.connection:
            return nodes
        first, offset = (query.first, query.offset) if query is not None else (0, 0)
        return self.connection_answer(nodes, first, offset, empty=query is None)

    @functools.lru_cache(maxsize=8)  # noqa: B019  (plans are few per process: the LRU bounds them)
    def node_sql(self, dialect: str, public_url: str) -> tuple[str, Finish | None]:
        return object_sql(Rendering(DIALECTS[dialect], public_url), self.schema, self.node_plan, (ROW,))

    def statement(self, dialect: Postgres, node: str, query: RootQuery) -> Any:
        """The resolver's statement, paged as it pages it, wrapped in the JSON of its nodes."""
        statement = query.statement
        ordering = statement._order_by_clauses  # noqa: SLF001
        if self.root.connection:
            statement = statement.limit(query.first + 1).offset(query.offset)
        rows = statement.add_columns(func.row_number().over(order_by=ordering).label(POSITION)).subquery(ROW)
        return dialect.json_of_rows(node, rows, f"{ROW}.{POSITION}")

    def connection_answer(self, nodes: list[Any], first: int, offset: int, empty: bool) -> dict[str, Any]:
        has_next = len(nodes) > first
        nodes = nodes[:first]
        cursors = [cursor_at(offset + index) for index in range(len(nodes))]
        page_info = {
            "hasNextPage": has_next, "hasPreviousPage": offset > 0 and not empty,
            "startCursor": cursors[0] if cursors else None, "endCursor": cursors[-1] if cursors else None,
        }
        answer: dict[str, Any] = {}
        for field_plan in self.outer.fields:
            if field_plan.typename is not None:
                answer[field_plan.key] = field_plan.typename
            elif field_plan.name == "pageInfo":
                answer[field_plan.key] = {
                    sub.key: sub.typename if sub.typename is not None else page_info[sub.name]
                    for sub in field_plan.complete.fields}
            else:  # edges
                edge_plan = field_plan.complete.item
                answer[field_plan.key] = [
                    {sub.key: sub.typename if sub.typename is not None
                     else cursor if sub.name == "cursor" else node for sub in edge_plan.fields}
                    for cursor, node in zip(cursors, nodes, strict=True)]
        return answer


def _connection_node(connection: Any) -> Any:
    """The node plan of a connection's selection (``NoSqlForm`` for anything but edges, nodes, cursors
    and pageInfo)."""
    node_plan = None
    for sub in connection.fields:
        if sub.typename is not None:
            continue
        if sub.name == "pageInfo":
            if any(leaf.typename is None and leaf.name not in
                   {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"} for leaf in sub.complete.fields):
                raise NoSqlForm("pageInfo")
        elif sub.name == "edges":
            for edge_field in sub.complete.item.fields:
                if edge_field.name == "node":
                    if node_plan is not None:
                        raise NoSqlForm("node selected twice")
                    node_plan = edge_field.complete
                elif edge_field.typename is None and edge_field.name != "cursor":
                    raise NoSqlForm(f"edges.{edge_field.name}")
        else:
            raise NoSqlForm(f"connection.{sub.name}")
    if node_plan is None:
        raise NoSqlForm("no node selected")
    return node_plan


def root_plan(field_plan: Any, roots: dict[str, SqlRoot], schema: Any) -> SqlRootPlan:
    """The SQL plan of a root list or connection field, or ``NoSqlForm``."""
    root = roots.get(field_plan.name)
    if root is None or field_plan.attribute is not None or field_plan.complete is None:
        raise NoSqlForm(field_plan.name)
    definition = field_plan.field_def.extensions["strawberry-definition"]
    if any(not isinstance(extension, PermissionExtension) for extension in definition.extensions):
        raise NoSqlForm(f"{field_plan.name}: field extensions")
    outer = field_plan.complete
    if root.connection:
        node_plan = _connection_node(outer)
    else:
        if not hasattr(outer, "item") or not hasattr(outer.item, "fields"):
            raise NoSqlForm(f"{field_plan.name}: not a list of objects")
        node_plan = outer.item
    plan = SqlRootPlan(key=field_plan.key, field_plan=field_plan, root=root, outer=outer, node_plan=node_plan,
                       schema=schema)
    for name, dialect in DIALECTS.items():  # every field has a SQL form in both dialects, or NoSqlForm now
        object_sql(Rendering(dialect, ""), schema, node_plan, (ROW,))
    return plan
