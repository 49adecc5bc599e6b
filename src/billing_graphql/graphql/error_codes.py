"""Every error the gateway returns carries ``extensions.code``.

Errors raised by our code set their own code (``ClientError`` and subclasses, permission
errors, ``VALIDATION`` from input validation). The rest get one from the phase they come
from:

- parsing: ``GRAPHQL_PARSE_FAILED`` (the token limit: ``QUERY_TOO_COMPLEX``);
- validation: ``GRAPHQL_VALIDATION_FAILED`` (depth and alias limits: ``QUERY_TOO_COMPLEX``);
- execution: variables that do not coerce and malformed global IDs are ``BAD_USER_INPUT``;
  anything else (masked unexpected errors included) is ``INTERNAL_SERVER_ERROR``.

With introspection off, "Did you mean ...?" suggestions are cut from messages, since they
would reveal the schema piece by piece.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import SchemaExtension

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
TOO_COMPLEX = "QUERY_TOO_COMPLEX"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL_SERVER_ERROR"

_TOO_COMPLEX_MESSAGES = re.compile(
    r"exceeds maximum operation depth|aliases found\. Allowed|more than \d+ tokens"
)
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def has_code(error: GraphQLError) -> bool:
    return bool(error.extensions and error.extensions.get("code"))


def set_code(error: GraphQLError, code: str) -> None:
    if not has_code(error):
        error.extensions = {**(error.extensions or {}), "code": code}


def _limit_or(error: GraphQLError, code: str) -> str:
    return TOO_COMPLEX if _TOO_COMPLEX_MESSAGES.search(error.message) else code


def execution_code(error: GraphQLError) -> str:
    """The code of an error that reached the end of the operation without one."""
    if isinstance(error, GraphQLSyntaxError):
        return _limit_or(error, PARSE_FAILED)
    original = error.original_error
    if isinstance(original, StrawberryInputCoercionError) or isinstance(error, StrawberryInputCoercionError):
        return BAD_USER_INPUT
    if error.path is None:
        # Raised by graphql-core before any field ran: variables that do not coerce.
        return BAD_USER_INPUT
    return INTERNAL


class ErrorCodes(SchemaExtension):
    """Give each error a code; list it first, so that it sees the errors after masking."""

    def __init__(self, *, suggestions: bool = True) -> None:
        self.suggestions = suggestions

    def _pre_execution_errors(self) -> Iterable[GraphQLError]:
        return self.execution_context.pre_execution_errors or ()

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self._pre_execution_errors():
            set_code(error, _limit_or(error, VALIDATION_FAILED))

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLError as error:
            # Raised through the hooks (ParserCache parses inside its on_parse hook, so a
            # syntax error leaves the operation as an exception, answered after this exit).
            self._code(error)
            raise
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            self._code(error)

    def _code(self, error: GraphQLError) -> None:
        set_code(error, execution_code(error))
        if not self.suggestions and "Did you mean" in error.message:
            error.message = _SUGGESTION.sub("", error.message)
