"""Root fields for usage: recordUsage, usage, entitlements, planLimits, and the partners' usageSnapshots
with the grants that open them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.domain.usage import EventInput, parse_month
from billing_graphql.graphql.columns import GenericPathAnswers, RootQuery, Statement
from billing_graphql.graphql.common import connection_from_page, decode_id, offset_after, page_size
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError, ClientError, Forbidden
from billing_graphql.graphql.ids import read_id
from billing_graphql.graphql.permissions import MANAGERS, READERS, allow
from billing_graphql.graphql.scalars import BigInt
from billing_graphql.graphql.scope import organization_for, read_scope
from billing_graphql.graphql.usage.types import (
    Entitlements,
    amounts_text,
    entitlements_row,
    plan_limits_row,
    snapshot_rows,
    trial_flags,
    usage_row,
    PlanLimitsType,
    Usage,
    UsageSnapshot,
    UsageSnapshotConnection,
)
from billing_graphql.services.pagination import MAX_PAGE_SIZE, Page
from billing_graphql.services.usage import partners
from billing_graphql.services.usage.ingest import record_usage
from billing_graphql.services.usage.reading import (
    UsageBasis, basis_amounts, entitlements, plan_limits_view, usage_basis, usage_now,
)

ORGANIZATION_HELP = "Super-admins: the organization to read (required). Tenants read their own."


@strawberry.input
class UsageEventInput:
    metric: str = strawberry.field(description="A metric code of the catalog (messages, agents, ...).")
    quantity: BigInt = strawberry.field(
        description="COUNTER: added to the month (SUM), the candidate maximum (MAX), at most 9007199254740991 "
                    "(2^53 - 1) an event; GAUGE: the current value, at most 2147483647. Ignored by COUNT, UNIQUE_COUNT "
                    "and metrics with a property. A number or a string of digits.")
    timestamp: datetime = strawberry.field(description="When it happened: at most 35 days ago, 5 minutes ahead.")
    idempotency_key: str = strawberry.field(description="Unique per organization; a key seen before is a duplicate.")
    properties: JSON | None = strawberry.field(
        default=None,
        description="Optional object of at most 20 properties: names of 1 to 64 letters, digits, '_', '-' or '.' "
                    "(starting with a letter or '_'); values a string (at most 256 characters), an integer or a "
                    "boolean. A metric with a `property` reads it from here (required on its events). Anything else "
                    "refuses the event (VALIDATION, field events[i].properties...).")


@strawberry.input
class RecordUsageInput:
    events: list[UsageEventInput] = strawberry.field(description="At most 1,000.")
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Super-admins: the organization (required). Tenants record their own."
    )


def _record_usage_input(cls: type, value, _context) -> RecordUsageInput:
    """``RecordUsageInput`` built from its input value (Strawberry's ``from_input`` hook), its events
    straight into the domain's ``EventInput``: graphql-core has already coerced every field (``BigInt``,
    ``DateTime``, ``JSON``) and refused missing ones, and Strawberry's field-by-field conversion
    costs about 40 ms for 1,000 events where this costs about 1 (bench/usage_ingest.py)."""
    return cls(events=[EventInput(metric=item["metric"], quantity=item["quantity"], timestamp=item["timestamp"],
                                  idempotency_key=item["idempotencyKey"], properties=item.get("properties"))
                       for item in value["events"]],
               organization_id=value.get("organizationId"))


RecordUsageInput.__strawberry_definition__.from_input = _record_usage_input


@strawberry.type
class RecordUsagePayload:
    accepted: int = strawberry.field(description="Events recorded now.")
    duplicates: int = strawberry.field(description="Events ignored: their key was seen before.")
    errors: list[BillingError] = strawberry.field(description="One per refused event (field: events[i].name).")


@strawberry.input
class PartnerAccessInput:
    api_key_id: strawberry.ID = strawberry.field(description="A PARTNER key's id.")
    organization_id: strawberry.ID


@strawberry.type
class PartnerAccessPayload:
    api_key_id: strawberry.ID | None = None
    organization_id: strawberry.ID | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


async def _read(info: Info, organization_id: str | None, load, convert):
    """Run a reader for the organization in scope; null when it is out of scope or missing."""
    scope = read_scope(info.context.actor, organization_id)
    try:
        async with info.context.db.read() as session:
            return convert(await load(session, scope))
    except DomainBillingError:
        return None


async def _basis(context: Any, organization_id: strawberry.ID | None) -> UsageBasis | None:
    """The usage pages' first read for the organization in scope (None: no such organization, or one out of reach)."""
    return await usage_basis(context.db, read_scope(context.actor, organization_id), context.now)


async def _amounts(context: Any, basis: UsageBasis, selected: frozenset[str], field: str) -> str | None:
    """The row's amounts so far (``amounts_text``), read after the basis only where ``field`` (an ``amount``) is
    selected: one statement more with a live subscription, none without one."""
    return amounts_text(await basis_amounts(context.db, basis)) if field in selected else None


