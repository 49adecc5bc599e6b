"""The schema: root types merged from the area packages, scalars, and the protective extensions."""

from __future__ import annotations

import weakref

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from billing_graphql.graphql.error_codes import ErrorCodes
from billing_graphql.graphql.errors import log, should_mask_error
from billing_graphql.graphql.observability import RequestMetrics
from billing_graphql.graphql.input_validation import InputValidation
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.analytics import schema as analytics
from billing_graphql.graphql.compiled import CompiledDocuments
from billing_graphql.graphql.persisted import TrustedDocuments, persisted_documents_extension
from billing_graphql.graphql.billing import credit_notes, invoice_payments, invoices, one_off, portal
from billing_graphql.graphql.catalog import addons, coupons, metrics, plans
from billing_graphql.graphql.payments import checkout, payment_methods, refunds
from billing_graphql.graphql.platform import billing_details, clock, organizations
from billing_graphql.graphql.subscriptions import schema as subscriptions
from billing_graphql.graphql.live import schema as live
from billing_graphql.graphql.live.types import LiveEventIds
from billing_graphql.graphql.usage import schema as usage
from billing_graphql.graphql.webhooks import schema as webhooks
from billing_graphql.graphql.scalars import SCALAR_MAP
from billing_graphql.settings import Settings


QUERIES = (
    organizations.Query,
    plans.Query,
    metrics.Query,
    addons.Query,
    coupons.Query,
    subscriptions.Query,
    invoices.Query,
    payment_methods.Query,
    usage.Query,
    clock.Query,
    analytics.Query,
    webhooks.Query,
)
MUTATIONS = (
    organizations.Mutation,
    plans.Mutation,
    metrics.Mutation,
    addons.Mutation,
    coupons.Mutation,
    subscriptions.Mutation,
    payment_methods.Mutation,
    refunds.Mutation,
    invoice_payments.Mutation,
    one_off.Mutation,
    credit_notes.Mutation,
    checkout.Mutation,
    portal.Mutation,
    usage.Mutation,
    clock.Mutation,
    webhooks.Mutation,
    billing_details.Mutation,
)


def _node_query() -> type:
    # relay.node()'s extension rewrites its field when a schema is built, so each schema
    # gets a field of its own.
    @strawberry.type
    class NodeQuery:
        node: relay.Node | None = relay.node(extensions=allow(), description="Any object by its global ID.")

    return NodeQuery


def with_schema_block(sdl: str) -> str:
    """The SDL with an explicit schema block, so that a type named `Subscription` stays an
    object type when the SDL is read back (the subscription root is `LiveSubscription`)."""
    if sdl.lstrip().startswith("schema {"):
        return sdl
    return "schema {\n  query: Query\n  mutation: Mutation\n}\n\n" + sdl


class BillingSchema(strawberry.Schema):
    def as_str(self) -> str:
        return with_schema_block(super().as_str())

    def process_errors(self, errors, execution_context=None) -> None:
        # Unexpected exceptions are logged with their traceback when they are masked
        # (errors.should_mask_error); the rest are the caller's mistakes (validation,
        # permissions, bad input) and are not worth an ERROR line each.
        for error in errors:
            log.debug("GraphQL error: %s", error.message)


def validation_rules(settings: Settings) -> list[type]:
    """The depth and alias limits (and, when it is off, the introspection ban) as rule classes made once.

    ``ValidationCache`` keys its entries on the tuple of rule classes: the limiter extensions build new
    classes each time they are constructed (once per request when passed as factories), so the cache
    never hit. Built here, once per schema, the key is stable and validation runs once per document.
    """
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(settings: Settings) -> strawberry.Schema:
    rules = validation_rules(settings)
    extensions: list = [
        persisted_documents_extension(TrustedDocuments.load(require=settings.trusted_documents)),
        # Before the limits, so that its on_operation exit runs last and codes the masked errors too.
        lambda: ErrorCodes(suggestions=settings.introspection),
        RequestMetrics,
        InputValidation,
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: MaskErrors(should_mask_error=should_mask_error),
        LiveEventIds,
    ]
    return BillingSchema(
        query=merge_types("Query", (*QUERIES, _node_query())),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=live.Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
    )


def _limits(settings: Settings) -> tuple:
    """Every setting ``build_schema`` reads: apps whose settings agree on these have the same schema."""
    return (settings.max_query_depth, settings.max_aliases, settings.introspection, settings.max_tokens,
            settings.trusted_documents)


_SCHEMAS: dict[tuple, strawberry.Schema] = {}
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def schema_for(settings: Settings) -> strawberry.Schema:
    """The schema of these settings' limits, built once per process. A new schema also meant planning the
    registered documents again (``compiled_documents`` keeps plans per schema): ~0.25 s an app, which
    tests that build an app each paid every time."""
    key = _limits(settings)
    if key not in _SCHEMAS:
        _SCHEMAS[key] = build_schema(settings)
    return _SCHEMAS[key]


def compiled_documents(schema: strawberry.Schema, settings: Settings) -> CompiledDocuments:
    """The plans of the registered queries for this schema and these limits, compiled once per process
    (tests build many apps on one schema), and the cache of the other documents' plans."""
    key = (*_limits(settings), settings.plan_cache_size)
    by_limits = _COMPILED.setdefault(schema, {})
    if key not in by_limits:
        from billing_graphql.graphql.sql_roots import FIELDS, ROOTS

        by_limits[key] = CompiledDocuments.build(
            schema, TrustedDocuments.load(require=settings.trusted_documents), validation_rules(settings),
            settings.max_tokens, sql_roots={**ROOTS, **FIELDS}, cache_size=settings.plan_cache_size)
    return by_limits[key]


def export_sdl(schema: strawberry.Schema) -> str:
    """The SDL as committed in schema.graphql (with the explicit schema block)."""
    return with_schema_block(schema.as_str()) + "\n"


schema = build_schema(Settings())
