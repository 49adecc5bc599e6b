"""refund_invoice on both databases: limits, allocation, PENDING first, idempotency, races."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    AuditEvent,
    IdempotencyRecord,
    Invoice,
    OutboxEvent,
    Payment,
    PaymentStatus,
    Refund,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.base import ChargeOutcome, ChargeResult, GatewayError, Order, RefundResult
from billing_graphql.services.payments.refunds import refund_invoice
from billing_graphql.settings import Settings
from tests.helpers import T0
from tests.factories import count_rows, make_invoice, make_organization, make_payment

ADMIN = Actor(role=Role.SUPER_ADMIN, organization_id=None, subject="user:finance")
WRITTEN = (Refund, AuditEvent, OutboxEvent, IdempotencyRecord)


class FakeProcessor:
    """A payment processor stand-in implementing the gateway protocol.

    Like a real processor it deduplicates refunds by idempotency key. ``mode`` is "accept",
    "refuse" or "unreachable". With ``db`` it checks, when called, that our PENDING refund row
    with that key is already committed.
    """

    name = "sandbox"

    def __init__(self, mode: str = "accept", db: Database | None = None) -> None:
        self.mode = mode
        self.db = db
        self.calls: list[tuple[str, int, str]] = []
        self.refunds: dict[str, str] = {}
        self.pending_seen: list[bool] = []

    async def refund(self, *, gateway_payment_id: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        self.calls.append((gateway_payment_id, amount, idempotency_key))
        if self.db is not None:
            async with self.db.read() as session:
                status = await session.scalar(select(Refund.status).where(Refund.idempotency_key == idempotency_key))
            self.pending_seen.append(status is PaymentStatus.PENDING)
        await asyncio.sleep(0)
        if self.mode == "unreachable":
            raise GatewayError("timeout")
        if self.mode == "refuse":
            return RefundResult(succeeded=False, failure_message="insufficient merchant balance")
        gateway_refund_id = self.refunds.setdefault(idempotency_key, f"re_{len(self.refunds) + 1}")
        return RefundResult(succeeded=True, gateway_refund_id=gateway_refund_id)

    async def create_customer(self, *, organization_id: str, name: str, email: str | None) -> str:
        return f"cus_{organization_id}"

    async def charge(self, **kwargs) -> ChargeResult:
        return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, gateway_payment_id="ch_fake")

    async def create_order(self, *, amount: int, currency: str, receipt: str, idempotency_key: str,
                           **saving) -> Order:
        return Order(order_id=f"order_{receipt}", amount=amount, currency=currency)

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool:
        return False

    def verify_webhook(self, *, body: bytes, signature: str) -> bool:
        return False


def gateways(processor: FakeProcessor) -> GatewayRegistry:
    """The app's gateways with ``processor`` standing in for the sandbox."""
    return GatewayRegistry(Settings(), overrides={"sandbox": processor})


async def paid_invoice(db, total_lines: int = 1_000_000):
    organization = await make_organization(db)
    invoice = await make_invoice(db, organization.id)  # 1,000,000 + PPN 110,000 = 1,110,000 IDR
    payment = await make_payment(db, invoice)
    return organization, invoice, payment


async def counts(db) -> list[int]:
    return [await count_rows(db, model) for model in WRITTEN]


async def reload(db, model, key):
    async with db.read() as session:
        return await session.get(model, key)


async def refund(db, invoice, processor, **kwargs):
    values = dict(reason="Customer asked", idempotency_key=None)
    values.update(kwargs)
    return await refund_invoice(
        db, ADMIN, invoice_id=invoice.id, gateways=gateways(processor), now=T0, **values
    )


