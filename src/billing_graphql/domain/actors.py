"""Who is calling: the actor an API key or session token resolves to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from billing_graphql.domain.roles import Role


@dataclass(frozen=True, slots=True)
class Actor:
    role: Role
    organization_id: uuid.UUID | None
    subject: str  # "api_key:<id>" or "user:<sub>", written to the audit log
    api_key_id: uuid.UUID | None = None

    @property
    def is_super_admin(self) -> bool:
        return self.role is Role.SUPER_ADMIN

    def organization_in_scope(self, requested: uuid.UUID | None) -> uuid.UUID | None:
        """The organization an action applies to.

        Tenants always act on their own organization (a different one requested is None,
        which callers report as NOT_FOUND); super-admins act on the one they name.
        """
        if self.is_super_admin:
            return requested
        if requested is not None and requested != self.organization_id:
            return None
        return self.organization_id

    def listing_scope(self, requested: uuid.UUID | None) -> tuple[bool, uuid.UUID | None]:
        """Whether a list of organizations' rows may be read at all, and whose rows: the organization
        ``organization_in_scope`` gives, or None for a super-admin who names none (every organization's)."""
        scope = self.organization_in_scope(requested)
        return scope is not None or self.is_super_admin, scope

    def may_see(self, organization_id: uuid.UUID | None) -> bool:
        """Whether rows of ``organization_id`` are visible: their own organization's for tenants,
        any organization's for super-admins."""
        return self.organization_in_scope(organization_id) == organization_id
