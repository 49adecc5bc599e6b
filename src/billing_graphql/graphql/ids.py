"""Global IDs: every ID argument and input field is decoded here, by one function.

ID arguments are typed ``strawberry.ID`` (plain strings), so that a malformed one reaches
this function instead of failing inside Strawberry's argument conversion; here it is the
caller's NOT_FOUND, exactly as an ID of another type, of another organization, or of
nothing at all.
"""

from __future__ import annotations

import uuid

from strawberry import relay

from billing_graphql.domain.errors import not_found


def decode_id(
    value: str | relay.GlobalID, type_name: str, field: str = "id", what: str | None = None
) -> uuid.UUID:
    """The UUID behind a global ID of ``type_name``; anything else is NOT_FOUND on ``field``."""
    try:
        global_id = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(value)
        if global_id.type_name != type_name:
            raise ValueError(global_id.type_name)
        return uuid.UUID(global_id.node_id)
    except (ValueError, TypeError):
        raise not_found(what or type_name, field) from None


decode_global_id = decode_id  # the name some callers know it by