async def test_full_refund_when_amount_is_omitted(db):
    organization, invoice, payment = await paid_invoice(db)
    processor = FakeProcessor(db=db)
    outcome = await refund(db, invoice, processor)
    assert (outcome.status, outcome.amount, outcome.invoice_status) == (
        PaymentStatus.SUCCEEDED,
        1_110_000,
        InvoiceStatus.REFUNDED,
    )
    stored = await reload(db, Invoice, invoice.id)
    assert (stored.amount_refunded, stored.status) == (1_110_000, InvoiceStatus.REFUNDED)
    assert (await reload(db, Payment, payment.id)).amount_refunded == 1_110_000
    [row] = [await reload(db, Refund, refund_id) for refund_id in outcome.refund_ids]
    assert (row.status, row.amount, row.gateway_refund_id, row.reason) == (
        PaymentStatus.SUCCEEDED,
        1_110_000,
        "re_1",
        "Customer asked",
    )
    # The PENDING row was committed before the gateway was called, with a key from its id.
    assert processor.pending_seen == [True]
    assert processor.calls == [(payment.gateway_payment_id, 1_110_000, f"refund_{row.id}")]
    async with db.read() as session:
        events = (await session.scalars(select(OutboxEvent))).all()
        audit = (await session.scalars(select(AuditEvent.action))).all()
    [event] = [e for e in events if e.event_type == "refund.created"]
    assert event.payload["object"]["amount"]["amount"] == "1110000" and event.payload["invoiceStatus"] == "REFUNDED"
    assert event.organization_id == organization.id
    assert sorted(audit) == ["invoice.refund_requested", "refund.succeeded"]


async def test_partial_refunds_then_the_rest(db):
    _, invoice, _ = await paid_invoice(db)
    processor = FakeProcessor()
    first = await refund(db, invoice, processor, amount_minor=110_000)
    assert (first.amount, first.invoice_status) == (110_000, InvoiceStatus.PARTIALLY_REFUNDED)
    second = await refund(db, invoice, processor, amount=Decimal("1000000"))
    assert (second.amount, second.invoice_status) == (1_000_000, InvoiceStatus.REFUNDED)
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, processor, amount_minor=1)
    assert error.value.code is BillingErrorCode.NOT_REFUNDABLE


@pytest.mark.parametrize("amount", [1_110_001, 0, -5])
async def test_amount_outside_what_is_refundable_is_refund_exceeds_paid(db, amount):
    _, invoice, _ = await paid_invoice(db)
    before = await counts(db)
    processor = FakeProcessor()
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, processor, amount_minor=amount, idempotency_key="k1")
    assert (error.value.code, error.value.field) == (BillingErrorCode.REFUND_EXCEEDS_PAID, "amount")
    assert await counts(db) == before
    assert processor.calls == []
    assert (await reload(db, Invoice, invoice.id)).amount_refunded == 0


async def test_more_than_what_is_left_after_a_partial_refund_is_refused(db):
    _, invoice, _ = await paid_invoice(db)
    processor = FakeProcessor()
    await refund(db, invoice, processor, amount_minor=1_000_000)
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, processor, amount_minor=110_001)
    assert error.value.code is BillingErrorCode.REFUND_EXCEEDS_PAID


@pytest.mark.parametrize("status", [InvoiceStatus.OPEN, InvoiceStatus.DRAFT, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE])
async def test_unpaid_invoices_are_not_refundable(db, status):
    organization = await make_organization(db)
    invoice = await make_invoice(db, organization.id, status=status)
    before = await counts(db)
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, FakeProcessor())
    assert error.value.code is BillingErrorCode.NOT_REFUNDABLE
    assert await counts(db) == before


async def test_missing_invoice_is_not_found(db):
    with pytest.raises(BillingError) as error:
        await refund_invoice(
            db, ADMIN, invoice_id=uuid.uuid4(), reason=None, idempotency_key=None,
            gateways=gateways(FakeProcessor()), now=T0,
        )
    assert error.value.code is BillingErrorCode.NOT_FOUND


