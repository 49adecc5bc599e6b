"""SQLAlchemy models, one module per aggregate; import them from here."""

from billing_graphql.db.models.base import Base
from billing_graphql.db.models.catalog import (
    Addon,
    AddonUnit,
    Coupon,
    CouponDuration,
    CouponPlan,
    CouponRedemption,
    DiscountKind,
    Metric,
    MetricKind,
    Plan,
    PlanFeature,
    PlanLimit,
    TaxRate,
)
from billing_graphql.db.models.checkout import CheckoutSession, CheckoutStatus
from billing_graphql.db.models.invoices import (
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    InvoiceNumberSequence,
)
from billing_graphql.db.models.ops import (
    AuditEvent,
    DeliveryStatus,
    IdempotencyRecord,
    OutboxEvent,
    TestClock,
    WebhookDelivery,
    WebhookEndpoint,
)
from billing_graphql.db.models.organizations import ApiKey, Organization, PartnerGrant
from billing_graphql.db.models.payments import (
    Payment,
    PaymentMethod,
    PaymentMethodType,
    PaymentStatus,
    Refund,
)
from billing_graphql.db.models.subscriptions import Subscription, SubscriptionAddon
from billing_graphql.db.models.usage import UsageCounter, UsageEvent

__all__ = [
    "Addon",
    "AddonUnit",
    "ApiKey",
    "AuditEvent",
    "Base",
    "BillingReason",
    "CheckoutSession",
    "CheckoutStatus",
    "Coupon",
    "CouponDuration",
    "CouponPlan",
    "CouponRedemption",
    "DeliveryStatus",
    "DiscountKind",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceLine",
    "InvoiceLineKind",
    "InvoiceNumberSequence",
    "Metric",
    "MetricKind",
    "Organization",
    "OutboxEvent",
    "PartnerGrant",
    "Payment",
    "PaymentMethod",
    "PaymentMethodType",
    "PaymentStatus",
    "Plan",
    "PlanFeature",
    "PlanLimit",
    "Refund",
    "Subscription",
    "SubscriptionAddon",
    "TaxRate",
    "TestClock",
    "UsageCounter",
    "UsageEvent",
    "WebhookDelivery",
    "WebhookEndpoint",
]
