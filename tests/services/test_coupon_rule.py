"""One coupon rule (``domain.catalog.coupon_refusal``) decides everywhere, in one order."""

from __future__ import annotations

import pytest

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.catalog.coupons import check_coupon
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.payments.checkout import start_checkout
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import make_coupon, make_plan
from tests.helpers import T0


async def test_a_coupon_used_up_and_for_another_plan_is_exhausted_everywhere(db, org, app_settings):
    plan = await make_plan(db, monthly=299000, trial_days=0)
    other = await make_plan(db, monthly=499000)
    coupon = await make_coupon(db, code="BOTH", max_uses=1, current_uses=1, plans=[other])
    gateways = GatewayRegistry(app_settings)

    quoted = await check_coupon(db, code=coupon.code, now=T0, plan_id=plan.id)
    with pytest.raises(BillingError) as subscribing:
        await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY, coupon.code),
                        payment_method_id=None, idempotency_key=None, gateways=gateways,
                        now=T0)
    with pytest.raises(BillingError) as checking_out:
        await start_checkout(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY, coupon.code),
                             gateway="sandbox", gateways=gateways, now=T0)

    assert quoted.refusal is BillingErrorCode.COUPON_EXHAUSTED
    assert subscribing.value.code is BillingErrorCode.COUPON_EXHAUSTED
    assert checking_out.value.code is BillingErrorCode.COUPON_EXHAUSTED
