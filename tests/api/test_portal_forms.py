"""The portal's forms over HTTP: change plan with its preview, replace the default card, cancel
(with its confirmation) and resume; CSRF-protected, escaped, and calling the same services as the
mutations."""

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
    page = await portal_api.client.get(f"{path}/plan")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    return {"path": path, "csrf": csrf, "growth": growth, "page": page, "client": portal_api.client}


async def post(portal, action: str, **fields):
    return await portal["client"].post(f"{portal['path']}/actions/{action}", data=fields)


async def live(db) -> Subscription:
    async with db.read() as session:
        return await session.scalar(select(Subscription))


def hidden_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action``."""
    form = re.search(rf'<form method="post" action="[^"]*/actions/{action}">(.*?)</form>', html, re.S).group(1)
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', form))


async def test_pages_have_the_forms_escaped(portal):
    html = portal["page"].text
    assert "Preview the change" in html and "Apply the coupon" in html
    assert "Growth &lt;b&gt;" in html and "Growth <b>" not in html
    assert "form-action 'self'" in portal["page"].headers["content-security-policy"]
    cards = (await portal["client"].get(f"{portal['path']}/cards")).text
    assert "Save the card" in cards and "Make it the default card" in cards
    cancel = (await portal["client"].get(f"{portal['path']}/cancel")).text
    assert "Why are you canceling?" in cancel and "Yes, cancel at the end of the period" in cancel


async def test_change_plan_shows_the_preview_then_changes(portal, db):
    growth = portal["growth"]
    preview = await post(portal, "preview-plan", csrf=portal["csrf"], plan_id=str(growth.id), period="MONTHLY")
    assert preview.status_code == 200, preview.headers.get("location")
    assert "Change to Growth &lt;b&gt;" in preview.text and "Due now" in preview.text
    assert "PRORATION" not in preview.text and "Rp" in preview.text
    assert (await live(db)).plan_id != growth.id  # a preview writes nothing
    fields = hidden_fields(preview.text, "change-plan")
    assert set(fields) == {"csrf", "plan_id", "period", "quoted_at", "quote", "idempotency_key"}
    done = await post(portal, "change-plan", **fields)
    assert done.status_code == 303 and done.headers["location"].endswith("?notice=plan-changed")
    assert (await live(db)).plan_id == growth.id
    again = await post(portal, "change-plan", **fields)
    assert again.headers["location"].endswith("?notice=plan-changed")  # the same submission, replayed
    page = await portal["client"].get(done.headers["location"])
    assert "Your plan has been changed." in page.text


async def test_a_confirmation_whose_preview_was_altered_changes_nothing(portal, db):
    growth = portal["growth"]
    preview = await post(portal, "preview-plan", csrf=portal["csrf"], plan_id=str(growth.id), period="MONTHLY")
    fields = hidden_fields(preview.text, "change-plan")
    for name, value in (("quoted_at", "2020-01-01T00:00:00+00:00"), ("period", "ANNUAL"), ("quote", "0" * 64)):
        done = await post(portal, "change-plan", **{**fields, name: value})
        assert done.headers["location"].endswith("/plan?error=quote"), name
    assert (await live(db)).plan_id != growth.id
    page = await portal["client"].get(done.headers["location"])
    assert "This preview is too old. Please preview the change again." in page.text


async def test_cancel_needs_its_confirmation_then_resume(portal, db):
    unconfirmed = await post(portal, "cancel", csrf=portal["csrf"], reason="too_expensive")
    assert unconfirmed.headers["location"].endswith("/cancel?error=confirm")
    assert (await live(db)).cancel_at_period_end is False
    canceled = await post(portal, "cancel", csrf=portal["csrf"], reason="too_expensive", comment="Budget cut",
                          confirm="yes")
    assert canceled.headers["location"].endswith("?notice=cancel-scheduled")
    subscription = await live(db)
    assert subscription.cancel_at_period_end is True
    assert subscription.cancel_reason == "billing portal: too_expensive - Budget cut"
    page = await portal["client"].get(portal["path"])
    assert "Resume the subscription" in page.text and "Ends on" in page.text
    await post(portal, "resume", csrf=portal["csrf"])
    assert (await live(db)).cancel_at_period_end is False


async def test_replace_default_card(portal, db, keys):
    replaced = await post(portal, "replace-card", csrf=portal["csrf"], token="pm_card_mastercard", label="Work card")
    assert replaced.headers["location"].endswith("?notice=card-replaced")
    async with db.read() as session:
        methods = (await session.scalars(select(PaymentMethod))).all()
    assert [(m.gateway_payment_method_id, m.is_default, m.label, m.brand, m.last4) for m in methods] == [
        ("pm_card_mastercard", True, "Work card", "mastercard", "4444")]
    refused = await post(portal, "replace-card", csrf=portal["csrf"], token="4111 1111 1111 1111", label="")
    assert refused.headers["location"].endswith("?error=card")  # refused as the form is read
    page = await portal["client"].get(refused.headers["location"])
    assert "payment card number" in page.text


@pytest.mark.parametrize("attack", ["no-token", "wrong-token", "other-origin", "cross-site"])
async def test_forms_refuse_cross_site_posts(portal, db, attack):
    fields = {} if attack == "no-token" else {"csrf": "0" * 64 if attack == "wrong-token" else portal["csrf"]}
    headers = {"origin": "https://evil.example"} if attack == "other-origin" else (
        {"sec-fetch-site": "cross-site"} if attack == "cross-site" else {})
    response = await portal["client"].post(f"{portal['path']}/actions/cancel", data=fields, headers=headers)
    assert response.status_code == 303 and response.headers["location"].endswith("/cancel?error=csrf")
    assert (await live(db)).cancel_at_period_end is False


async def test_forms_behind_a_bad_link_are_403(portal):
    response = await portal["client"].post("/portal/not-a-token/actions/cancel", data={"csrf": portal["csrf"]})
    assert response.status_code == 403


def raw_form(**fields: str) -> bytes:
    """A form body with each value percent-encoded byte by byte (``%00``, ``%ED%A0%80``, ``%FF`` as sent)."""
    return "&".join(f"{key}={value}" for key, value in fields.items()).encode()


async def post_raw(portal, action: str, body: bytes):
    return await portal["client"].post(f"{portal['path']}/actions/{action}", content=body,
                                       headers={"content-type": "application/x-www-form-urlencoded"})


async def stored_methods(db) -> list[tuple[str, str | None]]:
    async with db.read() as session:
        return [(m.gateway_payment_method_id, m.label) for m in (await session.scalars(select(PaymentMethod))).all()]


HOSTILE_FIELDS = {
    "nul-in-token": {"token": "pm_nul%00x", "label": "Work"},
    "esc-in-label": {"token": "pm_card_mastercard", "label": "Work%1Bcard"},
    "del-in-label": {"token": "pm_card_mastercard", "label": "Work%7Fcard"},
    "c1-in-label": {"token": "pm_card_mastercard", "label": "Work%C2%85card"},
    "surrogate-in-label": {"token": "pm_card_mastercard", "label": "Work%ED%A0%80card"},
    "not-utf8-in-token": {"token": "pm_%FF%FE", "label": "Work"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FIELDS))
async def test_replace_card_refuses_control_characters_with_the_form_again(portal, db, case):
    """Issue 19 item 1: the form fields go through the text rule of GraphQL input; the answer is the page
    with a sentence, never a 500, and nothing is stored."""
    before = await stored_methods(db)
    response = await post_raw(portal, "add-card", raw_form(csrf=portal["csrf"], **HOSTILE_FIELDS[case]))
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("/cards?error=text")
    page = await portal["client"].get(response.headers["location"])
    assert page.status_code == 200
    assert "control characters" in page.text and "Save the card" in page.text
    assert await stored_methods(db) == before


ACTIONS = ["preview-plan", "change-plan", "preview-addon", "change-addon", "apply-coupon", "cancel", "resume",
           "add-card", "replace-card", "default-card", "remove-card", "pay-invoice", "update-details"]


async def test_an_unknown_action_is_not_found(portal):
    assert (await post(portal, "nothing", csrf=portal["csrf"])).status_code == 404


@pytest.mark.parametrize("action", ACTIONS)
async def test_every_form_action_refuses_control_characters(portal, db, action):
    before = (await stored_methods(db), (await live(db)).cancel_at_period_end, (await live(db)).plan_id)
    body = raw_form(csrf=portal["csrf"], plan_id=str(portal["growth"].id), idempotency_key="k%00",
                    token="pm_card_mastercard", label="ok", extra="%1B")
    response = await post_raw(portal, action, body)
    assert response.status_code == 303 and response.headers["location"].endswith("?error=text")
    assert (await stored_methods(db), (await live(db)).cancel_at_period_end, (await live(db)).plan_id) == before


@pytest.mark.parametrize("action", ["replace-card", "add-card", "cancel", "change-plan", "apply-coupon"])
async def test_every_form_refuses_a_card_number_in_free_text(portal, db, action):
    """Issue 19 item 5: the portal's free text follows the card rule of all input, in every format."""
    from urllib.parse import quote

    from tests.card_formats import CARD_FORMATS

    before = (await stored_methods(db), (await live(db)).cancel_at_period_end, (await live(db)).plan_id)
    for number, card in enumerate(CARD_FORMATS):
        fields = {"token": quote(card), "label": "Work"} if number % 2 else {"token": "pm_card_mastercard",
                                                                             "label": quote(card)}
        body = raw_form(csrf=portal["csrf"], plan_id=str(portal["growth"].id), idempotency_key=f"k{number}",
                        **fields)
        response = await post_raw(portal, action, body)
        assert response.status_code == 303 and response.headers["location"].endswith("?error=card"), card
    page = await portal["client"].get(response.headers["location"])
    assert "payment card number" in page.text
    assert (await stored_methods(db), (await live(db)).cancel_at_period_end, (await live(db)).plan_id) == before
