"""The SQL forms of the invoice types, for the compiled path's SQL plans (``graphql.compiled.sql``).

Each entry gives, for a field of the GraphQL type of the same name (``billing.types``), the SQL
expression of its JSON value; the differential test (``tests/perf/test_compiled_path.py``) holds the
two to the same bytes. A field missing here keeps a document on the Python plan.
"""

from __future__ import annotations

from typing import Any

from billing_graphql.graphql.billing.invoices import invoice_page_request
from billing_graphql.graphql.common import Money
from billing_graphql.graphql.compiled.sql import Children, Nested, SqlRoot, SqlType
from billing_graphql.graphql.scalars import _serialize_decimal


def column(name: str):
    return lambda sql, row, *parents: f"{row}.{name}"


def instant(name: str):
    return lambda sql, row, *parents: sql.datetime(f"{row}.{name}")


def global_id(type_name: str):
    return lambda sql, row, *parents: sql.global_id(type_name, f"{row}.id")


def money(minor: str, currency: str = "currency") -> Nested:
    """Money of a minor-unit column in the row's currency column."""
    return Nested(MONEY, lambda sql, row, *parents: (f"{row}.{minor}", f"{row}.{currency}"))


def money_fields(minor: int, currency: str) -> dict[str, str]:
    """Money's fields as the type serialises them (``common.Money.of``); the plan caches the selection
    of them per amount and currency."""
    money = Money.of(minor, currency)
    return {"amount": _serialize_decimal(money.amount), "currency": currency, "formatted": money.formatted}


# SQL gives the minor amount and the currency; Python formats them (cached: a page repeats amounts).
MONEY = SqlType("Money", dict.fromkeys(("amount", "currency", "formatted")), finish=money_fields)

# Lines carry no currency: the invoice's (``InvoiceLineType.from_row(line, invoice.currency)``).
INVOICE_LINE = SqlType("InvoiceLine", {
    "id": global_id("InvoiceLine"),
    "kind": column("kind"),
    "description": column("description"),
    "quantity": lambda sql, row, invoice: sql.decimal(f"{row}.quantity"),
    "unitAmount": Nested(MONEY, lambda sql, row, invoice: (sql.rounded(f"{row}.unit_amount"), f"{invoice}.currency")),
    "amount": Nested(MONEY, lambda sql, row, invoice: (f"{row}.amount", f"{invoice}.currency")),
    "periodStart": instant("period_start"),
    "periodEnd": instant("period_end"),
})

PAYMENT = SqlType("Payment", {
    "id": global_id("Payment"),
    "amount": money("amount"),
    "amountRefunded": money("amount_refunded"),
    "status": column("status"),
    "gateway": column("gateway"),
    "gatewayPaymentId": column("gateway_payment_id"),
    "failureCode": column("failure_code"),
    "failureMessage": column("failure_message"),
    "createdAt": instant("created_at"),
})

REFUND = SqlType("Refund", {
    "id": global_id("Refund"),
    "amount": money("amount"),
    "status": column("status"),  # RefundStatus names the payment statuses it shows
    "reason": column("reason"),
    "createdAt": instant("created_at"),
})


def _tax_base(sql: Any, row: str, *parents: str) -> str:
    numerator, denominator = sql.to_text(f"{row}.tax_base_numerator"), sql.to_text(f"{row}.tax_base_denominator")
    return f"CASE WHEN {row}.tax_name IS NULL THEN NULL ELSE {numerator} || '/' || {denominator} END"


INVOICE = SqlType("Invoice", {
    "id": global_id("Invoice"),
    "invoiceNumber": column("number"),
    "currency": column("currency"),
    "status": column("status"),
    "billingReason": column("billing_reason"),
    "subtotal": money("subtotal"),
    "discount": money("discount"),
    "creditApplied": money("credit_applied"),
    "tax": money("tax"),
    "taxName": column("tax_name"),
    "taxRate": lambda sql, row, *parents: sql.decimal(f"{row}.tax_rate"),
    "taxBase": _tax_base,
    "total": money("total"),
    "amountPaid": money("amount_paid"),
    "amountRefunded": money("amount_refunded"),
    "amountCredited": money("amount_credited"),
    "voidedAt": instant("voided_at"),
    "markedUncollectibleAt": instant("marked_uncollectible_at"),
    # services.billing.invoicing.amount_due: total - credit applied - amount paid - credited against due
    "amountDue": Nested(MONEY, lambda sql, row, *parents: (
        f"({row}.total - {row}.credit_applied - {row}.amount_paid - {row}.credited_against_due)", f"{row}.currency")),
    "retryCount": column("retry_count"),
    "lastRetryAt": instant("last_retry_at"),
    "createdAt": instant("created_at"),
    "finalizedAt": instant("finalized_at"),
    "paidAt": instant("paid_at"),
    "dueDate": instant("due_date"),
    "periodStart": instant("period_start"),
    "periodEnd": instant("period_end"),
    "gatewayInvoiceId": column("gateway_invoice_id"),
    "paymentUrl": column("payment_url"),
    "pdfUrl": lambda sql, row, *parents: f":public_url || '/invoices/' || {sql.uuid_text(f'{row}.id')} || '.pdf'",
    "lines": Children(INVOICE_LINE, "invoice_lines", "invoice_id", "position"),
    "payments": Children(PAYMENT, "payments", "invoice_id", "created_at, id"),
    "refunds": Children(REFUND, "refunds", "invoice_id", "created_at, id"),
})


def _invoices_page(context: Any, status: Any = None, organization_id: str | None = None, first: int | None = 10,
                   after: str | None = None) -> tuple[dict[str, Any], int, int] | None:
    request = invoice_page_request(context.actor, organization_id, first, after)
    if request is None:
        return None
    scope, size, offset = request
    where: dict[str, Any] = {}
    if scope is not None:
        where["organization_id"] = scope
    if status is not None:
        where["status"] = status.name
    return where, size, offset


ROOTS = {
    "invoices": SqlRoot(node=INVOICE, table="invoices", order_by="created_at DESC, number DESC, id DESC",
                        page=_invoices_page),
}
