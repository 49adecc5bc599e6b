"""Errors: business failures as data (``BillingError``), access and input as top-level errors."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError

from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.errors import BillingErrorCode as DomainBillingErrorCode
from billing_graphql.http.request_ids import current_request_id, log_unexpected

log = logging.getLogger("billing_graphql.graphql")

BillingErrorCode = strawberry.enum(DomainBillingErrorCode, name="BillingErrorCode")


@strawberry.type(description="An expected business failure: act on `code`, show `message`.")
class BillingError:
    code: BillingErrorCode
    message: str
    field: str | None = None

    @classmethod
    def from_domain(cls, error: DomainBillingError) -> BillingError:
        return cls(code=error.code, message=error.message, field=error.field)


class ClientError(GraphQLError):
    """A top-level error the caller caused; never masked."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": self.code})


class Unauthenticated(ClientError):
    code = "UNAUTHENTICATED"


class Forbidden(ClientError):
    code = "FORBIDDEN"


def should_mask_error(error: GraphQLError) -> bool:
    """Mask unexpected exceptions; keep validation, permission and client errors."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False
    log_unexpected(original, current_request_id(), f"GraphQL field {error.path}")
    return True
