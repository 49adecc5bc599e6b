"""The laws every journey step must leave true, checked by one helper (`Ledger.check`), and the
few GraphQL calls the journeys share (organizations, keys, the clock, webhook delivery).

After each step of a journey:
- every invoice: total = subtotal - discount + tax; amount due = total - credit applied - paid;
  amount paid = its succeeded payments;
- payments minus refunds = analytics' net revenue, month by month and in all;
- the MRR identity for every month: MRR(end) = MRR(start) + new + expansion - contraction -
  churned (the month before the journey starts at 0: the database starts empty), and the MRR now
  is the last month's; when the journey states it, the MRR is the figure worked out by hand;
- each state change produced exactly one event of its documented type: the outbox is delivered
  by the real delivery job (`WebhookWorker`) to a real receiver on loopback, every request's
  Standard Webhooks signature is verified, every type is one of the registry's (`EVENT_TYPES`),
  and the types received in the step are exactly the ones the step expects; `webhookDeliveries`
  lists each of them as DELIVERED, once;
- each organization's credit balance is the one the journey expects, and the sum of its ledger
  (`creditBalanceTransactions`), whose newest entry ends at it;
- one seat count: `Subscription.agentCount` = `usage.agentCount`, and the upcoming invoice's
  SEATS line bills the agents above the plan's included ones;
- a partner's snapshot (no month given) is the tenant's own `usage`: same billing month, same
  used, limit and overage per metric.
At the end of each journey, `check_event_shapes`: every payload received is in GraphQL's dialect.
Nothing is read from the database directly: only `/graphql` (and the portal's pages).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_graphql.domain.webhooks import EVENT_TYPES
from billing_graphql.jobs.webhook_delivery import WebhookWorker

#: The object types of `EVENT_TYPES` (the documented event types) that are Relay nodes.
NODE_TYPES = {"Organization", "Plan", "Addon", "Coupon", "Subscription", "Invoice", "PaymentMethod", "WebhookEndpoint"}
ERRORS = "errors { code message field }"
MONEY = "{ amount currency }"
INVOICE = f"""id invoiceNumber status billingReason currency periodStart periodEnd pdfUrl
  subtotal {MONEY} discount {MONEY} tax {MONEY} total {MONEY} creditApplied {MONEY}
  amountPaid {MONEY} amountRefunded {MONEY} amountDue {MONEY} retryCount
  organization {{ id }}
  lines {{ kind description quantity unitAmount {{ amount }} amount {{ amount }} periodStart periodEnd }}
  payments {{ amount {MONEY} amountRefunded {MONEY} status createdAt }}"""
INVOICES = f"""query($after: String) {{ invoices(first: 100, after: $after) {{
  edges {{ node {{ {INVOICE} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
ANALYTICS = f"""query($from: Date!, $to: Date!, $currency: String!) {{
  analytics(from: $from, to: $to, currency: $currency) {{
    mrr {MONEY}
    months {{ month mrr {MONEY} newMrr {MONEY} expansionMrr {MONEY} contractionMrr {MONEY} churnedMrr {MONEY}
              netRevenue {MONEY} newSubscriptions churnedSubscriptions }} }} }}"""
DELIVERIES = """query($after: String) { webhookDeliveries(first: 100, after: $after) {
  edges { node { id eventType status attempts } } pageInfo { hasNextPage endCursor } } }"""
SUBSCRIPTION_STATE = """id status agentCount cancelAtPeriodEnd retryCount currentPeriodStart currentPeriodEnd
  billingPeriod plan { slug includedAgents }
  upcomingInvoice { lines { kind quantity amount { amount } } subtotal { amount } discount { amount } }"""
SUBSCRIPTION = f"query($org: ID) {{ subscription(organizationId: $org) {{ {SUBSCRIPTION_STATE} }} }}"
TENANT = f"""query($org: ID!) {{
  organization(id: $org) {{ creditBalance {{ amount currency }}
    creditBalanceTransactions(first: 100) {{ edges {{ node {{ amount {{ amount }} balanceAfter {{ amount }} }} }}
      pageInfo {{ hasNextPage }} }} }}
  subscription(organizationId: $org) {{ {SUBSCRIPTION_STATE} }}
  usage(organizationId: $org) {{ agentCount usageMonth metrics {{ metric {{ code }} used limit overage }} }} }}"""
SNAPSHOT = """query($ids: [ID!], $month: String) { usageSnapshots(organizationIds: $ids, month: $month) {
  edges { node { organization { id } month metrics { metric { code } used limit overage } } } } }"""
ADVANCE = f"mutation($to: DateTime!) {{ advanceClock(input: {{to: $to}}) {{ clock {{ now }} {ERRORS} }} }}"
CREATE_ORGANIZATION = f"""mutation($i: CreateOrganizationInput!) {{ createOrganization(input: $i) {{
  organization {{ id externalId }} {ERRORS} }} }}"""
CREATE_KEY = f"""mutation($i: CreateApiKeyInput!) {{ createApiKey(input: $i) {{ apiKey {{ id }} key {ERRORS} }} }}"""
CREATE_ENDPOINT = f"""mutation($i: CreateWebhookEndpointInput!) {{ createWebhookEndpoint(input: $i) {{
  webhookEndpoint {{ id }} secret {ERRORS} }} }}"""
GRANT = f"""mutation($i: PartnerAccessInput!) {{ grantPartnerAccess(input: $i) {{ {ERRORS} }} }}"""


def amount(money: dict[str, Any] | None) -> Decimal:
    return Decimal(money["amount"]) if money else Decimal(0)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Tenant:
    id: str  # global id
    external_id: str
    owner: str  # an OWNER key


@dataclass
class Ledger:
    api: Any
    db: Any  # only for the delivery job, which runs on the app's database like `deliver-webhooks`
    staff: str  # a SUPER_ADMIN key
    receiver: Any
    currency: str = "IDR"
    processor: str = "sandbox"  # the gateway the journey's cards belong to (sandbox or stripe)
    stripe: Any = None  # localstripe, when the processor is Stripe
    now: datetime | None = None
    start: datetime | None = None
    tenants: list[Tenant] = field(default_factory=list)
    credit: dict[str, Decimal] = field(default_factory=dict)
    partner: str | None = None
    partner_key_id: str | None = None
    granted: list[Tenant] = field(default_factory=list)
    seen_events: int = 0
    worker: WebhookWorker | None = None
    steps: list[str] = field(default_factory=list)

    # -- GraphQL ---------------------------------------------------------------------------

    async def gql(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict:
        return await self.api.ok(query, variables or {}, token=token or self.staff)

    async def mutate(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict:
        """A mutation whose payload must carry no errors; returns the payload."""
        data = await self.gql(query, variables, token)
        (payload,) = data.values()
        assert payload is not None, data
        assert payload["errors"] == [], payload["errors"]
        return payload

    async def every(self, query: str, root: str) -> list[dict]:
        """Every node of a connection, page after page."""
        nodes, after = [], None
        while True:
            page = (await self.gql(query, {"after": after}))[root]
            nodes += [edge["node"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return nodes
            after = page["pageInfo"]["endCursor"]

    # -- set-up through the API ------------------------------------------------------------

    async def begin(self, at: str) -> None:
        """Freeze the test clock at ``at`` and open a platform-wide webhook endpoint on the receiver."""
        await self.at(at)
        self.start = self.now
        created = await self.mutate(CREATE_ENDPOINT, {"i": {"url": self.receiver.url, "events": ["*"],
                                                            "description": "journeys"}})
        self.receiver.secrets = [created["secret"]]
        self.worker = WebhookWorker(self.db, production=False, now=lambda: self.now, rand=lambda: 0.5)

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.close()

    async def tenant(self, name: str, external_id: str) -> Tenant:
        organization = (await self.mutate(CREATE_ORGANIZATION, {"i": {"name": name, "externalId": external_id}}))[
            "organization"]
        key = await self.mutate(CREATE_KEY, {"i": {"organizationId": organization["id"], "role": "OWNER",
                                                   "label": "owner"}})
        tenant = Tenant(organization["id"], external_id, key["key"])
        self.tenants.append(tenant)
        self.credit[tenant.id] = Decimal(0)
        return tenant

    async def grant_partner(self, tenant: Tenant) -> str:
        if self.partner is None:
            created = await self.mutate(CREATE_KEY, {"i": {"role": "PARTNER", "label": "partner"}})
            self.partner, self.partner_key_id = created["key"], created["apiKey"]["id"]
        await self.mutate(GRANT, {"i": {"apiKeyId": self.partner_key_id, "organizationId": tenant.id}})
        self.granted.append(tenant)
        return self.partner

    async def at(self, moment: str) -> None:
        """Move the test clock (the billing run catches up before advanceClock returns)."""
        moved = await self.mutate(ADVANCE, {"to": moment})
        self.now = parse_time(moved["clock"]["now"])
        assert self.now == parse_time(moment)

    # -- reads -----------------------------------------------------------------------------

    async def invoices(self, tenant: Tenant | None = None) -> list[dict]:
        """Every invoice (of ``tenant``, or of all), oldest first."""
        nodes = await self.every(INVOICES, "invoices")
        if tenant is not None:
            nodes = [node for node in nodes if node["organization"]["id"] == tenant.id]
        return sorted(nodes, key=lambda node: (node["invoiceNumber"] or "~", node["id"]))

    async def subscription(self, tenant: Tenant) -> dict | None:
        return (await self.gql(SUBSCRIPTION, {"org": tenant.id}))["subscription"]

    async def analytics(self) -> dict:
        assert self.start is not None and self.now is not None
        first = (self.start.date().replace(day=1) - timedelta(days=1)).replace(day=1)  # the month before
        last = (self.now.date().replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return (await self.gql(ANALYTICS, {"from": first.isoformat(), "to": last.isoformat(),
                                           "currency": self.currency}))["analytics"]

    # -- the laws --------------------------------------------------------------------------

    async def check(self, step: str, *, events: dict[str, int] | None = None, mrr: int | None = None) -> dict:
        """Check every law after ``step``; ``events``: the event types (and how many of each) the
        step must have produced, nothing else; ``mrr``: the MRR now, worked out by hand."""
        self.steps.append(step)
        invoices = await self.invoices()
        for invoice in invoices:
            self._invoice_law(step, invoice)
        report = await self.analytics()
        self._revenue_law(step, invoices, report)
        self._mrr_identity(step, report)
        if mrr is not None:
            assert amount(report["mrr"]) == mrr, f"{step}: MRR {report['mrr']} != {mrr} (by hand)"
        await self._events_law(step, Counter(events or {}))
        for tenant in self.tenants:
            state = await self.gql(TENANT, {"org": tenant.id})
            credit = amount(state["organization"]["creditBalance"])
            assert credit == self.credit[tenant.id], f"{step}: {tenant.external_id}'s credit {credit} != " \
                                                     f"{self.credit[tenant.id]}"
            self._ledger_law(step, tenant, state["organization"])
            self._seat_law(step, state["subscription"], state["usage"])
            if tenant in self.granted:
                await self._snapshot_law(step, tenant, state["usage"])
        return report

    @staticmethod
    def _ledger_law(step: str, tenant: Tenant, organization: dict) -> None:
        """The balance is the sum of its ledger, and the newest entry ends at it."""
        ledger = organization["creditBalanceTransactions"]
        assert not ledger["pageInfo"]["hasNextPage"], f"{step}: more than 100 ledger entries"
        entries = [edge["node"] for edge in ledger["edges"]]
        credit = amount(organization["creditBalance"])
        total = sum((amount(entry["amount"]) for entry in entries), Decimal(0))
        assert total == credit, f"{step}: {tenant.external_id}'s ledger sums to {total}, its balance is {credit}"
        if entries:
            assert amount(entries[0]["balanceAfter"]) == credit, f"{step}: the newest entry does not end at {credit}"

    @staticmethod
    def _invoice_law(step: str, invoice: dict) -> None:
        name = f"{step}: {invoice['invoiceNumber'] or invoice['id']}"
        subtotal, discount, tax, total = (amount(invoice[key]) for key in ("subtotal", "discount", "tax", "total"))
        credit, paid, due = (amount(invoice[key]) for key in ("creditApplied", "amountPaid", "amountDue"))
        assert total == subtotal - discount + tax, f"{name}: total {total} != {subtotal} - {discount} + {tax}"
        assert due == total - credit - paid, f"{name}: amount due {due} != {total} - {credit} - {paid}"
        succeeded = sum((amount(p["amount"]) for p in invoice["payments"] if p["status"] in (
            "SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED")), Decimal(0))
        assert paid == succeeded, f"{name}: amount paid {paid} != its succeeded payments {succeeded}"
        lines = sum((amount(line["amount"]) for line in invoice["lines"]), Decimal(0))
        assert lines == subtotal, f"{name}: lines {lines} != subtotal {subtotal}"

    @staticmethod
    def _revenue_law(step: str, invoices: list[dict], report: dict) -> None:
        by_month: Counter = Counter()
        refunded = Decimal(0)
        for invoice in invoices:
            for payment in invoice["payments"]:
                if payment["status"] in ("SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED"):
                    by_month[payment["createdAt"][:7]] += amount(payment["amount"])
                refunded += amount(payment["amountRefunded"])
        months = {month["month"]: amount(month["netRevenue"]) for month in report["months"]}
        total = sum(months.values(), Decimal(0))
        assert total == sum(by_month.values(), Decimal(0)) - refunded, (
            f"{step}: analytics' net revenue {total} != payments {sum(by_month.values())} - refunds {refunded}"
            f" (analytics {[(m['month'], m['netRevenue']['amount']) for m in report['months']]}, payments {dict(by_month)})")
        if not refunded:  # refunds are dated by their own rows; without any, month by month too
            for month, net in months.items():
                assert net == by_month.get(month, 0), f"{step}: {month} net revenue {net} != payments " \
                                                      f"{by_month.get(month, 0)}"

    @staticmethod
    def _mrr_identity(step: str, report: dict) -> None:
        start = Decimal(0)  # the month before the journey: an empty database
        for month in report["months"]:
            new, expansion, contraction, churned, end = (amount(month[key]) for key in (
                "newMrr", "expansionMrr", "contractionMrr", "churnedMrr", "mrr"))
            assert end == start + new + expansion - contraction - churned, (
                f"{step}: {month['month']}: MRR {end} != {start} + {new} + {expansion} - {contraction} - {churned}")
            start = end
        assert amount(report["mrr"]) == start, f"{step}: MRR now {report['mrr']} != the last month's {start}"

    async def deliver(self) -> None:
        """The outbox, delivered by the delivery job at the test clock's time."""
        assert self.worker is not None
        await self.worker.run_until_idle()

    async def _events_law(self, step: str, expected: Counter) -> None:
        await self.deliver()
        assert self.receiver.rejected == [], f"{step}: signatures refused: {self.receiver.rejected}"
        received = self.receiver.received[self.seen_events:]
        self.seen_events = len(self.receiver.received)
        got = Counter(item.payload["type"] for item in received)
        undocumented = set(got) - set(EVENT_TYPES)
        assert not undocumented, f"{step}: event types not documented in the registry: {undocumented}"
        assert got == expected, f"{step}: events {dict(got)} != expected {dict(expected)}"
        ids = [item.webhook_id for item in self.receiver.received]
        assert len(ids) == len(set(ids)), f"{step}: an event was received twice"
        deliveries = await self.every(DELIVERIES, "webhookDeliveries")
        delivered = Counter(node["eventType"] for node in deliveries if node["status"] == "DELIVERED")
        assert delivered == Counter(item.payload["type"] for item in self.receiver.received), (
            f"{step}: webhookDeliveries {dict(delivered)} != received")
        assert all(node["status"] == "DELIVERED" for node in deliveries), f"{step}: {deliveries}"

    @staticmethod
    def _seat_law(step: str, subscription: dict | None, usage: dict) -> None:
        if subscription is None:
            return
        assert subscription["agentCount"] == usage["agentCount"], (
            f"{step}: Subscription.agentCount {subscription['agentCount']} != usage.agentCount {usage['agentCount']}")
        upcoming = subscription["upcomingInvoice"]
        if upcoming is None:
            return
        seats = sum((Decimal(line["quantity"]) for line in upcoming["lines"] if line["kind"] == "SEATS"), Decimal(0))
        above = max(usage["agentCount"] - subscription["plan"]["includedAgents"], 0)
        assert seats == above, f"{step}: upcoming SEATS {seats} != agents above the included ones {above}"

    async def _snapshot_law(self, step: str, tenant: Tenant, usage: dict) -> None:
        assert self.partner is not None
        edges = (await self.gql(SNAPSHOT, {"ids": [tenant.id]}, token=self.partner))["usageSnapshots"]["edges"]
        (snapshot,) = [edge["node"] for edge in edges]
        assert snapshot["month"] == usage["usageMonth"], (
            f"{step}: the partner's month {snapshot['month']} != the tenant's {usage['usageMonth']}")
        mine = {metric["metric"]["code"]: metric for metric in usage["metrics"]}
        for metric in snapshot["metrics"]:
            code = metric["metric"]["code"]
            ours = {key: mine[code][key] for key in ("used", "limit", "overage")}
            theirs = {key: metric[key] for key in ("used", "limit", "overage")}
            assert theirs == ours, f"{step}: snapshot {code} {theirs} != usage {ours}"

    # -- GraphQL's dialect in webhook payloads -----------------------------------------------

    def check_event_shapes(self) -> None:
        """Every payload received speaks the API's dialect: `data.object` is the object of the
        type documented for the event, with camelCase keys, a Relay global id of that type (for
        the types that are nodes), and money as `{amount, currency}` with a decimal string."""
        problems = []
        for item in self.receiver.received:
            kind = item.payload["type"]
            obj = (item.payload.get("data") or {}).get("object")
            if not isinstance(obj, dict):
                problems.append(f"{kind}: no data.object")
                continue
            snake = sorted(_snake_keys(obj))
            if snake:
                problems.append(f"{kind}: snake_case keys {snake[:5]}")
            documented = EVENT_TYPES[kind]
            if documented in NODE_TYPES and _global_id_type(obj.get("id")) != documented:
                problems.append(f"{kind}: id {obj.get('id')!r} is not a global id of a {documented}")
            if documented == "Invoice":
                for key in ("total", "amountDue", "subtotal", "tax"):
                    value = obj.get(key)
                    if not (isinstance(value, dict) and isinstance(value.get("amount"), str)
                            and value.get("currency") == self.currency):
                        problems.append(f"{kind}: {key} {value!r} is not Money {{amount currency}}")
        assert not problems, f"webhook payloads not in GraphQL's dialect ({len(problems)}):\n" + "\n".join(
            sorted(set(problems))[:20])


SNAKE = re.compile(r"[a-z0-9]_[a-z0-9]")


def _snake_keys(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if SNAKE.search(key):
                found.add(key)
            found |= _snake_keys(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _snake_keys(inner)
    return found


def _global_id_type(value: Any) -> str | None:
    """The type a Relay global id names (None when ``value`` is not one over a UUID key)."""
    if not isinstance(value, str):
        return None
    try:
        type_name, key = base64.b64decode(value, validate=True).decode().split(":", 1)
        uuid.UUID(key)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return type_name or None
