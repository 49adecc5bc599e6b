"""Global IDs given as plain ``ID`` strings in inputs."""

from __future__ import annotations

import uuid

from strawberry import relay

from billing_graphql.domain.errors import not_found


def decode_global_id(value: str, type_name: str, field: str = "id", what: str | None = None) -> uuid.UUID:
    """The UUID behind a global ID of ``type_name``; malformed or of another type is NOT_FOUND."""
    try:
        global_id = relay.GlobalID.from_id(value)
        if global_id.type_name != type_name:
            raise ValueError(global_id.type_name)
        return uuid.UUID(global_id.node_id)
    except ValueError:
        raise not_found(what or type_name, field) from None
