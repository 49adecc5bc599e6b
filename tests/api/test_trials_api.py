"""Trials: a plan's trial once per organization (BILLING_TRIAL_ONCE), and a plan change's preview during one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from billing_graphql.app import create_app
from billing_graphql.db.models import Invoice, TrialGrant
from tests.api.test_subscriptions_api import CANCEL, SUBSCRIBE, plan_gid
from tests.factories import make_payment_method, make_plan
from tests.helpers import GraphQLClient, test_settings

CHANGE_PREVIEW = """mutation($i: ChangePlanInput!) { changePlan(input: $i) {
  subscription { plan { slug } status }
  invoice { id }
  preview { total { amount currency } amountDue { amount } subtotal { amount } tax { amount } creditAdded { amount }
            lines { kind } message }
  errors { code message } } }"""


@pytest.fixture
async def plans(db, keys):
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    pro = await make_plan(db, name="Pro", slug="pro", monthly=299000, trial_days=14)
    team = await make_plan(db, name="Team", slug="team", monthly=599000, trial_days=14)
    return {"pro": pro, "team": team}


async def _cycle(api: GraphQLClient, keys, plan) -> dict:
    """subscribe to ``plan``, then cancel immediately; returns the subscribe payload."""
    payload = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plan)}}, token=keys.owner))["subscribe"]
    assert payload["errors"] == []
    assert (await api.ok(CANCEL, {"i": {"immediately": True}}, token=keys.owner))["cancel"]["errors"] == []
    return payload


async def test_second_subscription_to_a_plan_starts_without_trial_and_is_invoiced(api, keys, plans, db):
    first = await _cycle(api, keys, plans["pro"])
    assert first["subscription"]["status"] == "TRIALING" and first["invoice"] is None
    second = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plans["pro"])}}, token=keys.owner))["subscribe"]
    assert second["errors"] == []
    assert second["subscription"]["status"] == "ACTIVE" and second["subscription"]["isTrial"] is False
    # 299000 + PPN 32890, charged at once
    assert second["invoice"]["total"]["amount"] == "331890" and second["invoice"]["status"] == "PAID"
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Invoice)) == 1


async def test_a_plan_moved_to_during_a_trial_counts_as_trialed(api, keys, plans):
    await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plans["pro"])}}, token=keys.owner)
    moved = (await api.ok(CHANGE_PREVIEW, {"i": {"planId": plan_gid(plans["team"])}}, token=keys.owner))["changePlan"]
    assert moved["errors"] == [] and moved["subscription"]["status"] == "TRIALING"
    await api.ok(CANCEL, {"i": {"immediately": True}}, token=keys.owner)
    again = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plans["team"])}}, token=keys.owner))["subscribe"]
    assert again["subscription"]["status"] == "ACTIVE" and again["invoice"]["status"] == "PAID"


async def test_another_plans_trial_is_still_given(api, keys, plans):
    await _cycle(api, keys, plans["pro"])
    other = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plans["team"])}}, token=keys.owner))["subscribe"]
    assert other["subscription"]["status"] == "TRIALING" and other["invoice"] is None


async def test_trial_once_off_gives_a_trial_each_time(db, database_url, keys, plans):
    app = create_app(test_settings(database_url, trial_once=False), db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        api = GraphQLClient(client, db)
        for _ in range(2):
            payload = await _cycle(api, keys, plans["pro"])
            assert payload["subscription"]["status"] == "TRIALING" and payload["invoice"] is None
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Invoice)) == 0


def test_trial_once_setting_reads_the_environment():
    from billing_graphql.settings import Settings

    assert Settings.from_env({}).trial_once is True
    assert Settings.from_env({"BILLING_TRIAL_ONCE": "0"}).trial_once is False


async def test_dry_run_during_a_trial_is_a_zero_preview(api, keys, plans, db):
    await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plans["pro"])}}, token=keys.owner)
    payload = (await api.ok(CHANGE_PREVIEW, {"i": {"planId": plan_gid(plans["team"]), "dryRun": True}},
                            token=keys.owner))["changePlan"]
    assert payload["errors"] == [] and payload["invoice"] is None
    preview = payload["preview"]
    assert preview["total"] == {"amount": "0", "currency": "IDR"}
    assert preview["amountDue"] == preview["subtotal"] == preview["tax"] == preview["creditAdded"] == {"amount": "0"}
    assert preview["lines"] == []
    assert preview["message"].startswith("No invoice is due until the trial ends on ")
    assert payload["subscription"]["plan"]["slug"] == "pro"  # a dry run writes nothing
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(TrialGrant)) == 1
