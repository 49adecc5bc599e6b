"""The invoicing core: gapless numbers, finalization, charging through the gateway, account credit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    InvoiceNumberSequence,
    Organization,
    OutboxEvent,
    Payment,
    PaymentStatus,
)
from billing_graphql.domain.invoices import LineDraft, InvoiceLineKind
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways.base import ChargeOutcome, ChargeResult, GatewayError
from billing_graphql.gateways.sandbox import SandboxGateway
from billing_graphql.services.billing.charging import charge_invoice, default_payment_method, reconcile_payment
from billing_graphql.services.billing.invoicing import create_invoice, draft_invoice, finalize_invoice, tax_rule_for
from billing_graphql.services.platform.organizations import create_organization
from tests.factories import add_tax_rate, make_payment_method, set_credit
from tests.helpers import T0

SANDBOX = SandboxGateway(slow_seconds=0)


def plan_line(amount: int) -> LineDraft:
    return LineDraft(InvoiceLineKind.PLAN, "Starter plan (monthly)", Decimal(1), Decimal(amount), amount, T0,
                     T0 + timedelta(days=31))


async def organization(db, name: str = "acme") -> Organization:
    return await create_organization(db, None, name=name, external_id=f"{name}-{uuid.uuid4().hex[:6]}", now=T0)


async def new_invoice(db, organization_id, amount: int = 299000, *, finalize: bool = False, now=T0) -> Invoice:
    async with db.write() as session:
        org = await session.get(Organization, organization_id)
        rule = await tax_rule_for(session, "IDR", now)
        draft = draft_invoice(org, "IDR", [plan_line(amount)], discount=None, tax_rule=rule)
        invoice = await create_invoice(session, org, draft, subscription_id=None, billing_reason=BillingReason.MANUAL,
                                       period_start=None, period_end=None, now=now)
        if finalize:
            await finalize_invoice(session, invoice, now)
    return invoice


async def events(db, event_type: str) -> list[OutboxEvent]:
    async with db.read() as session:
        return list((await session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == event_type))).all())


async def test_tax_rule_for_idr_is_ppn_and_usd_has_none(db):
    async with db.read() as session:
        ppn = await tax_rule_for(session, "IDR", T0)
        assert (ppn.name, ppn.rate, ppn.base_numerator, ppn.base_denominator) == ("PPN", Decimal("0.12"), 11, 12)
        assert await tax_rule_for(session, "USD", T0) is None
        # not yet in force before 2025
        assert await tax_rule_for(session, "IDR", T0.replace(year=2024)) is None


async def test_tax_rule_for_takes_the_latest_rate_in_force_for_the_currency(db):
    """(Was the unit test of domain.tax.pick_rate, which only repeated this SQL.)"""
    await add_tax_rate(db, name="PPN 11", rate=Decimal("0.11"), currency="IDR",
                       effective_from=datetime(2022, 4, 1, tzinfo=UTC))
    await add_tax_rate(db, name="PPN 13", rate=Decimal("0.13"), currency="IDR",
                       effective_from=datetime(2030, 1, 1, tzinfo=UTC))
    async with db.read() as session:
        assert (await tax_rule_for(session, "IDR", datetime(2026, 1, 1, tzinfo=UTC))).name == "PPN"
        assert (await tax_rule_for(session, "IDR", datetime(2023, 1, 1, tzinfo=UTC))).name == "PPN 11"
        assert await tax_rule_for(session, "USD", datetime(2026, 1, 1, tzinfo=UTC)) is None
        assert await tax_rule_for(session, "IDR", datetime(2020, 1, 1, tzinfo=UTC)) is None


async def test_draft_invoice_copies_the_tax_rate(db):
    org = await organization(db)
    invoice = await new_invoice(db, org.id)
    # 299000 + PPN 32890 (299000 x 0.11)
    assert (invoice.subtotal, invoice.tax, invoice.total) == (299000, 32890, 331890)
    assert (invoice.tax_name, invoice.tax_rate, invoice.tax_base_numerator, invoice.tax_base_denominator) == (
        "PPN", Decimal("0.12"), 11, 12)
    assert invoice.status is InvoiceStatus.DRAFT and invoice.number is None


async def test_numbers_are_consecutive_and_restart_each_month(db):
    org = await organization(db)
    first = await new_invoice(db, org.id, finalize=True)
    second = await new_invoice(db, org.id, finalize=True)
    next_month = await new_invoice(db, org.id, finalize=True, now=T0 + timedelta(days=31))
    assert [first.number, second.number, next_month.number] == [
        "INV-202601-000001", "INV-202601-000002", "INV-202602-000001"]


async def test_finalize_opens_with_number_due_date_and_event(db):
    org = await organization(db)
    invoice = await new_invoice(db, org.id, finalize=True)
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.finalized_at == T0 and invoice.due_date == T0
    [event] = await events(db, "invoice.created")
    shown = event.payload["object"]  # the invoice as the API shows it (issue 18, item 10)
    assert shown["invoiceNumber"] == invoice.number and shown["amountDue"]["amount"] == "331890"
    with pytest.raises(ValueError):
        async with db.write() as session:
            row = await session.get(Invoice, invoice.id)
            await finalize_invoice(session, row, T0)


async def test_a_rolled_back_finalization_leaves_no_gap(db):
    org = await organization(db)
    draft = await new_invoice(db, org.id)
    with pytest.raises(RuntimeError):
        async with db.write() as session:
            row = await session.get(Invoice, draft.id)
            await finalize_invoice(session, row, T0)
            assert row.number == "INV-202601-000001"
            raise RuntimeError("crash after numbering")
    again = await new_invoice(db, org.id, finalize=True)
    assert again.number == "INV-202601-000001"


async def test_twenty_concurrent_finalizations_get_twenty_consecutive_numbers(db):
    if db.is_sqlite:
        pytest.skip("race test: PostgreSQL only (SQLite serializes writers with BEGIN IMMEDIATE)")
    orgs = [await organization(db, f"org{i}") for i in range(4)]
    drafts = [await new_invoice(db, orgs[i % 4].id) for i in range(20)]

    async def finalize(invoice_id):
        async with db.write() as session:
            row = await session.get(Invoice, invoice_id)
            await finalize_invoice(session, row, T0)
            await asyncio.sleep(0)  # let the others reach the sequence row while this one holds it
            return row.number

    numbers = await asyncio.gather(*(finalize(d.id) for d in drafts))
    assert sorted(numbers) == [f"INV-202601-{n:06d}" for n in range(1, 21)]
    async with db.read() as session:
        assert await session.scalar(select(InvoiceNumberSequence.last_value)) == 20


async def test_charge_succeeds_marks_paid(db):
    org = await organization(db)
    method = await make_payment_method(db, org.id, token="pm_card_visa")
    invoice = await new_invoice(db, org.id, finalize=True)
    async with db.write() as session:
        row = await session.get(Invoice, invoice.id)
        payment = await charge_invoice(session, row, await default_payment_method(session, org.id), SANDBOX, T0)
    assert payment.status is PaymentStatus.SUCCEEDED and payment.amount == 331890
    assert payment.idempotency_key == f"pay_{payment.id.hex}"
    assert payment.gateway_payment_id.startswith("ch_sandbox_") and payment.payment_method_id == method.id
    async with db.read() as session:
        row = await session.get(Invoice, invoice.id)
    assert (row.status, row.amount_paid, row.paid_at) == (InvoiceStatus.PAID, 331890, T0)
    assert len(await events(db, "invoice.paid")) == 1


@pytest.mark.parametrize(("token", "code"), [("pm_card_declined", "card_declined"),
                                             ("pm_card_insufficient_funds", "insufficient_funds"),
                                             ("pm_card_expired", "expired_card")])
async def test_decline_is_a_failed_payment_not_an_exception(db, token, code):
    org = await organization(db)
    await make_payment_method(db, org.id, token=token)
    invoice = await new_invoice(db, org.id, finalize=True)
    async with db.write() as session:
        row = await session.get(Invoice, invoice.id)
        payment = await charge_invoice(session, row, await default_payment_method(session, org.id), SANDBOX, T0)
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, code)
    async with db.read() as session:
        row = await session.get(Invoice, invoice.id)
        stored = await session.get(Payment, payment.id)
    assert (row.status, row.amount_paid) == (InvoiceStatus.OPEN, 0)
    assert stored.status is PaymentStatus.FAILED and stored.failure_message
    [event] = await events(db, "invoice.payment_failed")
    assert event.payload["failureCode"] == code and event.payload["object"]["status"] == "OPEN"
    assert await events(db, "invoice.paid") == []


async def test_action_required_is_a_failed_payment_with_its_own_event_never_paid(db):
    org = await organization(db)
    await make_payment_method(db, org.id, token="pm_card_authenticationRequired")
    invoice = await new_invoice(db, org.id, finalize=True)
    async with db.write() as session:
        row = await session.get(Invoice, invoice.id)
        payment = await charge_invoice(session, row, await default_payment_method(session, org.id), SANDBOX, T0)
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "authentication_required")
    async with db.read() as session:
        row = await session.get(Invoice, invoice.id)
    assert (row.status, row.amount_paid, row.paid_at) == (InvoiceStatus.OPEN, 0, None)
    [event] = await events(db, "invoice.payment_action_required")
    assert event.payload["failureCode"] == "authentication_required"
    assert await events(db, "invoice.paid") == [] and await events(db, "invoice.payment_failed") == []


class FlakyProcessor:
    """A processor that fails the first call and then answers; it records the keys it was sent."""

    name = "sandbox"

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def charge(self, *, idempotency_key: str, **kwargs) -> ChargeResult:
        self.keys.append(idempotency_key)
        if len(self.keys) == 1:
            raise GatewayError("timeout")
        return ChargeResult(ChargeOutcome.SUCCEEDED, f"ch_{idempotency_key}")


async def test_processor_fault_leaves_payment_pending_and_reconcile_uses_the_same_key(db):
    org = await organization(db)
    await make_payment_method(db, org.id, token="pm_card_visa")
    invoice = await new_invoice(db, org.id, finalize=True)
    processor = FlakyProcessor()
    async with db.write() as session:
        row = await session.get(Invoice, invoice.id)
        payment = await charge_invoice(session, row, await default_payment_method(session, org.id), processor, T0)
    assert payment.status is PaymentStatus.PENDING and payment.failure_code == "processing_error"
    async with db.read() as session:
        assert (await session.get(Payment, payment.id)).status is PaymentStatus.PENDING  # committed
        assert (await session.get(Invoice, invoice.id)).status is InvoiceStatus.OPEN
    async with db.write() as session:
        stored = await session.get(Payment, payment.id)
        await reconcile_payment(session, stored, processor, T0 + timedelta(minutes=5))
    assert processor.keys == [payment.idempotency_key, payment.idempotency_key]
    async with db.read() as session:
        assert (await session.get(Payment, payment.id)).status is PaymentStatus.SUCCEEDED
        assert (await session.get(Invoice, invoice.id)).status is InvoiceStatus.PAID


async def test_error_token_leaves_payment_pending(db):
    org = await organization(db)
    await make_payment_method(db, org.id, token="pm_card_error")
    invoice = await new_invoice(db, org.id, finalize=True)
    async with db.write() as session:
        row = await session.get(Invoice, invoice.id)
        payment = await charge_invoice(session, row, await default_payment_method(session, org.id), SANDBOX, T0)
    assert payment.status is PaymentStatus.PENDING
    assert await events(db, "invoice.paid") == [] and await events(db, "invoice.payment_failed") == []


async def test_a_retry_after_a_crash_sends_the_same_key_when_the_payment_id_is_derived(db):
    org = await organization(db)
    await make_payment_method(db, org.id)
    payment_id = uuid.uuid5(uuid.NAMESPACE_URL, "acme:change_plan:key-1")
    seen: list[tuple[str, str]] = []

    async def attempt(crash: bool):
        invoice = await new_invoice(db, org.id)
        async with db.write() as session:
            row = await session.get(Invoice, invoice.id)
            await finalize_invoice(session, row, T0)
            payment = await charge_invoice(session, row, await default_payment_method(session, org.id), SANDBOX,
                                           T0, payment_id=payment_id)
            seen.append((payment.idempotency_key, payment.gateway_payment_id))
            if crash:
                raise RuntimeError("process died before commit")

    with pytest.raises(RuntimeError):
        await attempt(crash=True)
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Payment)) == 0  # rolled back whole
    await attempt(crash=False)
    assert seen[0] == seen[1]  # same key, so the processor answers with the first charge


async def test_account_credit_is_spent_after_tax_and_zero_due_is_paid_without_a_payment(db):
    org = await organization(db)
    await set_credit(db, org.id, 400000)
    invoice = await new_invoice(db, org.id, finalize=True)
    # total 331890 (299000 + PPN 32890), all of it covered by the 400000 credit
    assert (invoice.total, invoice.credit_applied) == (331890, 331890)
    async with db.write() as session:
        row = await session.get(Invoice, invoice.id)
        assert await charge_invoice(session, row, None, SANDBOX, T0) is None
    async with db.read() as session:
        org_row = await session.get(Organization, org.id)
        row = await session.get(Invoice, invoice.id)
        assert await session.scalar(select(func.count()).select_from(Payment)) == 0
    assert org_row.credit_balance == 400000 - 331890
    assert (row.status, row.amount_paid, row.paid_at) == (InvoiceStatus.PAID, 0, T0)


async def test_partial_credit_leaves_the_rest_to_charge(db):
    org = await organization(db)
    await set_credit(db, org.id, 100000)
    await make_payment_method(db, org.id)
    invoice = await new_invoice(db, org.id, finalize=True)
    async with db.write() as session:
        row = await session.get(Invoice, invoice.id)
        payment = await charge_invoice(session, row, await default_payment_method(session, org.id), SANDBOX, T0)
    assert payment.amount == 331890 - 100000
    async with db.read() as session:
        assert (await session.get(Organization, org.id)).credit_balance == 0
        assert (await session.get(Invoice, invoice.id)).amount_paid == 231890


async def test_credit_in_another_currency_is_not_spent(db):
    org = await organization(db)
    await set_credit(db, org.id, 5000, "USD")
    invoice = await new_invoice(db, org.id)
    assert invoice.credit_applied == 0


async def test_default_payment_method(db):
    org = await organization(db)
    async with db.read() as session:
        assert await default_payment_method(session, org.id) is None
    await make_payment_method(db, org.id, token="pm_card_mastercard", is_default=False)
    default = await make_payment_method(db, org.id, token="pm_card_visa", is_default=True)
    async with db.read() as session:
        assert (await default_payment_method(session, org.id)).id == default.id