async def test_amount_with_too_many_decimals_and_card_numbers_in_reason_are_validation(db):
    _, invoice, _ = await paid_invoice(db)
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, FakeProcessor(), amount=Decimal("10.5"))  # IDR has no decimals
    assert (error.value.code, error.value.field) == (BillingErrorCode.VALIDATION, "amount")
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, FakeProcessor(), reason="card 4242 4242 4242 4242")
    assert (error.value.code, error.value.field) == (BillingErrorCode.VALIDATION, "reason")
    assert await count_rows(db, Refund) == 0


async def test_refund_spreads_over_payments_newest_first(db):
    organization = await make_organization(db)
    invoice = await make_invoice(db, organization.id)
    older = await make_payment(db, invoice, 610_000, created_at=T0)
    newer = await make_payment(db, invoice, 500_000, created_at=T0.replace(hour=10))
    await make_payment(db, invoice, 999, status=PaymentStatus.FAILED, created_at=T0.replace(hour=11))
    processor = FakeProcessor()
    outcome = await refund(db, invoice, processor, amount_minor=700_000)
    assert outcome.status is PaymentStatus.SUCCEEDED and len(outcome.refund_ids) == 2
    assert (await reload(db, Payment, newer.id)).amount_refunded == 500_000
    assert (await reload(db, Payment, older.id)).amount_refunded == 200_000
    assert sorted(call[1] for call in processor.calls) == [200_000, 500_000]
    rest = await refund(db, invoice, processor)
    assert (rest.amount, rest.invoice_status) == (410_000, InvoiceStatus.REFUNDED)
    assert (await reload(db, Payment, older.id)).amount_refunded == 610_000


async def test_refused_refund_fails_and_releases_the_reservation(db):
    _, invoice, payment = await paid_invoice(db)
    outcome = await refund(db, invoice, FakeProcessor("refuse"), amount_minor=500_000)
    assert (outcome.status, outcome.amount, outcome.invoice_status) == (PaymentStatus.FAILED, 0, InvoiceStatus.PAID)
    assert "insufficient merchant balance" in outcome.failure_message
    stored = await reload(db, Invoice, invoice.id)
    assert (stored.amount_refunded, stored.status) == (0, InvoiceStatus.PAID)
    assert (await reload(db, Payment, payment.id)).amount_refunded == 0
    async with db.read() as session:
        types = (await session.scalars(select(OutboxEvent.event_type))).all()
    assert "refund.failed" in types and "refund.created" not in types
    # The whole amount is refundable again.
    assert (await refund(db, invoice, FakeProcessor())).amount == 1_110_000


async def test_unreachable_gateway_leaves_it_pending_and_a_retry_completes_it_once(db):
    _, invoice, _ = await paid_invoice(db)
    down = FakeProcessor("unreachable")
    outcome = await refund(db, invoice, down, amount_minor=400_000, idempotency_key="refund-42")
    assert (outcome.status, outcome.amount, outcome.invoice_status) == (
        PaymentStatus.PENDING,
        400_000,
        InvoiceStatus.PARTIALLY_REFUNDED,
    )
    # The reservation holds: no more than what is left can be refunded meanwhile.
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, FakeProcessor(), amount_minor=710_001)
    assert error.value.code is BillingErrorCode.REFUND_EXCEEDS_PAID
    up = FakeProcessor()
    retried = await refund(db, invoice, up, amount_minor=400_000, idempotency_key="refund-42")
    assert (retried.status, retried.replayed, retried.refund_ids) == (PaymentStatus.SUCCEEDED, True, outcome.refund_ids)
    assert [call[2] for call in up.calls] == [call[2] for call in down.calls]  # the same gateway key
    again = await refund(db, invoice, up, amount_minor=400_000, idempotency_key="refund-42")
    assert again.status is PaymentStatus.SUCCEEDED and len(up.calls) == 1
    assert await count_rows(db, Refund) == 1


