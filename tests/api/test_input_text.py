"""Text input with control characters is refused where it enters (issue 13, item 1).

The walk below takes every String argument and input field from the schema itself, so a
field added later is covered without touching this file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from sqlalchemy import func, select

from billing_graphql.db.models import Base, Organization
from billing_graphql.graphql.schema import schema
from tests.helpers import gid

NUL = "x\u0000y"
ROOTS = ("Query", "Mutation")


def _sample(type_: GraphQLInputType, target: tuple[str, ...] | None, probe: str = NUL) -> Any:
    """A valid value of ``type_``; the String at ``target`` (a path of field names) gets ``probe``."""
    if isinstance(type_, GraphQLNonNull):
        return _sample(type_.of_type, target, probe)
    if isinstance(type_, GraphQLList):
        return [_sample(type_.of_type, target, probe)]
    if isinstance(type_, GraphQLInputObjectType):
        value = {}
        for name, field in type_.fields.items():
            inner = target[1:] if target and target[0] == name else None
            if inner is not None or isinstance(field.type, GraphQLNonNull):
                value[name] = _sample(field.type, inner, probe)
        return value
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    assert isinstance(type_, GraphQLScalarType)
    if type_.name == "String":
        return probe if target == () else "x"
    return {
        "ID": gid("Plan", uuid.uuid4()),
        "Int": 1,
        "Float": 1.0,
        "Boolean": False,
        "Decimal": "1",
        "BigInt": 1,
        "DateTime": "2026-01-01T00:00:00Z",
        "Date": "2026-01-01",
    }[type_.name]


def _literal(value: Any, type_: GraphQLInputType) -> str:
    """``value`` written as a GraphQL literal of ``type_`` (strings JSON-escaped, as GraphQL's are)."""
    if isinstance(type_, GraphQLNonNull):
        return _literal(value, type_.of_type)
    if isinstance(type_, GraphQLList):
        return "[" + ", ".join(_literal(item, type_.of_type) for item in value) + "]"
    if isinstance(type_, GraphQLInputObjectType):
        return "{" + ", ".join(f"{key}: {_literal(item, type_.fields[key].type)}" for key, item in value.items()) + "}"
    if isinstance(type_, GraphQLEnumType):
        return value
    return json.dumps(value)


def _string_slots(type_: GraphQLInputType, path: tuple[str, ...], seen: frozenset[str]) -> Iterator[tuple[str, ...]]:
    named = get_named_type(type_)
    if isinstance(named, GraphQLScalarType) and named.name == "String":
        yield path
    elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        for name, field in named.fields.items():
            yield from _string_slots(field.type, (*path, name), seen | {named.name})


def string_inputs() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(root type, field, argument, path inside the argument) for every String in the schema."""
    graphql_schema = schema._schema
    slots = []
    for type_name, type_ in graphql_schema.type_map.items():
        if not isinstance(type_, GraphQLObjectType) or type_name.startswith("__"):
            continue
        if type_ is graphql_schema.subscription_type:
            continue  # subscriptions run over WebSocket, not this HTTP walk (tests/live)
        for field_name, field in type_.fields.items():
            for arg_name, arg in field.args.items():
                # An argument below the root (a connection's ``after``) is probed through ``node``.
                for path in _string_slots(arg.type, (), frozenset()):
                    slots.append((type_name, field_name, arg_name, path))
    return slots


SLOTS = string_inputs()


def _operation(root: str, field_name: str, arg_name: str, path: tuple[str, ...], inline: bool,
               probe: str = NUL) -> tuple[str, dict]:
    graphql_schema = schema._schema
    field = graphql_schema.type_map[root].fields[field_name]
    keyword = "mutation" if root == "Mutation" else "query"  # a type below the root is read through node
    definitions, arguments, variables = [], [], {}
    for index, (name, arg) in enumerate(field.args.items()):
        if name != arg_name and not isinstance(arg.type, GraphQLNonNull):
            continue
        value = _sample(arg.type, path if name == arg_name else None, probe)
        if inline:
            arguments.append(f"{name}: {_literal(value, arg.type)}")
        else:
            definitions.append(f"$a{index}: {arg.type}")
            arguments.append(f"{name}: $a{index}")
            variables[f"a{index}"] = value
    selection = " { __typename }" if not isinstance(get_named_type(field.type), GraphQLScalarType) else ""
    header = f"({', '.join(definitions)})" if definitions else ""
    probed = f"{field_name}({', '.join(arguments)}){selection}"
    if root not in ROOTS:
        probed = f'node(id: "{gid(root, uuid.uuid4())}") {{ ... on {root} {{ {probed} }} }}'
    return f"{keyword} Probe{header} {{ {probed} }}", variables


async def _row_counts(db) -> dict[str, int]:
    async with db.read() as session:
        return {
            table.name: await session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def test_the_walk_finds_the_inputs_the_issue_names():
    fields = {(root, field, arg, ".".join(path)) for root, field, arg, path in SLOTS}
    for expected in [
        ("Mutation", "addPaymentMethod", "input", "label"),
        ("Mutation", "addPaymentMethod", "input", "gatewayPaymentMethodId"),
        ("Mutation", "addPaymentMethod", "input", "brand"),
        ("Query", "plan", "slug", ""),
        ("Mutation", "createOrganization", "input", "name"),
        ("Mutation", "createApiKey", "input", "label"),
        ("Mutation", "updateSubscription", "input", "gatewayCustomerId"),
    ]:
        assert expected in fields
    assert len(SLOTS) >= 40


async def refused_at_its_field(api, keys, slot, inline: bool, probe: str = NUL) -> dict | None:
    """Send ``probe`` into one String slot; None when it is refused as VALIDATION naming that
    field and nothing else, else what came back (for the failure message)."""
    root, field_name, arg_name, path = slot
    query, variables = _operation(root, field_name, arg_name, path, inline, probe)
    result = await api.post(query, variables, token=keys.super_admin)
    errors = result.get("errors") or []
    refusals = [((error.get("extensions") or {}).get("code"), (error.get("extensions") or {}).get("field"))
                for error in errors]
    if result.get("data") is None and refusals == [("VALIDATION", ".".join((arg_name, *path)))]:
        return None
    return {"query": query, "variables": variables, "result": result}


async def test_every_string_input_refuses_a_nul_and_writes_nothing(api, db, keys):
    before = await _row_counts(db)
    failures = []
    for index, slot in enumerate(SLOTS):
        # Half the probes carry the NUL in the variables, half in a literal of the document.
        failure = await refused_at_its_field(api, keys, slot, inline=index % 2 == 1)
        if failure is not None:
            failures.append(failure)
    assert not failures, f"{len(failures)} probes were not refused, e.g. {failures[:3]}"
    assert await _row_counts(db) == before


@pytest.mark.parametrize("char", ["\u0000", "\u0007", "\u001b", "\u007f", "\u0085", "\ud800"])
async def test_control_characters_in_variables_are_refused(api, db, keys, char):
    body = {
        "query": "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { errors { code } } }",
        "variables": {"i": {"name": f"Bad{char}Name", "externalId": "bad"}},
    }
    # ASCII JSON, so that a lone surrogate travels as the escape "\ud800" a client may send.
    response = await api.client.post(
        "/graphql", content=json.dumps(body),
        headers={"content-type": "application/json", "authorization": f"Bearer {keys.super_admin}"},
    )
    result = response.json()
    assert result["data"] is None
    if char == "\ud800":  # not Unicode at all: orjson refuses the body before GraphQL sees it
        assert response.status_code == 400 and result["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    else:
        assert result["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "input.name"}
        assert "U+" in result["errors"][0]["message"]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Organization)) == 2  # acme and other


async def test_tab_and_newline_are_text(api, keys):
    result = await api.post('{ plan(slug: "a\\tb\\nc") { name } }', token=keys.owner)
    assert result == {"data": {"plan": None}}


def _token(secret: str, **claims: Any) -> str:
    payload = {"sub": "user-1", "role": "OWNER", "org": "acme",
               "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp())}
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"org": "ac\u0000me"},
        {"sub": "user\u00001"},
        {"sub": "u" * 500},
        {"org": ["acme"]},
        {"exp": "soon"},
        {"role": ["OWNER"]},
    ],
)
async def test_malformed_session_token_claims_are_unauthenticated(api, db, keys, settings, claims):
    token = _token(settings.jwt_secret, **claims)
    before = await _row_counts(db)
    result = await api.post("{ viewer { role } }", token=token)
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    mutation = await api.post(
        'mutation { createApiKey(input: {role: MEMBER, label: "x"}) { errors { code } } }', token=token
    )
    assert mutation["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await api.client.get(
        "/payments/export.csv", headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert await _row_counts(db) == before


async def test_a_well_formed_session_token_still_works(api, settings, keys):
    data = await api.ok("{ viewer { role } }", token=_token(settings.jwt_secret))
    assert data["viewer"]["role"] == "OWNER"
