"""Immediate cancellation (issue 21) over GraphQL, on both databases: with prorate, credit notes for
the unused part of the period (to the account balance, refunded with refund: true, or off what an
unpaid invoice still asks); without it nothing is credited; the canceled subscription's open
invoices are no longer retried by dunning. Idempotent with a key; bad input writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from billing_graphql.db.models import CreditNote, Invoice, Subscription, TestClock
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import count_rows, database_state, make_payment_method, make_plan
from tests.helpers import test_settings
from tests.services.billing_run_helpers import replace_card

T0 = datetime(2027, 1, 1, tzinfo=UTC)
ERRORS = "errors { code message field }"
CANCEL = f"""mutation($i: CancelInput!) {{ cancel(input: $i) {{ subscription {{ status endedAt }}
  creditNotes {{ number outcome total {{ amount }} tax {{ amount }} memo invoice {{ id status amountRefunded {{ amount }}
    amountDue {{ amount }} }} }} {ERRORS} }} }}"""
BALANCE = """query($org: ID!) { organization(id: $org) { creditBalance { amount }
  creditBalanceTransactions { edges { node { amount { amount } balanceAfter { amount } source } } } } }"""
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { errors { code } } }'
PAY = f"mutation($i: PayInvoiceInput!) {{ payInvoice(input: $i) {{ invoice {{ status }} {ERRORS} }} }}"


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


@pytest.fixture
async def pro(db, keys, settings):
    """Pro (Rp 500,000 a month, no trial) since Jan 1 2027, its first invoice (Rp 555,000) paid."""
    async with db.write() as session:
        session.add(TestClock(id=1, now=T0))
    plan = await make_plan(db, monthly=500000, trial_days=0, now=T0)
    await make_payment_method(db, keys.organization_id, token="pm_card_visa", now=T0)
    await subscribe(db, None, organization_id=keys.organization_id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings), now=T0)
    return plan


async def at(api, keys, moment: str) -> None:
    assert (await api.ok(ADVANCE, {"to": moment}, token=keys.super_admin))["advanceClock"]["errors"] == []


async def test_prorated_to_the_balance_then_replayed(api, db, keys, pro):
    await at(api, keys, "2027-01-16T12:00:00Z")  # half of January's 31 days left
    variables = {"i": {"immediately": True, "prorate": True, "idempotencyKey": "cancel-1", "reason": "closing"}}
    result = (await api.ok(CANCEL, variables, token=keys.owner))["cancel"]
    assert result["errors"] == [] and result["subscription"]["status"] == "CANCELED"
    (note,) = result["creditNotes"]
    # 250,000 unused + 27,500 PPN (the tax of a 250,000 charge), tax in proportion to the invoice.
    assert (note["outcome"], note["total"], note["tax"]) == ("CREDIT_BALANCE", {"amount": "277500"},
                                                            {"amount": "27500"})
    assert note["number"].startswith("CN-202701-") and note["invoice"]["status"] == "PAID"
    ledger = (await api.ok(BALANCE, {"org": keys.organization_gid}, token=keys.super_admin))["organization"]
    assert ledger["creditBalance"] == {"amount": "277500"}
    assert [edge["node"] for edge in ledger["creditBalanceTransactions"]["edges"]] == [
        {"amount": {"amount": "277500"}, "balanceAfter": {"amount": "277500"}, "source": "CREDIT_NOTE"}]
    again = (await api.ok(CANCEL, variables, token=keys.owner))["cancel"]
    assert again == result
    assert await count_rows(db, CreditNote) == 1
    reused = (await api.ok(CANCEL, {"i": {"immediately": True, "idempotencyKey": "cancel-1"}}, token=keys.owner)
              )["cancel"]
    assert [(e["code"], e["field"]) for e in reused["errors"]] == [("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")]


async def test_prorated_and_refunded_by_staff(api, db, keys, pro):
    await at(api, keys, "2027-01-16T12:00:00Z")
    variables = {"i": {"organizationId": keys.organization_gid, "immediately": True, "prorate": True,
                       "refund": True}}
    result = (await api.ok(CANCEL, variables, token=keys.super_admin))["cancel"]
    assert result["errors"] == []
    (note,) = result["creditNotes"]
    assert (note["outcome"], note["total"]) == ("REFUND", {"amount": "277500"})
    assert note["invoice"]["status"] == "PARTIALLY_REFUNDED" and note["invoice"]["amountRefunded"] == {
        "amount": "277500"}
    balance = (await api.ok(BALANCE, {"org": keys.organization_gid}, token=keys.super_admin))["organization"]
    assert balance["creditBalance"] == {"amount": "0"} and balance["creditBalanceTransactions"]["edges"] == []


async def test_without_prorate_nothing_is_credited(api, db, keys, pro):
    await at(api, keys, "2027-01-16T12:00:00Z")
    result = (await api.ok(CANCEL, {"i": {"immediately": True}}, token=keys.owner))["cancel"]
    assert result["errors"] == [] and result["creditNotes"] == []
    assert result["subscription"] == {"status": "CANCELED", "endedAt": "2027-01-16T12:00:00Z"}
    assert await count_rows(db, CreditNote) == 0
    balance = (await api.ok(BALANCE, {"org": keys.organization_gid}, token=keys.super_admin))["organization"]
    assert balance["creditBalance"] == {"amount": "0"}


@pytest.mark.parametrize(("values", "token", "field"), [
    ({"prorate": True}, "owner", "prorate"),  # not immediately
    ({"immediately": True, "refund": True}, "super_admin", "refund"),  # refund without prorate
    ({"immediately": True, "prorate": True, "refund": True}, "owner", "refund"),  # staff only
    ({"immediately": True, "idempotencyKey": " "}, "owner", "idempotencyKey"),
])
async def test_bad_cancellations_write_nothing(api, db, keys, pro, values, token, field):
    await at(api, keys, "2027-01-10T00:00:00Z")
    if token == "super_admin":
        values = {**values, "organizationId": keys.organization_gid}
    before = await database_state(db, exclude=("api_keys",))
    result = (await api.ok(CANCEL, {"i": values}, token=getattr(keys, token)))["cancel"]
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("VALIDATION", field)], result
    assert await database_state(db, exclude=("api_keys",)) == before


async def test_canceled_subscription_is_no_longer_dunned_and_prorate_reduces_what_is_due(api, db, keys, pro):
    await replace_card(db, keys.organization_id, "pm_card_declined")
    await at(api, keys, "2027-02-01T00:00:00Z")  # the renewal is declined: PAST_DUE, retry due Feb 2
    async with db.read() as session:
        subscription = await session.scalar(select(Subscription))
        (renewal,) = (await session.scalars(select(Invoice).where(Invoice.status == InvoiceStatus.OPEN))).all()
    assert subscription.status is SubscriptionStatus.PAST_DUE and subscription.next_retry_at is not None
    await at(api, keys, "2027-02-08T00:00:00Z")  # a quarter of February's 28 days used
    result = (await api.ok(CANCEL, {"i": {"immediately": True, "prorate": True}}, token=keys.owner))["cancel"]
    assert result["errors"] == []
    (note,) = result["creditNotes"]
    # 500,000 x 21/28 = 375,000 unused + 41,250 PPN off what the open renewal still asks.
    assert (note["outcome"], note["total"]) == ("REDUCE_AMOUNT_DUE", {"amount": "416250"})
    assert note["invoice"]["status"] == "OPEN" and note["invoice"]["amountDue"] == {"amount": str(555000 - 416250)}
    async with db.read() as session:
        before = await session.get(Invoice, renewal.id)
        canceled = await session.get(Subscription, subscription.id)
    assert canceled.next_retry_at is None
    await at(api, keys, "2027-03-15T00:00:00Z")  # every retry date passed: none is made
    async with db.read() as session:
        after = await session.get(Invoice, renewal.id)
    assert (after.status, after.retry_count, after.last_retry_at) == (InvoiceStatus.OPEN, before.retry_count,
                                                                      before.last_retry_at)
    # Staff (or the customer) may still collect what is left.
    await replace_card(db, keys.organization_id, "pm_card_visa")
    from tests.helpers import gid

    paid = (await api.ok(PAY, {"i": {"invoiceId": gid("Invoice", renewal.id)}}, token=keys.owner))["payInvoice"]
    assert paid == {"invoice": {"status": "PAID"}, "errors": []}
