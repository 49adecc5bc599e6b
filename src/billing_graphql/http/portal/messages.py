"""What the portal says after an action: a notice or an error, each a sentence (the English
message id of the gettext catalogs), chosen by a fixed key in the redirect, so nothing a
request sends is reflected. ``error_key`` turns a service's ``BillingError`` into one."""

from __future__ import annotations

from billing_graphql.domain.errors import BillingError, BillingErrorCode


def N_(message: str) -> str:  # noqa: N802 - gettext's marker for extraction
    return message


NOTICES = {
    "plan-changed": N_("Your plan has been changed."),
    "change-scheduled": N_("The change will take effect at the end of the current period."),
    "addon-changed": N_("Your add-ons have been updated."),
    "coupon-applied": N_("The coupon has been applied; it takes effect on your next invoice."),
    "card-added": N_("Your card has been saved."),
    "card-replaced": N_("Your default card has been replaced."),
    "card-default": N_("This card is now your default card."),
    "card-removed": N_("The card has been removed."),
    "invoice-paid": N_("Thank you: the invoice has been paid."),
    "retried-paid": N_("Your card has been saved and your open invoice has been paid."),
    "retried-failed": N_("Your card has been saved, but paying your open invoice with it failed. Try another card."),
    "cancel-scheduled": N_("Your subscription will end at the end of the period."),
    "resumed": N_("Your subscription will renew as usual."),
    "details-saved": N_("Your billing details have been saved."),
}

ERRORS = {
    "csrf": N_("This form has expired; please try again."),
    "text": N_("A field held characters that cannot be accepted (control characters, or text that is not UTF-8); "
               "please type it again."),
    "form": N_("This form could not be read; please fill it in again."),
    "card": N_("A field looked like a payment card number. Never type a card number here: add your card with "
               "the card form of this page."),
    "declined-card_declined": N_("Your card was declined. Nothing was saved; please use another card."),
    "declined-insufficient_funds": N_("Your card has insufficient funds. Nothing was saved; please use another "
                                      "card."),
    "declined-expired_card": N_("Your card has expired. Nothing was saved; please use another card."),
    "payment-declined": N_("The payment was declined by your card's bank. Please try another card."),
    "payment-required": N_("There is no card to pay with. Please add a card first."),
    "card-token": N_("This card could not be read. Please enter it again."),
    "card-signature": N_("Razorpay's confirmation of this card could not be verified. Nothing was saved; please "
                         "add the card again."),
    "card-exists": N_("This card is already saved."),
    "card-in-use": N_("This card pays your subscription. Make another card the default first, then remove "
                      "this one."),
    "not-open": N_("This invoice no longer needs paying."),
    "tax-id": N_("An Indonesian tax number (NPWP) has 15 or 16 digits."),
    "tax-id-characters": N_("A tax number may hold only letters, digits, spaces and . - /"),
    "country": N_("Choose a country from the list."),
    "too-long": N_("A field is too long. Please shorten it."),
    "quote": N_("This preview is too old. Please preview the change again."),
    "coupon-invalid": N_("This coupon code is not valid."),
    "coupon-expired": N_("This coupon has expired."),
    "coupon-exhausted": N_("This coupon has been used up."),
    "coupon-not-applicable": N_("This coupon cannot be used on your subscription."),
    "coupon-empty": N_("Type a coupon code."),
    "same-plan": N_("You are already on this plan with this billing period."),
    "plan-unavailable": N_("This plan cannot be chosen for your subscription."),
    "no-subscription": N_("You have no subscription to change."),
    "canceled": N_("The subscription has already ended."),
    "not-pending": N_("The subscription is not set to end; there is nothing to resume."),
    "confirm": N_("Tick the box to confirm the cancellation."),
    "owners-only": N_("Only the organization's owners can change the billing details."),
    "not-found": N_("What you asked for was not found. Please reload the page."),
    "busy": N_("Another change is in progress. Please try again in a moment."),
    "failed": N_("That could not be done. Please try again, or contact us if it keeps happening."),
}

_BY_CODE = {
    BillingErrorCode.PAYMENT_REQUIRED: "payment-required",
    BillingErrorCode.PAYMENT_FAILED: "payment-declined",
    BillingErrorCode.COUPON_INVALID: "coupon-invalid",
    BillingErrorCode.COUPON_EXPIRED: "coupon-expired",
    BillingErrorCode.COUPON_EXHAUSTED: "coupon-exhausted",
    BillingErrorCode.COUPON_NOT_APPLICABLE: "coupon-not-applicable",
    BillingErrorCode.SAME_PLAN: "same-plan",
    BillingErrorCode.PLAN_NOT_AVAILABLE: "plan-unavailable",
    BillingErrorCode.PLAN_NOT_FOUND: "not-found",
    BillingErrorCode.ADDON_NOT_FOUND: "not-found",
    BillingErrorCode.NOT_FOUND: "not-found",
    BillingErrorCode.NO_SUBSCRIPTION: "no-subscription",
    BillingErrorCode.SUBSCRIPTION_CANCELED: "canceled",
    BillingErrorCode.NOT_PENDING_CANCELLATION: "not-pending",
    BillingErrorCode.ALREADY_EXISTS: "card-exists",
    BillingErrorCode.IDEMPOTENCY_KEY_REUSED: "busy",
    BillingErrorCode.INVALID_SIGNATURE: "card-signature",
}

_BY_FIELD = {
    "taxId": "tax-id",
    "country": "country",
    "prorationDate": "quote",
    "couponCode": "coupon-empty",
    "gatewayPaymentMethodId": "card-token",
    "signature": "card-signature",
    "invoiceId": "not-open",
    "id": "card-in-use",
}


def error_key(error: BillingError) -> str:
    """The portal's sentence for a service's refusal (its key in ``ERRORS``)."""
    decline = error.details.get("decline_code")
    if decline is not None and f"declined-{decline}" in ERRORS:
        return f"declined-{decline}"
    if error.code is BillingErrorCode.VALIDATION:
        if error.field == "taxId" and "letters" in error.message:
            return "tax-id-characters"
        if "At most" in error.message or "at most" in error.message:
            return "too-long"
        return _BY_FIELD.get(error.field or "", "failed")
    return _BY_CODE.get(error.code, "failed")
