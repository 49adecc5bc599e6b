"""Metric aggregations and event properties over HTTP, on SQLite and PostgreSQL: createMetric with
an aggregation (bad input refused, nothing written), recordUsage with properties (a bad event
refused by index, nothing recorded for it), and the aggregates `usage` reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from billing_graphql.db.models import AuditEvent, Metric, UsageCounter, UsageEvent, UsageUniqueValue

CREATE = """mutation($input: CreateMetricInput!) { createMetric(input: $input) {
  metric { code kind aggregation property } errors { code field message } } }"""
METRICS = "query { metrics { code kind aggregation property } }"
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted duplicates
  errors { code field message } } }"""
USAGE = "query { usage { metrics { metric { code aggregation } used } } }"

NEW_METRICS = [
    {"code": "active_users", "name": "Active users", "aggregation": "UNIQUE_COUNT", "property": "user"},
    {"code": "peak_agents", "name": "Peak agents", "aggregation": "MAX"},
    {"code": "calls", "name": "Calls", "aggregation": "COUNT"},
    {"code": "bytes_sent", "name": "Bytes", "aggregation": "SUM", "property": "bytes"},
    {"code": "storage_gb", "name": "Storage", "kind": "GAUGE"},
]


async def create_metrics(api, keys) -> None:
    for item in NEW_METRICS:
        data = (await api.ok(CREATE, {"input": item}, token=keys.super_admin))["createMetric"]
        assert data["errors"] == [], data


async def counts(db) -> tuple[int, int, int, int]:
    async with db.read() as session:
        return tuple([await session.scalar(select(func.count()).select_from(model))
                      for model in (Metric, AuditEvent, UsageEvent, UsageUniqueValue)])


def event(key: str, metric: str, quantity: int = 1, properties: dict | None = None, at: datetime | None = None):
    body = {"metric": metric, "quantity": quantity, "timestamp": (at or datetime.now(UTC)).isoformat(),
            "idempotencyKey": key}
    return {**body, "properties": properties} if properties is not None else body


async def record(api, keys, events) -> dict:
    return (await api.ok(RECORD, {"input": {"events": events}}, token=keys.owner))["recordUsage"]


async def used(api, keys) -> dict[str, str]:
    data = (await api.ok(USAGE, token=keys.member))["usage"]
    return {item["metric"]["code"]: item["used"] for item in data["metrics"]}


async def test_create_metric_with_an_aggregation_and_existing_metrics_read_theirs(api, db, keys):
    await create_metrics(api, keys)
    by_code = {item["code"]: item for item in (await api.ok(METRICS, token=keys.member))["metrics"]}
    assert by_code["active_users"] == {"code": "active_users", "kind": "COUNTER", "aggregation": "UNIQUE_COUNT",
                                       "property": "user"}
    assert by_code["peak_agents"]["aggregation"] == "MAX" and by_code["peak_agents"]["property"] is None
    assert by_code["storage_gb"] == {"code": "storage_gb", "kind": "GAUGE", "aggregation": "LATEST", "property": None}
    # The seeded metrics were backfilled by the migration: COUNTER is SUM of quantity, GAUGE is LATEST.
    assert (by_code["messages"]["kind"], by_code["messages"]["aggregation"]) == ("COUNTER", "SUM")
    assert (by_code["agents"]["kind"], by_code["agents"]["aggregation"]) == ("GAUGE", "LATEST")
    assert by_code["messages"]["property"] is None


async def test_create_metric_refusals_write_nothing(api, db, keys):
    before = await counts(db)
    cases = [
        ({"code": "m1", "name": "M"}, "aggregation"),
        ({"code": "m2", "name": "M", "kind": "GAUGE", "aggregation": "SUM"}, "kind"),
        ({"code": "m3", "name": "M", "kind": "COUNTER", "aggregation": "LATEST"}, "kind"),
        ({"code": "m4", "name": "M", "aggregation": "UNIQUE_COUNT"}, "property"),
        ({"code": "m5", "name": "M", "aggregation": "COUNT", "property": "user"}, "property"),
        ({"code": "m6", "name": "M", "aggregation": "SUM", "property": "has space"}, "property"),
        ({"code": "m7", "name": "M", "aggregation": "MAX", "property": "p" * 65}, "property"),
        ({"code": "m8", "name": "  ", "aggregation": "COUNT"}, "name"),
        ({"code": "Bad-Code", "name": "M", "aggregation": "COUNT"}, "code"),
    ]
    for item, field in [*cases, ({"code": "messages", "name": "M", "aggregation": "COUNT"}, "code")]:
        data = (await api.ok(CREATE, {"input": item}, token=keys.super_admin))["createMetric"]
        code = "ALREADY_EXISTS" if item["code"] == "messages" else "VALIDATION"
        assert data["metric"] is None and [(e["code"], e["field"]) for e in data["errors"]] == [
            (code, field)], (item, data)
    unknown = await api.post(CREATE, {"input": {"code": "m9", "name": "M", "aggregation": "MEDIAN"}},
                             token=keys.super_admin)
    assert unknown.get("data") is None and unknown["errors"]
    assert await counts(db) == before


