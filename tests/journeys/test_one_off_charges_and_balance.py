"""Journey 8 (issue 21): one-off charges and the account balance over three months.

A pending invoice item rides on the February renewal; a mid-February downgrade's credit lands in
the balance, staff adjust it up and down, and the March renewal spends it; one-off invoices are
sent and charged; the subscription is canceled mid-March with proration, its unused part credited
back to the balance by a credit note. After every step the laws hold, among them: the balance is
the sum of its ledger (`creditBalanceTransactions`) and the MRR identity. The MRR counts recurring
prices only: one-off charges never move it.

Pro Rp 500,000, Lite Rp 200,000 a month, no trial; periods from Jan 1 2027.
"""

from __future__ import annotations

from fractions import Fraction

from tests.journeys.laws import ERRORS, INVOICE, MONEY, amount
from tests.journeys.steps import CHANGE_PLAN, SUBSCRIBE, billed, card, figures, lines, plan, prorate, tax

CREATE_ITEM = f"""mutation($i: CreateInvoiceItemInput!) {{ createInvoiceItem(input: $i) {{
  invoiceItem {{ id status total {MONEY} }} {ERRORS} }} }}"""
DELETE_ITEM = f"""mutation($i: DeleteInvoiceItemInput!) {{ deleteInvoiceItem(input: $i) {{
  deletedInvoiceItemId {ERRORS} }} }}"""
ADJUST = f"""mutation($i: AdjustCreditBalanceInput!) {{ adjustCreditBalance(input: $i) {{
  transaction {{ amount {MONEY} balanceAfter {MONEY} source }} {ERRORS} }} }}"""
ONE_OFF = f"""mutation($i: CreateOneOffInvoiceInput!) {{ createOneOffInvoice(input: $i) {{
  invoice {{ {INVOICE} dueDate billingReason }} {ERRORS} }} }}"""
UPCOMING = """query($org: ID) { subscription(organizationId: $org) { upcomingInvoice {
  lines { kind description quantity amount { amount } } total { amount } } } }"""
LEDGER = """query($org: ID!) { organization(id: $org) { creditBalanceTransactions(first: 20) {
  edges { node { amount { amount } balanceAfter { amount } source reason } } } } }"""
CANCEL_PRORATED = f"""mutation($i: CancelInput!) {{ cancel(input: $i) {{ subscription {{ status }}
  creditNotes {{ outcome total {MONEY} tax {MONEY} }} {ERRORS} }} }}"""


