"""The DataLoaders' statements and the live subscription's are made once, not for every batch or read: building
a statement and its cache key cost 0.1-0.2 ms of CPU each, a subscription page's seven batches about a
millisecond (issue 24). Each batch still binds its own keys."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import event

from billing_graphql.graphql.loaders import Loaders
from billing_graphql.services.subscriptions.loading import live_subscription
from tests.factories import make_organization, make_plan, make_subscription


class Executed:
    """The statement objects the engine was given, in order."""

    def __init__(self, db) -> None:
        self.engine = db.engine.sync_engine
        self.statements: list = []

    def __enter__(self) -> Executed:
        event.listen(self.engine, "before_execute", self.note)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_execute", self.note)

    def note(self, connection, statement, *args) -> None:
        self.statements.append(statement)


async def test_each_batch_runs_the_same_statement_with_its_own_keys(db):
    cheap = await make_plan(db, name="Cheap", monthly=1000, limits={"agents": 3})
    dear = await make_plan(db, name="Dear", monthly=9000, limits={"agents": 5, "contacts": None})
    with Executed(db) as by_id:
        rows = [await Loaders(db).plan_by_id.load(key) for key in (cheap.id, dear.id, uuid.uuid4())]
    with Executed(db) as grouped:
        limits = [await Loaders(db).limits_by_plan.load(plan.id) for plan in (cheap, dear)]
    assert [row.name if row is not None else None for row in rows] == ["Cheap", "Dear", None]
    assert [[(metric.code, limit.limit_value) for limit, metric in rows] for rows in limits] == [
        [("agents", 3)], [("agents", 5), ("contacts", None)]]
    assert len(by_id.statements) == 3 and by_id.statements[0] is by_id.statements[1] is by_id.statements[2]
    assert len(grouped.statements) == 2 and grouped.statements[0] is grouped.statements[1]


async def test_the_live_subscription_is_read_by_one_statement_for_every_organization(db):
    plan = await make_plan(db, name="Team", monthly=1000)
    organizations = [await make_organization(db, name=name) for name in ("A", "B")]
    subscriptions = [await make_subscription(db, organization.id, plan=plan) for organization in organizations]
    with Executed(db) as executed:
        async with db.read() as session:
            found = [await live_subscription(session, organization.id) for organization in organizations]
    assert [row.id for row in found] == [row.id for row in subscriptions]
    assert executed.statements[0] is executed.statements[1]


async def test_a_batch_of_one_key_binds_it_and_a_batch_of_several_expands(db):
    """A batch of one key (most of them) is ``= :ids``: SQLAlchemy renders an expanding ``IN`` again at every
    run. Both give each key its own rows."""
    cheap = await make_plan(db, name="Cheap", monthly=1000, limits={"agents": 3})
    dear = await make_plan(db, name="Dear", monthly=9000, limits={"agents": 5, "contacts": None})
    with Executed(db) as one:
        alone = await Loaders(db).limits_by_plan.load(dear.id)
    loaders = Loaders(db)
    with Executed(db) as several:
        together = await asyncio.gather(*(loaders.limits_by_plan.load(plan.id) for plan in (cheap, dear)))
    codes = [[(metric.code, limit.limit_value) for limit, metric in rows] for rows in (alone, *together)]
    assert codes == [[("agents", 5), ("contacts", None)], [("agents", 3)], [("agents", 5), ("contacts", None)]]
    assert len(one.statements) == len(several.statements) == 1
    assert "POSTCOMPILE" not in str(one.statements[0]) and "POSTCOMPILE" in str(several.statements[0])
