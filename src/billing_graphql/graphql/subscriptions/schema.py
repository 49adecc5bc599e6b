"""Root fields for subscriptions: the tenant's own, the admin list, and the lifecycle mutations.

Tenants (OWNER, ADMIN) act on their own organization; MEMBER only reads. Super-admins name the
organization with `organizationId`. Expected failures come back in `errors`; PAYMENT_FAILED is
the one error that comes with a written change (the change stands, its invoice stays open).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry

from billing_graphql.graphql.columns import PythonAnswer, RootQuery, Statement
from billing_graphql.services.billing.renewal_reads import live_upcoming
from billing_graphql.services.pagination import read_page
from billing_graphql.services.subscriptions import lifecycle
from strawberry import relay

from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.permissions import MANAGERS, READERS, allow
from billing_graphql.graphql.ids import read_optional_id
from billing_graphql.graphql.scope import ORGANIZATION_ID_HELP, organization_for, read_scope
from billing_graphql.graphql.common import Money, attempt, connection_from_page, decode_id, offset_after, page_size
from billing_graphql.graphql.billing.lines import InvoicePreview
from billing_graphql.graphql.billing.credit_note_types import CreditNoteType
from billing_graphql.graphql.billing.types import InvoiceType
from billing_graphql.graphql.usage.types import PlanLimitsType, plan_limits_of
from billing_graphql.graphql.subscriptions.types import (
    BillingPeriod,
    ChangeEffective,
    SubscriptionConnection,
    SubscriptionStatus,
    SubscriptionAddon,
    SubscriptionType,
    at_now,
    subscription_addons,
)
from billing_graphql.services.subscriptions import plan_changes
from billing_graphql.services.subscriptions import lifecycle as subscriptions
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.loading import live_subscription_statement
from billing_graphql.services.subscriptions.results import SubscriptionChange

def _optional_id(global_id: strawberry.ID | None, type_name: str, field: str) -> uuid.UUID | None:
    return decode_id(global_id, type_name, field) if global_id is not None else None


# ---- inputs and payloads --------------------------------------------------------------------

@strawberry.input
class SubscribeInput:
    plan_id: strawberry.ID | None = strawberry.field(default=None, description="Default: the cheapest active plan.")
    billing_period: BillingPeriod = BillingPeriod.MONTHLY
    coupon_code: str | None = None
    payment_method_id: strawberry.ID | None = strawberry.field(
        default=None, description="Pays the first invoice (plans without trial); default: the default method."
    )
    idempotency_key: str | None = None
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)


@strawberry.type
class SubscribePayload:
    subscription: SubscriptionType | None = None
    invoice: InvoiceType | None = strawberry.field(default=None, description="The first period's invoice (no trial).")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class ChangePlanInput:
    plan_id: strawberry.ID | None = strawberry.field(default=None, description="Default: the current plan.")
    period: BillingPeriod | None = strawberry.field(default=None, description="Default: the current period.")
    effective: ChangeEffective = strawberry.field(default=ChangeEffective.IMMEDIATE)
    spending_cap: Decimal | None = strawberry.field(
        default=None, description="Cap on a period's usage charges, in the plan's currency (major units)."
    )
    dry_run: bool = strawberry.field(default=False, description="Return the invoice preview; write nothing.")
    idempotency_key: str | None = None
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)
    proration_date: datetime | None = strawberry.field(
        default=None, description="The instant of the preview (dryRun) this change confirms: it is priced at that "
                                  "instant, so it bills exactly what the preview showed (at most an hour old, within "
                                  "the current period).")


@strawberry.type
class ChangePlanPayload:
    subscription: SubscriptionType | None = None
    invoice: InvoiceType | None = strawberry.field(default=None, description="The prorated invoice, if one was due.")
    preview: InvoicePreview | None = strawberry.field(default=None, description="What the change bills or credits.")
    credit_added: Money | None = strawberry.field(default=None, description="Account credit from a downgrade.")
    minimum_required_cap: Money | None = strawberry.field(default=None, description="With SPENDING_CAP_TOO_LOW.")
    plan_limits: PlanLimitsType | None = strawberry.field(default=None, description="Seed 004's plan-limits view.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class CancelInput:
    immediately: bool = strawberry.field(default=False, description="End it now instead of at the period's end.")
    prorate: bool = strawberry.field(
        default=False, description="With immediately: credit the unused part of the period (a credit note to the "
                                   "account balance). Without it nothing is credited.")
    refund: bool = strawberry.field(
        default=False, description="With prorate (super-admins): refund the credit note instead of adding it to "
                                   "the balance.")
    reason: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key and input returns the first result; another input "
                                  "is refused.")
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)


@strawberry.input
class ResumeInput:
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)


SubscriptionPayload = node_payload("SubscriptionPayload", "subscription", SubscriptionType,
                                   to_node=lambda result: SubscriptionType.maybe(result.subscription))


PRORATION_DATE_HELP = ("The instant of the preview (dryRun) this change confirms: it is priced at that instant, so it "
                       "bills exactly what the preview showed (at most an hour old, within the current period).")
DRY_RUN_HELP = "Return the invoice preview; write nothing."


@strawberry.input
class ApplyCouponInput:
    coupon_code: str
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)


@strawberry.type
class CancelPayload:
    subscription: SubscriptionType | None = None
    credit_notes: list[CreditNoteType] = strawberry.field(
        default_factory=list, description="With prorate: the credit notes for the unused part of the period.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class AttachAddonInput:
    addon_id: strawberry.ID
    quantity: int = 1
    idempotency_key: str | None = None
    dry_run: bool = strawberry.field(default=False, description=DRY_RUN_HELP)
    proration_date: datetime | None = strawberry.field(default=None, description=PRORATION_DATE_HELP)
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)


@strawberry.input
class DetachAddonInput:
    addon_id: strawberry.ID
    idempotency_key: str | None = None
    dry_run: bool = strawberry.field(default=False, description=DRY_RUN_HELP)
    proration_date: datetime | None = strawberry.field(default=None, description=PRORATION_DATE_HELP)
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)


@strawberry.type
class AddonChangePayload:
    subscription: SubscriptionType | None = None
    subscription_addon: SubscriptionAddon | None = strawberry.field(
        default=None, description="The attachment as it is after the change (null once detached).")
    invoice: InvoiceType | None = None
    credit_added: Money | None = None
    preview: InvoicePreview | None = strawberry.field(default=None, description="What the change bills or credits.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateSubscriptionInput:
    id: strawberry.ID
    status: SubscriptionStatus | None = strawberry.field(default=None, description="Override; needs a reason.")
    reason: str | None = None
    current_period_end: datetime | None = strawberry.field(default=None, description="Only later than now's end.")
    payment_gateway: str | None = None
    gateway_customer_id: str | None = strawberry.UNSET
    gateway_subscription_id: str | None = strawberry.UNSET


def _credit(result: SubscriptionChange | None) -> Money | None:
    if result is None or not result.credit_added:
        return None
    currency = result.preview.currency if result.preview else None
    return Money.maybe(result.credit_added, currency)


# ---- root fields ----------------------------------------------------------------------------

def _staff_list(status: Any, plan_id: Any, now: Any) -> Any:
    return at_now(lifecycle.subscriptions_statement(status, plan_id), now)


def _live(organization_id: Any, now: Any) -> Any:
    return at_now(live_subscription_statement(organization_id), now)


def subscriptions_query(context: Any, status: Any = None, plan_id: strawberry.ID | None = None,
                        first: int | None = 10, after: str | None = None) -> RootQuery:
    """The statement and page of the staff list ``subscriptions`` (the SQL tier wraps the same statement), its
    rows with the request's clock (``at_now``)."""
    plan = read_optional_id(plan_id, "Plan", "planId")
    size, offset = page_size(first), offset_after(after)
    return RootQuery(Statement(_staff_list, (status, plan, context.now)), size, offset)


