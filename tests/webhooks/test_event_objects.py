"""Webhook events speak the API's dialect (issue 18, item 10), on both databases.

Each event's ``data.object`` is compared with the same object fetched over GraphQL: its keys must
be the GraphQL type's fields (all of them but the few the shape lists as left out, fetched by
introspection), and every value must equal what GraphQL answers for that field (global ids,
``Money {amount currency formatted}``, enums, times). So the events cannot drift from the schema.
"""

from __future__ import annotations

from sqlalchemy import select

from billing_graphql.db.models import OutboxEvent
from billing_graphql.domain.webhooks import EVENT_TYPES
from billing_graphql.services.webhooks.objects import SHAPES
from billing_graphql.domain.status import InvoiceStatus
from tests.factories import make_invoice, make_plan

FIELDS = """query($t: String!) { __type(name: $t) { fields(includeDeprecated: true) {
  name type { kind name ofType { kind name ofType { kind name } } } } } }"""


def named(field_type: dict) -> tuple[str, str]:
    while field_type.get("ofType"):
        field_type = field_type["ofType"]
    return field_type["kind"], field_type["name"]


def selection(obj: dict, types: dict[str, tuple[str, str]]) -> str:
    parts = []
    for key in obj:
        kind, name = types[key]
        if name == "Money":
            parts.append(f"{key} {{ amount currency formatted }}")
        elif kind == "OBJECT":
            parts.append(f"{key} {{ id }}")
        else:
            parts.append(key)
    return " ".join(parts)


class Events:
    """The outbox, read in order; ``check`` compares the events written since the last call."""

    def __init__(self, api, db, token):
        self.api, self.db, self.token = api, db, token
        self.seen: set = set()
        self.checked: list[str] = []

    async def check(self, *expected: str) -> None:
        async with self.db.read() as session:
            rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id))).all()
        new = [row for row in rows if row.id not in self.seen]
        self.seen |= {row.id for row in new}
        types = [row.event_type for row in new]
        self.types = types
        for event_type in expected:
            assert event_type in types, (event_type, types)
        latest = {}
        for row in new:  # an object is compared once, as its newest event shows it
            if EVENT_TYPES[row.event_type] in SHAPES:
                latest[row.payload["object"]["id"]] = row
        for row in latest.values():
            await self.compare(row.event_type, row.payload)
            self.checked.append(row.event_type)

    async def compare(self, event_type: str, data: dict) -> None:
        type_name = EVENT_TYPES[event_type]
        obj = data["object"]
        types = {f["name"]: named(f["type"]) for f in (await self.api.ok(FIELDS, {"t": type_name}, token=self.token))
                 ["__type"]["fields"]}
        fields = set(types)
        omitted = set(SHAPES[type_name].omitted)
        assert omitted <= fields, (type_name, omitted - fields)
        assert set(obj) == fields - omitted, (event_type, set(obj) ^ (fields - omitted))
        query = f"query($id: ID!) {{ node(id: $id) {{ ... on {type_name} {{ {selection(obj, types)} }} }} }}"
        shown = (await self.api.ok(query, {"id": obj["id"]}, token=self.token))["node"]
        assert shown == obj, event_type


PLAN = {"name": "Events", "slug": "events", "basePriceMonthly": "100000", "trialDays": 0}
ADDON = {"name": "Seat pack", "slug": "seat-pack", "priceMonthly": "50000"}
COUPON = {"code": "EVENTS10", "name": "Ten", "discountType": "PERCENTAGE", "discountValue": "10"}
CARD = {"gateway": "sandbox", "gatewayPaymentMethodId": "pm_card_visa", "type": "CREDIT_CARD", "label": "Visa",
        "brand": "visa", "last4": "4242", "expMonth": 12, "expYear": 2099}


