"""The portal's forms over HTTP: change plan with its preview, replace the default card, cancel at
period end, resume; CSRF-protected, escaped, and calling the same services as the mutations."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from billing_graphql.db.models import PaymentMethod, Subscription
from tests.api.test_portal import new_session, path_of, portal_api  # noqa: F401 - the fixture
from tests.api.test_subscriptions_api import SUBSCRIBE, plan_gid
from tests.factories import make_payment_method, make_plan


@pytest.fixture
async def portal(portal_api, keys, db):  # noqa: F811
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    starter = await make_plan(db, name="Starter", monthly=299000, trial_days=0)
    growth = await make_plan(db, name="Growth <b>", monthly=599000, trial_days=0)
    subscribed = await portal_api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(starter)}}, token=keys.owner)
    assert subscribed["subscribe"]["errors"] == []
    path = path_of((await new_session(portal_api, keys.owner))["url"])
    page = await portal_api.client.get(path)
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    return {"path": path, "csrf": csrf, "growth": growth, "page": page, "client": portal_api.client}


async def post(portal, action: str, **fields):
    return await portal["client"].post(f"{portal['path']}/actions/{action}", data=fields)


async def live(db) -> Subscription:
    async with db.read() as session:
        return await session.scalar(select(Subscription))


async def test_page_has_the_forms_escaped(portal):
    html = portal["page"].text
    for label in ("Preview the change", "Cancel at the end of the period", "Replace the default card"):
        assert label in html
    assert "Growth &lt;b&gt;" in html and "Growth <b>" not in html
    assert "form-action 'self'" in portal["page"].headers["content-security-policy"]


async def test_change_plan_shows_the_preview_then_changes(portal, db):
    growth = portal["growth"]
    preview = await post(portal, "preview-plan", csrf=portal["csrf"], plan_id=str(growth.id))
    assert preview.status_code == 200
    assert "Confirm the change to Growth &lt;b&gt;" in preview.text and "Due now" in preview.text
    assert "PRORATION" not in preview.text and "Rp" in preview.text
    assert (await live(db)).plan_id != growth.id  # a preview writes nothing
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', preview.text).group(1)
    done = await post(portal, "change-plan", csrf=portal["csrf"], plan_id=str(growth.id), idempotency_key=key)
    assert done.status_code == 303 and done.headers["location"].endswith("?notice=plan-changed#manage")
    assert (await live(db)).plan_id == growth.id
    again = await post(portal, "change-plan", csrf=portal["csrf"], plan_id=str(growth.id), idempotency_key=key)
    assert again.headers["location"].endswith("?notice=plan-changed#manage")  # the same submission, replayed
    page = await portal["client"].get(done.headers["location"])
    assert "Your plan has been changed." in page.text


async def test_cancel_then_resume(portal, db):
    canceled = await post(portal, "cancel", csrf=portal["csrf"])
    assert canceled.headers["location"].endswith("notice=cancel-scheduled#manage")
    assert (await live(db)).cancel_at_period_end is True
    page = await portal["client"].get(portal["path"])
    assert "Resume the subscription" in page.text
    await post(portal, "resume", csrf=portal["csrf"])
    assert (await live(db)).cancel_at_period_end is False


async def test_replace_default_card(portal, db, keys):
    replaced = await post(portal, "replace-card", csrf=portal["csrf"], token="pm_card_mastercard", label="Work card")
    assert replaced.headers["location"].endswith("notice=card-replaced#manage")
    async with db.read() as session:
        methods = (await session.scalars(select(PaymentMethod))).all()
    assert [(m.gateway_payment_method_id, m.is_default, m.label) for m in methods] == [
        ("pm_card_mastercard", True, "Work card")]
    refused = await post(portal, "replace-card", csrf=portal["csrf"], token="4111 1111 1111 1111", label="")
    assert refused.headers["location"].endswith("error=VALIDATION#manage")
    page = await portal["client"].get(refused.headers["location"])
    assert "That could not be done (validation)." in page.text


@pytest.mark.parametrize("attack", ["no-token", "wrong-token", "other-origin", "cross-site"])
async def test_forms_refuse_cross_site_posts(portal, db, attack):
    fields = {} if attack == "no-token" else {"csrf": "0" * 64 if attack == "wrong-token" else portal["csrf"]}
    headers = {"origin": "https://evil.example"} if attack == "other-origin" else (
        {"sec-fetch-site": "cross-site"} if attack == "cross-site" else {})
    response = await portal["client"].post(f"{portal['path']}/actions/cancel", data=fields, headers=headers)
    assert response.status_code == 303 and response.headers["location"].endswith("error=csrf#manage")
    assert (await live(db)).cancel_at_period_end is False


async def test_forms_behind_a_bad_link_are_403(portal):
    response = await portal["client"].post("/portal/not-a-token/actions/cancel", data={"csrf": portal["csrf"]})
    assert response.status_code == 403