UPCOMING = "Subscription.upcomingInvoice"  # answered on the Python plan (``SqlRoot.python``)


async def subscription_query(context: Any, parent: Any, organization_id: strawberry.ID | None = None,
                             selected: frozenset[str] = frozenset()) -> RootQuery | PythonAnswer | None:
    """The row the SQL tier writes ``subscription`` from (``graphql.sql_roots``): the organization in scope's live
    subscription, the statement the resolver reads (``live_subscription_statement``), with the request's clock
    (``at_now``); no row (none live, an organization out of reach): null, as the resolver's.

    With ``upcomingInvoice`` selected: the live subscription and its renewal's inputs read first on the driver's
    connection, priced by the billing run's own code (``renewal_reads.live_upcoming``: two statements where the
    resolver's ``upcoming_invoice`` sends about ten), and the object with its preview completed on the Python plan
    (``PythonAnswer``: no further statement; its other fields as their resolvers answer them)."""
    scope = read_scope(context.actor, organization_id)
    if UPCOMING not in selected:
        return RootQuery(Statement(_live, (scope, context.now)))
    found = await live_upcoming(context.db, scope)
    if found is None:
        return None
    return PythonAnswer(SubscriptionType.from_row(found.subscription, InvoicePreview.from_value(found.preview)))


