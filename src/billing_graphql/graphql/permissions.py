"""Permission classes, declared on fields through ``allow(...)``."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from billing_graphql.domain.roles import MANAGERS, READERS, TENANT_MANAGERS, TENANT_ROLES, Role
from billing_graphql.graphql.errors import Forbidden, Unauthenticated


PARTNER_REFUSED = "Forbidden: partner keys may only read usageSnapshots."


class IsAuthenticated(BasePermission):
    """An actor is known; a PARTNER only where the field admits partners (``allow(Role.PARTNER)``)."""

    message = "Authentication required: send 'Authorization: Bearer <API key or session token>'."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def __init__(self, admits_partners: bool = False) -> None:
        self.admits_partners = admits_partners

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        context = info.context
        if context.auth_error is not None:
            # A credential was sent but refused: say why (revoked, expired, malformed).
            raise Unauthenticated(context.auth_error)
        actor = context.actor
        if actor is not None and actor.role is Role.PARTNER and not self.admits_partners:
            raise Forbidden(PARTNER_REFUSED)
        return actor is not None

    def on_unauthorized(self) -> None:
        raise Unauthenticated(self.message)


class HasRole(BasePermission):
    error_extensions = {"code": "FORBIDDEN"}

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)
        names = ", ".join(sorted(role.value for role in roles))
        self.message = f"Forbidden: this needs one of the roles {names}."

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        actor = info.context.actor
        return actor is not None and actor.role in self.roles

    def on_unauthorized(self) -> None:
        raise Forbidden(self.message)


__all__ = ["MANAGERS", "READERS", "TENANT_MANAGERS", "TENANT_ROLES", "allow"]


def allow(*roles: Role) -> list[PermissionExtension]:
    """Field extensions: authenticated, and (when roles are given) holding one of them."""
    permissions: list[BasePermission] = [IsAuthenticated(admits_partners=Role.PARTNER in roles)]
    if roles:
        permissions.append(HasRole(*roles))
    return [PermissionExtension(permissions=permissions, use_directives=False)]
