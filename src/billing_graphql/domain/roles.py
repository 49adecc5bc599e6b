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
        return self in (Role.OWNER, Role.ADMIN, Role.MEMBER)


# Roles an organization's owner may hand out for its own organization.
OWNER_GRANTABLE = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})
