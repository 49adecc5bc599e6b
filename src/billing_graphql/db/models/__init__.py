"""SQLAlchemy models, one module per aggregate; import them from here."""

from billing_graphql.db.models.balance import CreditBalanceTransaction, InvoiceItem
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
from billing_graphql.db.models.billing_details import BillingDetails, InvoiceParties, TrialGrant
from billing_graphql.db.models.credit_notes import CreditNote, CreditNoteLine, CreditNoteNumberSequence
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
    IdempotencyRecord,
    OutboxEvent,
    TestClock,
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
from billing_graphql.db.models.usage import UsageCounter, UsageEvent, UsageLimitEvent, UsageUniqueValue
from billing_graphql.db.models.webhooks import DeliveryStatus, GatewayEvent, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Addon",
    "AddonUnit",
    "ApiKey",
    "AuditEvent",
    "Base",
    "BillingDetails",
    "BillingReason",
    "CheckoutSession",
    "CheckoutStatus",
    "Coupon",
    "CreditNote",
    "CreditNoteLine",
    "CreditNoteNumberSequence",
    "CouponDuration",
    "CouponPlan",
    "CouponRedemption",
    "CreditBalanceTransaction",
    "DeliveryStatus",
    "DiscountKind",
    "GatewayEvent",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceLine",
    "InvoiceItem",
    "InvoiceLineKind",
    "InvoiceNumberSequence",
    "InvoiceParties",
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
    "TrialGrant",
    "UsageCounter",
    "UsageUniqueValue",
    "UsageEvent",
    "UsageLimitEvent",
    "WebhookDelivery",
    "WebhookEndpoint",
]

from billing_graphql.db.models.analytics import SubscriptionMrrRevision  # noqa: E402
from billing_graphql.db import mrr_history  # noqa: E402  (keeps the MRR history on every flush)

mrr_history.install()
__all__ += ["SubscriptionMrrRevision"]
