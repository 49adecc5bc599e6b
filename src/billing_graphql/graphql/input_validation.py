"""Input checks made once per request, before anything executes.

Every piece of text a caller sends arrives either as a string literal in the document or as
a string inside the variables. Both are checked here, in one place, before any resolver
runs: text with a control character (NUL and the like, see ``domain.text``), or free text
holding a payment card number (``domain.cards``: NFKC, separators with at most one letter,
Luhn), is a ``VALIDATION`` error naming the field (``input.label``), and nothing is written.

Every String input is free text except the fields in ``FORMATTED_FIELDS``: identifiers and
tokens with a format of their own, where long digit runs are normal and a card number rule
would refuse valid values (idempotency keys and cursors, often UUIDs or hex; gateway ids and
signatures; URLs, whose paths carry long numeric ids; a tax ID, where a 15- or 16-digit NPWP
passes Luhn one time in ten; the SaaS's own tenant id). They are still checked for control
characters. ``gatewayPaymentMethodId`` is NOT exempt: a card number pasted as a token is the
case the rule exists for.

The same hook refuses a document with several operations and no ``operationName`` (the
GraphQL spec's "GetOperation" requires one), instead of running the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLScalarType,
    GraphQLSchema,
    ObjectFieldNode,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    type_from_ast,
    visit,
)
from strawberry.extensions import SchemaExtension

from billing_graphql.domain.text import text_refusal

# Input fields (by name, wherever they sit) that are identifiers with a format of their own:
# control characters are refused, the card-number rule of free text is not applied.
FORMATTED_FIELDS = frozenset({
    "idempotencyKey", "after", "externalId", "taxId", "url", "returnUrl",
    "gatewayCustomerId", "gatewaySubscriptionId", "orderId", "paymentId", "signature",
})


class InputTextError(GraphQLError):
    """Text input the gateway refuses (a control character, or a card number in free text)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}.", extensions={"code": "VALIDATION", "field": field})


def refusal(path: str, text: str, type_: GraphQLInputType | None = None) -> tuple[str, str] | None:
    """``(path, reason)`` when ``text`` may not enter at ``path`` (``input.label``) as a value of
    ``type_`` (None: unknown, read as free text), else None. Only ``String`` values are free text:
    the other scalars (``ID``, ``DateTime``, ``Decimal``, ``BigInt``) and enums have their own format."""
    reason = _text_refusal(text, _is_free_text(type_, path.rpartition(".")[2]))
    return None if reason is None else (path, reason)


@lru_cache(maxsize=1024)
def _is_free_text(type_: GraphQLInputType | None, field: str) -> bool:
    named = get_named_type(type_) if type_ is not None else None
    return (named is None or (isinstance(named, GraphQLScalarType) and named.name == "String")) and (
        field not in FORMATTED_FIELDS)


@lru_cache(maxsize=4096)
def _cached_refusal(text: str, free_text: bool) -> str | None:
    return text_refusal(text, free_text=free_text)


def _text_refusal(text: str, free_text: bool) -> str | None:
    """``domain.text.text_refusal``, remembered for short free text (a batch of usage events repeats
    its metric codes and property values a thousand times; keys and times, all different, are not kept)."""
    if free_text and len(text) <= 64:
        return _cached_refusal(text, True)
    return text_refusal(text, free_text=free_text)


class OperationNameRequired(GraphQLError):
    def __init__(self) -> None:
        super().__init__(
            "Must provide operationName if the document contains several operations.",
            extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
        )


