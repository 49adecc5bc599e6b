"""schema.graphql is exported from the code, and reads back with `LiveSubscription` as its subscription root."""

from __future__ import annotations

from pathlib import Path

import strawberry
from graphql import GraphQLObjectType, build_schema

from billing_graphql.cli import main
from billing_graphql.graphql.schema import export_sdl, schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_committed_schema_matches_the_code():
    assert SCHEMA_FILE.read_text() == export_sdl(schema), (
        "schema.graphql drifted: run `billing-graphql export-schema > schema.graphql`"
    )


def test_cli_export_prints_the_same_schema(capsys):
    assert main(["export-schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text()


def test_committed_schema_subscription_root_is_the_live_one():
    """The subscription root is LiveSubscription (issue 25); the billing object `Subscription` stays an object
    type and never becomes the root."""
    built = build_schema(SCHEMA_FILE.read_text())
    assert built.subscription_type is not None and built.subscription_type.name == "LiveSubscription"
    assert built.query_type.name == "Query" and built.mutation_type.name == "Mutation"
    if "Subscription" in built.type_map:
        assert isinstance(built.type_map["Subscription"], GraphQLObjectType)


@strawberry.type(name="Subscription")
class BillingSubscription:
    status: str


@strawberry.type(name="Query")
class SampleQuery:
    subscription: BillingSubscription | None = None


@strawberry.type(name="Mutation")
class SampleMutation:
    noop: bool = True


def test_export_keeps_a_type_named_subscription_an_object_type():
    sdl = export_sdl(strawberry.Schema(query=SampleQuery, mutation=SampleMutation))
    built = build_schema(sdl)
    assert built.subscription_type is None
    assert isinstance(built.type_map["Subscription"], GraphQLObjectType)
    # Without the explicit schema block graphql-core would make it the subscription root.
    assert build_schema(sdl.split("\n\n", 1)[1]).subscription_type is not None
