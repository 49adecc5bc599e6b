"""Whose rows an actor acts on and lists: ``Actor.organization_in_scope`` and ``Actor.listing_scope``
(the lists of API keys and webhook endpoints read the rows it names, on both paths)."""

from __future__ import annotations

import uuid

import pytest

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role

OWN, OTHER = uuid.uuid4(), uuid.uuid4()


def _actor(role: Role, organization_id: uuid.UUID | None) -> Actor:
    return Actor(role=role, organization_id=organization_id, subject="test")


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.SUPER_ADMIN])
def test_a_tenant_lists_its_own_organization_only(role: Role) -> None:
    tenant = _actor(role, OWN)
    assert tenant.listing_scope(None) == (True, OWN)
    assert tenant.listing_scope(OWN) == (True, OWN)
    assert tenant.listing_scope(OTHER) == (False, None)  # another organization's: nothing, never every one


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.SUPER_ADMIN])
def test_a_tenant_without_an_organization_lists_nothing(role: Role) -> None:
    assert _actor(role, None).listing_scope(None) == (False, None)
    assert _actor(role, None).listing_scope(OTHER) == (False, None)


def test_a_super_admin_lists_the_organization_named_or_every_one() -> None:
    staff = _actor(Role.SUPER_ADMIN, None)
    assert staff.listing_scope(OTHER) == (True, OTHER)
    assert staff.listing_scope(None) == (True, None)  # None: every organization's rows
