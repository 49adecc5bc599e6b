"""Usage counters past 32 and 53 bits (issue 19, item 4) and the usage idempotency key (item 8).

The range end to end: an event's quantity is at most 2^53 - 1 (``MAX_EVENT_QUANTITY``), a
counter is a 64-bit column and never passes 2^63 - 1 (a batch that would is refused whole), and
every counter, limit, remaining and overage field is a ``BigInt`` (a string of digits), so no
organization can record what its own queries cannot read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from billing_graphql.db.models import UsageCounter, UsageEvent
from billing_graphql.domain.usage import MAX_COUNTER_VALUE, MAX_EVENT_QUANTITY
from tests.api.test_partner_access import SNAPSHOTS, grant, partner_key_id
from tests.api.test_usage_api import ENTITLEMENTS, PLAN_LIMITS, RECORD, USAGE, event, record, subscribed
from tests.helpers import gid

INT32 = 2**31 - 1


async def _read_everything(api, keys) -> dict:
    usage = (await api.ok(USAGE, token=keys.owner))["usage"]
    staff = (await api.ok(USAGE, {"org": keys.organization_gid}, token=keys.super_admin))["usage"]
    assert staff == usage
    entitled = (await api.ok(ENTITLEMENTS, token=keys.owner))["entitlements"]
    limits = (await api.ok(PLAN_LIMITS, token=keys.owner))["planLimits"]
    month = datetime.now(UTC).strftime("%Y-%m")
    snapshots = (await api.ok(SNAPSHOTS, {"ids": [keys.organization_gid], "month": month},
                              token=keys.partner))["usageSnapshots"]
    return {
        "usage": {item["metric"]["code"]: item for item in usage["metrics"]},
        "messagesThisMonth": usage["messagesThisMonth"],
        "agentCount": usage["agentCount"],
        "entitlements": {item["metric"]["code"]: item for item in entitled["limits"]},
        "planLimits": {item["metric"]["code"]: item["limit"] for item in limits["usage"]["limits"]},
        "snapshot": {item["metric"]["code"]: item for item in snapshots["edges"][0]["node"]["metrics"]},
    }


async def test_counters_past_2_31_and_2_53_are_read_back_exactly(api, db, keys):
    await subscribed(db, keys, limits={"messages": 100, "agents": 5})
    assert (await grant(api, keys, await partner_key_id(db), keys.organization_id))["errors"] == []
    # Two events of 2^31 - 1: the tester's case, accepted before and unreadable after.
    result = await record(api, keys.owner, [event("a", quantity=INT32), event("b", quantity=INT32)])
    assert result == {"accepted": 2, "duplicates": 0, "errors": []}
    seen = await _read_everything(api, keys)
    total = 2 * INT32
    assert seen["messagesThisMonth"] == str(total)
    messages = seen["usage"]["messages"]
    assert (messages["used"], messages["limit"], messages["remaining"], messages["overage"]) == (
        str(total), "100", "0", str(total - 100))
    assert messages["percentUsed"] == f"{total}.00"  # of a limit of 100
    assert seen["entitlements"]["messages"]["used"] == str(total)
    assert seen["entitlements"]["messages"]["exceeded"] is True
    assert seen["planLimits"]["messages"] == str(total)
    assert seen["snapshot"]["messages"]["used"] == str(total)
    assert seen["snapshot"]["messages"]["overage"] == str(total - 100)

    # Past 2^53 (the largest integer a JavaScript number holds exactly): still exact, as strings.
    result = await record(api, keys.owner, [event("c", quantity=MAX_EVENT_QUANTITY),
                                            event("d", quantity=str(MAX_EVENT_QUANTITY)),
                                            event("g", "agents", quantity=INT32)])
    assert result == {"accepted": 3, "duplicates": 0, "errors": []}
    total += 2 * MAX_EVENT_QUANTITY
    assert total > 2**53
    seen = await _read_everything(api, keys)
    assert seen["messagesThisMonth"] == str(total)
    assert seen["usage"]["messages"]["used"] == str(total)
    assert seen["usage"]["messages"]["overage"] == str(total - 100)
    assert seen["entitlements"]["messages"]["used"] == str(total)
    assert seen["snapshot"]["messages"]["used"] == str(total)
    assert seen["agentCount"] == INT32  # a GAUGE is at most 2^31 - 1: an Int
    assert seen["usage"]["agents"]["overage"] == str(INT32 - 5)


async def test_an_event_above_the_maximum_is_refused_with_the_field(api, db, keys):
    for metric, quantity in (("messages", MAX_EVENT_QUANTITY + 1), ("messages", 2**63), ("messages", str(2**64 + 5)),
                             ("messages", str(10**30)), ("agents", INT32 + 1)):
        result = await record(api, keys.owner, [event("big", metric, quantity=quantity)])
        assert result["accepted"] == 0
        assert [(e["code"], e["field"]) for e in result["errors"]] == [("VALIDATION", "events[0].quantity")]
    for quantity in (1.5, "1.5", "12abc", " 7", True, "1" * 41):
        refused = await api.post(RECORD, {"input": {"events": [event("odd", quantity=quantity)]}}, token=keys.owner)
        assert refused.get("data") is None and refused["errors"], quantity
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(UsageEvent)) == 0


async def test_a_batch_that_would_pass_the_64_bit_ceiling_is_refused_whole(api, db, keys):
    fits = MAX_COUNTER_VALUE // MAX_EVENT_QUANTITY  # 1024 events of the maximum fit in a counter
    first = await record(api, keys.owner, [event(f"a{i}", quantity=MAX_EVENT_QUANTITY) for i in range(1000)])
    assert first["accepted"] == 1000 and first["errors"] == []
    second = await record(api, keys.owner, [event(f"b{i}", quantity=MAX_EVENT_QUANTITY)
                                            for i in range(fits - 1000 + 1)] + [event("c", "agents", quantity=1)])
    assert second["accepted"] == 0
    assert [(e["code"], e["field"]) for e in second["errors"]] == [("VALIDATION", "events")]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(UsageEvent)) == 1000
        values = (await session.execute(select(UsageCounter.value))).scalars().all()
    assert values == [1000 * MAX_EVENT_QUANTITY]
    # Up to the ceiling is fine, and still readable.
    third = await record(api, keys.owner, [event(f"d{i}", quantity=MAX_EVENT_QUANTITY) for i in range(fits - 1000)])
    assert third["accepted"] == fits - 1000
    usage = (await api.ok(USAGE, token=keys.owner))["usage"]
    assert usage["messagesThisMonth"] == str(fits * MAX_EVENT_QUANTITY)


async def test_an_empty_idempotency_key_is_refused(api, db, keys):
    for key in ("", " ", "\t"):
        result = await record(api, keys.owner, [event(key)])
        assert result["accepted"] == 0, repr(key)
        assert [(e["code"], e["field"]) for e in result["errors"]] == [("VALIDATION", "events[0].idempotencyKey")]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(UsageEvent)) == 0


async def test_bigint_reads_through_the_registered_usage_query(api, db, keys):
    await subscribed(db, keys, limits={"messages": 10})
    await record(api, keys.owner, [event("a", quantity=INT32), event("b", quantity=INT32)])
    result = await api.post(USAGE, {"org": gid("Organization", keys.organization_id)}, token=keys.super_admin)
    assert "errors" not in result
    assert result["data"]["usage"]["messagesThisMonth"] == str(2 * INT32)
