from __future__ import annotations

import uuid

import pytest

from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.settings import Settings
from tests.helpers import T0


@pytest.fixture
def app_settings() -> Settings:
    return Settings(jwt_secret="test-secret-of-enough-length-123")


@pytest.fixture
async def org(db):
    return await create_organization(db, None, name="Acme", external_id=f"acme-{uuid.uuid4().hex[:6]}", now=T0)
