"""The account balance over GraphQL (issue 21): adjustCreditBalance and
Organization.creditBalanceTransactions, on both databases. The balance is the sum of its ledger
after every call, a refused call writes nothing, and the database itself refuses a balance moved
without its ledger entry."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from billing_graphql.db.models import AuditEvent, CreditBalanceTransaction, Organization
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.services.billing.credit import add_account_credit
from tests.factories import count_rows, database_state
from tests.helpers import T0

ADJUST = """mutation($i: AdjustCreditBalanceInput!) { adjustCreditBalance(input: $i) {
  organization { creditBalance { amount currency } }
  transaction { id amount { amount currency } balanceAfter { amount } reason source createdAt }
  errors { code message field } } }"""
LEDGER = """query($org: ID!, $after: String) { organization(id: $org) { creditBalance { amount currency }
  creditBalanceTransactions(first: 2, after: $after) { edges { node { amount { amount } balanceAfter { amount }
  reason source } } pageInfo { hasNextPage endCursor } } } }"""
OWN_LEDGER = """{ viewer { organization { creditBalance { amount }
  creditBalanceTransactions { edges { node { amount { amount } source } } } } } }"""


async def ledger_of(api, keys) -> tuple[Decimal, list[dict]]:
    """The balance and every entry of the ledger, newest first, page by page."""
    entries, after = [], None
    while True:
        organization = (await api.ok(LEDGER, {"org": keys.organization_gid, "after": after},
                                     token=keys.super_admin))["organization"]
        connection = organization["creditBalanceTransactions"]
        entries += [edge["node"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            return Decimal(organization["creditBalance"]["amount"]), entries
        after = connection["pageInfo"]["endCursor"]


async def assert_balance_is_its_ledger(api, keys) -> Decimal:
    balance, entries = await ledger_of(api, keys)
    assert balance == sum((Decimal(entry["amount"]["amount"]) for entry in entries), Decimal(0))
    if entries:
        assert Decimal(entries[0]["balanceAfter"]["amount"]) == balance
    return balance


def adjust(keys, amount: str, reason: str = "goodwill", currency: str = "IDR", key: str | None = None) -> dict:
    values = {"organizationId": keys.organization_gid, "amount": amount, "currency": currency, "reason": reason}
    if key is not None:
        values["idempotencyKey"] = key
    return {"i": values}


async def test_credit_then_debit_each_entry_in_the_ledger(api, db, keys):
    credited = (await api.ok(ADJUST, adjust(keys, "50000", "goodwill for the outage"), token=keys.super_admin)
                )["adjustCreditBalance"]
    assert credited["errors"] == []
    assert credited["organization"]["creditBalance"] == {"amount": "50000", "currency": "IDR"}
    entry = credited["transaction"]
    assert (entry["amount"], entry["balanceAfter"], entry["reason"], entry["source"]) == (
        {"amount": "50000", "currency": "IDR"}, {"amount": "50000"}, "goodwill for the outage", "ADJUSTMENT")
    assert entry["createdAt"].endswith("Z")
    debited = (await api.ok(ADJUST, adjust(keys, "-20000", "correction"), token=keys.super_admin))["adjustCreditBalance"]
    assert debited["organization"]["creditBalance"]["amount"] == "30000"
    assert debited["transaction"]["balanceAfter"] == {"amount": "30000"}
    await api.ok(ADJUST, adjust(keys, "-30000", "all of it"), token=keys.super_admin)
    balance, entries = await ledger_of(api, keys)
    assert balance == 0
    assert [(e["amount"]["amount"], e["balanceAfter"]["amount"], e["source"]) for e in entries] == [
        ("-30000", "0", "ADJUSTMENT"), ("-20000", "30000", "ADJUSTMENT"), ("50000", "50000", "ADJUSTMENT")]
    await assert_balance_is_its_ledger(api, keys)
    assert await count_rows(db, AuditEvent, AuditEvent.action == "credit_balance.adjusted") == 3
    # The tenant reads its own ledger (newest first); another organization's is not shown to it.
    own = (await api.ok(OWN_LEDGER, token=keys.owner))["viewer"]["organization"]
    assert [edge["node"]["amount"]["amount"] for edge in own["creditBalanceTransactions"]["edges"]] == [
        "-30000", "-20000", "50000"]
    other = (await api.ok(OWN_LEDGER, token=keys.other_owner))["viewer"]["organization"]
    assert other["creditBalanceTransactions"]["edges"] == []


async def test_a_replay_is_the_same_entry_and_another_input_is_refused(api, db, keys):
    first = (await api.ok(ADJUST, adjust(keys, "10000", key="adj-1"), token=keys.super_admin))["adjustCreditBalance"]
    again = (await api.ok(ADJUST, adjust(keys, "10000", key="adj-1"), token=keys.super_admin))["adjustCreditBalance"]
    assert again["transaction"] == first["transaction"] and again["errors"] == []
    assert again["organization"]["creditBalance"]["amount"] == "10000"  # not credited twice
    assert await count_rows(db, CreditBalanceTransaction) == 1
    other = (await api.ok(ADJUST, adjust(keys, "20000", key="adj-1"), token=keys.super_admin))["adjustCreditBalance"]
    assert [(e["code"], e["field"]) for e in other["errors"]] == [("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")]
    assert other["transaction"] is None
    assert await count_rows(db, CreditBalanceTransaction) == 1
    assert await assert_balance_is_its_ledger(api, keys) == 10000


@pytest.mark.parametrize(("amount", "currency", "reason", "field"), [
    ("0", "IDR", "nothing", "amount"),
    ("-1", "IDR", "below zero", "amount"),  # the balance is 0
    ("1.5", "IDR", "rupiah have no cents", "amount"),
    ("100", "XXX", "unknown currency", "currency"),
    ("100", "USD", "not the balance's currency", "currency"),
    ("100", "IDR", "   ", "reason"),
    ("100", "IDR", "x" * 501, "reason"),
])
async def test_bad_input_is_refused_with_nothing_written(api, db, keys, amount, currency, reason, field):
    before = await database_state(db, exclude=("api_keys",))
    payload = (await api.ok(ADJUST, adjust(keys, amount, reason, currency, key="bad-1"), token=keys.super_admin)
               )["adjustCreditBalance"]
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("VALIDATION", field)], payload
    assert payload["transaction"] is None
    assert await database_state(db, exclude=("api_keys",)) == before


async def test_a_debit_never_takes_the_balance_below_zero(api, db, keys):
    await api.ok(ADJUST, adjust(keys, "500"), token=keys.super_admin)
    before = await database_state(db, exclude=("api_keys",))
    payload = (await api.ok(ADJUST, adjust(keys, "-501"), token=keys.super_admin))["adjustCreditBalance"]
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("VALIDATION", "amount")]
    assert "Rp 500" in payload["errors"][0]["message"]
    assert await database_state(db, exclude=("api_keys",)) == before
    ok = (await api.ok(ADJUST, adjust(keys, "-500"), token=keys.super_admin))["adjustCreditBalance"]
    assert ok["organization"]["creditBalance"]["amount"] == "0"
    # At zero, the balance may start in another currency only as the organization's (IDR here).
    payload = (await api.ok(ADJUST, adjust(keys, "5", currency="USD"), token=keys.super_admin))["adjustCreditBalance"]
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("VALIDATION", "currency")]


async def test_tenants_may_not_adjust(api, keys):
    for token in (keys.owner, keys.admin, keys.member):
        result = await api.post(ADJUST, adjust(keys, "1000"), token=token)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# ---- the database keeps the balance and its ledger together -----------------------------------

async def test_a_balance_moved_without_its_entry_breaks_the_next_entry(db, keys):
    """The chain: an entry starts from the previous entry's balance_after (a foreign key), so a
    balance changed behind the ledger's back cannot be followed by any entry."""
    async with db.write() as session:
        organization = await session.get(Organization, keys.organization_id)
        add_account_credit(organization, 1000, "IDR", source=CreditSource.ADJUSTMENT, reason="start", now=T0)
    async with db.write() as session:  # behind the ledger's back
        await session.execute(update(Organization).where(Organization.id == keys.organization_id)
                              .values(credit_balance=5000))
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            organization = await session.get(Organization, keys.organization_id)
            add_account_credit(organization, 1000, "IDR", source=CreditSource.ADJUSTMENT, reason="next", now=T0)


