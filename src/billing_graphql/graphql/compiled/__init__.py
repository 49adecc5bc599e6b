"""The compiled path: registered queries planned once at start-up, executed without graphql-core.

Every query of ``queries/manifest.json`` is parsed and validated at start-up (with the schema's own
rules and limits) and turned into a plan specialised to its selection: for each object in the answer,
the list of its response keys in order, how each value is read and how it is serialised. Executing a
plan walks the answer level by level: a plain field (no resolver) is an attribute read and its leaf
type's ``serialize``; a field with a resolver calls the very resolver the generic path calls, with the
field's extensions (so permissions and argument conversion are the same), once for every parent of
the level, and awaits them together (so DataLoaders batch them into one statement per level); the
values below are then completed for the whole level at once. No per-field coroutine, no graphql-core
execution context, no Info per field.

Only the happy path is compiled. Anything unusual makes the request run on the generic path from the
start, which then produces exactly the errors, masking and partial data the schema defines: variables
that do not coerce, input text the gateway refuses, a resolver that raises (a permission refused
included), a null where the type says non-null. Queries are read-only, so running one again is safe.
A document that uses what the planner does not handle (directives, abstract types, introspection,
mutations) is not compiled and always takes the generic path; ``CompiledDocuments.skipped`` says why.
The differential test (``tests/perf/test_compiled_path.py``) runs every document of ``queries/``
through both paths and requires byte-identical JSON.

Building the plans logs how many registered queries were compiled, and warns when there are no
registered documents at all; ``billing_graphql_compiled_requests_total{outcome}`` counts the requests
naming a plan: ``answered`` by it, or ``fallback`` (the generic path answered).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, GraphQLSchema, get_variable_values

from billing_graphql.graphql.compiled.execute import Fallback, Run
from billing_graphql.graphql.compiled.plan import NotCompilable, OperationPlan, compile_document
from billing_graphql.graphql.compiled.sql import NoSqlForm, connection_plan
from billing_graphql.graphql.input_validation import check_request
from billing_graphql.graphql.persisted import TrustedDocuments, requested_id
from billing_graphql.metrics import COMPILED_REQUESTS

__all__ = ["CompiledDocuments", "Fallback", "NotCompilable", "compile_document"]

log = logging.getLogger(__name__)


def _sql_plan(plan: OperationPlan, roots: dict) -> Any:
    """The SQL plan of a document with one root field that has a SQL form throughout (None otherwise)."""
    if len(plan.root.fields) != 1 or plan.root.fields[0].typename is not None:
        return None
    try:
        return connection_plan(plan.root.fields[0], roots)
    except NoSqlForm as reason:
        log.debug("%s keeps its Python plan: %s", plan.name, reason)
        return None


@dataclass
class CompiledDocuments:
    """The compiled plans of the registered queries, by document id and by text."""

    schema: GraphQLSchema
    by_id: dict[str, OperationPlan]
    by_body: dict[str, OperationPlan]
    skipped: dict[str, str]  # document id -> why it is not compiled
    answered: int = 0  # requests answered by a plan
    fallbacks: int = 0  # requests naming a plan that the generic path answered

    @classmethod
    def build(cls, strawberry_schema: Any, documents: TrustedDocuments, rules: Iterable[type] = (),
              max_tokens: int | None = None, sql_roots: dict | None = None) -> CompiledDocuments:
        """Plans for the registered queries; ``sql_roots`` (root field -> ``compiled.sql.SqlRoot``): the
        root fields a document may be answered for by one SQL statement."""
        schema = strawberry_schema._schema  # noqa: SLF001  (graphql-core's schema, as Strawberry built it)
        by_id: dict[str, OperationPlan] = {}
        by_body: dict[str, OperationPlan] = {}
        skipped: dict[str, str] = {}
        for document_id, body in documents.bodies.items():
            try:
                plan = compile_document(schema, body, rules, max_tokens)
            except NotCompilable as reason:
                skipped[document_id] = str(reason)
                continue
            plan.sql = _sql_plan(plan, sql_roots or {})
            by_id[document_id] = plan
            by_body[body] = plan
        if documents.bodies:
            log.info("compiled %d registered queries from %s (the other %d registered documents run on the "
                     "generic path)", len(by_id), documents.source, len(skipped))
        else:
            log.warning("no registered documents (%s is missing or empty): nothing compiled, every request "
                        "runs on the generic path and every documentId is PERSISTED_QUERY_NOT_FOUND",
                        documents.source)
        return cls(schema=schema, by_id=by_id, by_body=by_body, skipped=skipped)

    def plan_for(self, request: Any) -> OperationPlan | None:
        """The plan a request body (parsed JSON) names, by text or by id; None for any other request."""
        if not isinstance(request, dict):
            return None
        query, wanted = request.get("query"), requested_id(request)
        if wanted is not None:
            plan = self.by_id.get(wanted)
            if plan is None or (query is not None and self.by_body.get(query) is not plan):
                return None
        elif isinstance(query, str):
            plan = self.by_body.get(query)
        else:
            return None
        if plan is None:
            return None
        operation_name = request.get("operationName")
        if operation_name is not None and operation_name != plan.name:
            return None
        return plan

    async def execute(self, plan: OperationPlan, request: dict, context: Any, root_value: Any) -> dict[str, Any]:
        """``{"data": ...}`` for the request, or ``Fallback`` when the generic path must answer it."""
        try:
            result = await self._execute(plan, request, context, root_value)
        except Fallback as reason:
            self.fallbacks += 1
            COMPILED_REQUESTS.labels("fallback").inc()
            log.debug("%s runs on the generic path: %s", plan.name, reason)
            raise
        self.answered += 1
        COMPILED_REQUESTS.labels("answered").inc()
        return result

    async def _execute(self, plan: OperationPlan, request: dict, context: Any, root_value: Any) -> dict[str, Any]:
        inputs = request.get("variables")
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise Fallback("variables are not an object")
        try:
            check_request(plan.document, inputs, request.get("operationName"))
        except GraphQLError:
            raise Fallback("input refused") from None
        variables = get_variable_values(self.schema, plan.operation.variable_definitions or (), inputs)
        if isinstance(variables, list):
            raise Fallback("variables do not coerce")
        run = Run(self.schema, plan, context, root_value, variables)
        try:
            if plan.sql is not None:
                data = {plan.sql.key: await plan.sql.answer(run, context.db)}
            else:
                (data,) = await run.objects(plan.root, [root_value])
        except Fallback:
            raise
        except Exception as error:  # a resolver's error: the generic path reports it as the schema says
            raise Fallback(f"{type(error).__name__}: {error}") from error
        return {"data": data}
