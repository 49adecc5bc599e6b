"""Declarative base, naming convention and the column helpers every model uses."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, ForeignKey, MetaData, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from uuid6 import uuid7

from billing_graphql.db.types import UTCDateTime
from billing_graphql.domain.records import fields_of

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid(), int: BigInteger()}

    @classmethod
    def from_fields(cls, source: Any, **given: Any) -> Any:
        """A new row whose columns take the same-named fields of the dataclass ``source`` (a
        draft, a caller's input) as they are; ``given`` adds the rest and wins over ``source``."""
        return cls(**{**fields_of(source), **given})


def enum_type(enum_class: type[enum.Enum], name: str) -> Enum:
    """A VARCHAR with a CHECK of the allowed values (no native enum type to migrate)."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        validate_strings=True,
    )


def uuid_pk(default: Callable[[], uuid.UUID] = uuid.uuid4, **options: Any) -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=default, **options)


def ordered_uuid() -> uuid.UUID:
    """A UUIDv7 above every one this process made before: rows made in one transaction (one
    ``created_at``) sort by ``(created_at, id)`` in the order they were made. A plain ``uuid.UUID``
    (the drivers are handed the standard type)."""
    return uuid.UUID(int=uuid7().int)


def money_column(*, nullable: bool = False, default: int | None = 0) -> Mapped[int]:
    """An amount in integer minor units."""
    return mapped_column(BigInteger, nullable=nullable, default=default)


def reference(table: str, *, ondelete: str | None = None, **options: Any) -> Mapped[Any]:
    """A foreign key to ``table``'s id; ``options`` as for ``mapped_column`` (index, unique,
    primary_key); nullable when the annotation is optional."""
    return mapped_column(ForeignKey(f"{table}.id", ondelete=ondelete), **options)


def owned_by(table: str = "organizations", **options: Any) -> Mapped[Any]:
    """A foreign key to the row this one belongs to: deleting the owner deletes it (CASCADE)."""
    return reference(table, ondelete="CASCADE", **options)