async def entitlements_query(context: Any, parent: Any, organization_id: strawberry.ID | None = None,
                             selected: frozenset[str] = frozenset()) -> RootQuery | None:
    """The row the SQL tier writes ``entitlements`` from (``graphql.sql_roots``): ``usage_basis`` read first (the
    live plan, else the free tier), its values bound as ``entitlements_row`` with the limits' amounts where selected;
    None (null) as the resolver's. Without a live plan or a free tier the resolver's answer (every known feature off)
    is the generic path's."""
    basis = await _basis(context, organization_id)
    if basis is None:
        return None
    plan_id, slug = basis.entitlement_plan
    if plan_id is None:
        raise GenericPathAnswers("no live plan and no free tier")
    status = None if basis.status is None else basis.status.name
    amounts = await _amounts(context, basis, selected, "EntitlementLimit.amount")
    return RootQuery(Statement(entitlements_row, (basis.organization_id, plan_id, slug, status, basis.month_key,
                                                  amounts)), key=basis.organization_id)


async def usage_query(context: Any, parent: Any, organization_id: strawberry.ID | None = None,
                      selected: frozenset[str] = frozenset()) -> RootQuery | None:
    """The row the SQL tier writes ``usage`` from: ``usage_basis`` read first, its values bound as ``usage_row``
    with the metrics' amounts where selected; None (null) as the resolver's."""
    basis = await _basis(context, organization_id)
    if basis is None:
        return None
    amounts = await _amounts(context, basis, selected, "MetricUsage.amount")
    return RootQuery(Statement(usage_row, (basis.organization_id, basis.plan_id, basis.agent_count, basis.month_key,
                                           basis.month.start, basis.month.end, amounts)), key=basis.organization_id)


async def plan_limits_query(context: Any, parent: Any, organization_id: strawberry.ID | None = None) -> RootQuery | None:
    """The row the SQL tier writes ``planLimits`` from: ``usage_basis`` read first, the trial's flags found as
    ``PlanLimitsType.of`` finds them, the values bound as ``plan_limits_row``; None (null) as the resolver's."""
    basis = await _basis(context, organization_id)
    if basis is None:
        return None
    period = None if basis.billing_period is None else basis.billing_period.name
    flags = trial_flags(basis.status, basis.trial_ends_at, context.now)
    return RootQuery(Statement(plan_limits_row, (
        basis.organization_id, basis.plan_id, basis.agent_count, basis.month_key, basis.trial_ends_at, period,
        basis.plan_version, basis.spending_cap, flags["is_trial"], flags["expired_trial"])), key=basis.organization_id)


def _month(month: str | None) -> datetime | None:
    """The calendar month asked for (its first instant), None for the billing month in force."""
    if month is None:
        return None
    try:
        return parse_month(month)
    except DomainBillingError as error:
        raise ClientError(error.message) from None


def _snapshot_ids(organization_ids: list[strawberry.ID]) -> list:
    """The organizations asked for (``organizationIds``): at most a page of them, each read as an Organization's id
    (another type's: one of no organization); a malformed one is BAD_USER_INPUT."""
    if len(organization_ids) > MAX_PAGE_SIZE:
        raise ClientError(f"At most {MAX_PAGE_SIZE} organizationIds.")
    return [read_id(global_id, "Organization", "organizationIds") for global_id in organization_ids]


async def usage_snapshots_query(context: Any, organization_ids: list[strawberry.ID] | None = None,
                                month: str | None = None, first: int | None = 10, after: str | None = None,
                                selected: frozenset[str] = frozenset()) -> RootQuery:
    """The computed page the SQL tier writes ``usageSnapshots`` from (``graphql.sql_roots``): the resolver's first
    reads (``partners.snapshot_bases_of``, ``snapshot_basis_page``: the grants, the organizations, their live plans,
    each one's billing month found in Python, the amounts where ``SnapshotMetric.amount`` is selected), its rows bound
    as ``snapshot_rows``; no rows, no statement. What the resolver refuses (a bad ``month``, cursor or id, an
    organization not granted: FORBIDDEN for the whole request) the generic path answers."""
    start = _month(month)
    amounts = "SnapshotMetric.amount" in selected
    if organization_ids is None:
        try:
            page = await partners.snapshot_basis_page(context.db, context.actor, context.now, start,
                                                      first=page_size(first), offset=offset_after(after),
                                                      amounts=amounts)
        except DomainBillingError as error:
            raise ClientError(error.message) from None
    else:
        try:
            items = await partners.snapshot_bases_of(context.db, context.actor, _snapshot_ids(organization_ids),
                                                     context.now, start, amounts=amounts)
        except partners.SnapshotsForbidden:
            raise GenericPathAnswers("an organization not granted: FORBIDDEN") from None
        page = Page(items=items, offset=0, has_next=False)
    return RootQuery(snapshot_rows(list(page.items)) if page.items else None, first=len(page.items),
                     offset=page.offset, has_next=page.has_next)