async def test_items_on_the_renewal_credit_in_and_out_of_the_balance_one_offs_and_a_prorated_cancel(ledger):
    await ledger.begin("2027-01-01T00:00:00Z")
    shop = await ledger.tenant("Ledger Co", "ledger-co")
    pro = await plan(ledger, "pro", 500000, trialDays=0)
    lite = await plan(ledger, "lite", 200000, trialDays=0)
    await card(ledger, shop)
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": pro}}, token=shop.owner)
    assert figures(subscribed["invoice"]) == billed(500000)
    await ledger.check("subscribed to Pro", mrr=500000, events={
        "organization.created": 1, "plan.created": 2, "payment_method.added": 1,
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Jan 10: a setup fee waits for the next invoice; a second item is added, then deleted.
    await ledger.at("2027-01-10T00:00:00Z")
    setup = await ledger.mutate(CREATE_ITEM, {"i": {"organizationId": shop.id, "description": "Setup fee",
                                                    "amount": "1000000", "idempotencyKey": "setup"}})
    assert setup["invoiceItem"]["status"] == "PENDING"
    training = await ledger.mutate(CREATE_ITEM, {"i": {"organizationId": shop.id, "description": "Training",
                                                       "amount": "250000", "quantity": 2}})
    await ledger.mutate(DELETE_ITEM, {"i": {"id": training["invoiceItem"]["id"]}})
    upcoming = (await ledger.gql(UPCOMING, {"org": shop.id}))["subscription"]["upcomingInvoice"]
    assert [(line["kind"], line["description"]) for line in upcoming["lines"]][1:] == [("ONE_OFF", "Setup fee")]
    assert amount(upcoming["total"]) == 1665000
    await ledger.check("a pending item", mrr=500000, events={"invoice_item.created": 2})

    # Feb 1: the renewal bills the plan and the setup fee, PPN on both.
    await ledger.at("2027-02-01T00:00:00Z")
    february = (await ledger.invoices(shop))[-1]
    assert lines(february) == [("PLAN", "1", 500000), ("ONE_OFF", "1", 1000000)]
    assert figures(february) == billed(1500000) and february["total"]["amount"] == "1665000"
    await ledger.check("renewed with the setup fee", mrr=500000, events={"invoice.created": 1, "invoice.paid": 1})

    # Feb 15: half of February's 28 days left: down to Lite now; the net credit, tax included,
    # goes to the balance (a DOWNGRADE entry).
    await ledger.at("2027-02-15T00:00:00Z")
    downgraded = await ledger.mutate(CHANGE_PLAN, {"i": {"planId": lite}}, token=shop.owner)
    net = prorate(200000, Fraction(1, 2)) - prorate(500000, Fraction(1, 2))
    credit = -(net + tax(net))
    assert credit == 166500 and downgraded["creditAdded"]["amount"] == str(credit)
    ledger.credit[shop.id] += credit
    await ledger.check("downgraded, credit in the balance", mrr=200000, events={"subscription.updated": 1})

    # Feb 20: staff add goodwill and correct it (ADJUSTMENT entries).
    await ledger.at("2027-02-20T00:00:00Z")
    up = await ledger.mutate(ADJUST, {"i": {"organizationId": shop.id, "amount": "50000", "currency": "IDR",
                                            "reason": "goodwill: the February outage"}})
    assert up["transaction"]["balanceAfter"]["amount"] == "216500"
    down = await ledger.mutate(ADJUST, {"i": {"organizationId": shop.id, "amount": "-16500", "currency": "IDR",
                                              "reason": "correction"}})
    assert down["transaction"]["balanceAfter"]["amount"] == "200000"
    ledger.credit[shop.id] += 50000 - 16500
    await ledger.check("balance adjusted", mrr=200000, events={})

    # Mar 1: Lite's renewal spends the balance first (an INVOICE_APPLIED entry).
    await ledger.at("2027-03-01T00:00:00Z")
    march = (await ledger.invoices(shop))[-1]
    assert lines(march) == [("PLAN", "1", 200000)] and figures(march) == billed(200000, credit=200000)
    ledger.credit[shop.id] -= 200000
    await ledger.check("balance spent on the renewal", mrr=200000, events={"invoice.created": 1, "invoice.paid": 1})
    entries = [edge["node"] for edge in (await ledger.gql(LEDGER, {"org": shop.id}))["organization"][
        "creditBalanceTransactions"]["edges"]]
    assert [(e["source"], e["amount"]["amount"], e["balanceAfter"]["amount"]) for e in entries] == [
        ("INVOICE_APPLIED", "-200000", "0"), ("ADJUSTMENT", "-16500", "200000"), ("ADJUSTMENT", "50000", "216500"),
        ("DOWNGRADE", "166500", "166500")]

    # Mar 2: a one-off invoice sent (OPEN, due in 14 days), another charged now.
    await ledger.at("2027-03-02T00:00:00Z")
    sent = (await ledger.mutate(ONE_OFF, {"i": {"organizationId": shop.id, "collect": "SEND", "daysUntilDue": 14,
                                                "items": [{"description": "Consulting", "amount": "300000"}]}}))[
        "invoice"]
    assert (sent["status"], sent["billingReason"], sent["dueDate"]) == ("OPEN", "MANUAL", "2027-03-16T00:00:00Z")
    assert figures(sent) == billed(300000, paid=False)
    charged = (await ledger.mutate(ONE_OFF, {"i": {"organizationId": shop.id, "items": [
        {"description": "Hardware", "amount": "100000", "quantity": 3}]}}))["invoice"]
    assert charged["status"] == "PAID" and figures(charged) == billed(300000)
    await ledger.check("one-off invoices", mrr=200000, events={"invoice.created": 2, "invoice.paid": 1})

    # Mar 16: canceled now with proration: 16 of March's 31 days unused, credited to the balance
    # by a credit note on March's invoice.
    await ledger.at("2027-03-16T00:00:00Z")
    canceled = await ledger.mutate(CANCEL_PRORATED, {"i": {"immediately": True, "prorate": True}}, token=shop.owner)
    unused = prorate(200000, Fraction(16, 31))
    (note,) = canceled["creditNotes"]
    assert (note["outcome"], amount(note["total"])) == ("CREDIT_BALANCE", unused + tax(unused))
    assert canceled["subscription"]["status"] == "CANCELED"
    ledger.credit[shop.id] += unused + tax(unused)
    await ledger.check("canceled with proration", mrr=0, events={"credit_note.created": 1,
                                                                "subscription.canceled": 1})

    # Apr 1: nothing renews; the sent invoice is still open (no dunning for it).
    await ledger.at("2027-04-01T00:00:00Z")
    await ledger.check("nothing renews", mrr=0, events={})
    assert [invoice["status"] for invoice in await ledger.invoices(shop)].count("OPEN") == 1
    ledger.check_event_shapes()