async def test_every_event_object_is_the_object_graphql_shows(api, db, keys):
    staff = keys.super_admin
    events = Events(api, db, staff)
    await events.check()
    await api.ok('mutation { createOrganization(input: {name: "Initech", externalId: "initech"}) '
                 '{ organization { id } errors { code } } }', token=staff)
    await events.check("organization.created")
    await api.ok("mutation($i: UpdateOrganizationInput!) { updateOrganization(input: $i) { errors { code } } }",
                 {"i": {"id": keys.organization_gid, "name": "Acme Corp"}}, token=staff)
    await events.check("organization.updated")
    await api.ok("mutation($i: UpdateBillingDetailsInput!) { updateBillingDetails(input: $i) { errors { code } } }",
                 {"i": {"legalName": "Acme Ltd", "country": "ID"}}, token=keys.owner)
    await events.check("organization.billing_details_updated")

    plan = (await api.ok("mutation($i: CreatePlanInput!) { createPlan(input: $i) { plan { id } errors { code } } }",
                         {"i": PLAN}, token=staff))["createPlan"]["plan"]
    await api.ok("mutation($i: CreateAddonInput!) { createAddon(input: $i) { addon { id } errors { code } } }",
                 {"i": ADDON}, token=staff)
    await api.ok("mutation($i: CreateCouponInput!) { createCoupon(input: $i) { coupon { id } errors { code } } }",
                 {"i": COUPON}, token=staff)
    await events.check("plan.created", "addon.created", "coupon.created")

    await api.ok("mutation($i: AddPaymentMethodInput!) { addPaymentMethod(input: $i) { errors { code } } }",
                 {"i": CARD}, token=keys.owner)
    await events.check("payment_method.added")
    subscribed = await api.ok("mutation($i: SubscribeInput!) { subscribe(input: $i) { subscription { id } "
                              "invoice { id status } errors { code } } }", {"i": {"planId": plan["id"]}},
                              token=keys.owner)
    assert subscribed["subscribe"]["errors"] == [] and subscribed["subscribe"]["invoice"]["status"] == "PAID"
    await events.check("subscription.created", "invoice.created", "invoice.paid")
    order = events.types[-3:]  # one transaction, one created_at: written and read in this order
    assert order.index("invoice.created") < order.index("invoice.paid"), order
    credited = await api.ok("mutation($i: CreateCreditNoteInput!) { createCreditNote(input: $i) { errors { code } } }",
                            {"i": {"invoiceId": subscribed["subscribe"]["invoice"]["id"], "amount": "1000",
                                   "reason": "OTHER", "outcome": "CREDIT_BALANCE"}}, token=staff)
    assert credited["createCreditNote"]["errors"] == []
    await events.check("credit_note.created")
    for name, mutation in (("voidInvoice", "invoice.voided"), ("markInvoiceUncollectible", "invoice.marked_uncollectible")):
        open_invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN)
        ended = await api.ok(f"mutation($id: ID!) {{ {name}(input: {{invoiceId: $id, reason: \"r\"}}) "
                             "{ errors { code } } }", {"id": _gid("Invoice", open_invoice.id)}, token=staff)
        assert ended[name]["errors"] == []
        await events.check(mutation)
    await api.ok("mutation { cancel(input: {}) { errors { code } } }", token=keys.owner)
    await events.check("subscription.updated")

    endpoint = (await api.ok('mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/h", events: ["*"]}) '
                             "{ webhookEndpoint { id } errors { code } } }", token=keys.owner)
                )["createWebhookEndpoint"]["webhookEndpoint"]
    await api.ok("mutation($i: SendTestWebhookInput!) { sendTestWebhook(input: $i) { errors { code } } }",
                 {"i": {"endpointId": endpoint["id"]}}, token=keys.owner)
    await events.check("webhook.test")
    assert {EVENT_TYPES[event] for event in events.checked} == {
        "Organization", "Plan", "Addon", "Coupon", "PaymentMethod", "Subscription", "Invoice", "WebhookEndpoint",
        "CreditNote"}


async def test_a_subscription_update_says_what_changed_in_the_same_dialect(api, db, keys):
    plan = await make_plan(db, slug="trial-plan", trial_days=14)
    await api.ok("mutation($i: SubscribeInput!) { subscribe(input: $i) { errors { code } } }",
                 {"i": {"planId": _gid("Plan", plan.id)}}, token=keys.owner)
    await api.ok("mutation { cancel(input: {}) { errors { code } } }", token=keys.owner)
    async with db.read() as session:
        event = (await session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "subscription.updated")
                                       )).one()
    assert event.payload["object"]["cancelAtPeriodEnd"] is True
    assert event.payload["previousAttributes"]["cancelAtPeriodEnd"] is False
    assert event.payload["object"]["plan"] == {"id": _gid("Plan", plan.id)}


def test_every_event_type_has_a_documented_object():
    for event_type, type_name in EVENT_TYPES.items():
        assert type_name in SHAPES or type_name == "UsageThreshold", event_type
    readme = open("README.md", encoding="utf-8").read()
    for event_type in EVENT_TYPES:
        assert f"`{event_type}`" in readme, event_type


def _gid(type_name, key):
    from tests.helpers import gid

    return gid(type_name, key)