@strawberry.type
class Query:
    @strawberry.field(extensions=allow(*READERS), description="Usage in the current billing month, with limits.")
    async def usage(self, info: Info, organization_id: strawberry.ID | None = None) -> Usage | None:
        return await _read(info, organization_id, lambda session, scope: usage_now(session, scope, info.context.now),
                           Usage.of)

    @strawberry.field(extensions=allow(*READERS),
                      description="Feature flags, limits and status, to gate features in one round trip.")
    async def entitlements(self, info: Info, organization_id: strawberry.ID | None = None) -> Entitlements | None:
        return await _read(info, organization_id,
                           lambda session, scope: entitlements(session, scope, info.context.now), Entitlements.of)

    @strawberry.field(extensions=allow(*READERS),
                      description="Seed 004's view: current plan and trial, spending cap, every plan's limits, usage.")
    async def plan_limits(self, info: Info, organization_id: strawberry.ID | None = None) -> PlanLimitsType | None:
        return await _read(info, organization_id,
                           lambda session, scope: plan_limits_view(session, scope, info.context.now),
                           lambda view: PlanLimitsType.of(view, info.context.now))

    @strawberry.field(
        extensions=allow(DomainRole.SUPER_ADMIN, DomainRole.PARTNER),
        description="Usage snapshots of one billing month per organization, the month `usage` shows: the "
                    "billing period in force, or with `month` (\"YYYY-MM\") the billing period that starts in "
                    "that month; each snapshot carries its `periodStart` and `periodEnd`. With organizationIds: those "
                    "(all granted to the partner, or FORBIDDEN for the whole request); without: a page of the "
                    "granted organizations, by name.",
    )
    async def usage_snapshots(
        self, info: Info, organization_ids: list[strawberry.ID] | None = None, month: str | None = None,
        first: int | None = 10, after: str | None = None,
    ) -> UsageSnapshotConnection | None:
        context = info.context
        start = _month(month)
        if organization_ids is None:
            try:
                page = await partners.snapshot_page(context.db, context.actor, context.now, start,
                                                    first=page_size(first), offset=offset_after(after))
            except DomainBillingError as error:
                raise ClientError(error.message) from None
            return connection_from_page(UsageSnapshotConnection, page, UsageSnapshot.of)
        requested = _snapshot_ids(organization_ids)
        try:
            items = await partners.snapshots_of(context.db, context.actor, requested, context.now, start)
        except partners.SnapshotsForbidden:
            raise Forbidden("Forbidden: an organization asked for is not granted to this key.") from None
        return connection_from_page(UsageSnapshotConnection, Page(items=items, offset=0, has_next=False),
                                    UsageSnapshot.of)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(*MANAGERS),
        description="Record up to 1,000 usage events; invalid ones are refused one by one, the rest recorded.",
    )
    async def record_usage(self, info: Info, input: RecordUsageInput) -> RecordUsagePayload | None:
        context = info.context
        try:  # input.events are domain EventInputs already (_record_usage_input)
            result = await record_usage(context.db, organization_id=organization_for(info, input.organization_id),
                                        events=input.events, now=context.now)
        except DomainBillingError as error:
            return RecordUsagePayload(accepted=0, duplicates=0, errors=[BillingError.from_domain(error)])
        return RecordUsagePayload(accepted=result.accepted, duplicates=result.duplicates,
                                  errors=[BillingError.from_domain(error) for error in result.errors])

    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN),
                         description="Let a PARTNER key read an organization's usage snapshots.")
    async def grant_partner_access(self, info: Info, input: PartnerAccessInput) -> PartnerAccessPayload | None:
        return await _partner_access(info, input, partners.grant_partner_access)

    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN), description="Withdraw a partner's access.")
    async def revoke_partner_access(self, info: Info, input: PartnerAccessInput) -> PartnerAccessPayload | None:
        return await _partner_access(info, input, partners.revoke_partner_access)


async def _partner_access(info: Info, input: PartnerAccessInput, service) -> PartnerAccessPayload:
    context = info.context
    try:
        api_key_id = decode_id(input.api_key_id, "ApiKey", "apiKeyId")
        organization_id = decode_id(input.organization_id, "Organization", "organizationId")
        await service(context.db, context.actor, api_key_id=api_key_id, organization_id=organization_id,
                      now=context.now)
    except DomainBillingError as error:
        return PartnerAccessPayload(errors=[BillingError.from_domain(error)])
    return PartnerAccessPayload(api_key_id=strawberry.ID(relay.to_base64("ApiKey", api_key_id)),
                                organization_id=strawberry.ID(relay.to_base64("Organization", organization_id)))
