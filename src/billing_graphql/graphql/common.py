"""Shared types: Money, the Role enum, ID decoding, and the SQL-paged connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache
from decimal import Decimal
from typing import Any, TypeVar

import strawberry
from strawberry import relay

from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.money import Money as DomainMoney
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.columns import python_values
from billing_graphql.graphql.errors import ClientError
from billing_graphql.graphql.ids import decode_id, read_node_ids  # noqa: F401  (re-exported: the ID decoders)
from billing_graphql.services.pagination import MAX_PAGE_SIZE, Page

Role = strawberry.enum(DomainRole, name="Role")

N = TypeVar("N")

CURSOR_PREFIX = "offset"


@lru_cache(maxsize=16384)
def _money_fields(minor: int, currency: str) -> tuple[Decimal, str]:
    """Major units and display text of an amount, computed once per (amount, currency) and process:
    a page repeats few distinct amounts, and both are immutable."""
    money = DomainMoney(minor, currency)
    return money.amount, money.format()


@strawberry.type(description="An amount of money: exact, in major units, with its currency.")
class Money:
    amount: Decimal
    currency: str
    formatted: str

    @classmethod
    def of(cls, minor: int, currency: str) -> Money:
        amount, formatted = _money_fields(minor, currency) if type(minor) is int else _money_fields.__wrapped__(
            minor, currency)
        return cls(amount=amount, currency=currency, formatted=formatted)

    @classmethod
    def maybe(cls, minor: int | None, currency: str | None) -> Money | None:
        if minor is None or currency is None:
            return None
        return cls.of(minor, currency)


async def load_nodes(
    loader: Any, node_ids: Iterable[str], to_node: Callable[[Any], N], visible: Callable[[Any], bool]
) -> list[N | None]:
    """Relay nodes by id, through a per-request ``loader`` of rows: a missing row or one that is
    not ``visible`` to the caller resolves to None (a malformed id is BAD_USER_INPUT)."""
    rows = await loader.load_many(read_node_ids(node_ids))
    return [to_node(row) if row is not None and visible(row) else None for row in rows]


def cursor_at(position: int) -> str:
    """The cursor of the item at ``position`` of a paged list (``offset_after`` reads it back)."""
    return relay.to_base64(CURSOR_PREFIX, position)


def offset_after(after: str | None) -> int:
    """The offset a page starts at, from the cursor it comes after."""
    if after is None:
        return 0
    try:
        prefix, value = relay.from_base64(after)
        if prefix != CURSOR_PREFIX:
            raise ValueError(prefix)
        return int(value) + 1
    except Exception:
        raise ClientError(f"Invalid cursor {after!r}.") from None


def page_size(first: int | None, default: int = 10) -> int:
    size = default if first is None else first
    if size < 0 or size > MAX_PAGE_SIZE:
        raise ClientError(f"'first' must be between 0 and {MAX_PAGE_SIZE}.")
    return size


def connection_from_page(
    connection_class: type[relay.Connection[N]],
    page: Page[Any],
    to_node: Callable[[Any], N],
) -> relay.Connection[N]:
    edges = [
        relay.Edge(node=to_node(item), cursor=cursor_at(page.offset + index))
        for index, item in enumerate(page.items)
    ]
    return connection_class(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.offset > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


async def attempt(
    call: Awaitable[Any] | Callable[[], Awaitable[Any]], details: dict[str, Any] | None = None
) -> tuple[Any, list[Any]]:
    """The one way a mutation turns a service call into payload errors.

    ``call``: an awaitable, or a function returning one (so that decoding its arguments fails
    inside, as a business error too). A ``BillingError`` becomes ``(None, [BillingError])``
    (its details go into ``details`` when given); a result that carries a ``payment_error``
    (a declined or pending charge, the change standing) comes back with it as the error.
    """
    from billing_graphql.graphql.errors import BillingError

    try:
        result = await (call() if callable(call) else call)
    except DomainBillingError as error:
        if details is not None:
            details.update(error.details)
        return None, [BillingError.from_domain(error)]
    payment_error = getattr(result, "payment_error", None)
    return result, [BillingError.from_domain(payment_error)] if payment_error else []


R = TypeVar("R")
_PLAIN_FIELDS: dict[type, tuple[str, ...]] = {}


def from_row(cls: type[R], row: Any, *parents: Any, **values: Any) -> R:
    """The one way a type is built from a row, once: each computed field declared with
    ``columns.columns(cls, Model, ...)`` takes its Python form (given ``parents``, e.g. the invoice's
    currency for a line), each other plain field of ``cls`` (a field without a resolver) not given in
    ``values`` takes the row's attribute of the same name (a Relay ``id`` as a string), and a private
    ``row`` field, where the type declares one for its nested resolvers, keeps the row."""
    python_values(cls, row, parents, values)
    names = _PLAIN_FIELDS.get(cls)
    if names is None:
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        names = _PLAIN_FIELDS[cls] = tuple(
            field.python_name for field in definition.fields
            if field.base_resolver is None and field.python_name != "row"
        )
    for name in names:
        if name not in values:
            value = getattr(row, name)
            values[name] = str(value) if name == "id" else value
    if "row" in cls.__dataclass_fields__:  # type: ignore[attr-defined]
        values["row"] = row
    return cls(**values)
