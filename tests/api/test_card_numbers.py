"""Card numbers are refused in every free-text input of the schema (issue 19, item 5).

The walk takes every String argument and input field from the schema itself (as the control
character walk of ``test_input_text`` does) and sends each of the 35 card formats into each;
every one is a VALIDATION error naming the field, and nothing is written. The fields with a
format of their own (``FORMATTED_FIELDS``) are listed, and still refuse control characters.
"""

from __future__ import annotations

import pytest

from billing_graphql.graphql.input_validation import FORMATTED_FIELDS
from tests.api.test_input_text import SLOTS, _operation, _row_counts, refused_at_its_field
from tests.card_formats import CARD_FORMATS, VISA

FREE_TEXT = [slot for slot in SLOTS if (slot[3][-1] if slot[3] else slot[2]) not in FORMATTED_FIELDS]


def test_the_exempt_fields_are_few_and_named():
    exempt = {(root, field, ".".join((arg, *path))) for root, field, arg, path in SLOTS} - {
        (root, field, ".".join((arg, *path))) for root, field, arg, path in FREE_TEXT}
    names = {path.rpartition(".")[2] for _, _, path in exempt}
    assert names <= FORMATTED_FIELDS
    # The fields the issue names are free text.
    free = {(field, ".".join((arg, *path))) for _, field, arg, path in FREE_TEXT}
    for expected in [("addPaymentMethod", "input.gatewayPaymentMethodId"), ("addPaymentMethod", "input.label"),
                     ("addPaymentMethod", "input.brand"), ("createApiKey", "input.label"),
                     ("updateBillingDetails", "input.address"), ("cancel", "input.reason"),
                     ("refund", "input.reason"), ("updateSubscription", "input.reason"),
                     ("createWebhookEndpoint", "input.description"), ("createPlan", "input.description")]:
        assert expected in free
    assert len(FREE_TEXT) >= 55


# Refused by input validation before any service opens a session: one database is enough for the
# 35 x 60 probes (test_input_text's control-character walk runs on both).
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_every_free_text_input_refuses_every_card_format(api, db, keys):
    before = await _row_counts(db)
    failures = []
    for index, slot in enumerate(FREE_TEXT):
        for number, card in enumerate(CARD_FORMATS):
            # Half the probes carry the number in the variables, half in a literal of the document.
            failure = await refused_at_its_field(api, keys, slot, (index + number) % 2 == 1, card)
            if failure is not None:
                failures.append(failure)
            elif card == VISA and index == 0:
                result = await api.post(*_operation(*slot, False, card), token=keys.super_admin)
                assert VISA[:4] not in result["errors"][0]["message"]  # the number is never echoed
    assert not failures, f"{len(failures)} probes were not refused, e.g. {failures[:3]}"
    assert await _row_counts(db) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("idempotencyKey", "550e8400-e29b-41d4-a716-446655440000"),
        ("idempotencyKey", "4111a1111a1111a1111b2222c3333"),  # hex-like: an identifier, not free text
        ("taxId", "01.234.567.8-901.000"),
    ],
)
def test_formatted_fields_are_exempt_from_the_card_rule_only(field, value):
    from billing_graphql.graphql.input_validation import refusal

    assert refusal(f"input.{field}", value) is None
    assert refusal(f"input.{field}", value + "\x00") is not None
    assert refusal("input.label", VISA) is not None


async def test_valid_npwps_and_ordinary_text_are_accepted(api, db, keys):
    """An NPWP that happens to pass Luhn is a tax ID, not a card; prose with short numbers is text."""
    from billing_graphql.domain.cards import luhn_check_digit, luhn_valid

    fifteen = "01234567890123"
    npwp = fifteen + luhn_check_digit(fifteen)  # 15 digits that pass Luhn
    assert luhn_valid(npwp)
    mutation = """mutation($i: UpdateBillingDetailsInput!) { updateBillingDetails(input: $i) {
      errors { code field } } }"""
    result = await api.post(mutation, {"i": {"legalName": "PT Contoh 2026", "country": "ID", "taxId": npwp,
                                             "address": "Jl. Sudirman No. 12, Jakarta 10220\nTel 021 5555 1234"}},
                            token=keys.owner)
    assert "errors" not in result, result
    assert result["data"]["updateBillingDetails"]["errors"] == []
    label = await api.post(
        'mutation($org: ID) { createApiKey(input: {role: MEMBER, organizationId: $org, '
        'label: "Visa ending 4242, ordered 2026-01-15"}) { errors { code field message } } }',
        {"org": keys.organization_gid}, token=keys.owner)
    assert "errors" not in label and label["data"]["createApiKey"]["errors"] == []


async def test_only_string_values_are_free_text(api, db, keys):
    """A DateTime with microseconds or a BigInt is not text: its digits are not a card number."""
    mutation = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted errors { field } } }"""
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).replace(microsecond=123456).isoformat()  # 20+ digits once joined
    events = [{"metric": "messages", "quantity": VISA, "timestamp": stamp, "idempotencyKey": "k1"}]
    result = await api.post(mutation, {"input": {"events": events}}, token=keys.owner)
    assert result.get("data") == {"recordUsage": {"accepted": 1, "errors": []}}, result
    literal = (f'mutation {{ recordUsage(input: {{events: [{{metric: "messages", quantity: "{VISA}", '
               f'timestamp: "{stamp}", idempotencyKey: "k2"}}]}}) {{ accepted }} }}')
    assert (await api.post(literal, token=keys.owner)) == {"data": {"recordUsage": {"accepted": 1}}}
