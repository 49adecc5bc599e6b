"""One record built from another by field name: a spec from an input, a row from a draft, the
domain's view of a row. Where the names agree nothing is copied by hand, so a field added to both
sides is carried over by itself."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


@functools.cache  # a dataclass's fields do not change; ``fields`` makes them again on every call
def _field_names(record_class: type) -> tuple[str, ...]:
    return tuple(item.name for item in fields(record_class))


def fields_of(source: Any) -> dict[str, Any]:
    """The fields of the dataclass instance ``source`` by name (not copied, not recursed into)."""
    return {name: getattr(source, name) for name in _field_names(type(source))}


def record_from(record_class: type[T], source: Any, convert: dict[str, Callable[[Any], Any]] | None = None,
                **given: Any) -> T:
    """A ``record_class`` (a dataclass) whose fields are ``source``'s attributes of the same names
    (through ``convert[name]`` where given), except the ``given`` ones."""
    convert = convert or {}
    values = dict(given)
    for item in fields(record_class):
        if item.name not in given:
            value = getattr(source, item.name)
            values[item.name] = convert[item.name](value) if item.name in convert else value
    return record_class(**values)