class _DocumentScan(Visitor):
    """Finds the first string literal the gateway refuses, the argument path where each
    variable is first used, and each variable's declared type (with the schema)."""

    def __init__(self, type_info: TypeInfo | None = None) -> None:
        super().__init__()
        self.type_info = type_info
        self.variable_types: dict[str, GraphQLInputType] = {}
        self.path: list[str] = []
        self.literal_error: tuple[str, str] | None = None
        self.variable_paths: dict[str, str] = {}
        self.operations = 0

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        self.operations += 1

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.path.append(node.name.value)

    def leave_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.path.pop()

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.path.append(node.name.value)

    def leave_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.path.pop()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        if self.path:
            self.variable_paths.setdefault(node.name.value, ".".join(self.path))

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if self.literal_error is None:
            type_ = self.type_info.get_input_type() if self.type_info is not None else None
            self.literal_error = refusal(".".join(self.path) or "query", node.value, type_)

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> None:
        if self.type_info is not None:
            type_ = type_from_ast(self.type_info._schema, node.type)  # noqa: SLF001
            if type_ is not None:
                self.variable_types[node.variable.name.value] = type_


_SCANS: OrderedDict[tuple[int, int], tuple[DocumentNode, _DocumentScan]] = OrderedDict()
_MAX_SCANS = 512


def _scan(document: DocumentNode, schema: GraphQLSchema | None) -> _DocumentScan:
    # Parsed documents come from the parser cache, so the same query is the same object:
    # key on its identity (kept alive by the entry) rather than hash a whole AST.
    key = (id(document), id(schema))
    cached = _SCANS.get(key)
    if cached is not None and cached[0] is document:
        return cached[1]
    if schema is None:
        scan = _DocumentScan()
        visit(document, scan)
    else:
        type_info = TypeInfo(schema)
        scan = _DocumentScan(type_info)
        visit(document, TypeInfoVisitor(type_info, scan))
    _SCANS[key] = (document, scan)
    if len(_SCANS) > _MAX_SCANS:
        _SCANS.popitem(last=False)
    return scan


def _strings(value: Any, path: str, type_: GraphQLInputType | None
             ) -> Iterator[tuple[str, str, GraphQLInputType | None]]:
    """Every string inside a JSON value (keys included), with the field path it sits at and
    the input type it is a value of (None where unknown: keys, fields the type lacks)."""
    stack: list[tuple[Any, str, GraphQLInputType | None]] = [(value, path, type_)]
    while stack:
        item, at, expected = stack.pop()
        if isinstance(item, str):
            yield at, item, expected
        elif isinstance(item, dict):
            named = get_named_type(expected) if expected is not None else None
            fields = named.fields if isinstance(named, GraphQLInputObjectType) else {}
            for key, child in item.items():
                field = fields.get(key)
                if field is None:  # a field name of the schema is never refused: only unknown keys are read
                    stack.append((key, at, None))
                stack.append((child, f"{at}.{key}", field.type if field is not None else None))
        elif isinstance(item, list):
            inner = get_nullable_type(expected) if expected is not None else None
            inner = inner.of_type if isinstance(inner, GraphQLList) else inner
            stack.extend((child, at, inner) for child in item)


def check_request(document: DocumentNode, variables: dict[str, Any] | None, operation_name: str | None,
                  schema: GraphQLSchema | None = None) -> None:
    """Raise the first input error of a request (document literals, then variables). With the
    schema, only ``String`` values are read as free text; without it, every string is."""
    scan = _scan(document, schema)
    if scan.operations > 1 and not operation_name:
        raise OperationNameRequired()
    if scan.literal_error is not None:
        raise InputTextError(*scan.literal_error)
    for name, value in (variables or {}).items():
        for path, text, type_ in _strings(value, scan.variable_paths.get(name, name), scan.variable_types.get(name)):
            refused = refusal(path, text, type_)
            if refused is not None:
                raise InputTextError(*refused)


class InputValidation(SchemaExtension):
    """Runs ``check_request`` before execution; an error replaces the whole result."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None:
            # The name the caller sent: ``operation_name`` falls back to the first operation's.
            sent_name = context._provided_operation_name  # noqa: SLF001
            try:
                check_request(document, context.variables, sent_name, context.schema._schema)  # noqa: SLF001
            except GraphQLError as error:
                context.result = ExecutionResult(data=None, errors=[error])
        yield
