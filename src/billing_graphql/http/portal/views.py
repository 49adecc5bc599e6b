"""One view model per portal page, built from ``services.portal.pages.PortalData``: plain values
the templates show (money still in minor units with its currency; the template formats it for
the language)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from billing_graphql.db.models import Invoice, PaymentMethod
from billing_graphql.domain.billing_details import BillingDetailsValue
from billing_graphql.domain.language import language_of
from billing_graphql.domain.line_text import line_text
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.portal.cards import CardForm
from billing_graphql.services.portal.pages import PortalData
from billing_graphql.services.subscriptions.results import InvoicePreview


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    plan_name: str
    status: str  # a SubscriptionStatus value
    billing_period: str  # MONTHLY | ANNUAL
    period_start: datetime
    period_end: datetime
    cancel_at_period_end: bool
    trial_ends_at: datetime | None
    pending_plan: str | None
    pending_period: str | None
    coupon: str | None
    addons: list[tuple[str, int]]

    @classmethod
    def of(cls, data: PortalData) -> SubscriptionView | None:
        live, plan = data.subscription, data.plan
        if live is None or plan is None:
            return None
        return cls(plan_name=plan.name, status=live.status.value, billing_period=live.billing_period.value,
                   period_start=live.current_period_start, period_end=live.current_period_end,
                   cancel_at_period_end=live.cancel_at_period_end,
                   trial_ends_at=live.trial_ends_at if live.status is SubscriptionStatus.TRIALING else None,
                   pending_plan=data.pending_plan.name if data.pending_plan else None,
                   pending_period=live.pending_billing_period.value if live.pending_billing_period else None,
                   coupon=data.coupon.code if data.coupon else None,
                   addons=[(addon.name, quantity) for quantity, addon in data.attached])


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    id: uuid.UUID
    number: str
    due: int
    currency: str
    due_date: datetime | None


@dataclass(frozen=True, slots=True)
class Banner:
    """Past due, unpaid or incomplete: what happened and what to do."""

    kind: str  # PAST_DUE | UNPAID | INCOMPLETE
    amount_due: int
    currency: str
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class MetricBar:
    code: str  # the metric's code (the live script finds the bar by it)
    name: str
    used: int
    limit: int | None
    percent: int  # of the limit, 0..100 (100 when over)
    over: bool


@dataclass(frozen=True, slots=True)
class CardView:
    id: uuid.UUID
    brand: str
    last4: str | None
    expiry: str | None
    label: str
    is_default: bool


def card_view(method: PaymentMethod) -> CardView:
    brand = (method.brand or method.type.value.replace("_", " ")).title()
    expiry = f"{method.exp_month:02d}/{method.exp_year}" if method.exp_month and method.exp_year else None
    return CardView(id=method.id, brand=brand, last4=method.last4, expiry=expiry, label=method.label,
                    is_default=method.is_default)


def banner_of(data: PortalData) -> Banner | None:
    live = data.subscription
    due = sum(amount for _, amount in data.open_invoices)
    if live is not None and live.status in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID):
        return Banner(kind=live.status.value, amount_due=due, currency=data.currency, retry_at=live.next_retry_at)
    if data.open_invoices and due > 0:  # an invoice waiting for its payment (e.g. 3-D Secure): incomplete
        return Banner(kind="INCOMPLETE", amount_due=due, currency=data.currency, retry_at=None)
    return None


def open_invoices_of(data: PortalData) -> list[OpenInvoice]:
    return [OpenInvoice(id=invoice.id, number=invoice.number or "", due=due, currency=invoice.currency,
                        due_date=invoice.due_date) for invoice, due in data.open_invoices if due > 0]


@dataclass(frozen=True, slots=True)
class Header:
    organization_name: str
    return_url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class OverviewPage:
    header: Header
    banner: Banner | None
    subscription: SubscriptionView | None
    open_invoices: list[OpenInvoice]
    default_card: CardView | None
    usage: list[MetricBar]
    usage_period: tuple[datetime, datetime] | None


def usage_bars(data: PortalData) -> list[MetricBar]:
    bars = []
    for use in data.usage:
        limit = use.use.limit
        used = use.use.used
        percent = 0 if limit is None else (100 if limit <= 0 else min(100, round(used * 100 / limit)))
        bars.append(MetricBar(code=use.metric.code, name=use.metric.name or use.metric.code, used=used, limit=limit, percent=percent,
                              over=limit is not None and used > limit))
    return bars


def overview_page(data: PortalData, header: Header) -> OverviewPage:
    default = data.default_method
    period = (data.usage_period.start, data.usage_period.end) if data.usage_period else None
    return OverviewPage(header=header, banner=banner_of(data), subscription=SubscriptionView.of(data),
                        open_invoices=open_invoices_of(data), default_card=card_view(default) if default else None,
                        usage=usage_bars(data), usage_period=period)


@dataclass(frozen=True, slots=True)
class PlanChoice:
    id: uuid.UUID
    name: str
    monthly: int
    annual: int
    currency: str
    current: bool


@dataclass(frozen=True, slots=True)
class AddonChoice:
    id: uuid.UUID
    name: str
    monthly: int
    annual: int
    currency: str
    per_agent: bool
    quantity: int  # attached; 0 when not


@dataclass(frozen=True, slots=True)
class PreviewView:
    """A priced change waiting for its confirmation: what is due now is what will be charged
    (the confirmation carries the preview's instant, signed)."""

    action: str  # change-plan | change-addon
    title: str
    lines: list[tuple[str, int]]
    tax: int
    amount_due: int
    credit_added: int
    currency: str
    message: str | None
    fields: dict[str, str]  # what the confirmation form sends back


@dataclass(frozen=True, slots=True)
class PlanPage:
    header: Header
    subscription: SubscriptionView | None
    plans: list[PlanChoice]
    addons: list[AddonChoice]
    current_period: str
    preview: PreviewView | None = None


def plan_page(data: PortalData, header: Header, preview: PreviewView | None = None) -> PlanPage:
    live = data.subscription
    attached = {addon.id: quantity for quantity, addon in data.attached}
    return PlanPage(
        header=header, subscription=SubscriptionView.of(data),
        plans=[PlanChoice(id=plan.id, name=plan.name, monthly=plan.base_price_monthly, annual=plan.base_price_annual,
                          currency=plan.currency, current=live is not None and plan.id == live.plan_id)
               for plan in data.plans],
        addons=[AddonChoice(id=addon.id, name=addon.name, monthly=addon.price_monthly, annual=addon.price_annual,
                            currency=addon.currency, per_agent=addon.unit.value == "PER_AGENT",
                            quantity=attached.get(addon.id, 0)) for addon in data.addons],
        current_period=live.billing_period.value if live else BillingPeriod.MONTHLY.value, preview=preview,
    )


def preview_view(preview: InvoicePreview | None, *, action: str, title: str, fields: dict[str, str],
                 currency: str, language: str = "en") -> PreviewView:
    if preview is None:
        return PreviewView(action=action, title=title, lines=[], tax=0, amount_due=0, credit_added=0,
                           currency=currency, message=None, fields=fields)
    lines = [(line_text(line.description, line.detail, language_of(language)), line.amount) for line in preview.lines]
    return PreviewView(action=action, title=title, lines=lines,
                       tax=preview.tax, amount_due=preview.amount_due, credit_added=preview.credit_added or 0,
                       currency=preview.currency, message=preview.message, fields=fields)


@dataclass(frozen=True, slots=True)
class CardsPage:
    header: Header
    cards: list[CardView]
    form: CardForm  # the processor new cards are added with, and its form's data
    open_due: int
    currency: str
    script_url: str | None = None  # the processor's own script (Stripe.js, Razorpay's checkout.js)
    nonce: str | None = None  # of the page's scripts (its Content-Security-Policy names it)
    order_quote: str | None = None  # Razorpay: the authorisation order signed for this link


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    id: uuid.UUID
    number: str
    date: datetime
    total: int
    currency: str
    status: str
    has_pdf: bool


@dataclass(frozen=True, slots=True)
class InvoicesPage:
    header: Header
    invoices: list[InvoiceRow] = field(default_factory=list)
    credit_notes: list[CreditNoteRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CreditNoteRow:
    id: uuid.UUID
    number: str
    invoice_number: str
    date: datetime
    total: int
    currency: str


def invoices_page(data: PortalData, header: Header) -> InvoicesPage:
    def row(invoice: Invoice) -> InvoiceRow:
        return InvoiceRow(id=invoice.id, number=invoice.number or "", date=invoice.finalized_at or invoice.created_at,
                          total=invoice.total, currency=invoice.currency, status=invoice.status.value,
                          has_pdf=invoice.number is not None and invoice.status is not InvoiceStatus.DRAFT)
    numbers = {invoice.id: invoice.number or "" for invoice in data.invoices}
    notes = [CreditNoteRow(id=note.id, number=note.number, invoice_number=numbers.get(note.invoice_id, ""),
                           date=note.created_at, total=note.total, currency=note.currency)
             for note in data.credit_notes]
    return InvoicesPage(header=header, invoices=[row(invoice) for invoice in data.invoices], credit_notes=notes)


@dataclass(frozen=True, slots=True)
class DetailsPage:
    header: Header
    details: BillingDetailsValue
    countries: list[tuple[str, str]]
    editable: bool  # owners edit them (as updateBillingDetails allows); admins read them


@dataclass(frozen=True, slots=True)
class CancelPage:
    header: Header
    subscription: SubscriptionView | None
    reasons: list[str]
