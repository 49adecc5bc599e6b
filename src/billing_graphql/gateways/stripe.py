"""Stripe behind the gateway protocol, through the official ``stripe`` library's async client
(``StripeClient`` with ``*_async`` calls over httpx).

- Customers: one per organization, ``POST /v1/customers`` with the organization id in the
  metadata and a Stripe ``Idempotency-Key`` derived from it (two racing first needs make one).
- Charges (renewals, plan changes, ``payInvoice``, dunning): an off-session PaymentIntent,
  ``confirm=true``, for the amount in Stripe's units of the currency, with Stripe's
  ``Idempotency-Key`` set to our idempotency key: a retry after a timeout gets the first
  attempt's answer back from Stripe instead of a second charge. Outcomes:
  ``succeeded`` is SUCCEEDED; a card error (HTTP 402) is DECLINED with Stripe's decline code in
  the message, except ``authentication_required``, which is ACTION_REQUIRED, as is a
  PaymentIntent left ``requires_action`` (3-D Secure): the customer must confirm it on-session.
  ``processing`` and every transport or API fault are a ``GatewayError`` (outcome unknown: the
  payment stays PENDING and is reconciled with the same key, or settled by the webhook).
- Refunds: ``POST /v1/refunds`` for the PaymentIntent (or charge), full or partial, with the
  refund's idempotency key as Stripe's ``Idempotency-Key``.
- Webhooks: ``Stripe-Signature`` checked by ``stripe.Webhook.construct_event`` with the webhook
  secret and a 300 s tolerance.

Stripe counts IDR in hundredths (ISO 4217's exponent 2); we keep whole rupiah, so IDR amounts are
multiplied by 100 on the way out. Three-decimal currencies must end in 0 for Stripe.
Card numbers never pass through here: the SPA hands Stripe.js the card and us a ``pm_...`` id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from billing_graphql.domain.money import exponent
from billing_graphql.gateways.base import ChargeOutcome, ChargeResult, GatewayError, Order, RefundResult, SavedMethod

DEFAULT_TIMEOUT_SECONDS = 15.0
WEBHOOK_TOLERANCE_SECONDS = 300
STRIPE_EXPONENTS = {"IDR": 2}  # where Stripe's unit differs from ours
ACTION_CODES = frozenset({"authentication_required"})


def to_stripe_units(amount: int, currency: str) -> int:
    """Our integer minor units as Stripe's integer units of ``currency``."""
    ours = exponent(currency)
    theirs = STRIPE_EXPONENTS.get(currency.upper(), ours)
    units = amount * 10 ** (theirs - ours)
    if theirs == 3 and units % 10:
        raise GatewayError(f"Stripe takes {currency} amounts in whole multiples of 0.010.")
    return units


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What Stripe tells about a saved PaymentMethod (never the number)."""

    payment_method_id: str
    type: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class SetupIntent:
    id: str
    client_secret: str
    status: str | None = None
    customer: str | None = None
    payment_method: str | None = None


def plain(value: Any) -> dict[str, Any]:
    """A Stripe object (or dict) as a plain dict; anything else as an empty one."""
    if isinstance(value, stripe.StripeObject):
        return value.to_dict()
    return value if isinstance(value, dict) else {}


def card_details(payment_method: Any) -> CardDetails:
    """A PaymentMethod object (or dict) as ``CardDetails``."""
    method = plain(payment_method)
    card = plain(method.get("card"))
    last4 = card.get("last4")
    customer = method.get("customer")
    return CardDetails(
        payment_method_id=str(method.get("id")),
        type=str(method.get("type") or "card"),
        brand=card.get("brand") if isinstance(card.get("brand"), str) else None,
        last4=last4 if isinstance(last4, str) and len(last4) == 4 and last4.isdigit() else None,
        exp_month=_int_or_none(card.get("exp_month")),
        exp_year=_int_or_none(card.get("exp_year")),
        customer=customer if isinstance(customer, str) else plain(customer).get("id"),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _describe(exc: stripe.StripeError) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return f"Stripe answered {exc.http_status or 'no status'} {code or type(exc).__name__}: {message}"[:500]


class StripeGateway:
    name = "stripe"

    def __init__(
        self,
        *,
        secret_key: str,
        publishable_key: str | None = None,
        webhook_secret: str | None = None,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        public_url: str | None = None,
    ) -> None:
        if not secret_key:
            raise GatewayError("Stripe is not configured (BILLING_STRIPE_SECRET_KEY).")
        self.publishable_key = publishable_key
        self._webhook_secret = webhook_secret
        self.api_base = (api_base or stripe.DEFAULT_API_BASE).rstrip("/")
        self._timeout = timeout
        self._secret_key = secret_key
        self.public_url = public_url.rstrip("/") if public_url else None
        self._client: stripe.StripeClient | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> StripeGateway:
        return cls(
            secret_key=settings.stripe_secret_key or "",
            publishable_key=settings.stripe_publishable_key,
            webhook_secret=settings.stripe_webhook_secret,
            api_base=settings.stripe_api_base,
            public_url=getattr(settings, "public_url", None),
        )

    def __repr__(self) -> str:  # never the secrets
        return f"StripeGateway(api_base={self.api_base!r})"

    @property
    def client(self) -> stripe.StripeClient:
        """The library's client; retries are ours (same idempotency key), never the library's."""
        if self._client is None:
            self._client = stripe.StripeClient(
                self._secret_key,
                base_addresses={"api": self.api_base},
                max_network_retries=0,
                http_client=stripe.HTTPXClient(timeout=self._timeout),
            )
        return self._client

    # -- customers and payment methods (Stripe's own, beside the protocol) ---------------------

    async def create_customer(self, *, organization_id: str, name: str, email: str | None) -> str:
        params: dict[str, Any] = {"name": name[:256], "metadata": {"organization_id": organization_id}}
        if email:
            params["email"] = email
        try:
            customer = await self.client.v1.customers.create_async(
                params, {"idempotency_key": f"customer_{organization_id}"})
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None
        return customer.id

    async def update_customer(self, customer_id: str, *, name: str | None, address: str | None,
                              country: str | None) -> None:
        """The Customer's name and address as the organization's billing details have them (an
        empty value clears Stripe's): the address's first line is ``line1``, the rest ``line2``."""
        lines = [line for line in (address or "").split("\n") if line.strip()]
        params: dict[str, Any] = {
            "name": (name or "")[:256],
            "address": {"line1": (lines[0] if lines else "")[:200], "line2": ", ".join(lines[1:])[:200],
                        "country": country or ""},
        }
        try:
            await self.client.v1.customers.update_async(customer_id, params)
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None

    async def sync_tax_id(self, customer_id: str, tax_id: str | None) -> None:
        """The Customer's ``id_npwp`` tax id as the organization's NPWP has it: added when missing,
        replaced when it differs, removed when the NPWP is cleared; tax ids of other types stay."""
        service = self.client.v1.customers.tax_ids
        try:
            held = [item for item in (await service.list_async(customer_id, {"limit": 100})).data
                    if item.type == "id_npwp"]
            for item in held:
                if item.value != tax_id:
                    await service.delete_async(customer_id, item.id)
            if tax_id and not any(item.value == tax_id for item in held):
                await service.create_async(customer_id, {"type": "id_npwp", "value": tax_id})
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None

    @staticmethod
    async def _retrieve(service: Any, object_id: str) -> Any | None:
        """``service.retrieve_async(object_id)``; None when Stripe does not know the object."""
        try:
            return await service.retrieve_async(object_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404 or getattr(exc, "code", None) == "resource_missing":
                return None
            raise GatewayError(_describe(exc)) from None
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None

    async def retrieve_payment_method(self, payment_method_id: str) -> CardDetails | None:
        """The PaymentMethod's card details, or None when Stripe does not know it."""
        method = await self._retrieve(self.client.v1.payment_methods, payment_method_id)
        return None if method is None else card_details(method)

    async def attach_payment_method(self, payment_method_id: str, customer_id: str) -> CardDetails | None:
        """Attach an existing PaymentMethod to the customer (a no-op when it already is);
        None when Stripe does not know it; a decline on attaching is a GatewayError."""
        details = await self.retrieve_payment_method(payment_method_id)
        if details is None or details.customer == customer_id:
            return details
        try:
            method = await self.client.v1.payment_methods.attach_async(
                payment_method_id, {"customer": customer_id})
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None
        return card_details(method)

    async def create_setup_intent(self, *, customer_id: str, idempotency_key: str | None = None) -> SetupIntent:
        """A SetupIntent the SPA confirms with Stripe.js to save a card for off-session use."""
        options = {"idempotency_key": idempotency_key} if idempotency_key else None
        try:
            intent = await self.client.v1.setup_intents.create_async(
                {"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"]}, options)
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None
        return SetupIntent(id=intent.id, client_secret=intent.client_secret)

    async def retrieve_setup_intent(self, setup_intent_id: str) -> SetupIntent | None:
        """A SetupIntent as Stripe knows it now (status, customer, payment method); None when Stripe
        does not know it."""
        intent = plain(await self._retrieve(self.client.v1.setup_intents, setup_intent_id))
        if not intent:
            return None

        def reference(value: Any) -> str | None:
            return value if isinstance(value, str) else plain(value).get("id")

        return SetupIntent(id=str(intent.get("id")), client_secret="", status=intent.get("status"),
                           customer=reference(intent.get("customer")),
                           payment_method=reference(intent.get("payment_method")))

    def payment_page_url(self, invoice_id: Any) -> str | None:
        """Where the customer confirms an invoice's PaymentIntent that needs action (3-D Secure)
        with Stripe.js: the gateway's own page, ``GET /invoices/{id}/pay``."""
        return f"{self.public_url}/invoices/{invoice_id}/pay" if self.public_url else None

    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any] | None:
        """The PaymentIntent as a plain dict (its status and client secret), or None when Stripe
        does not know it."""
        intent = await self._retrieve(self.client.v1.payment_intents, payment_intent_id)
        return None if intent is None else plain(intent)

    # -- charges ------------------------------------------------------------------------------

    async def charge(
        self, *, customer_id: str | None, payment_method_token: str, amount: int, currency: str,
        idempotency_key: str, description: str,
    ) -> ChargeResult:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise GatewayError("A charge amount is a positive integer of minor units.")
        if not idempotency_key:
            raise GatewayError("Stripe charges need an idempotency key.")
        params: dict[str, Any] = {
            "amount": to_stripe_units(amount, currency),
            "currency": currency.lower(),
            "payment_method": payment_method_token,
            "confirm": True,
            "off_session": True,
            "metadata": {"idempotency_key": idempotency_key, "description": description[:500]},
        }
        if customer_id:
            params["customer"] = customer_id
        try:
            intent = await self.client.v1.payment_intents.create_async(params, {"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            return self._card_error(exc)
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "code", None) == "resource_missing" and getattr(exc, "param", None) == "payment_method":
                return ChargeResult(ChargeOutcome.DECLINED, failure_code="payment_method_unavailable",
                                    failure_message="Stripe does not know this payment method.")
            raise GatewayError(_describe(exc)) from None
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None
        return self._intent_result(intent)

    @staticmethod
    def _card_error(exc: stripe.CardError) -> ChargeResult:
        error = plain(exc.error)
        decline_code = error.get("decline_code") or exc.code or "card_declined"
        intent_id = plain(error.get("payment_intent")).get("id")
        message = (exc.user_message or "The card was declined.").strip()
        if exc.code in ACTION_CODES or decline_code in ACTION_CODES:
            return ChargeResult(ChargeOutcome.ACTION_REQUIRED, intent_id, failure_code="authentication_required",
                                failure_message=f"{message} (decline code: authentication_required)")
        return ChargeResult(ChargeOutcome.DECLINED, intent_id, failure_code=decline_code,
                            failure_message=f"{message} (decline code: {decline_code})")

    @staticmethod
    def _intent_result(payment_intent: Any) -> ChargeResult:
        intent = plain(payment_intent)
        status, intent_id = intent.get("status"), intent.get("id")
        if status == "succeeded":
            return ChargeResult(ChargeOutcome.SUCCEEDED, intent_id)
        if status == "requires_action":
            url = plain(plain(intent.get("next_action")).get("redirect_to_url")).get("url")
            return ChargeResult(ChargeOutcome.ACTION_REQUIRED, intent_id, failure_code="authentication_required",
                                failure_message="The customer must confirm this payment with their bank (3-D Secure).",
                                action_url=url)
        if status == "requires_payment_method":
            error = plain(intent.get("last_payment_error"))
            code = error.get("decline_code") or error.get("code") or "card_declined"
            message = error.get("message") or "The card was declined."
            return ChargeResult(ChargeOutcome.DECLINED, intent_id, failure_code=code,
                                failure_message=f"{message} (decline code: {code})")
        raise GatewayError(f"Stripe left the payment {status!r}; it is settled by its webhook or a later retry.")

    # -- refunds ------------------------------------------------------------------------------

    async def refund(self, *, gateway_payment_id: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise GatewayError("A refund amount is a positive integer of minor units.")
        target = "charge" if gateway_payment_id.startswith(("ch_", "py_")) else "payment_intent"
        params = {target: gateway_payment_id, "amount": to_stripe_units(amount, currency),
                  "metadata": {"idempotency_key": idempotency_key}}
        try:
            refund = await self.client.v1.refunds.create_async(params, {"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 400 and getattr(exc, "code", None) != "idempotency_key_in_use":
                return RefundResult(succeeded=False, failure_message=_describe(exc))
            raise GatewayError(_describe(exc)) from None
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None
        status = plain(refund).get("status")
        if status in ("succeeded", "pending", "requires_action"):
            return RefundResult(succeeded=True, gateway_refund_id=refund.id)
        return RefundResult(succeeded=False, gateway_refund_id=refund.id,
                            failure_message=f"Stripe reports the refund as {status!r}.")

    # -- checkout -----------------------------------------------------------------------------

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, idempotency_key: str, customer_id: str | None = None,
        save_method: bool = False,
    ) -> Order:
        """A PaymentIntent the SPA confirms with Stripe.js (its client secret); with ``save_method``
        the card is kept for the customer's off-session renewals (``setup_future_usage``).
        ``payment_intent.succeeded`` completes the checkout."""
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise GatewayError("An order amount is a positive integer of minor units.")
        params: dict[str, Any] = {"amount": to_stripe_units(amount, currency), "currency": currency.lower(),
                                  "metadata": {"idempotency_key": idempotency_key, "receipt": receipt[:200]}}
        if customer_id:
            params["customer"] = customer_id
        if save_method:
            params["setup_future_usage"] = "off_session"
        try:
            intent = await self.client.v1.payment_intents.create_async(params, {"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None
        return Order(order_id=intent.id, amount=amount, currency=currency, key_id=self.publishable_key,
                     client_secret=intent.client_secret)

    async def saved_method(self, *, order_id: str, payment_id: str) -> SavedMethod | None:
        """The card that paid the checkout's PaymentIntent (kept by ``setup_future_usage``)."""
        try:
            intent = plain(await self.client.v1.payment_intents.retrieve_async(order_id))
        except stripe.StripeError as exc:
            raise GatewayError(_describe(exc)) from None
        method = intent.get("payment_method")
        method_id = method if isinstance(method, str) else plain(method).get("id")
        if intent.get("status") != "succeeded" or not method_id:
            return None
        details = await self.retrieve_payment_method(method_id)
        if details is None:
            return None
        brand = details.brand or details.type
        return SavedMethod(token=details.payment_method_id, type="CREDIT_CARD", brand=details.brand,
                           last4=details.last4,
                           label=f"{brand.title()} ending {details.last4}" if details.last4 else brand.title())

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool:
        """Stripe has no client-side checkout signature: its webhook completes a checkout."""
        return False

    # -- webhooks -----------------------------------------------------------------------------

    def construct_event(self, *, body: bytes, signature: str | None) -> Any:
        """The verified event (``stripe.Webhook.construct_event``, 300 s tolerance); raises
        ``stripe.SignatureVerificationError`` for a bad or stale signature and ValueError for a
        body that is not JSON."""
        return construct_event(body, signature, self._webhook_secret)

    def verify_webhook(self, *, body: bytes, signature: str) -> bool:
        try:
            self.construct_event(body=body, signature=signature)
        except (stripe.SignatureVerificationError, ValueError, RecursionError):
            return False
        return True


def construct_event(body: bytes, signature: str | None, secret: str | None) -> Any:
    """``stripe.Webhook.construct_event`` over the raw body, 300 s tolerance; a missing secret
    refuses every event."""
    if not secret:
        raise stripe.SignatureVerificationError("Stripe webhooks are not configured.", signature, body)
    return stripe.Webhook.construct_event(body, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
