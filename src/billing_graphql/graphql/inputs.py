"""Service inputs read from GraphQL inputs field by field, by name.

A create input becomes the service's spec (``spec_from_input``: ``domain.records.record_from``)
and an update input its patch (``patch_from_input``) without a resolver naming each field: a
field added to a spec and to its input is carried over by itself. ``convert`` turns an input
value into the service's (nested inputs into specs); ``given`` supplies the fields an input does
not carry under the spec's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import strawberry

from billing_graphql.domain.records import record_from as spec_from_input

__all__ = ["patch_from_input", "spec_from_input"]

Converters = dict[str, Callable[[Any], Any]]


def patch_from_input(patch_class: type, input: Any, convert: Converters | None = None) -> Any:
    """A service patch from an update input: fields left out (UNSET) stay ``KEEP``; an explicit
    null is passed on as None (the service refuses it for required fields)."""
    convert = convert or {}
    values: dict[str, Any] = {}
    for item in fields(patch_class):
        value = getattr(input, item.name, strawberry.UNSET)
        if value is strawberry.UNSET:
            continue
        if value is not None and item.name in convert:
            value = convert[item.name](value)
        values[item.name] = value
    return patch_class(**values)
