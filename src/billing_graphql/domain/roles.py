"""Who may act: the roles an API key or session token carries."""

from __future__ import annotations

import enum


class Role(enum.Enum):
    SUPER_ADMIN = "SUPER_ADMIN"
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"
    PARTNER = "PARTNER"

    @property
    def needs_organization(self) -> bool:
        return self in TENANT_ROLES


# The role sets, defined here only (GraphQL permissions and the HTTP routes use them).
TENANT_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})  # act within one organization
TENANT_MANAGERS = frozenset({Role.OWNER, Role.ADMIN})  # manage their organization's billing
MANAGERS = frozenset({Role.SUPER_ADMIN, *TENANT_MANAGERS})  # ... or any organization's
READERS = frozenset({Role.SUPER_ADMIN, *TENANT_ROLES})  # read an organization's billing
# Roles an organization's owner may hand out for its own organization.
OWNER_GRANTABLE = TENANT_ROLES
