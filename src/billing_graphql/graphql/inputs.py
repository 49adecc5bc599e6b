"""Service inputs read from GraphQL inputs field by field, by name.

A create input becomes the service's spec (``spec_from_input``) and an update input its patch
(``patch_from_input``) without a resolver naming each field: a field added to a spec and to its
input is carried over by itself. ``convert`` turns an input value into the service's (nested
inputs into specs); ``given`` supplies the fields an input does not carry under the spec's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import strawberry

Converters = dict[str, Callable[[Any], Any]]


def spec_from_input(spec_class: type, input: Any, convert: Converters | None = None, **given: Any) -> Any:
    """A service spec from a create input: each field of ``spec_class`` is the input's field of the
    same name (through ``convert``), except the ``given`` ones."""
    convert = convert or {}
    values = dict(given)
    for item in fields(spec_class):
        if item.name not in given:
            value = getattr(input, item.name)
            values[item.name] = convert[item.name](value) if item.name in convert else value
    return spec_class(**values)


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