async def test_same_key_same_input_returns_the_stored_result(db):
    _, invoice, _ = await paid_invoice(db)
    processor = FakeProcessor()
    first = await refund(db, invoice, processor, amount_minor=100_000, idempotency_key="k-1")
    second = await refund(db, invoice, processor, amount=Decimal("100000"), idempotency_key="k-1")
    assert second.replayed and not first.replayed
    assert (second.refund_ids, second.amount, second.status) == (first.refund_ids, 100_000, PaymentStatus.SUCCEEDED)
    assert len(processor.calls) == 1
    assert (await reload(db, Invoice, invoice.id)).amount_refunded == 100_000


async def test_same_key_different_input_is_idempotency_key_reused(db):
    _, invoice, _ = await paid_invoice(db)
    processor = FakeProcessor()
    await refund(db, invoice, processor, amount_minor=100_000, idempotency_key="k-1")
    before = await counts(db)
    for changed in ({"amount_minor": 100_001}, {"amount_minor": 100_000, "reason": "Other"}):
        with pytest.raises(BillingError) as error:
            await refund(db, invoice, processor, idempotency_key="k-1", **changed)
        assert error.value.code is BillingErrorCode.IDEMPOTENCY_KEY_REUSED
    assert await counts(db) == before
    # Keys are per organization: another tenant's invoice may use the same key.
    _, other_invoice, _ = await paid_invoice(db)
    assert (await refund(db, other_invoice, processor, amount_minor=5, idempotency_key="k-1")).amount == 5


async def test_a_rejected_request_stores_no_key(db):
    _, invoice, _ = await paid_invoice(db)
    with pytest.raises(BillingError):
        await refund(db, invoice, FakeProcessor(), amount_minor=9_999_999, idempotency_key="k-2")
    assert await count_rows(db, IdempotencyRecord) == 0
    assert (await refund(db, invoice, FakeProcessor(), amount_minor=10, idempotency_key="k-2")).amount == 10


async def test_two_concurrent_sixty_percent_refunds_one_succeeds(db):
    _, invoice, _ = await paid_invoice(db)
    processor = FakeProcessor()
    sixty = 666_000  # 60% of 1,110,000
    results = await asyncio.gather(
        refund(db, invoice, processor, amount_minor=sixty, idempotency_key="a"),
        refund(db, invoice, processor, amount_minor=sixty, idempotency_key="b"),
        return_exceptions=True,
    )
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(succeeded) == 1 and succeeded[0].status is PaymentStatus.SUCCEEDED
    assert len(failed) == 1 and isinstance(failed[0], BillingError)
    assert failed[0].code is BillingErrorCode.REFUND_EXCEEDS_PAID
    stored = await reload(db, Invoice, invoice.id)
    assert (stored.amount_refunded, stored.status) == (sixty, InvoiceStatus.PARTIALLY_REFUNDED)
    assert await count_rows(db, Refund) == 1 and len(processor.calls) == 1


async def test_concurrent_retries_with_one_key_refund_once(db):
    _, invoice, _ = await paid_invoice(db)
    processor = FakeProcessor()
    results = await asyncio.gather(
        *(refund(db, invoice, processor, amount_minor=300_000, idempotency_key="same") for _ in range(3))
    )
    assert {r.refund_ids for r in results} == {results[0].refund_ids}
    assert all(r.status is PaymentStatus.SUCCEEDED for r in results)
    assert sum(not r.replayed for r in results) == 1
    assert await count_rows(db, Refund) == 1
    assert len(set(processor.refunds)) == 1  # one refund at the processor, whatever the calls
    assert (await reload(db, Invoice, invoice.id)).amount_refunded == 300_000


async def test_unknown_gateway_is_refused_before_anything_is_written(db):
    organization = await make_organization(db)
    invoice = await make_invoice(db, organization.id)
    await make_payment(db, invoice, gateway="paypal")
    before = await counts(db)
    with pytest.raises(BillingError) as error:
        await refund(db, invoice, FakeProcessor())
    assert error.value.code is BillingErrorCode.PAYMENT_FAILED
    assert await counts(db) == before
