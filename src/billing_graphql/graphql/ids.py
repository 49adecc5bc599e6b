"""Global IDs: every ID argument and input field is decoded here.

ID arguments are typed ``strawberry.ID`` (plain strings), so that a malformed one reaches these
functions instead of failing inside Strawberry's argument conversion. One rule, two answers:

- malformed (not a base64 ``Type:uuid``): in a query the caller's error, a top-level
  ``BAD_USER_INPUT`` (``read_id``, ``read_node_ids``); in a mutation the payload's ``NOT_FOUND``
  on the field (``decode_id``), the code mutations give every id they cannot use;
- well-formed but of another type, of another organization or of nothing: in a query it reads
  as nothing (``NOWHERE``: null or an empty list), in a mutation ``NOT_FOUND``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from strawberry import relay

from billing_graphql.domain.errors import not_found
from billing_graphql.graphql.errors import ClientError

NOWHERE = uuid.UUID(int=0)  # the key of no row: an id that names nothing reads as this


def parse_id(value: str | relay.GlobalID) -> tuple[str, uuid.UUID]:
    """(type name, UUID) of a global ID; ValueError when it is malformed."""
    try:
        global_id = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(value)
        return global_id.type_name, uuid.UUID(global_id.node_id)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{value!r} is not a global ID.") from None


def decode_id(
    value: str | relay.GlobalID, type_name: str, field: str = "id", what: str | None = None
) -> uuid.UUID:
    """Mutations: the UUID behind a global ID of ``type_name``; anything else is NOT_FOUND on ``field``."""
    try:
        found_type, key = parse_id(value)
    except ValueError:
        raise not_found(what or type_name, field) from None
    if found_type != type_name:
        raise not_found(what or type_name, field)
    return key


def read_id(value: str | relay.GlobalID, type_name: str, field: str = "id") -> uuid.UUID:
    """Queries: the UUID behind a global ID of ``type_name``; ``NOWHERE`` for one of another type;
    a malformed one is BAD_USER_INPUT."""
    try:
        found_type, key = parse_id(value)
    except ValueError:
        raise malformed(field) from None
    return key if found_type == type_name else NOWHERE


def read_optional_id(value: str | relay.GlobalID | None, type_name: str, field: str) -> uuid.UUID | None:
    return None if value is None else read_id(value, type_name, field)


def read_node_ids(node_ids: Iterable[str]) -> list[uuid.UUID]:
    """The UUIDs of ``node``'s ids (their type already read by Relay); a malformed one is BAD_USER_INPUT."""
    keys: list[uuid.UUID] = []
    for node_id in node_ids:
        try:
            keys.append(uuid.UUID(node_id))
        except (ValueError, TypeError, AttributeError):
            raise malformed("id") from None
    return keys


def malformed(field: str) -> ClientError:
    return ClientError(f"'{field}' is not a well-formed global ID.")


decode_global_id = decode_id  # the name some callers know it by
