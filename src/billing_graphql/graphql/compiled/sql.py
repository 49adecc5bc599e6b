"""The compiled path's second tier: a registered query answered by one SQL statement that builds its JSON.

Where every field a document selects below a root field has a SQL form (``SqlType`` registries, kept
beside the GraphQL types they mirror, e.g. ``graphql.billing.sql``), its plan (``compiled.ObjectPlan``)
is turned into one statement per root field: ``json_build_object``/``json_agg`` on PostgreSQL,
``json_object``/``json_group_array`` on SQLite, one correlated sub-select per child list. Leaf values are
formatted in the database exactly as the types serialise them (``dialects``); value objects such as
Money come out of SQL as their arguments and are finished in Python, once per distinct value. The
connection around the nodes (cursors, ``pageInfo``) and the response itself are assembled in Python.

A document with any field that has no SQL form keeps its Python plan (``compiled``); a request the
SQL plan cannot answer (a permission refused, a bad argument) takes the generic path, as there.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text
from strawberry.permission import PermissionExtension
from strawberry.types.arguments import convert_arguments
from strawberry.types.info import Info as StrawberryInfo

from billing_graphql.graphql.common import cursor_at
from billing_graphql.graphql.compiled.dialects import DIALECTS, Postgres, sqlite_functions

Builder = Callable[..., str]  # (dialect, *arguments) -> a SQL expression of the field's JSON value


class NoSqlForm(Exception):
    """A selected field has no SQL form: the document keeps its Python plan."""


@dataclass(frozen=True)
class Nested:
    """An object built from expressions of its parent (e.g. Money from an amount column and a currency)."""

    type: SqlType
    arguments: Callable[..., tuple[str, ...]]


@dataclass(frozen=True)
class Children:
    """A list of rows of ``table`` whose ``foreign_key`` is the parent's ``id``, in ``order_by``."""

    type: SqlType
    table: str
    foreign_key: str
    order_by: str


@dataclass(frozen=True)
class SqlType:
    """``fields``: the SQL form of each field. A value object may instead be ``finish``ed in Python:
    SQL then gives only its arguments (a JSON array), and ``finish(*arguments)`` its fields by name
    (``fields`` lists them, with no form), so the database is spared the formatting."""

    name: str
    fields: dict[str, Builder | Nested | Children | None] = field(default_factory=dict)
    finish: Callable[..., dict[str, Any]] | None = None


@dataclass(frozen=True)
class SqlRoot:
    """A root connection field answered by SQL: ``page(context, **arguments)`` turns the request's
    arguments into ``(where, first, offset)``, ``where`` a column -> value mapping (None: the empty
    connection), as its resolver does."""

    node: SqlType
    table: str
    order_by: str
    page: Callable[..., Any]


# -- planning -----------------------------------------------------------------------------------------


Finish = Callable[[dict[str, Any]], None]


def object_sql(dialect: Postgres, sql_type: SqlType, plan: Any, arguments: tuple[str, ...]) -> tuple[str, Finish | None]:
    """The JSON object expression of ``plan`` (a ``compiled.ObjectPlan``) over ``sql_type``, and what
    completes the loaded object in Python (None: nothing)."""
    pairs, steps = [], []
    for field_plan in plan.fields:
        key = field_plan.key
        if field_plan.typename is not None:
            pairs.append((key, f"'{field_plan.typename}'"))
            continue
        form = sql_type.fields.get(field_plan.name)
        if form is None or field_plan.node is not None and field_plan.node.arguments:
            raise NoSqlForm(f"{sql_type.name}.{field_plan.name}")
        if isinstance(form, Nested) and form.type.finish is not None:
            pairs.append((key, dialect.json_array(form.arguments(dialect, *arguments))))
            steps.append(_finish_value(key, form.type, field_plan.complete))
        elif isinstance(form, Nested):
            expression, finish = object_sql(dialect, form.type, field_plan.complete, form.arguments(dialect, *arguments))
            pairs.append((key, expression))
            if finish is not None:
                steps.append(_finish_object(key, finish))
        elif isinstance(form, Children):
            alias = f"{arguments[0]}_{form.table}"
            item, finish = object_sql(dialect, form.type, field_plan.complete.item, (alias, arguments[0]))
            source = f"{form.table} AS {alias} WHERE {alias}.{form.foreign_key} = {arguments[0]}.id"
            order = ", ".join(f"{alias}.{column}" for column in form.order_by.split(", "))
            pairs.append((key, dialect.json_list(item, source, order)))
            if finish is not None:
                steps.append(_finish_items(key, finish))
        else:
            pairs.append((key, form(dialect, *arguments)))
    return dialect.json_object(pairs), _finish_steps(steps)


