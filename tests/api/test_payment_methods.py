"""Payment methods over GraphQL: one default, no card numbers, safe removal, tenancy."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_graphql.db.models import AuditEvent, OutboxEvent, PaymentMethod, PaymentMethodType
from billing_graphql.domain.status import SubscriptionStatus
from tests.helpers import T0, count_statements, gid
from tests.factories import count_rows, make_payment_method, make_subscription

QUERIES = Path(__file__).resolve().parents[2] / "queries"

ADD = """
mutation Add($input: AddPaymentMethodInput!) {
  addPaymentMethod(input: $input) {
    paymentMethod { id gateway gatewayPaymentMethodId type label brand last4 expMonth expYear isDefault }
    errors { code message field }
  }
}
"""
SET_DEFAULT = """
mutation SetDefault($id: ID!) {
  setDefaultPaymentMethod(input: {id: $id}) {
    paymentMethod { id isDefault }
    errors { code message field }
  }
}
"""
REMOVE = """
mutation Remove($id: ID!) {
  removePaymentMethod(input: {id: $id}) { removedPaymentMethodId errors { code message field } }
}
"""
LIST = "{ paymentMethods { id label isDefault } }"


def card(token: str, **extra) -> dict:
    return {
        "gateway": "sandbox",
        "gatewayPaymentMethodId": token,
        "type": "CREDIT_CARD",
        "label": extra.pop("label", "Visa ending 4242"),
        "brand": "visa",
        "last4": "4242",
        "expMonth": 12,
        "expYear": 2099,
        **extra,
    }


async def add(api, token_key: str, token: str, **extra) -> dict:
    data = await api.ok(ADD, {"input": card(token, **extra)}, token=token_key)
    return data["addPaymentMethod"]


async def defaults(db, organization_id) -> list[uuid.UUID]:
    async with db.read() as session:
        return list(
            (
                await session.scalars(
                    select(PaymentMethod.id).where(
                        PaymentMethod.organization_id == organization_id, PaymentMethod.is_default.is_(True)
                    )
                )
            ).all()
        )


async def test_first_method_becomes_default_and_is_default_moves_it(api, db, keys):
    first = await add(api, keys.owner, "pm_card_visa")
    assert first["errors"] == []
    assert first["paymentMethod"]["isDefault"] is True
    second = await add(api, keys.admin, "pm_card_mastercard", label="Work card")
    assert second["paymentMethod"]["isDefault"] is False
    third = await add(api, keys.owner, "pm_card_amex", label="Amex", isDefault=True)
    assert third["paymentMethod"]["isDefault"] is True
    listed = (await api.ok(LIST, token=keys.owner))["paymentMethods"]
    assert [row["label"] for row in listed] == ["Amex", "Visa ending 4242", "Work card"]
    assert [row["isDefault"] for row in listed] == [True, False, False]
    assert len(await defaults(db, keys.organization_id)) == 1
    # Another organization sees none of them.
    assert (await api.ok(LIST, token=keys.other_owner))["paymentMethods"] == []


async def test_set_default_moves_the_flag_and_is_audited(api, db, keys):
    first = (await add(api, keys.owner, "pm_card_visa"))["paymentMethod"]
    second = (await add(api, keys.owner, "pm_card_mastercard"))["paymentMethod"]
    result = (await api.ok(SET_DEFAULT, {"id": second["id"]}, token=keys.admin))["setDefaultPaymentMethod"]
    assert result == {"paymentMethod": {"id": second["id"], "isDefault": True}, "errors": []}
    listed = (await api.ok(LIST, token=keys.owner))["paymentMethods"]
    assert [(row["id"], row["isDefault"]) for row in listed] == [(second["id"], True), (first["id"], False)]
    async with db.read() as session:
        actions = (await session.scalars(select(AuditEvent.action).order_by(AuditEvent.created_at))).all()
        events = (await session.scalars(select(OutboxEvent.event_type))).all()
    assert actions.count("payment_method.added") == 2
    assert "payment_method.default_set" in actions
    assert "payment_method.default_changed" in events


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("gatewayPaymentMethodId", {"token": "4242424242424242"}),
        ("gatewayPaymentMethodId", {"token": "tok_5555-5555-5555-4444"}),
        ("label", {"label": "my visa 4242 4242 4242 4242"}),
        ("brand", {"brand": "378282246310005"}),
    ],
)
async def test_card_numbers_are_refused_and_never_stored_or_logged(api, db, keys, caplog, field, extra):
    caplog.set_level(logging.DEBUG)
    extra = dict(extra)
    token = extra.pop("token", "pm_card_visa")
    secret_digits = "".join(ch for ch in (token + extra.get("label", "") + extra.get("brand", "")) if ch.isdigit())
    before = [await count_rows(db, model) for model in (PaymentMethod, AuditEvent, OutboxEvent)]
    # Refused where input enters, as every free-text input is (issue 19, item 5): nothing runs.
    result = await api.post(ADD, {"input": card(token, **extra)}, token=keys.owner)
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"] == {"code": "VALIDATION", "field": f"input.{field}"}
    assert "card number" in error["message"]
    assert secret_digits[-8:] not in error["message"]
    assert [await count_rows(db, model) for model in (PaymentMethod, AuditEvent, OutboxEvent)] == before
    assert secret_digits[-8:] not in caplog.text


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"last4": "42a2"}, "last4"),
        ({"last4": "424"}, "last4"),
        ({"expMonth": 13}, "expMonth"),
        ({"expMonth": 0}, "expMonth"),
        ({"expYear": 2020, "expMonth": 5}, "expYear"),  # expired
        ({"gateway": "paypal"}, "gateway"),
        ({"expMonth": None}, "expMonth"),
    ],
)
async def test_invalid_details_are_validation_errors(api, db, keys, extra, field):
    result = await add(api, keys.owner, "pm_card_visa", **extra)
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("VALIDATION", field)]
    assert await count_rows(db, PaymentMethod) == 0


async def test_card_expiring_this_month_is_accepted(api, keys):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    result = await add(api, keys.owner, "pm_card_visa", expYear=now.year, expMonth=now.month)
    assert result["errors"] == []


async def test_same_token_twice_is_already_exists(api, keys):
    assert (await add(api, keys.owner, "pm_card_visa"))["errors"] == []
    result = await add(api, keys.owner, "pm_card_visa")
    assert [e["code"] for e in result["errors"]] == ["ALREADY_EXISTS"]


async def test_another_organizations_method_is_not_found(api, db, keys):
    theirs = await make_payment_method(db, keys.other_organization_id, is_default=True)
    ours = (await add(api, keys.owner, "pm_card_visa"))["paymentMethod"]
    for mutation, name in ((SET_DEFAULT, "setDefaultPaymentMethod"), (REMOVE, "removePaymentMethod")):
        result = (await api.ok(mutation, {"id": gid("PaymentMethod", theirs.id)}, token=keys.owner))[name]
        assert [e["code"] for e in result["errors"]] == ["NOT_FOUND"]
        malformed = (await api.ok(mutation, {"id": "not-a-global-id"}, token=keys.owner))[name]
        assert [e["code"] for e in malformed["errors"]] == ["NOT_FOUND"]
        wrong_type = (await api.ok(mutation, {"id": gid("Plan", theirs.id)}, token=keys.owner))[name]
        assert [e["code"] for e in wrong_type["errors"]] == ["NOT_FOUND"]
    assert await defaults(db, keys.other_organization_id) == [theirs.id]
    # node() hides it as well; our own resolves.
    node = "query($id: ID!) { node(id: $id) { ... on PaymentMethod { label } } }"
    assert (await api.ok(node, {"id": gid("PaymentMethod", theirs.id)}, token=keys.owner))["node"] is None
    assert (await api.ok(node, {"id": ours["id"]}, token=keys.owner))["node"] == {"label": "Visa ending 4242"}
    assert (await api.ok(node, {"id": ours["id"]}, token=keys.member))["node"] is None


async def test_removing_the_default_of_a_live_subscription_needs_another_default_first(api, db, keys):
    await make_subscription(db, keys.organization_id, status=SubscriptionStatus.PAST_DUE)
    first = (await add(api, keys.owner, "pm_card_visa"))["paymentMethod"]
    second = (await add(api, keys.owner, "pm_card_mastercard"))["paymentMethod"]
    audit_before = await count_rows(db, AuditEvent)
    refused = (await api.ok(REMOVE, {"id": first["id"]}, token=keys.owner))["removePaymentMethod"]
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("VALIDATION", "id")]
    assert "default" in refused["errors"][0]["message"]
    assert refused["removedPaymentMethodId"] is None
    assert await count_rows(db, PaymentMethod) == 2
    assert await count_rows(db, AuditEvent) == audit_before
    # A non-default one goes at once.
    await api.ok(SET_DEFAULT, {"id": second["id"]}, token=keys.owner)
    removed = (await api.ok(REMOVE, {"id": first["id"]}, token=keys.owner))["removePaymentMethod"]
    assert removed == {"removedPaymentMethodId": first["id"], "errors": []}
    assert [row["id"] for row in (await api.ok(LIST, token=keys.owner))["paymentMethods"]] == [second["id"]]


async def test_only_method_of_an_organization_without_live_subscription_can_go(api, db, keys):
    await make_subscription(db, keys.organization_id, status=SubscriptionStatus.CANCELED)
    only = (await add(api, keys.owner, "pm_card_visa"))["paymentMethod"]
    removed = (await api.ok(REMOVE, {"id": only["id"]}, token=keys.owner))["removePaymentMethod"]
    assert removed["errors"] == []
    assert await count_rows(db, PaymentMethod) == 0
    async with db.read() as session:
        audit = await session.scalar(select(AuditEvent).where(AuditEvent.action == "payment_method.removed"))
    assert audit.before["last4"] == "4242"
    # Adding again after that makes the new one the default.
    again = await add(api, keys.owner, "pm_card_mastercard")
    assert again["paymentMethod"]["isDefault"] is True


async def test_default_without_live_subscription_goes_and_none_is_promoted(api, db, keys):
    first = (await add(api, keys.owner, "pm_card_visa"))["paymentMethod"]
    await add(api, keys.owner, "pm_card_mastercard")
    removed = (await api.ok(REMOVE, {"id": first["id"]}, token=keys.owner))["removePaymentMethod"]
    assert removed["errors"] == []
    assert await defaults(db, keys.organization_id) == []
    # The next one added becomes the default, since there is none.
    third = await add(api, keys.owner, "pm_card_amex")
    assert third["paymentMethod"]["isDefault"] is True


async def test_members_and_strangers_are_refused(api, keys):
    for token, code in ((keys.member, "FORBIDDEN"), (keys.partner, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        result = await api.post(LIST, token=token)
        assert result["data"] == {"paymentMethods": None}
        assert result["errors"][0]["extensions"]["code"] == code
        result = await api.post(ADD, {"input": card("pm_card_visa")}, token=token)
        assert result["errors"][0]["extensions"]["code"] == code


async def test_database_allows_one_default_per_organization(db, keys):
    await make_payment_method(db, keys.organization_id, is_default=True)
    await make_payment_method(db, keys.other_organization_id, is_default=True)  # another org: fine
    await make_payment_method(db, keys.organization_id, is_default=False)
    with pytest.raises(IntegrityError):
        await make_payment_method(db, keys.organization_id, is_default=True)
    assert len(await defaults(db, keys.organization_id)) == 1


async def test_concurrent_default_changes_leave_exactly_one_default(api, db, keys):
    await add(api, keys.owner, "pm_card_visa")
    results = await asyncio.gather(
        *(add(api, keys.owner, f"pm_card_{n}", isDefault=True) for n in range(4))
    )
    assert all(result["errors"] == [] for result in results)
    assert len(await defaults(db, keys.organization_id)) == 1
    assert await count_rows(db, PaymentMethod) == 5


async def test_payment_methods_page_statement_count(api, db, keys):
    for n in range(6):
        await make_payment_method(db, keys.organization_id, is_default=n == 0, now=T0)
    query = (QUERIES / "spa" / "PaymentMethods.graphql").read_text()
    await api.ok(query, token=keys.owner)  # warm: the key's last-used stamp is written once
    with count_statements(db) as counter:
        data = await api.ok(query, token=keys.owner)
    assert len(data["paymentMethods"]) == 6
    # The API key lookup and the one SELECT of the methods.
    assert counter.count == 2, counter.statements
    assert data["paymentMethods"][0]["isDefault"] is True
    assert {row["type"] for row in data["paymentMethods"]} == {PaymentMethodType.CREDIT_CARD.value}
