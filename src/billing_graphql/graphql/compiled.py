"""The compiled path: registered queries planned once at start-up, executed without graphql-core.

Every query of ``queries/manifest.json`` is parsed and validated at start-up (with the schema's own
rules and limits) and turned into a plan specialised to its selection: for each object in the answer,
the list of its response keys in order, how each value is read and how it is serialised. Executing a
plan walks the answer level by level: a plain field (no resolver) is an attribute read and its leaf
type's ``serialize``; a field with a resolver calls the very resolver the generic path calls, with the
field's extensions (so permissions and argument conversion are the same), once for every parent of
the level, and awaits them together (so DataLoaders batch them into one statement per level); the
values below are then completed for the whole level at once. No per-field coroutine, no graphql-core
execution context, no Info per field.

Only the happy path is compiled. Anything unusual makes the request run on the generic path from the
start, which then produces exactly the errors, masking and partial data the schema defines: variables
that do not coerce, input text the gateway refuses, a resolver that raises (a permission refused
included), a null where the type says non-null. Queries are read-only, so running one again is safe.
A document that uses what the planner does not handle (directives, abstract types, introspection,
mutations) is not compiled and always takes the generic path; ``CompiledDocuments.skipped`` says why.
The differential test (``tests/perf/test_compiled_path.py``) runs every document of ``queries/``
through both paths and requires byte-identical JSON.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    get_argument_values,
    get_variable_values,
    is_leaf_type,
    parse,
    specified_rules,
    validate,
)
from graphql.pyutils import Path
from graphql.type.definition import GraphQLResolveInfo, GraphQLResolveInfoHelpers

from billing_graphql.graphql.input_validation import check_request
from billing_graphql.graphql.persisted import TrustedDocuments, requested_id

log = logging.getLogger(__name__)


class NotCompilable(Exception):
    """The document uses something the planner does not handle: it takes the generic path."""


class Fallback(Exception):
    """This request must run on the generic path (it would end in an error or in partial data)."""


# -- plans ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Leaf:
    serialize: Callable[[Any], Any]
    nullable: bool


@dataclass(slots=True)
class ListOf:
    item: Any  # Leaf | ListOf | ObjectPlan
    nullable: bool


@dataclass(slots=True)
class FieldPlan:
    key: str  # the response key (alias or name)
    name: str
    complete: Any  # Leaf | ListOf | ObjectPlan
    attribute: str | None = None  # a plain field: read this attribute
    typename: str | None = None  # __typename: this constant
    resolve: Callable[..., Any] | None = None  # a field with a resolver: the schema's resolver
    arguments: dict[str, Any] | None = None  # constant arguments (no variables)
    node: FieldNode | None = None  # for arguments given by variables, and the resolver's info
    field_def: Any = None
    parent_type: GraphQLObjectType | None = None


@dataclass(slots=True)
class ObjectPlan:
    type: GraphQLObjectType
    nullable: bool
    fields: list[FieldPlan] = field(default_factory=list)
    keys: tuple[str, ...] = ()


@dataclass(slots=True)
class OperationPlan:
    name: str
    operation: OperationDefinitionNode
    document: Any
    root: ObjectPlan
    fragments: dict[str, FragmentDefinitionNode]
    sql: Any = None  # compiled_sql.SqlConnectionPlan: the whole answer from one statement


def _plain_attribute(graphql_field: Any) -> str | None:
    """The attribute a field without a resolver reads (None where the field has a resolver)."""
    resolve = graphql_field.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None
    definition = graphql_field.extensions.get("strawberry-definition")
    if definition is None or definition.base_resolver is not None or definition.extensions:
        return None
    return definition.python_name


class _Planner:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.schema = schema
        self.fragments = fragments

    def collect(self, object_type: GraphQLObjectType, selection_sets: Iterable[Any]) -> dict[str, list[FieldNode]]:
        """Field nodes by response key, in first-seen order (graphql-core's order)."""
        grouped: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            self._collect(object_type, selection_set, grouped)
        return grouped

    def _collect(self, object_type: GraphQLObjectType, selection_set: Any, grouped: dict) -> None:
        for selection in selection_set.selections:
            if selection.directives:
                raise NotCompilable("directives")
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                self._check_condition(object_type, selection.type_condition)
                self._collect(object_type, selection.selection_set, grouped)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                self._check_condition(object_type, fragment.type_condition)
                self._collect(object_type, fragment.selection_set, grouped)

    @staticmethod
    def _check_condition(object_type: GraphQLObjectType, condition: Any) -> None:
        if condition is not None and condition.name.value != object_type.name:
            raise NotCompilable(f"a fragment on {condition.name.value} inside {object_type.name}")

    def object_plan(self, object_type: GraphQLObjectType, selection_sets: list[Any], nullable: bool) -> ObjectPlan:
        plan = ObjectPlan(type=object_type, nullable=nullable)
        for key, nodes in self.collect(object_type, selection_sets).items():
            plan.fields.append(self.field_plan(object_type, key, nodes))
        plan.keys = tuple(field_plan.key for field_plan in plan.fields)
        return plan

    def field_plan(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> FieldPlan:
        name = nodes[0].name.value
        if name == "__typename":
            return FieldPlan(key=key, name=name, complete=None, typename=parent.name)
        if name.startswith("__"):
            raise NotCompilable(f"introspection ({name})")
        graphql_field = parent.fields[name]
        complete = self.completion(graphql_field.type, [node.selection_set for node in nodes])
        attribute = _plain_attribute(graphql_field)
        if attribute is not None and not nodes[0].arguments:
            return FieldPlan(key=key, name=name, complete=complete, attribute=attribute)
        if graphql_field.resolve is None:
            raise NotCompilable(f"{parent.name}.{name} has no resolver")
        uses_variables = any(_has_variable(argument.value) for argument in nodes[0].arguments or ())
        return FieldPlan(
            key=key, name=name, complete=complete, resolve=graphql_field.resolve,
            arguments=None if uses_variables else get_argument_values(graphql_field, nodes[0]),
            node=nodes[0], field_def=graphql_field, parent_type=parent,
        )

    def completion(self, graphql_type: Any, selection_sets: list[Any], nullable: bool = True) -> Any:
        if isinstance(graphql_type, GraphQLNonNull):
            return self.completion(graphql_type.of_type, selection_sets, nullable=False)
        if isinstance(graphql_type, GraphQLList):
            return ListOf(item=self.completion(graphql_type.of_type, selection_sets), nullable=nullable)
        if is_leaf_type(graphql_type):
            return Leaf(serialize=graphql_type.serialize, nullable=nullable)
        if isinstance(graphql_type, GraphQLObjectType):
            return self.object_plan(graphql_type, selection_sets, nullable)
        raise NotCompilable(f"abstract type {graphql_type}")


def _has_variable(value_node: Any) -> bool:
    kind = value_node.kind
    if kind == "variable":
        return True
    if kind == "list_value":
        return any(_has_variable(item) for item in value_node.values)
    if kind == "object_value":
        return any(_has_variable(item.value) for item in value_node.fields)
    return False


def compile_document(schema: GraphQLSchema, body: str, rules: Iterable[type] = (),
                     max_tokens: int | None = None) -> OperationPlan:
    """The plan of a registered document's single query operation (``NotCompilable`` otherwise),
    parsed and validated with the limits of the generic path."""
    try:
        document = parse(body, max_tokens=max_tokens)
    except GraphQLError as error:
        raise NotCompilable(f"does not parse: {error.message}") from None
    errors = validate(schema, document, [*specified_rules, *rules])
    if errors:
        raise NotCompilable(f"invalid: {errors[0].message}")
    operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
    if len(operations) != 1:
        raise NotCompilable("several operations")
    operation = operations[0]
    if operation.operation is not OperationType.QUERY:
        raise NotCompilable(f"{operation.operation.value} {operation.name.value if operation.name else ''}: "
                            "only queries are compiled")
    if operation.directives or any(definition.directives for definition in operation.variable_definitions or ()):
        raise NotCompilable("directives")
    fragments = {node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)}
    planner = _Planner(schema, fragments)
    root = planner.object_plan(schema.query_type, [operation.selection_set], nullable=True)
    return OperationPlan(name=operation.name.value if operation.name else "", operation=operation,
                         document=document, root=root, fragments=fragments)


# -- execution --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """One request's execution: what every resolver's info carries."""

    schema: GraphQLSchema
    plan: OperationPlan
    context: Any
    root_value: Any
    variables: Any  # graphql-core's VariableValues

    def info(self, field_plan: FieldPlan) -> GraphQLResolveInfo:
        return GraphQLResolveInfo(
            field_plan.name, [field_plan.node], field_plan.field_def.type, field_plan.parent_type,
            Path(None, field_plan.key, field_plan.parent_type.name), self.schema, self.plan.fragments,
            self.root_value, self.plan.operation, self.variables, self.context, inspect.isawaitable, None,
            _HELPERS,
        )

    def arguments(self, field_plan: FieldPlan) -> dict[str, Any]:
        if field_plan.arguments is not None:
            return field_plan.arguments
        return get_argument_values(field_plan.field_def, field_plan.node, self.variables)

    async def objects(self, plan: ObjectPlan, sources: list[Any]) -> list[dict[str, Any]]:
        """The answers of ``plan`` for every (non-null) source of one level, in order.

        As graphql-core does, every resolver of the level is called before any is awaited (so the
        DataLoaders of sibling fields batch together), and the levels below run side by side."""
        outputs = [dict.fromkeys(plan.keys) for _ in sources]
        resolved: list[tuple[FieldPlan, list[Any]]] = []
        awaited: list[tuple[list[Any], int]] = []
        for field_plan in plan.fields:
            if field_plan.typename is not None:
                values = [field_plan.typename] * len(sources)
            elif field_plan.attribute is not None:
                values = [getattr(source, field_plan.attribute) for source in sources]
            else:
                info, arguments = self.info(field_plan), self.arguments(field_plan)
                values = [field_plan.resolve(source, info, **arguments) for source in sources]
                awaited.extend((values, index) for index, value in enumerate(values) if inspect.isawaitable(value))
            resolved.append((field_plan, values))
        if awaited:
            done = await asyncio.gather(*(values[index] for values, index in awaited))
            for (values, index), value in zip(awaited, done, strict=True):
                values[index] = value
        nested = []
        for field_plan, values in resolved:
            if field_plan.typename is None and not isinstance(field_plan.complete, Leaf):
                nested.append((field_plan.key, self.complete(field_plan.complete, values)))
                continue
            if field_plan.typename is None:
                values = _leaves(field_plan.complete, values)
            key = field_plan.key
            for output, value in zip(outputs, values, strict=True):
                output[key] = value
        if nested:
            completed = await asyncio.gather(*(coroutine for _, coroutine in nested))
            for (key, _), values in zip(nested, completed, strict=True):
                for output, value in zip(outputs, values, strict=True):
                    output[key] = value
        return outputs

    async def complete(self, completion: Any, values: list[Any]) -> list[Any]:
        """The answers of a list or object field for the values of one level."""
        if isinstance(completion, Leaf):
            return _leaves(completion, values)
        if not completion.nullable and any(value is None for value in values):
            raise Fallback("null in a non-null field")
        present = [value for value in values if value is not None]
        if isinstance(completion, ListOf):
            if any(isinstance(value, str | bytes | dict) or not isinstance(value, Iterable) for value in present):
                raise Fallback("a list field returned something else")
            lists = [list(value) for value in present]
            flat = await self.complete(completion.item, [item for items in lists for item in items])
            done, start = [], 0
            for items in lists:
                done.append(flat[start:start + len(items)])
                start += len(items)
        else:
            done = await self.objects(completion, present)
        answers = iter(done)
        return [None if value is None else next(answers) for value in values]


def _leaves(completion: Leaf, values: list[Any]) -> list[Any]:
    """Serialised leaf values, as graphql-core's ``complete_leaf_value`` gives them."""
    serialize = completion.serialize
    results = [None if value is None else serialize(value) for value in values]
    if None in results and any(result is None and (value is not None or not completion.nullable)
                               for value, result in zip(values, results, strict=True)):
        raise Fallback("a null where the type says non-null, or a value that does not serialise")
    return results


def _sql_plan(plan: OperationPlan, roots: dict) -> Any:
    """The SQL plan of a document with one root field that has a SQL form throughout (None otherwise)."""
    from billing_graphql.graphql.compiled_sql import NoSqlForm, connection_plan

    fields = [field_plan for field_plan in plan.root.fields if field_plan.typename is None]
    if len(fields) != 1 or len(plan.root.fields) != 1:
        return None
    try:
        return connection_plan(fields[0], roots)
    except NoSqlForm as reason:
        log.debug("%s keeps its Python plan: %s", plan.name, reason)
        return None


async def _gather(awaitables: Any) -> list[Any]:
    return await asyncio.gather(*awaitables)


_HELPERS = GraphQLResolveInfoHelpers(gather=_gather, track=lambda values: None)


@dataclass
class CompiledDocuments:
    """The compiled plans of the registered queries, by document id and by text."""

    schema: GraphQLSchema
    by_id: dict[str, OperationPlan]
    by_body: dict[str, OperationPlan]
    skipped: dict[str, str]  # document id -> why it is not compiled
    answered: int = 0  # requests answered by a plan
    fallbacks: int = 0  # requests naming a plan that the generic path answered

    @classmethod
    def build(cls, strawberry_schema: Any, documents: TrustedDocuments, rules: Iterable[type] = (),
              max_tokens: int | None = None, sql_roots: dict | None = None) -> CompiledDocuments:
        """Plans for the registered queries; ``sql_roots`` (root field -> ``compiled_sql.SqlRoot``): the
        root fields a document may be answered for by one SQL statement."""
        schema = strawberry_schema._schema  # noqa: SLF001  (graphql-core's schema, as Strawberry built it)
        by_id: dict[str, OperationPlan] = {}
        by_body: dict[str, OperationPlan] = {}
        skipped: dict[str, str] = {}
        for document_id, body in documents.bodies.items():
            try:
                plan = compile_document(schema, body, rules, max_tokens)
            except NotCompilable as reason:
                skipped[document_id] = str(reason)
                continue
            plan.sql = _sql_plan(plan, sql_roots or {})
            by_id[document_id] = plan
            by_body[body] = plan
        return cls(schema=schema, by_id=by_id, by_body=by_body, skipped=skipped)

    def plan_for(self, request: Any) -> OperationPlan | None:
        """The plan a request body (parsed JSON) names, by text or by id; None for any other request."""
        if not isinstance(request, dict):
            return None
        query, wanted = request.get("query"), requested_id(request)
        if wanted is not None:
            plan = self.by_id.get(wanted)
            if plan is None or (query is not None and self.by_body.get(query) is not plan):
                return None
        elif isinstance(query, str):
            plan = self.by_body.get(query)
        else:
            return None
        if plan is None:
            return None
        operation_name = request.get("operationName")
        if operation_name is not None and operation_name != plan.name:
            return None
        return plan

    async def execute(self, plan: OperationPlan, request: dict, context: Any, root_value: Any) -> dict[str, Any]:
        """``{"data": ...}`` for the request, or ``Fallback`` when the generic path must answer it."""
        try:
            result = await self._execute(plan, request, context, root_value)
        except Fallback as reason:
            self.fallbacks += 1
            log.debug("%s runs on the generic path: %s", plan.name, reason)
            raise
        self.answered += 1
        return result

    async def _execute(self, plan: OperationPlan, request: dict, context: Any, root_value: Any) -> dict[str, Any]:
        inputs = request.get("variables")
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise Fallback("variables are not an object")
        try:
            check_request(plan.document, inputs, request.get("operationName"))
        except GraphQLError:
            raise Fallback("input refused") from None
        variables = get_variable_values(self.schema, plan.operation.variable_definitions or (), inputs)
        if isinstance(variables, list):
            raise Fallback("variables do not coerce")
        run = _Run(self.schema, plan, context, root_value, variables)
        try:
            if plan.sql is not None:
                data = {plan.sql.key: await plan.sql.answer(run, context.db)}
            else:
                (data,) = await run.objects(plan.root, [root_value])
        except Fallback:
            raise
        except Exception as error:  # a resolver's error: the generic path reports it as the schema says
            raise Fallback(f"{type(error).__name__}: {error}") from error
        return {"data": data}