def _finish_value(key: str, sql_type: SqlType, plan: Any) -> Finish:
    """Replace the arguments array at ``key`` by the selected fields of ``sql_type.finish(*arguments)``."""
    selected = []
    for sub in plan.fields:
        if sub.typename is None and sub.name not in sql_type.fields:
            raise NoSqlForm(f"{sql_type.name}.{sub.name}")
        selected.append((sub.key, sub.name, sub.typename))
    finish = sql_type.finish

    @functools.lru_cache(maxsize=16384)  # a value object's fields depend on its arguments alone
    def selection(*arguments: Any) -> dict[str, Any]:
        values = finish(*arguments)
        return {out: typename if typename is not None else values[name] for out, name, typename in selected}

    def step(output: dict[str, Any]) -> None:
        arguments = output[key]
        if arguments is not None:
            output[key] = selection(*arguments)  # shared between answers: read-only from here on

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


@dataclass(eq=False)
class SqlConnectionPlan:
    """A root connection field answered by one statement per dialect."""

    key: str
    field_plan: Any
    root: SqlRoot
    connection: Any  # the ObjectPlan of the connection
    statements: dict[str, str]  # dialect -> SQL with a {where} slot
    finish: dict[str, Finish | None]  # dialect -> what completes each loaded node

    async def answer(self, run: Any, db: Any) -> dict[str, Any]:
        definition = self.field_plan.field_def.extensions["strawberry-definition"]
        info = StrawberryInfo(_raw_info=run.info(self.field_plan), _field=definition)
        strawberry_schema = run.schema._strawberry_schema  # noqa: SLF001
        arguments = convert_arguments(run.arguments(self.field_plan), definition.arguments,
                                      scalar_registry=strawberry_schema.schema_converter.scalar_registry,
                                      config=strawberry_schema.config, info=info)
        for extension in definition.extensions:
            for permission in extension.permissions:
                if not permission.has_permission(None, info, **arguments):
                    raise PermissionError(permission.message)
        page = self.root.page(info.context, **arguments)
        nodes: list[Any] = []
        offset = first = 0
        if page is not None:
            where, first, offset = page
            async with db.read() as session:
                dialect = DIALECTS[session.bind.dialect.name]
                if dialect.name == "sqlite":
                    await sqlite_functions(session)
                where_sql = " AND ".join(
                    f"{column} = {dialect.cast_uuid(':' + column)}" if isinstance(value, uuid.UUID)
                    else f"{column} = :{column}" for column, value in where.items()) or "1 = 1"
                parameters = {column: dialect.parameter_uuid(value) if isinstance(value, uuid.UUID) else value
                              for column, value in where.items()}
                document = await session.scalar(
                    self.statement(dialect.name, where_sql),
                    {**parameters, "limit": first + 1, "offset": offset, **self.extra(run)},
                )
            nodes = orjson.loads(document) if document else []
            finish = self.finish[dialect.name]
            if finish is not None:
                for node in nodes[:first]:
                    finish(node)
        return self.connection_answer(nodes, first, offset, empty=page is None)

    @functools.lru_cache(maxsize=64)  # noqa: B019  (plans live as long as the process)
    def statement(self, dialect: str, where: str) -> Any:
        """The statement for a dialect and a filter, parsed once (``text`` scans for parameters)."""
        return text(self.statements[dialect].replace("{where}", where))

    @staticmethod
    def extra(run: Any) -> dict[str, Any]:
        return {"public_url": run.context.settings.public_url}

    def connection_answer(self, nodes: list[Any], first: int, offset: int, empty: bool) -> dict[str, Any]:
        has_next = len(nodes) > first
        nodes = nodes[:first]
        cursors = [cursor_at(offset + index) for index in range(len(nodes))]
        page_info = {
            "hasNextPage": has_next, "hasPreviousPage": offset > 0 and not empty,
            "startCursor": cursors[0] if cursors else None, "endCursor": cursors[-1] if cursors else None,
        }
        answer: dict[str, Any] = {}
        for field_plan in self.connection.fields:
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


def connection_plan(field_plan: Any, roots: dict[str, SqlRoot]) -> SqlConnectionPlan:
    """The SQL plan of a root connection field, or ``NoSqlForm``."""
    root = roots.get(field_plan.name)
    connection = field_plan.complete
    if root is None or field_plan.attribute is not None or not hasattr(connection, "fields"):
        raise NoSqlForm(field_plan.name)
    definition = field_plan.field_def.extensions["strawberry-definition"]
    if any(not isinstance(extension, PermissionExtension) for extension in definition.extensions):
        raise NoSqlForm(f"{field_plan.name}: field extensions")
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
    statements, finishers = {}, {}
    for name, dialect in DIALECTS.items():
        node, finishers[name] = object_sql(dialect, root.node, node_plan, ("i",))
        page = (f"SELECT * FROM {root.table} WHERE {{where}} ORDER BY {root.order_by} "
                "LIMIT :limit OFFSET :offset")
        order = ", ".join(f"i.{column}" for column in root.order_by.split(", "))
        statements[name] = dialect.json_rows(node, f"({page}) AS i", order, text=True)
    return SqlConnectionPlan(key=field_plan.key, field_plan=field_plan, root=root, connection=connection,
                             statements=statements, finish=finishers)
