"""Global ids in queries (issue 18, item 9), on both databases.

A malformed id is the caller's error: the field is null with a top-level ``BAD_USER_INPUT``.
A well-formed id of nothing, of another type or of another organization reads as nothing (null
or an empty list), with no error. Mutations keep answering any bad id with ``NOT_FOUND`` on the
field, in their payload.
"""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import gid

MALFORMED = ["not-a-global-id", "", gid("Invoice", "not-a-uuid"), gid("Organization", "12345")]

# (root field, its query with the id in $id, the key that reads it)
FIELDS = [
    ("organization", "query($id: ID!) { organization(id: $id) { id } }", "super_admin", "Organization"),
    ("apiKeys", "query($id: ID!) { apiKeys(organizationId: $id) { id } }", "owner", "Organization"),
    ("plan", "query($id: ID!) { plan(id: $id) { id } }", "owner", "Plan"),
    ("coupon", 'query($id: ID!) { coupon(code: "NOPE", planId: $id) { valid } }', "owner", "Plan"),
    ("subscription", "query($id: ID!) { subscription(organizationId: $id) { id } }", "owner", "Organization"),
    ("subscriptions", "query($id: ID!) { subscriptions(planId: $id) { edges { cursor } } }", "super_admin", "Plan"),
    ("invoices", "query($id: ID!) { invoices(organizationId: $id) { edges { cursor } } }", "owner", "Organization"),
    ("invoice", "query($id: ID!) { invoice(id: $id) { id } }", "owner", "Invoice"),
    ("usage", "query($id: ID!) { usage(organizationId: $id) { agentCount } }", "owner", "Organization"),
    ("entitlements", "query($id: ID!) { entitlements(organizationId: $id) { status } }", "owner", "Organization"),
    ("planLimits", "query($id: ID!) { planLimits(organizationId: $id) { __typename } }", "owner", "Organization"),
    ("usageSnapshots", "query($id: ID!) { usageSnapshots(organizationIds: [$id]) { edges { cursor } } }",
     "partner", "Organization"),
    ("webhookEndpoints", "query($id: ID!) { webhookEndpoints(organizationId: $id) { id } }", "owner",
     "Organization"),
    ("webhookDeliveries", "query($id: ID!) { webhookDeliveries(endpointId: $id) { edges { cursor } } }", "owner",
     "WebhookEndpoint"),
    ("node", "query($id: ID!) { node(id: $id) { id } }", "owner", "Invoice"),
]


@pytest.mark.parametrize("bad_id", MALFORMED)
@pytest.mark.parametrize(("field", "query", "key", "type_name"), FIELDS, ids=[f[0] for f in FIELDS])
async def test_a_malformed_id_is_bad_user_input(api, keys, field, query, key, type_name, bad_id):
    result = await api.post(query, {"id": bad_id}, token=getattr(keys, key))
    assert result["data"] == {field: None}, result
    assert [error["extensions"]["code"] for error in result["errors"]] == ["BAD_USER_INPUT"]
    assert result["errors"][0]["path"] == [field]


EMPTY = {"apiKeys": [], "webhookEndpoints": [], "subscriptions": {"edges": []}, "invoices": {"edges": []},
         "webhookDeliveries": {"edges": []}}


@pytest.mark.parametrize(("field", "query", "key", "type_name"),
                         [f for f in FIELDS if f[0] not in ("usageSnapshots", "coupon")],
                         ids=[f[0] for f in FIELDS if f[0] not in ("usageSnapshots", "coupon")])
async def test_a_well_formed_id_of_nothing_reads_as_nothing(api, keys, field, query, key, type_name):
    for good_id in (gid(type_name, uuid.uuid4()), gid("Addon", uuid.uuid4())):
        data = await api.ok(query, {"id": good_id}, token=getattr(keys, key))
        assert data == {field: EMPTY.get(field)}, (good_id, data)


async def test_another_organizations_id_reads_as_a_missing_ones(api, keys):
    theirs = gid("Organization", keys.other_organization_id)
    for field, query, key, type_name in FIELDS:
        if type_name != "Organization" or key != "owner":
            continue
        data = await api.ok(query, {"id": theirs}, token=keys.owner)
        assert data == {field: EMPTY.get(field)}, (field, data)


@pytest.mark.parametrize("bad_id", MALFORMED)
async def test_mutations_answer_a_malformed_organization_id_with_not_found(api, keys, bad_id):
    mutations = {
        "resume": "mutation($id: ID) { resume(input: {organizationId: $id}) { errors { code field } } }",
        "updateBillingDetails": "mutation($id: ID) { updateBillingDetails(input: {organizationId: $id}) "
                                "{ errors { code field } } }",
        "recordUsage": 'mutation($id: ID) { recordUsage(input: {organizationId: $id, events: [{metric: "messages", '
                       'quantity: 1, timestamp: "2026-01-15T09:00:00Z", idempotencyKey: "k1"}]}) { errors { code field } } }',
    }
    for name, mutation in mutations.items():
        data = await api.ok(mutation, {"id": bad_id}, token=keys.super_admin)
        assert data[name]["errors"] == [{"code": "NOT_FOUND", "field": "organizationId"}], (name, data)
