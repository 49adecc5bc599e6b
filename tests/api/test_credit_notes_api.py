"""createCreditNote over HTTP, on both databases: amounts and proportional tax, the number series,
outcomes, invoice status after credit, idempotency, bad input writing nothing, roles, and 20
credit notes racing on one invoice."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import select

from billing_graphql.db.models import AuditEvent, CreditNote, Invoice, Organization, OutboxEvent, Refund
from billing_graphql.domain.status import InvoiceStatus
from tests.factories import Line, count_rows, make_invoice, make_payment
from tests.helpers import gid
from tests.api.test_refund_api import gateway_overrides, processor  # noqa: F401 (fixtures: a FakeProcessor as "sandbox")

CREATE = """
mutation CreateCreditNote($input: CreateCreditNoteInput!) {
  createCreditNote(input: $input) {
    creditNote {
      id number status reason outcome memo
      subtotal { amount } tax { amount } total { amount currency }
      lines { description amount { amount } invoiceLineId }
      refunds { amount { amount } status }
      invoice { invoiceNumber }
    }
    invoice { status amountCredited { amount } amountDue { amount } amountRefunded { amount } }
    errors { code message field }
  }
}
"""
NUMBER = re.compile(r"^CN-\d{6}-\d{6}$")


async def _paid_invoice(db, organization_id, amount=100_000):
    """A PAID invoice of ``amount`` + 11% PPN (100,000 -> total 111,000, tax 11,000), with its payment."""
    invoice = await make_invoice(db, organization_id, lines=[Line("Growth plan, monthly", amount)])
    await make_payment(db, invoice)
    return invoice


async def _create(api, keys, **values):
    return (await api.ok(CREATE, {"input": values}, token=keys.super_admin))["createCreditNote"]


async def test_credit_balance_carries_tax_in_proportion_and_replays(api, db, keys):
    invoice = await _paid_invoice(db, keys.organization_id)
    assert (invoice.total, invoice.tax) == (111_000, 11_000)
    values = {"invoiceId": gid("Invoice", invoice.id), "amount": "55500", "reason": "PRODUCT_UNSATISFACTORY",
              "memo": "Half a month of outage", "outcome": "CREDIT_BALANCE", "idempotencyKey": "cn-1"}
    result = await _create(api, keys, **values)
    assert result["errors"] == []
    note = result["creditNote"]
    assert NUMBER.match(note["number"]) and note["number"].endswith("-000001")
    assert (note["total"], note["tax"]["amount"], note["subtotal"]["amount"]) == (
        {"amount": "55500", "currency": "IDR"}, "5500", "50000")
    assert (note["status"], note["reason"], note["outcome"], note["memo"]) == (
        "ISSUED", "PRODUCT_UNSATISFACTORY", "CREDIT_BALANCE", "Half a month of outage")
    assert note["lines"] == [{"description": f"Credit on invoice {invoice.number}", "amount": {"amount": "55500"},
                              "invoiceLineId": None}]
    # Decided: the invoice keeps its payment status; amountCredited says how much is credited.
    assert result["invoice"] == {"status": "PAID", "amountCredited": {"amount": "55500"}, "amountDue": {"amount": "0"},
                                 "amountRefunded": {"amount": "0"}}
    async with db.read() as session:
        organization = await session.get(Organization, keys.organization_id)
        assert (organization.credit_balance, organization.credit_currency) == (55_500, "IDR")

    # The same key and input: the same note, nothing written twice.
    assert await _create(api, keys, **values) == result
    assert await count_rows(db, CreditNote) == 1
    # The same key with another input is refused.
    reused = await _create(api, keys, **{**values, "amount": "1000"})
    assert [e["code"] for e in reused["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]

    async with db.read() as session:
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "credit_note.created"))).all()
        audits = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "credit_note.created"))).all()
        assert (await session.get(Organization, keys.organization_id)).credit_balance == 55_500
    assert len(events) == 1 and len(audits) == 1
    shown = events[0].payload["object"]
    assert shown["id"] == note["id"] and shown["number"] == note["number"]
    assert shown["total"]["amount"] == "55500" and shown["tax"]["amount"] == "5500"
    assert shown["invoice"] == {"id": gid("Invoice", invoice.id)}

    # The rest: its tax is exactly the tax left, and the invoice is credited in full.
    rest = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="55500", reason="OTHER",
                         outcome="CREDIT_BALANCE")
    assert rest["creditNote"]["number"].endswith("-000002") and rest["creditNote"]["tax"]["amount"] == "5500"
    assert rest["invoice"]["amountCredited"] == {"amount": "111000"}
    over = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="1", reason="OTHER",
                         outcome="CREDIT_BALANCE")
    assert [(e["code"], e["field"]) for e in over["errors"]] == [("CREDIT_EXCEEDS_INVOICE", "amount")]


async def test_refund_outcome_goes_through_the_refund_rules(api, db, keys, processor):
    invoice = await _paid_invoice(db, keys.organization_id)
    result = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="11100", reason="DUPLICATE",
                           outcome="REFUND")
    assert result["errors"] == []
    assert result["creditNote"]["refunds"] == [{"amount": {"amount": "11100"}, "status": "SUCCEEDED"}]
    assert result["creditNote"]["tax"] == {"amount": "1100"}
    assert result["invoice"]["status"] == "PARTIALLY_REFUNDED"
    assert result["invoice"]["amountRefunded"] == {"amount": "11100"}
    assert [call[1] for call in processor.calls] == [11_100]
    async with db.read() as session:
        refund = await session.scalar(select(Refund))
    assert refund.credit_note_id is not None and refund.reason.startswith("Credit note CN-")


async def test_refused_refund_voids_the_credit_note(api, db, keys, processor):
    processor.mode = "refuse"
    invoice = await _paid_invoice(db, keys.organization_id)
    result = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="50000", reason="OTHER",
                           outcome="REFUND")
    assert [e["code"] for e in result["errors"]] == ["PAYMENT_FAILED"]
    assert result["creditNote"]["status"] == "VOID"
    assert result["invoice"] == {"status": "PAID", "amountCredited": {"amount": "0"}, "amountDue": {"amount": "0"},
                                 "amountRefunded": {"amount": "0"}}


async def test_reduce_amount_due_until_paid(api, db, keys):
    invoice = await make_invoice(db, keys.organization_id, lines=[Line("Setup", 100_000)], status=InvoiceStatus.OPEN)
    first = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="11000", reason="ORDER_CHANGE",
                          outcome="REDUCE_AMOUNT_DUE")
    assert first["errors"] == []
    assert first["invoice"]["status"] == "OPEN" and first["invoice"]["amountDue"] == {"amount": "100000"}
    # CREDIT_BALANCE / REFUND on an unpaid invoice: refused.
    wrong = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="1", reason="OTHER",
                          outcome="CREDIT_BALANCE")
    assert [(e["code"], e["field"]) for e in wrong["errors"]] == [("INVALID_TRANSITION", "outcome")]
    rest = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="100000", reason="ORDER_CHANGE",
                         outcome="REDUCE_AMOUNT_DUE")
    assert rest["invoice"] == {"status": "PAID", "amountCredited": {"amount": "111000"},
                               "amountDue": {"amount": "0"}, "amountRefunded": {"amount": "0"}}
    async with db.read() as session:
        stored = await session.get(Invoice, invoice.id)
        assert (stored.amount_paid, stored.tax_credited, stored.credited_against_due) == (0, 11_000, 111_000)


async def test_credit_by_lines(api, db, keys):
    invoice = await make_invoice(db, keys.organization_id, lines=[Line("Plan", 100_000), Line("Seats", 50_000)])
    await make_payment(db, invoice)
    assert invoice.total == 166_500
    lines = (await api.ok("query($id: ID!) { invoice(id: $id) { lines { id description } } }",
                          {"id": gid("Invoice", invoice.id)}, token=keys.owner))["invoice"]["lines"]
    seats = lines[1]["id"]
    part = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), reason="OTHER", outcome="CREDIT_BALANCE",
                         lines=[{"invoiceLineId": seats, "amount": "11100"}])
    assert part["errors"] == [] and part["creditNote"]["lines"] == [
        {"description": "Seats", "amount": {"amount": "11100"}, "invoiceLineId": seats}]
    # Without an amount: what is left of the line (55,500 tax included, less 11,100).
    rest = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), reason="OTHER", outcome="CREDIT_BALANCE",
                         lines=[{"invoiceLineId": seats}])
    assert rest["creditNote"]["total"]["amount"] == "44400" and rest["creditNote"]["tax"]["amount"] == "4400"
    none_left = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), reason="OTHER",
                              outcome="CREDIT_BALANCE", lines=[{"invoiceLineId": seats, "amount": "1"}])
    assert [(e["code"], e["field"]) for e in none_left["errors"]] == [("CREDIT_EXCEEDS_INVOICE", "lines.0.amount")]


async def test_bad_input_is_refused_and_writes_nothing(api, db, keys):
    paid = await _paid_invoice(db, keys.organization_id)
    void = await make_invoice(db, keys.organization_id, status=InvoiceStatus.VOID)
    draft = await make_invoice(db, keys.organization_id, status=InvoiceStatus.DRAFT)
    other = await _paid_invoice(db, keys.other_organization_id)
    base = {"invoiceId": gid("Invoice", paid.id), "reason": "OTHER", "outcome": "CREDIT_BALANCE"}
    audits, events = await count_rows(db, AuditEvent), await count_rows(db, OutboxEvent)
    cases = [
        ({**base}, "VALIDATION", "amount"),
        ({**base, "amount": "1", "lines": []}, "VALIDATION", "amount"),
        ({**base, "lines": []}, "VALIDATION", "lines"),
        ({**base, "amount": "0"}, "CREDIT_EXCEEDS_INVOICE", "amount"),
        ({**base, "amount": "-5"}, "CREDIT_EXCEEDS_INVOICE", "amount"),
        ({**base, "amount": "111001"}, "CREDIT_EXCEEDS_INVOICE", "amount"),
        ({**base, "amount": "1.5"}, "VALIDATION", "amount"),
        ({**base, "amount": "1", "memo": "x" * 501}, "VALIDATION", "memo"),
        ({**base, "amount": "1", "idempotencyKey": ""}, "VALIDATION", "idempotencyKey"),
        ({**base, "lines": [{"invoiceLineId": gid("InvoiceLine", paid.id)}]}, "NOT_FOUND", "lines.0.invoiceLineId"),
        ({**base, "lines": [{"invoiceLineId": "garbage"}]}, "NOT_FOUND", "lines.0.invoiceLineId"),
        ({**base, "invoiceId": gid("Invoice", void.id), "amount": "1"}, "INVALID_TRANSITION", "invoiceId"),
        ({**base, "invoiceId": gid("Invoice", draft.id), "amount": "1"}, "INVALID_TRANSITION", "invoiceId"),
        ({**base, "outcome": "REDUCE_AMOUNT_DUE", "amount": "1"}, "INVALID_TRANSITION", "outcome"),
        ({**base, "invoiceId": gid("Plan", paid.id), "amount": "1"}, "NOT_FOUND", "invoiceId"),
    ]
    for values, code, field in cases:
        result = await _create(api, keys, **values)
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)], values
        assert result["creditNote"] is None
    # An enum outside the list is refused by GraphQL itself; a card number where input enters.
    bad = await api.post(CREATE, {"input": {**base, "amount": "1", "reason": "BORED"}}, token=keys.super_admin)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    card = await api.post(CREATE, {"input": {**base, "amount": "1", "memo": "card 4242 4242 4242 4242"}},
                          token=keys.super_admin)
    assert card["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "input.memo"}
    assert await count_rows(db, CreditNote) == 0
    assert (await count_rows(db, AuditEvent), await count_rows(db, OutboxEvent)) == (audits, events)
    async with db.read() as session:
        assert (await session.get(Invoice, paid.id)).amount_credited == 0
        assert (await session.get(Invoice, other.id)).amount_credited == 0
        assert (await session.get(Organization, keys.organization_id)).credit_balance == 0


async def test_only_super_admins_credit(api, db, keys):
    invoice = await _paid_invoice(db, keys.organization_id)
    values = {"invoiceId": gid("Invoice", invoice.id), "amount": "1", "reason": "OTHER", "outcome": "CREDIT_BALANCE"}
    for token, code in ((keys.owner, "FORBIDDEN"), (keys.admin, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        result = await api.post(CREATE, {"input": values}, token=token)
        assert result["data"] == {"createCreditNote": None}
        assert result["errors"][0]["extensions"]["code"] == code
    assert await count_rows(db, CreditNote) == 0


async def test_credit_notes_listed_on_invoice_and_organization(api, db, keys):
    invoice = await _paid_invoice(db, keys.organization_id)
    for amount in ("1000", "2000", "3000"):
        await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount=amount, reason="OTHER",
                      outcome="CREDIT_BALANCE")
    await _create(api, keys, invoiceId=gid("Invoice", (await _paid_invoice(db, keys.other_organization_id)).id),
                  amount="5", reason="OTHER", outcome="CREDIT_BALANCE")
    query = """query($id: ID!) { invoice(id: $id) { creditNotes { total { amount } } }
      viewer { organization { creditNotes(first: 2) { edges { node { total { amount } invoice { id } } }
                                                      pageInfo { hasNextPage } } } } }"""
    data = await api.ok(query, {"id": gid("Invoice", invoice.id)}, token=keys.owner)
    assert [n["total"]["amount"] for n in data["invoice"]["creditNotes"]] == ["1000", "2000", "3000"]
    page = data["viewer"]["organization"]["creditNotes"]
    assert [e["node"]["total"]["amount"] for e in page["edges"]] == ["3000", "2000"]
    assert page["pageInfo"]["hasNextPage"] is True
    # A member does not see credit notes.
    member = await api.ok("{ viewer { organization { creditNotes { edges { node { id } } } } } }", token=keys.member)
    assert member["viewer"]["organization"]["creditNotes"] is None


async def test_twenty_racing_credit_notes_never_exceed_the_total(api, db, keys):
    """20 credit notes of 10,000 on a 111,000 invoice at once: 11 issued, 9 refused, gapless numbers."""
    invoice = await _paid_invoice(db, keys.organization_id)
    values = {"invoiceId": gid("Invoice", invoice.id), "amount": "10000", "reason": "OTHER",
              "outcome": "CREDIT_BALANCE"}
    results = await asyncio.gather(*(
        api.ok(CREATE, {"input": {**values, "idempotencyKey": f"race-{index}"}}, token=keys.super_admin)
        for index in range(20)))
    outcomes = [result["createCreditNote"] for result in results]
    issued = [o for o in outcomes if not o["errors"]]
    refused = [o for o in outcomes if o["errors"]]
    assert len(issued) == 11 and len(refused) == 9
    assert {e["code"] for o in refused for e in o["errors"]} == {"CREDIT_EXCEEDS_INVOICE"}
    numbers = sorted(int(o["creditNote"]["number"][-6:]) for o in issued)
    assert numbers == list(range(1, 12))
    async with db.read() as session:
        stored = await session.get(Invoice, invoice.id)
        notes = (await session.scalars(select(CreditNote))).all()
        organization = await session.get(Organization, keys.organization_id)
    assert stored.amount_credited == sum(note.total for note in notes) == 110_000 <= stored.total
    assert stored.tax_credited == sum(note.tax for note in notes) <= stored.tax
    assert organization.credit_balance == 110_000


async def test_no_reduction_while_a_payment_is_pending(api, db, keys):
    """A charge pending at the processor asked for the amount due as it was: no credit note lowers it meanwhile."""
    from billing_graphql.db.models import PaymentStatus

    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN)
    await make_payment(db, invoice, status=PaymentStatus.PENDING)
    result = await _create(api, keys, invoiceId=gid("Invoice", invoice.id), amount="1000", reason="OTHER",
                           outcome="REDUCE_AMOUNT_DUE")
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID_TRANSITION", "invoiceId")]
    assert await count_rows(db, CreditNote) == 0
