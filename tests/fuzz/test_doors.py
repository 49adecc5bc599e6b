"""Issue 19: hostile input at the doors outside GraphQL, bounded for the suite. Hypothesis draws form
posts to every portal action and signed events for every inbound webhook route (text with NUL, ESC, DEL
and lone surrogates, bytes that are not UTF-8, nesting thousands deep, huge numbers, wrong types);
on each database none may answer 5xx, and no text with a control character may be stored anywhere.
(The fuzz script, tests/fuzz/run_schemathesis.sh, sends many more of the same against a served gateway.)
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from billing_graphql.app import create_app
from billing_graphql.db.models import Base, Payment, PaymentStatus
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.domain.text import forbidden_character
from billing_graphql.domain.webhooks import new_secret
from tests.api.test_portal import CREATE, path_of
from tests.factories import make_invoice, make_payment, make_payment_method, make_plan, make_subscription
from tests.fuzz.doors import examples, form_posts, webhook_posts
from tests.helpers import GraphQLClient

PORTAL_SECRET = "portal-secret-for-fuzzing-0123456789"
SANDBOX_SECRET = new_secret()
RAZORPAY_SECRET = "razorpay-secret-for-fuzzing"
EXAMPLES = 60


@pytest.fixture
async def client(db, settings):
    configured = replace(settings, portal_secret=PORTAL_SECRET, public_url="https://billing.example",
                         sandbox_webhook_secret=SANDBOX_SECRET, razorpay_webhook_secret=RAZORPAY_SECRET)
    app = create_app(configured, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


def stored_text(value: Any):
    """Every string inside a stored value (JSON columns walked)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from stored_text(key)
            yield from stored_text(child)
    elif isinstance(value, list):
        for child in value:
            yield from stored_text(child)


async def text_with_control_characters(db) -> list[tuple[str, str]]:
    found = []
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                for value in row:
                    found += [(table.name, text) for text in stored_text(value) if forbidden_character(text)]
    return found


async def test_portal_forms_hold_against_hostile_posts(client, db, keys):
    await make_payment_method(db, keys.organization_id, token="pm_card_visa", is_default=True)
    plans = [await make_plan(db, name=name, monthly=price, trial_days=0)
             for name, price in (("Starter", 299000), ("Growth", 599000))]
    await make_subscription(db, keys.organization_id, status=SubscriptionStatus.ACTIVE, plan=plans[0])
    session = (await GraphQLClient(client, db).ok(CREATE, {"input": {"returnUrl": "https://app.example/billing"}},
                                                  token=keys.owner))["createBillingPortalSession"]
    path = path_of(session["url"])
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', (await client.get(f"{path}/cards")).text).group(1)
    answered, outcomes, seen = set(), set(), []
    for post in examples(form_posts(csrf, [str(plan.id) for plan in plans]), EXAMPLES):
        response = await client.post(f"{path}/actions/{post.action}", content=post.body,
                                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert response.status_code < 500, (post, response.text[:500])
        answered.add(response.status_code)
        if response.status_code == 303:
            outcomes.add(response.headers["location"].split("?")[1].split("=")[0])
            seen.append((post.action, response.headers["location"].split("?")[1]))
            assert (await client.get(response.headers["location"])).status_code == 200, post
    assert answered <= {200, 303, 403, 404}  # 404: an action the portal does not have
    assert outcomes == {"notice", "error"}, "; ".join(map(str, seen))  # posts got through to the services, and were refused
    assert await text_with_control_characters(db) == []


async def test_inbound_webhooks_hold_against_signed_hostile_events(client, db, keys):
    subscription = await make_subscription(db, keys.organization_id, status=SubscriptionStatus.PAST_DUE)
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN, subscription_id=subscription.id)
    payments = [await make_payment(db, invoice, status=PaymentStatus.PENDING, gateway=gateway)
                for gateway in ("sandbox", "razorpay")]
    strategy = webhook_posts(sandbox_secret=SANDBOX_SECRET, razorpay_secret=RAZORPAY_SECRET,
                             payment_keys=[payment.idempotency_key for payment in payments])
    statuses = []
    for post in examples(strategy, EXAMPLES):
        async with db.write() as session:  # whatever an event could settle is PENDING again
            await session.execute(update(Payment).values(status=PaymentStatus.PENDING))
        response = await client.post(f"/webhooks/{post.gateway}", content=post.body, headers=post.headers)
        assert response.status_code < 500, (post, response.text[:500])
        statuses.append(response.status_code)
    assert set(statuses) <= {200, 400} and 400 in statuses
    assert await text_with_control_characters(db) == []
