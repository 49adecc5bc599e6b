"""Fixtures for the webhook tests: an organization, a super-admin actor, a receiver."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.webhooks import endpoints
from tests.helpers import T0
from tests.factories import make_organization
from tests.webhooks.receiver import running_receiver

STAFF = Actor(role=Role.SUPER_ADMIN, organization_id=None, subject="test:staff")


class Clock:
    """An injectable 'now' that tests move by hand."""

    def __init__(self, at=T0) -> None:
        self.at = at

    def __call__(self):
        return self.at

    def advance(self, **delta) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def organization(db):
    return await make_organization(db)


@pytest.fixture
def receiver():
    with running_receiver() as server:
        yield server


async def add_endpoint(db, url, *, organization_id=None, events=("*",), now=T0):
    endpoint, secret = await endpoints.create_endpoint(
        db, STAFF, url=url, events=list(events), description="test", organization_id=organization_id,
        production=False, now=now,
    )
    return endpoint, secret


async def emit(db, organization_id, event_type="invoice.paid", count=1, now=T0, **payload):
    async with db.write() as session:
        for index in range(count):
            emit_event(session, event_type=event_type, organization_id=organization_id,
                       payload={"index": index, **payload}, now=now)
