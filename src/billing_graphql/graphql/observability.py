"""Names a GraphQL request's operation and outcome for the metrics and the request log."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from billing_graphql.metrics import CURRENT_REQUEST, operation_label

SERVER_ERROR_MESSAGE = "Unexpected error."


def _is_server_error(error: GraphQLError) -> bool:
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        return True
    code = (error.extensions or {}).get("code")
    return code == "INTERNAL_SERVER_ERROR" or (code is None and error.message == SERVER_ERROR_MESSAGE)


class RequestMetrics(SchemaExtension):
    """Fills in the request's record (set by ``http.metrics.RequestMetricsMiddleware``):
    operation name, outcome (ok, client_error, server_error), the actor's role and organization."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        result = context.result
        errors = (result.errors if result is not None else None) or context.pre_execution_errors or []
        if not errors:
            outcome = "ok"
        elif any(_is_server_error(error) for error in errors):
            outcome = "server_error"
        else:
            outcome = "client_error"
        label = operation_label(context.operation_name) if context.graphql_document else "invalid"
        note_operation(label, context.context, outcome)


def note_operation(label: str, context: object, outcome: str) -> None:
    """Fill in the request's record: the operation's label, the actor's role and organization, the outcome."""
    record = CURRENT_REQUEST.get()
    if record is None:
        return
    record.operation = label
    actor = getattr(context, "actor", None)
    if actor is not None:
        record.role = actor.role.value
        record.organization = str(actor.organization_id) if actor.organization_id else None
    record.outcome = outcome
