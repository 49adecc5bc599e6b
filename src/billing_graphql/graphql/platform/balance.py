"""The account balance's ledger as the API shows it: ``Organization.creditBalanceTransactions``."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from billing_graphql.db.models import CreditBalanceTransaction as TransactionRow
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.graphql.columns import Form, columns, global_id, money
from billing_graphql.graphql.common import Money, from_row

CreditBalanceTransactionSource = strawberry.enum(
    CreditSource, name="CreditBalanceTransactionSource",
    description="Why the balance moved: DOWNGRADE (a change handed back the unused part), CREDIT_NOTE (a credit "
                "note to the balance), ADJUSTMENT (staff, adjustCreditBalance), INVOICE_APPLIED (spent on an "
                "invoice, negative; given back when that invoice is voided, positive).")


@strawberry.type(name="CreditBalanceTransaction",
                 description="One change of the account balance; the balance is the sum of them.")
class CreditBalanceTransactionType:
    id: strawberry.ID
    amount: Money = strawberry.field(description="Positive: credit added; negative: credit spent or taken back.")
    balance_after: Money
    reason: str
    source: CreditBalanceTransactionSource
    invoice_id: strawberry.ID | None = strawberry.field(
        description="The invoice the credit was applied to (INVOICE_APPLIED), if any.")
    created_at: datetime

    @classmethod
    def from_row(cls, row: TransactionRow) -> CreditBalanceTransactionType:
        return from_row(cls, row)


columns(
    CreditBalanceTransactionType, TransactionRow,
    id=global_id("CreditBalanceTransaction"),
    amount=money("amount"), balance_after=money("balance_after"),
    invoice_id=Form(
        lambda row: strawberry.ID(relay.to_base64("Invoice", row.invoice_id)) if row.invoice_id else None,
        lambda sql, row, *parents: (f"CASE WHEN {row}.invoice_id IS NULL THEN NULL "
                                    f"ELSE {sql.global_id('Invoice', f'{row}.invoice_id')} END")),
)


@strawberry.type
class CreditBalanceTransactionConnection(relay.Connection[CreditBalanceTransactionType]):
    """The account balance's ledger, newest first, paged."""
