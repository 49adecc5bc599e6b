"""Billing details kept in sync with the organization's Stripe Customer: updateBillingDetails
sends the legal name and address to Stripe after its commit; a Stripe failure keeps the local
change (logged), and the same call repeated sends it again. Over HTTP, on both databases,
against localstripe (the Customer read back from it). localstripe takes no Indonesian (NPWP) tax
id type, so the NPWP's ``id_npwp`` tax id is tested against recorded Stripe answers in
tests/gateways/contract/test_stripe_tax_ids.py."""

from __future__ import annotations

import logging
from dataclasses import replace

from billing_graphql.db.models import Organization
from tests.api.test_stripe import (  # noqa: F401 (fixtures)
    ADD,
    card,
    client_for,
    gateway_for,
    localstripe,
    stripe_api,
    stripe_settings,
)
from tests.helpers import GraphQLClient

UPDATE = """mutation($i: UpdateBillingDetailsInput!) { updateBillingDetails(input: $i) {
  billingDetails { legalName address country taxId } errors { code message field } } }"""
DETAILS = {"legalName": "PT Acme Indonesia", "address": "Jl. Sudirman 1\nJakarta 10220", "country": "ID",
           "taxId": "01.234.567.8-901.000"}


async def stripe_customer(localstripe, customer_id: str) -> dict:
    return (await gateway_for(localstripe).client.v1.customers.retrieve_async(customer_id)).to_dict()


async def customer_of(db, keys) -> str:
    async with db.read() as session:
        customer = (await session.get(Organization, keys.organization_id)).gateway_customer_id
    assert customer.startswith("cus_")
    return customer


async def test_update_billing_details_updates_the_stripe_customer(stripe_api, localstripe, db, keys):
    assert (await stripe_api.ok(ADD, {"input": card("pm_card_visa")}, token=keys.owner))["addPaymentMethod"][
        "errors"] == []
    customer = await customer_of(db, keys)
    updated = (await stripe_api.ok(UPDATE, {"i": DETAILS}, token=keys.owner))["updateBillingDetails"]
    assert updated["errors"] == [] and updated["billingDetails"]["legalName"] == "PT Acme Indonesia"
    at_stripe = await stripe_customer(localstripe, customer)
    assert at_stripe["name"] == "PT Acme Indonesia"
    assert {key: at_stripe["address"][key] for key in ("line1", "line2", "country")} == {
        "line1": "Jl. Sudirman 1", "line2": "Jakarta 10220", "country": "ID"}

    changed = await stripe_api.ok(UPDATE, {"i": {"legalName": "PT Acme Nusantara", "address": ""}}, token=keys.owner)
    assert changed["updateBillingDetails"]["errors"] == []
    at_stripe = await stripe_customer(localstripe, customer)
    assert at_stripe["name"] == "PT Acme Nusantara" and not at_stripe["address"]["line1"]


async def test_an_organization_without_a_stripe_customer_is_not_sent(stripe_api, localstripe, keys):
    before = await gateway_for(localstripe).client.v1.customers.list_async({"limit": 100})
    updated = await stripe_api.ok(UPDATE, {"i": DETAILS}, token=keys.owner)
    assert updated["updateBillingDetails"]["errors"] == []
    after = await gateway_for(localstripe).client.v1.customers.list_async({"limit": 100})
    assert len(after.data) == len(before.data)


async def test_stripe_unreachable_keeps_the_local_change_and_a_retry_syncs(stripe_api, localstripe, db, keys,
                                                                          settings, graphql_schema, caplog):
    assert (await stripe_api.ok(ADD, {"input": card("pm_card_visa")}, token=keys.owner))["addPaymentMethod"][
        "errors"] == []
    customer = await customer_of(db, keys)
    logger = logging.getLogger("billing_graphql.services.platform.billing_details")
    logger.addHandler(caplog.handler)  # the app's logging may keep billing_graphql's records from the root
    unreachable = replace(stripe_settings(settings, localstripe.url), stripe_api_base="http://127.0.0.1:9")
    async with await client_for(db, unreachable, graphql_schema) as http:
        down = GraphQLClient(http, db)
        try:
            updated = (await down.ok(UPDATE, {"i": DETAILS}, token=keys.owner))["updateBillingDetails"]
        finally:
            logger.removeHandler(caplog.handler)
    assert updated["errors"] == [] and updated["billingDetails"] == {
        "legalName": "PT Acme Indonesia", "address": "Jl. Sudirman 1\nJakarta 10220", "country": "ID",
        "taxId": updated["billingDetails"]["taxId"]}
    assert "not sent to Stripe customer" in caplog.text
    assert (await stripe_customer(localstripe, customer))["name"] != "PT Acme Indonesia"

    retried = await stripe_api.ok(UPDATE, {"i": DETAILS}, token=keys.owner)  # the same call, Stripe back
    assert retried["updateBillingDetails"]["errors"] == []
    assert (await stripe_customer(localstripe, customer))["name"] == "PT Acme Indonesia"


async def test_a_stripe_customer_made_after_the_billing_details_starts_with_them(stripe_api, localstripe, db, keys):
    assert (await stripe_api.ok(UPDATE, {"i": DETAILS}, token=keys.owner))["updateBillingDetails"]["errors"] == []
    assert (await stripe_api.ok(ADD, {"input": card("pm_card_visa")}, token=keys.owner))["addPaymentMethod"][
        "errors"] == []
    at_stripe = await stripe_customer(localstripe, await customer_of(db, keys))
    assert (at_stripe["name"], at_stripe["address"]["line1"], at_stripe["address"]["country"]) == (
        "PT Acme Indonesia", "Jl. Sudirman 1", "ID")