async def test_each_aggregation_over_recorded_events(api, db, keys):
    await create_metrics(api, keys)
    now = datetime.now(UTC)
    first = await record(api, keys, [
        event("u1", "active_users", properties={"user": "ann"}),
        event("u2", "active_users", properties={"user": "bob", "plan": "pro", "trial": False}),
        event("u3", "active_users", properties={"user": "ann"}),  # seen: not counted again
        event("u4", "active_users", properties={"user": 7}),
        event("p1", "peak_agents", 4), event("p2", "peak_agents", 9), event("p3", "peak_agents", 2),
        event("c1", "calls", 100), event("c2", "calls", 0),
        event("b1", "bytes_sent", 999, {"bytes": 1500}), event("b2", "bytes_sent", 0, {"bytes": 500}),
        event("s1", "storage_gb", 40, at=now - timedelta(minutes=1)),
        event("m1", "messages", 3, {"channel": "whatsapp"}),
    ])
    assert first == {"accepted": 13, "duplicates": 0, "errors": []}
    second = await record(api, keys, [
        event("u5", "active_users", properties={"user": "7"}),  # 7 and "7" are one value
        event("u6", "active_users", properties={"user": "cy"}),
        event("p4", "peak_agents", 6),
        event("s2", "storage_gb", 10, at=now - timedelta(minutes=5)),  # older, arriving later: ignored
        event("c1", "calls"),  # a key seen before
    ])
    assert second == {"accepted": 4, "duplicates": 1, "errors": []}
    values = await used(api, keys)
    assert {code: values[code] for code in ("active_users", "peak_agents", "calls", "bytes_sent", "storage_gb",
                                            "messages")} == {
        "active_users": "4", "peak_agents": "9", "calls": "2", "bytes_sent": "2000", "storage_gb": "40",
        "messages": "3"}
    await record(api, keys, [event("s3", "storage_gb", 12, at=now)])
    assert (await used(api, keys))["storage_gb"] == "12"
    async with db.read() as session:
        stored = await session.scalar(select(UsageEvent.properties).where(UsageEvent.idempotency_key == "u2"))
        assert stored == {"user": "bob", "plan": "pro", "trial": False}
        assert await session.scalar(select(UsageEvent.properties).where(UsageEvent.idempotency_key == "p1")) is None
        assert await session.scalar(select(func.count()).select_from(UsageUniqueValue)) == 4


async def test_events_with_bad_properties_are_refused_one_by_one(api, db, keys):
    await create_metrics(api, keys)
    before = await counts(db)
    result = await record(api, keys, [
        event("ok", "active_users", properties={"user": "ann"}),
        event("missing", "active_users", properties={"who": "bob"}),
        event("float", "messages", properties={"x": 1.5}),
        event("nested", "messages", properties={"x": {"y": 1}}),
        event("list", "messages", properties=[1, 2]),
        event("many", "messages", properties={f"k{i}": i for i in range(21)}),
        event("key", "messages", properties={"bad key": 1}),
        event("long", "messages", properties={"x": "y" * 257}),
        event("negative", "bytes_sent", properties={"bytes": -1}),
        event("text", "bytes_sent", properties={"bytes": "12"}),
        event("null", "messages", properties={"x": None}),
    ])
    assert result["accepted"] == 1
    assert [(e["code"], e["field"]) for e in result["errors"]] == [
        ("VALIDATION", "events[1].properties.user"), ("VALIDATION", "events[2].properties.x"),
        ("VALIDATION", "events[3].properties.x"), ("VALIDATION", "events[4].properties"),
        ("VALIDATION", "events[5].properties"), ("VALIDATION", "events[6].properties"),
        ("VALIDATION", "events[7].properties.x"), ("VALIDATION", "events[8].properties.bytes"),
        ("VALIDATION", "events[9].properties.bytes"), ("VALIDATION", "events[10].properties.x")]
    after = await counts(db)
    assert (after[2] - before[2], after[3] - before[3]) == (1, 1)  # the one good event, its one value
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(UsageCounter)) == 1  # active_users only


async def test_properties_pass_the_door_text_rules_whole_request_refused(api, db, keys):
    await create_metrics(api, keys)
    before = await counts(db)
    for value in ("4242 4242 4242 4242", "nul\u0000"):
        answer = await api.post(RECORD, {"input": {"events": [
            event("fine", "messages"), event("card", "active_users", properties={"user": value})]}}, token=keys.owner)
        assert answer["data"] is None
        assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in answer["errors"]] == [
            ("VALIDATION", "input.events.properties.user")]
        assert "4242" not in answer["errors"][0]["message"]
    literal = await api.post('mutation { recordUsage(input: {events: [{metric: "messages", quantity: 1, '
                             'timestamp: "%s", idempotencyKey: "lit", properties: {note: "4242424242424242"}}]}) '
                             '{ accepted } }' % datetime.now(UTC).isoformat(), token=keys.owner)
    assert literal["data"] is None and literal["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert await counts(db) == before


async def test_readme_example_with_properties_written_in_the_document(api, db, keys):
    await api.ok('mutation { createMetric(input: {code: "active_users", name: "Active users", '
                 'aggregation: UNIQUE_COUNT, property: "user_id"}) { errors { code } } }', token=keys.super_admin)
    at = datetime.now(UTC).isoformat()
    data = await api.ok('mutation { recordUsage(input: {events: [{metric: "active_users", quantity: 1, timestamp: "%s", '
                        'idempotencyKey: "login-8812", properties: {user_id: "u-42", plan: "pro", mobile: true}}, '
                        '{metric: "messages", quantity: 3, timestamp: "%s", idempotencyKey: "msg-99120", '
                        'properties: {channel: "whatsapp"}}]}) { accepted duplicates errors { code field message } } }'
                        % (at, at), token=keys.owner)
    assert data["recordUsage"] == {"accepted": 2, "duplicates": 0, "errors": []}
    values = await used(api, keys)
    assert (values["active_users"], values["messages"]) == ("1", "3")
