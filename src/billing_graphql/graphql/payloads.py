"""Mutation payloads that carry one object (or a removed object's id) and the errors.

``node_payload("CreateAddonPayload", "addon", AddonType)`` is the type

    type CreateAddonPayload { addon: Addon  errors: [BillingError!]! }

and ``await CreateAddonPayload.of(call)`` runs the service call through ``attempt`` (the one way
a ``BillingError`` becomes payload errors) and puts its result, turned into the field's type
(``AddonType.from_row`` unless ``to_node`` says otherwise), in the field. A mutation then reads:
decode the input, call the service, return ``Payload.of(...)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from billing_graphql.graphql.common import attempt
from billing_graphql.graphql.errors import BillingError


class NodePayload:
    """What the payload types made by ``node_payload`` share: building one from a service call."""

    _field: str
    _to_node: Callable[[Any], Any] | None

    @classmethod
    async def of(
        cls,
        call: Awaitable[Any] | Callable[[], Awaitable[Any]],
        to_node: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The payload of ``call`` (see ``attempt``): its result turned into the field's value by
        ``to_node`` (default: the type's own), or null with the errors."""
        result, errors = await attempt(call)
        convert = to_node or cls._to_node
        value = None if result is None else convert(result) if convert else result
        return cls(**{cls._field: value, "errors": errors})


def node_payload(name: str, field: str, node: Any, *, to_node: Callable[[Any], Any] | None = None) -> type[Any]:
    """The payload type ``name``: ``field`` (a nullable ``node``) then ``errors``. ``to_node``
    turns the service's result into ``node`` (default: ``node.from_row`` where it has one)."""
    namespace: dict[str, Any] = {
        "__annotations__": {field: node | None, "errors": list[BillingError]},
        "__module__": __name__,
        field: None,
        "errors": strawberry.field(default_factory=list),
    }
    payload = strawberry.type(type(name, (NodePayload,), namespace))
    payload._field = field
    payload._to_node = to_node or getattr(node, "from_row", None)
    return payload
