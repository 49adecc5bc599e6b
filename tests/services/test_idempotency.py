"""run_idempotent: stored results, reuse with another request, nothing stored on failure."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from billing_graphql.db.models import IdempotencyRecord
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.services.platform.idempotency import (
    clean_key,
    purge_idempotency_records,
    run_idempotent,
    store_idempotent,
)
from tests.helpers import T0
from tests.payments_factories import count_rows

SCOPE = uuid.uuid4()


async def run(db, *, key="k", request=None, operation="op", scope=SCOPE, result=None, fail=False):
    calls = []

    async def perform():
        calls.append(1)
        if fail:
            raise validation("no", "x")
        return result or {"value": 1, "id": uuid.UUID(int=7)}

    async with db.write() as session:
        outcome = await run_idempotent(
            session, scope_id=scope, key=key, operation=operation, request=request or {"a": 1}, now=T0, perform=perform
        )
    return outcome, calls


async def test_first_call_runs_and_replays_return_the_stored_response(db):
    first, calls = await run(db)
    assert (first.replayed, calls, first.response) == (False, [1], {"value": 1, "id": str(uuid.UUID(int=7))})
    again, calls = await run(db, result={"value": 2})
    assert (again.replayed, calls, again.response) == (True, [], first.response)


async def test_another_request_or_operation_with_the_key_is_refused(db):
    await run(db)
    for changed in ({"request": {"a": 2}}, {"operation": "other"}):
        with pytest.raises(BillingError) as error:
            await run(db, **changed)
        assert error.value.code is BillingErrorCode.IDEMPOTENCY_KEY_REUSED
    # Another scope has its own keys.
    assert not (await run(db, scope=uuid.uuid4()))[0].replayed


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