@strawberry.type
class Query:
    @strawberry.field(
        extensions=allow(*READERS),
        description="The organization's live subscription, or null. Super-admins pass organizationId.",
    )
    async def subscription(self, info: Info, organization_id: strawberry.ID | None = None) -> SubscriptionType | None:
        scope = read_scope(info.context.actor, organization_id)
        return SubscriptionType.maybe(await subscriptions.get_live_subscription(info.context.db, scope))

    @strawberry.field(extensions=allow(DomainRole.SUPER_ADMIN), description="All subscriptions, newest first.")
    async def subscriptions(
        self, info: Info, status: SubscriptionStatus | None = None, plan_id: strawberry.ID | None = None,
        first: int | None = 10, after: str | None = None,
    ) -> SubscriptionConnection | None:
        query = subscriptions_query(info.context, status, plan_id, first, after)
        page = await read_page(info.context.db, query.statement, first=query.first, offset=query.offset)
        return connection_from_page(SubscriptionConnection, page, SubscriptionType.from_row)


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(*MANAGERS), description="Start the organization's subscription.")
    async def subscribe(self, info: Info, input: SubscribeInput) -> SubscribePayload | None:
        context = info.context
        result, errors = await attempt(lambda: subscriptions.subscribe(
            context.db, context.actor,
            organization_id=organization_for(info, input.organization_id),
            choice=PlanChoice(_optional_id(input.plan_id, "Plan", "planId"), input.billing_period, input.coupon_code),
            payment_method_id=_optional_id(input.payment_method_id, "PaymentMethod", "paymentMethodId"),
            idempotency_key=input.idempotency_key,
            gateways=context.gateways,
            now=context.now,
            trial_once=context.settings.trial_once,
        ))
        if result is None:
            return SubscribePayload(errors=errors)
        return SubscribePayload(subscription=SubscriptionType.from_row(result.subscription),
                                invoice=InvoiceType.maybe(result.invoice), errors=errors)

    @strawberry.mutation(
        extensions=allow(*MANAGERS),
        description="Change plan and/or billing period: now with proration (default) or at the period's end.",
    )
    async def change_plan(self, info: Info, input: ChangePlanInput) -> ChangePlanPayload | None:
        context = info.context
        details: dict[str, Any] = {}
        result, errors = await attempt(lambda: plan_changes.change_plan(
            context.db, context.actor,
            organization_id=organization_for(info, input.organization_id),
            plan_id=_optional_id(input.plan_id, "Plan", "planId"),
            billing_period=input.period,
            effective=input.effective,
            spending_cap=input.spending_cap,
            dry_run=input.dry_run,
            idempotency_key=input.idempotency_key,
            proration_date=input.proration_date,
            gateways=context.gateways,
            now=context.now,
        ), details)
        if result is None:
            minimum = Money.maybe(details.get("minimum_required_cap"), details.get("currency"))
            return ChangePlanPayload(errors=errors, minimum_required_cap=minimum)
        return ChangePlanPayload(
            subscription=SubscriptionType.from_row(result.subscription),
            invoice=InvoiceType.maybe(result.invoice),
            preview=InvoicePreview.from_value(result.preview),
            credit_added=_credit(result),
            plan_limits=await plan_limits_of(info, result.subscription.organization_id),
            errors=errors,
        )

    @strawberry.mutation(extensions=allow(*MANAGERS), description="Cancel at the period's end, or immediately.")
    async def cancel(self, info: Info, input: CancelInput) -> CancelPayload | None:
        context = info.context
        result, errors = await attempt(lambda: subscriptions.cancel(
            context.db, context.actor, organization_id=organization_for(info, input.organization_id),
            immediately=input.immediately, prorate=input.prorate, refund=input.refund, reason=input.reason,
            idempotency_key=input.idempotency_key, gateways=context.gateways, now=context.now,
        ))
        if result is None:
            return CancelPayload(errors=errors)
        return CancelPayload(subscription=SubscriptionType.maybe(result.subscription),
                             credit_notes=[CreditNoteType.from_row(note) for note in result.extra.get("credit_notes", [])],
                             errors=errors)

    @strawberry.mutation(extensions=allow(*MANAGERS),
                         description="Apply a coupon to the live subscription, from its next period's invoice.")
    async def apply_coupon(self, info: Info, input: ApplyCouponInput) -> SubscriptionPayload | None:
        context = info.context
        return await SubscriptionPayload.of(lambda: subscriptions.apply_coupon(
            context.db, context.actor, organization_id=organization_for(info, input.organization_id),
            coupon_code=input.coupon_code, now=context.now,
        ))

    @strawberry.mutation(extensions=allow(*MANAGERS), description="Clear a pending cancellation.")
    async def resume(self, info: Info, input: ResumeInput | None = None) -> SubscriptionPayload | None:
        context = info.context
        return await SubscriptionPayload.of(lambda: subscriptions.resume(
            context.db, context.actor, organization_id=organization_for(info, input.organization_id if input else None),
            now=context.now,
        ))

    @strawberry.mutation(
        extensions=allow(*MANAGERS),
        description="Attach an add-on, or set the quantity of an attached one (prorated like a plan change).",
    )
    async def attach_addon(self, info: Info, input: AttachAddonInput) -> AddonChangePayload | None:
        context = info.context
        result, errors = await attempt(lambda: plan_changes.attach_addon(
            context.db, context.actor, organization_id=organization_for(info, input.organization_id),
            addon_id=_addon_id(input.addon_id), quantity=input.quantity,
            idempotency_key=input.idempotency_key, dry_run=input.dry_run, proration_date=input.proration_date,
            gateways=context.gateways, now=context.now,
        ))
        payload = _addon_payload(result, errors)
        if result is not None:
            addon_gid = strawberry.ID(relay.to_base64("Addon", _addon_id(input.addon_id)))
            attached = await subscription_addons(info, result.subscription)
            payload.subscription_addon = next((item for item in attached if item.addon_id == addon_gid), None)
        return payload

    @strawberry.mutation(extensions=allow(*MANAGERS), description="Detach an add-on; its unused part becomes credit.")
    async def detach_addon(self, info: Info, input: DetachAddonInput) -> AddonChangePayload | None:
        context = info.context
        result, errors = await attempt(lambda: plan_changes.detach_addon(
            context.db, context.actor, organization_id=organization_for(info, input.organization_id),
            addon_id=_addon_id(input.addon_id), idempotency_key=input.idempotency_key, dry_run=input.dry_run,
            proration_date=input.proration_date, gateways=context.gateways, now=context.now,
        ))
        return _addon_payload(result, errors)

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Super-admin patch: status override (with a reason), a later period end, gateway ids. Audited.",
    )
    async def update_subscription(self, info: Info, input: UpdateSubscriptionInput) -> SubscriptionPayload | None:
        context = info.context
        unset = strawberry.UNSET
        patch: dict[str, Any] = {}
        if input.gateway_customer_id is not unset:
            patch["gateway_customer_id"] = input.gateway_customer_id
        if input.gateway_subscription_id is not unset:
            patch["gateway_subscription_id"] = input.gateway_subscription_id
        return await SubscriptionPayload.of(lambda: subscriptions.update_subscription(
            context.db, context.actor, subscription_id=decode_id(input.id, "Subscription"),
            status=input.status, reason=input.reason, current_period_end=input.current_period_end,
            payment_gateway=input.payment_gateway, gateways=context.gateways, now=context.now, **patch,
        ))


def _addon_id(global_id: strawberry.ID) -> uuid.UUID:
    from billing_graphql.domain.errors import BillingError as Domain
    from billing_graphql.domain.errors import BillingErrorCode

    try:
        return decode_id(global_id, "Addon", "addonId")
    except Domain:
        raise Domain(BillingErrorCode.ADDON_NOT_FOUND, "Add-on not found.", field="addonId") from None


def _addon_payload(result: SubscriptionChange | None, errors: list[BillingError]) -> AddonChangePayload:
    if result is None:
        return AddonChangePayload(errors=errors)
    return AddonChangePayload(subscription=SubscriptionType.from_row(result.subscription),
                              invoice=InvoiceType.maybe(result.invoice), credit_added=_credit(result),
                              preview=InvoicePreview.from_value(result.preview), errors=errors)
