"""What a customer picks when a subscription starts (``subscribe``) or is paid for first (``start_checkout``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from billing_graphql.domain.periods import BillingPeriod


@dataclass(frozen=True, slots=True)
class PlanChoice:
    """The plan (None: the cheapest active one), its billing period and a coupon code (None: none)."""

    plan_id: uuid.UUID | None
    billing_period: BillingPeriod = BillingPeriod.MONTHLY
    coupon_code: str | None = None

    @property
    def coupon(self) -> str | None:
        """The coupon code without surrounding blanks; None when it is blank."""
        code = (self.coupon_code or "").strip()
        return code or None

    def request(self, **more: Any) -> dict[str, Any]:
        """The choice as an idempotency request (``coupon_code`` cleaned), with ``more`` fields."""
        return {"plan_id": self.plan_id, "billing_period": self.billing_period, "coupon_code": self.coupon, **more}
