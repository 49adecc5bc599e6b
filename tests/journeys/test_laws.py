"""The laws helper can fail: each law refuses a state that breaks it (no database needed)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import pytest

from tests.journeys.laws import Ledger
from tests.journeys.steps import billed, prorate, tax


def money(value: int) -> dict:
    return {"amount": str(value), "currency": "IDR"}


def invoice(**changes: int) -> dict:
    figures = {**billed(100000), **changes}
    node = {key: money(value) for key, value in figures.items()}
    node.update(invoiceNumber="INV-202704-000001", id="x", amountRefunded=money(0),
                lines=[{"kind": "PLAN", "quantity": "1", "amount": money(figures["subtotal"])}],
                payments=[{"amount": money(figures["amountPaid"]), "amountRefunded": money(0), "status": "SUCCEEDED",
                           "createdAt": "2027-04-01T00:00:00Z"}])
    return node


def month(name: str, mrr: int, new: int = 0, expansion: int = 0, contraction: int = 0, churned: int = 0,
          net: int = 0) -> dict:
    return {"month": name, "mrr": money(mrr), "newMrr": money(new), "expansionMrr": money(expansion),
            "contractionMrr": money(contraction), "churnedMrr": money(churned), "netRevenue": money(net)}


def test_hand_arithmetic():
    assert (tax(300000), tax(-50000), tax(1)) == (33000, -5500, 0)  # 11% effective, half up
    assert billed(500000, discount=100000) == {"subtotal": 500000, "discount": 100000, "tax": 44000, "total": 444000,
                                               "creditApplied": 0, "amountPaid": 444000, "amountDue": 0}
    from fractions import Fraction
    assert prorate(1000000, Fraction(2, 5)) == 400000 and prorate(3, Fraction(1, 2)) == 2  # 1.5 rounds up


def test_invoice_law_refuses_wrong_totals_and_amounts_due():
    Ledger._invoice_law("ok", invoice())
    with pytest.raises(AssertionError, match="total"):
        Ledger._invoice_law("bad total", invoice(total=111001))
    with pytest.raises(AssertionError, match="amount due"):
        Ledger._invoice_law("bad due", invoice(amountDue=5))
    with pytest.raises(AssertionError, match="succeeded payments"):
        Ledger._invoice_law("paid without payment", {**invoice(), "payments": []})


def test_revenue_law_and_mrr_identity_refuse_what_does_not_add_up():
    report = {"mrr": money(300000), "months": [month("2027-03", 0), month("2027-04", 300000, new=300000, net=111000)]}
    Ledger._revenue_law("ok", [invoice()], report)
    Ledger._mrr_identity("ok", report)
    with pytest.raises(AssertionError, match="net revenue"):
        Ledger._revenue_law("missing payment", [invoice(), invoice()], report)
    broken = {"mrr": money(300000), "months": [month("2027-03", 0), month("2027-04", 300000, new=200000)]}
    with pytest.raises(AssertionError, match="MRR 300000 != 0 \\+ 200000"):
        Ledger._mrr_identity("lost expansion", broken)
    with pytest.raises(AssertionError, match="MRR now"):
        Ledger._mrr_identity("now", {**report, "mrr": money(1)})


def test_seat_law_refuses_two_truths():
    subscription = {"agentCount": 4, "plan": {"includedAgents": 2},
                    "upcomingInvoice": {"lines": [{"kind": "SEATS", "quantity": "2"}]}}
    Ledger._seat_law("ok", subscription, {"agentCount": 4})
    with pytest.raises(AssertionError, match="agentCount"):
        Ledger._seat_law("two counts", {**subscription, "agentCount": 1}, {"agentCount": 4})
    with pytest.raises(AssertionError, match="SEATS"):
        Ledger._seat_law("seats billed", {**subscription, "agentCount": 5}, {"agentCount": 5})


@dataclass
class Received:
    payload: dict


@dataclass
class FakeReceiver:
    received: list


def test_event_shapes_refuse_the_database_dialect():
    good_id = base64.b64encode(f"Invoice:{uuid.uuid4()}".encode()).decode()
    good = {"type": "invoice.paid", "data": {"object": {"id": good_id, "amountDue": money(0), "total": money(1),
                                                        "subtotal": money(1), "tax": money(0)}}}
    ledger = Ledger(api=None, db=None, staff="", receiver=FakeReceiver([Received(good)]))
    ledger.check_event_shapes()
    for bad in ({"type": "invoice.paid", "data": {"id": str(uuid.uuid4()), "amount_due": 0}},
                {"type": "invoice.paid", "data": {"object": {**good["data"]["object"], "amount_due": 0}}},
                {"type": "invoice.paid", "data": {"object": {**good["data"]["object"], "total": 1}}},
                {"type": "subscription.updated", "data": {"object": {"id": good_id}}}):
        ledger.receiver = FakeReceiver([Received(bad)])
        with pytest.raises(AssertionError, match="dialect"):
            ledger.check_event_shapes()