async def test_the_database_refuses_an_entry_that_does_not_add_up_or_goes_below_zero(db, keys):
    async with db.write() as session:
        organization = await session.get(Organization, keys.organization_id)
        add_account_credit(organization, 1000, "IDR", source=CreditSource.ADJUSTMENT, reason="start", now=T0)
    async with db.read() as session:
        first = await session.scalar(select(CreditBalanceTransaction))
    bad_rows = [
        dict(sequence=2, previous_sequence=1, amount=500, balance_before=1000, balance_after=1600),  # not 1500
        dict(sequence=2, previous_sequence=1, amount=-2000, balance_before=1000, balance_after=-1000),  # below 0
        dict(sequence=2, previous_sequence=1, amount=500, balance_before=900, balance_after=1400),  # not the chain
        dict(sequence=1, previous_sequence=None, amount=500, balance_before=0, balance_after=500),  # a fork
        dict(sequence=3, previous_sequence=1, amount=500, balance_before=1000, balance_after=1500),  # a gap
        dict(sequence=2, previous_sequence=1, amount=0, balance_before=1000, balance_after=1000),  # no move
    ]
    for values in bad_rows:
        with pytest.raises(IntegrityError):
            async with db.write() as session:
                session.add(CreditBalanceTransaction(organization_id=first.organization_id, currency="IDR",
                                                     source=CreditSource.ADJUSTMENT, reason="bad", created_at=T0,
                                                     **values))
    # An organization holding credit has a ledger: a balance with no entry at all is refused.
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            await session.execute(text("UPDATE organizations SET credit_balance = 10, credit_sequence = 0 "
                                       "WHERE id = :id").bindparams(id=keys.other_organization_id.hex
                                                                    if db.is_sqlite else keys.other_organization_id))


async def test_racing_debits_never_take_the_balance_below_zero(api, db, keys):
    """Ten debits of 100 race on a balance of 500: the organization's lock serializes them, five
    pass, five are refused, and the ledger still sums to the balance (0)."""
    import asyncio

    await api.ok(ADJUST, adjust(keys, "500"), token=keys.super_admin)
    results = await asyncio.gather(*[
        api.ok(ADJUST, adjust(keys, "-100", f"race {n}", key=f"race-{n}"), token=keys.super_admin) for n in range(10)])
    outcomes = [[error["code"] for error in result["adjustCreditBalance"]["errors"]] for result in results]
    assert sorted(outcomes) == [[]] * 5 + [["VALIDATION"]] * 5
    assert await assert_balance_is_its_ledger(api, keys) == 0
    assert await count_rows(db, CreditBalanceTransaction) == 6
