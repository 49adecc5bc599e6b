"""Plans of registered queries: each object of the answer as its response keys, in order, and how each
value is read (an attribute, a resolver, a constant ``__typename``) and completed (a leaf's ``serialize``,
a list, an object). A document using what the planner does not handle is ``NotCompilable``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from strawberry.permission import PermissionExtension
from strawberry.schema.schema_converter import get_arguments
from strawberry.types import Info

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
    is_leaf_type,
    parse,
    specified_rules,
    validate,
)


class NotCompilable(Exception):
    """The document uses something the planner does not handle: it takes the generic path.

    ``reason``: one of ``FALLBACK_REASONS`` (the label of ``billing_graphql_plan_fallbacks_total``),
    or ``invalid`` / ``not_a_query`` (not a planner limitation: never counted as a fallback)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# What the planner does not handle, as counted: a bounded label set.
FALLBACK_REASONS = ("directives", "introspection", "abstract_type", "fragment_on_other_type", "several_operations",
                    "no_resolver")
INVALID = "invalid"  # does not parse, over the token limit, or fails validation: never cached
NOT_A_QUERY = "not_a_query"  # a mutation (or subscription): only queries are planned


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
    sql: Any = None  # compiled.sql.SqlRootPlan: a connection below the root answered by one statement per parent


@dataclass(slots=True)
class ObjectPlan:
    nullable: bool
    type_name: str = ""
    fields: list[FieldPlan] = field(default_factory=list)
    keys: tuple[str, ...] = ()  # the fields' keys, in order (each answer starts as dict.fromkeys(keys))


@dataclass(slots=True)
class OperationPlan:
    name: str
    operation: OperationDefinitionNode
    document: Any
    root: ObjectPlan
    fragments: dict[str, FragmentDefinitionNode]
    sql: Any = None  # compiled.SqlPlans: the root fields answered by SQL statements that write their JSON


def _plain_attribute(graphql_field: Any) -> str | None:
    """The attribute a field without a resolver reads (None where the field has a resolver)."""
    resolve = graphql_field.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None
    definition = graphql_field.extensions.get("strawberry-definition")
    if definition is None or definition.base_resolver is not None or definition.extensions:
        return None
    return definition.python_name


def _direct_resolver(graphql_field: Any, strawberry_schema: Any) -> Callable[..., Any] | None:
    """A resolver field without arguments whose only extensions are permission classes with a plain
    ``has_permission`` (``permissions.allow``), called as Strawberry's wrapper calls it (the same ``Info``, the
    same reserved arguments: ``get_arguments``) but without the wrapper's chain of extension partials, a tenth
    of a small document's time: each permission is asked first, and a refusal raises (the compiled path then
    hands the request to the generic path, which answers with the schema's error). None (Strawberry's wrapped
    resolver): another extension, a permission that fails silently or awaits, arguments, exception handlers."""
    definition = graphql_field.extensions.get("strawberry-definition")
    handlers = getattr(strawberry_schema.schema_converter, "_exception_handler_specs", None)  # None: unknown
    if (definition is None or definition.base_resolver is None or definition.arguments or graphql_field.args
            or handlers is None or len(handlers)):
        return None
    permissions = []
    for extension in definition.extensions:
        if type(extension) is not PermissionExtension or extension.fail_silently:
            return None
        permissions.extend(extension.permissions)
    if any(inspect.iscoroutinefunction(permission.has_permission) for permission in permissions):
        return None
    config, scalars = strawberry_schema.config, strawberry_schema.schema_converter.scalar_registry

    def resolve(source: Any, raw_info: Any) -> Any:
        info = Info(_raw_info=raw_info, _field=definition)
        for permission in permissions:
            if permission.has_permission(source, info) is not True:
                raise PermissionError(permission.message)
        args, kwargs = get_arguments(field=definition, source=source, info=info, kwargs={}, config=config,
                                     scalar_registry=scalars)
        return definition.get_result(source, info, args, kwargs)

    return resolve


class _Planner:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], strawberry_schema: Any = None) -> None:
        self.fragments = fragments
        self.strawberry_schema = strawberry_schema

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
            raise NotCompilable("fragment_on_other_type", f"a fragment on {condition.name.value} inside {object_type.name}")

    def object_plan(self, object_type: GraphQLObjectType, selection_sets: list[Any], nullable: bool) -> ObjectPlan:
        plan = ObjectPlan(nullable=nullable, type_name=object_type.name)
        for key, nodes in self.collect(object_type, selection_sets).items():
            plan.fields.append(self.field_plan(object_type, key, nodes))
        plan.keys = tuple(field_plan.key for field_plan in plan.fields)
        return plan

    def field_plan(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> FieldPlan:
        name = nodes[0].name.value
        if name == "__typename":
            return FieldPlan(key=key, name=name, complete=None, typename=parent.name)
        if name.startswith("__"):
            raise NotCompilable("introspection", name)
        graphql_field = parent.fields[name]
        complete = self.completion(graphql_field.type, [node.selection_set for node in nodes])
        attribute = _plain_attribute(graphql_field)
        if attribute is not None and not nodes[0].arguments:
            return FieldPlan(key=key, name=name, complete=complete, attribute=attribute)
        if graphql_field.resolve is None:
            raise NotCompilable("no_resolver", f"{parent.name}.{name}")
        uses_variables = any(_has_variable(argument.value) for argument in nodes[0].arguments or ())
        direct = _direct_resolver(graphql_field, self.strawberry_schema) if self.strawberry_schema else None
        return FieldPlan(
            key=key, name=name, complete=complete, resolve=direct or graphql_field.resolve,
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
        raise NotCompilable("abstract_type", str(graphql_type))


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
    """The plan of a document's single query operation (``NotCompilable`` otherwise), parsed and
    validated with the limits of the generic path."""
    try:
        document = parse(body, max_tokens=max_tokens)
    except GraphQLError as error:
        raise NotCompilable(INVALID, f"does not parse: {error.message}") from None
    errors = validate(schema, document, [*specified_rules, *rules])
    if errors:
        raise NotCompilable(INVALID, errors[0].message)
    operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
    if len(operations) != 1:
        raise NotCompilable("several_operations")
    operation = operations[0]
    if operation.operation is not OperationType.QUERY:
        raise NotCompilable(NOT_A_QUERY, f"{operation.operation.value} "
                            f"{operation.name.value if operation.name else ''}: only queries are compiled")
    if operation.directives or any(definition.directives for definition in operation.variable_definitions or ()):
        raise NotCompilable("directives")
    fragments = {node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)}
    planner = _Planner(fragments, getattr(schema, "_strawberry_schema", None))
    root = planner.object_plan(schema.query_type, [operation.selection_set], nullable=True)
    return OperationPlan(name=operation.name.value if operation.name else "", operation=operation,
                         document=document, root=root, fragments=fragments)
