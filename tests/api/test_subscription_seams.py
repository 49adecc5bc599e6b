"""Where one feature hands a customer to the next (issue 18): checkout keeps its card, a declined
first payment creates nothing, the default plan follows the organization's currency, input that
used to be accepted silently, and the seed fields that were missing. Over HTTP only."""

from __future__ import annotations

from sqlalchemy import select

from billing_graphql.db.models import (
    AuditEvent,
    IdempotencyRecord,
    Invoice,
    OutboxEvent,
    Payment,
    Subscription,
)
from tests.factories import count_rows, database_state, make_payment_method, make_plan
from tests.helpers import gid

ERRORS = "errors { code message field }"
SUBSCRIBE = f"""mutation($i: SubscribeInput!) {{ subscribe(input: $i) {{
  subscription {{ id status plan {{ slug }} }} invoice {{ id status }} {ERRORS} }} }}"""


async def event_types(db) -> list[str]:
    async with db.read() as session:
        return list((await session.scalars(select(OutboxEvent.event_type))).all())


# ---- 7. a declined first payment creates nothing ----------------------------------------------

async def test_a_declined_first_payment_creates_no_subscription(api, db, keys):
    plan = await make_plan(db, slug="starter", monthly=299000, trial_days=0)
    declined = await make_payment_method(db, keys.organization_id, token="pm_card_declined")
    events_before = await event_types(db)
    variables = {"i": {"planId": gid("Plan", plan.id), "idempotencyKey": "first-try"}}

    payload = (await api.ok(SUBSCRIBE, variables, token=keys.owner))["subscribe"]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("PAYMENT_FAILED", "paymentMethodId")]
    assert "card_declined" in payload["errors"][0]["message"]
    assert payload["subscription"] is None and payload["invoice"] is None
    assert (await count_rows(db, Subscription), await count_rows(db, Invoice), await count_rows(db, Payment)) == (
        0, 0, 0)
    assert await event_types(db) == events_before  # no subscription.created, no invoice events
    async with db.read() as session:
        [audit] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "subscription.payment_failed"))).all()
    assert audit.after["failure_code"] == "card_declined" and audit.after["plan_id"] == str(plan.id)
    assert audit.after["payment_method_id"] == str(declined.id)

    # The same key replays the same error and writes nothing more.
    state = await database_state(db)
    again = (await api.ok(SUBSCRIBE, variables, token=keys.owner))["subscribe"]
    assert again["errors"] == payload["errors"]
    assert await database_state(db) == state

    # Nothing stands in the way of the next try: a new card and a new key succeed.
    visa = await make_payment_method(db, keys.organization_id, token="pm_card_visa", is_default=False)
    ok = (await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id), "idempotencyKey": "second-try",
                                         "paymentMethodId": gid("PaymentMethod", visa.id)}},
                       token=keys.owner))["subscribe"]
    assert ok["errors"] == [] and ok["subscription"]["status"] == "ACTIVE" and ok["invoice"]["status"] == "PAID"
    assert await count_rows(db, IdempotencyRecord) == 2
