"""What the generic path runs around a resolver, the compiled path runs too (issue 24): every schema extension
and every field extension of the schema has its compiled counterpart or a stated reason, and the SQL tier
runs the same permission classes, an async ``has_permission`` awaited (never taken as truthy)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from strawberry.permission import BasePermission, PermissionExtension

from billing_graphql.graphql.compiled.plan import _direct_resolver
from billing_graphql.graphql.compiled.sql import run_permissions
from tests.helpers import make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths

# Schema extension (by class name) -> where the compiled path does the same, or why it need not.
SCHEMA_EXTENSIONS = {
    "PersistedDocuments": "CompiledDocuments.plan_for: a documentId resolves through the same manifest, an unknown "
                          "one goes to graphql-core (PERSISTED_QUERY_NOT_FOUND), and free text stays off the plans "
                          "where BILLING_TRUSTED_DOCUMENTS requires registered documents (_registered_only)",
    "ErrorCodes": "no error leaves the compiled path: any request that errs is handed to graphql-core",
    "RequestMetrics": "the controller's note_operation after a plan answered (operation label, role, outcome ok)",
    "InputValidation": "check_request in CompiledDocuments._execute: the same input checks, a refusal falls back",
    "AddValidationRules": "compile_document validates with the same rules (validation_rules(settings))",
    "MaxTokensLimiter": "compile_document parses with the same max_tokens; over it, never planned nor cached",
    "ParserCache": "the plan cache keeps each document parsed (PlanCache, by text)",
    "ValidationCache": "the plan cache: a document is validated once, when it is planned",
    "MaskErrors": "no error leaves the compiled path: any request that errs is handed to graphql-core",
    "LiveEventIds": "acts on subscription results only (on_stream_result), and subscriptions are never planned: "
                    "the compiled path answers queries",
}

# Field extension (by class name) -> its compiled counterpart, or why none is needed.
FIELD_EXTENSIONS = {
    "PermissionExtension": "the Python plan calls the schema's own resolver, extensions included, or for a field "
                           "without arguments whose only extensions are plain permission classes the same classes "
                           "then the same resolver (compiled.plan._direct_resolver: a refusal hands the request to "
                           "graphql-core); the SQL tier runs "
                           "the same permission classes (compiled.sql.run_permissions, through field_query: for a root, "
                           "an object answered by SQL and each connection paged in its statement) and refuses any "
                           "other extension there, and any extension on a nested field (field_form: no SQL form)",
    "NodeExtension": "relay's node field returns the Node interface: an abstract type, never planned "
                     "(billing_graphql_plan_fallbacks_total{reason=abstract_type})",
}


def test_every_schema_extension_has_a_compiled_counterpart(graphql_schema):
    names = {type(extension()).__name__ for extension in graphql_schema.extensions}  # classes and factories
    assert names == set(SCHEMA_EXTENSIONS), (names ^ set(SCHEMA_EXTENSIONS))


def test_every_field_extension_has_a_compiled_counterpart(graphql_schema):
    names = set()
    for graphql_type in graphql_schema._schema.type_map.values():  # noqa: SLF001
        if graphql_type.name.startswith("__"):
            continue
        for field in getattr(graphql_type, "fields", {}).values():
            definition = (field.extensions or {}).get("strawberry-definition")
            names.update(type(extension).__name__ for extension in getattr(definition, "extensions", ()))
    assert names <= set(FIELD_EXTENSIONS), names - set(FIELD_EXTENSIONS)
    assert "PermissionExtension" in names


class AsyncRefusal(BasePermission):
    message = "No."

    async def has_permission(self, source, info, **kwargs) -> bool:
        await asyncio.sleep(0)
        return False


class AsyncConsent(BasePermission):
    message = "Never shown."

    async def has_permission(self, source, info, **kwargs) -> bool:
        return kwargs.get("first") == 3


def _definition(*permissions: BasePermission) -> SimpleNamespace:
    return SimpleNamespace(extensions=[PermissionExtension(permissions=list(permissions), use_directives=False)])


async def test_an_async_permission_is_awaited_on_the_sql_tier():
    with pytest.raises(PermissionError, match="No."):
        await run_permissions(_definition(AsyncRefusal()), info=None, arguments={})
    await run_permissions(_definition(AsyncConsent()), info=None, arguments={"first": 3})
    with pytest.raises(PermissionError):
        await run_permissions(_definition(AsyncConsent()), info=None, arguments={"first": 4})


def _root_field(graphql_schema, name: str):
    return graphql_schema._schema.query_type.fields[name]  # noqa: SLF001


def test_only_plain_permissions_on_a_field_without_arguments_are_run_directly(graphql_schema, monkeypatch):
    strawberry_schema = graphql_schema
    assert _direct_resolver(_root_field(graphql_schema, "viewer"), strawberry_schema) is not None
    assert _direct_resolver(_root_field(graphql_schema, "plans"), strawberry_schema) is None  # arguments
    viewer = _root_field(graphql_schema, "viewer")
    definition = viewer.extensions["strawberry-definition"]
    for extensions in ([PermissionExtension(permissions=[AsyncRefusal()], use_directives=False)],
                       [PermissionExtension(permissions=[AsyncRefusal()], use_directives=False, fail_silently=True)]):
        monkeypatch.setattr(definition, "extensions", extensions)
        assert _direct_resolver(viewer, strawberry_schema) is None  # Strawberry's own resolver awaits or fails silently
    monkeypatch.undo()
    resolve = _direct_resolver(viewer, strawberry_schema)
    anonymous = SimpleNamespace(context=SimpleNamespace(auth_error=None, actor=None))
    with pytest.raises(PermissionError, match="Authentication required"):  # has_permission False: refused
        resolve(None, anonymous)
    monkeypatch.setattr(strawberry_schema.schema_converter, "_exception_handler_specs", ((ValueError,), object()))
    assert _direct_resolver(viewer, strawberry_schema) is None  # exception handlers: Strawberry's wrapper handles them


async def test_a_field_run_directly_answers_and_refuses_as_graphql_core(db, graphql_schema):
    """``viewer``'s permission classes run on the plan: an owner's answer is the plan's; a partner's refusal, a key
    that does not exist, and no key are graphql-core's errors, byte for byte."""
    keys = await make_keys(db)
    body = {"query": "{ viewer { role subject } }"}
    answers = await answers_on_both_paths(db, graphql_schema, body, keys.owner)
    assert answers.answered and b'"role":"OWNER"' in answers.by_plan.content
    assert answers.by_plan.content == answers.by_graphql_core.content
    for token in (keys.partner, "bgk_not_a_key", ""):
        answers = await answers_on_both_paths(db, graphql_schema, body, token)
        assert not answers.answered and b'"errors"' in answers.by_plan.content
        assert answers.by_plan.content == answers.by_graphql_core.content, (token, answers.by_plan.content)
