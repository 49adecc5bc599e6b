"""Idempotency keys through the unit of work (``money_move``): stored results, reuse with another
request, nothing stored on failure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from billing_graphql.db.models import IdempotencyRecord
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.services.platform.audit import to_json
from billing_graphql.services.platform.idempotency import (
    NO_SCOPE,
    clean_key,
    purge_idempotency_records,
    store_idempotent,
)
from billing_graphql.services.unit_of_work import money_move
from tests.helpers import T0
from tests.factories import count_rows

SCOPE = NO_SCOPE  # money_move without an organization keeps its keys in the unscoped space


@dataclass
class Outcome:
    response: dict[str, Any]
    replayed: bool


async def run(db, *, key="k", request=None, operation="op", organization_id=None, result=None, fail=False):
    calls = []
    async with money_move(db, organization_id, operation, key, request or {"a": 1}, actor=None, now=T0) as uow:
        if uow.replayed:
            return Outcome(uow.stored, True), calls
        calls.append(1)
        if fail:
            raise validation("no", "x")
        response = result or {"value": 1, "id": uuid.UUID(int=7)}
        uow.done(response)
    return Outcome(to_json(response), False), calls


async def test_first_call_runs_and_replays_return_the_stored_response(db):
    first, calls = await run(db)
    assert (first.replayed, calls, first.response) == (False, [1], {"value": 1, "id": str(uuid.UUID(int=7))})
    again, calls = await run(db, result={"value": 2})
    assert (again.replayed, calls, again.response) == (True, [], first.response)


async def test_another_request_or_operation_with_the_key_is_refused(db, org):
    await run(db)
    for changed in ({"request": {"a": 2}}, {"operation": "other"}):
        with pytest.raises(BillingError) as error:
            await run(db, **changed)
        assert error.value.code is BillingErrorCode.IDEMPOTENCY_KEY_REUSED
    # Another scope has its own keys.
    assert not (await run(db, organization_id=org.id))[0].replayed


async def test_a_failed_perform_stores_nothing(db):
    with pytest.raises(BillingError):
        await run(db, fail=True)
    assert await count_rows(db, IdempotencyRecord) == 0
    assert not (await run(db))[0].replayed


async def test_the_database_refuses_a_second_record_for_a_key(db):
    await run(db)
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            store_idempotent(session, scope_id=SCOPE, key="k", operation="op", request={}, response={}, now=T0)


async def test_records_are_kept_at_least_a_day(db):
    await run(db, key="old")
    assert await purge_idempotency_records(db, now=T0 + timedelta(hours=23), older_than=timedelta(0)) == 0
    assert await purge_idempotency_records(db, now=T0 + timedelta(hours=25)) == 1


@pytest.mark.parametrize("key", ["", "   ", "x" * 201, "tab\tkey"])
def test_keys_are_checked(key):
    with pytest.raises(BillingError) as error:
        clean_key(key)
    assert error.value.field == "idempotencyKey"
