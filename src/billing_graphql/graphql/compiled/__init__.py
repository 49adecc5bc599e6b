"""The compiled path: every query document planned once, executed without graphql-core.

The registered queries of ``queries/manifest.json`` are planned at start-up; any other query document
is planned the first time it is seen, after it parses and validates with the schema's own rules and
limits, and its plan is kept in a bounded LRU keyed by the document's text (``PlanCache``,
``BILLING_PLAN_CACHE_SIZE``, default 1,000; 0 plans only the registered documents). A document over
the token limit or failing validation is never cached: the generic path answers it with its errors.
A plan is specialised to its selection: for each object in the answer, the list of its response keys
in order, how each value is read and how it is serialised. Executing a
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
several operations) is not compiled and always takes the generic path; the decision is cached like a
plan, and each such request is counted in ``billing_graphql_plan_fallbacks_total{reason}``.
Mutations are not planned (and not counted). ``CompiledDocuments.skipped`` says why a registered
document is not compiled.
The differential tests (``tests/perf/test_compiled_path.py``, ``tests/perf/test_compiled_selections.py``)
run documents through both paths and require byte-identical JSON.

Building the plans logs how many registered queries were compiled, and warns when there are no
registered documents at all; ``billing_graphql_compiled_requests_total{outcome}`` counts the requests
whose document has a plan: ``answered`` by it, or ``fallback`` (the generic path answered).
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, GraphQLSchema, get_variable_values

from billing_graphql.domain.roles import Role
from billing_graphql.graphql.compiled.execute import Fallback, Run
from billing_graphql.graphql.compiled.plan import (
    FALLBACK_REASONS,
    INVALID,
    NOT_A_QUERY,
    FieldPlan,
    ListOf,
    NotCompilable,
    ObjectPlan,
    OperationPlan,
    compile_document,
)
from billing_graphql.graphql.compiled.sql import NoSqlForm, root_plan
from billing_graphql.graphql.input_validation import check_request
from billing_graphql.graphql.persisted import TrustedDocuments, document_id, requested_id
from billing_graphql.metrics import COMPILED_REQUESTS, PLAN_FALLBACKS, labelled

__all__ = ["CompiledDocuments", "Fallback", "NotCompilable", "PlanCache", "compile_document"]

log = logging.getLogger(__name__)

DEFAULT_PLAN_CACHE_SIZE = 1000
for _reason in FALLBACK_REASONS:  # known label values start at 0
    PLAN_FALLBACKS.labels(_reason)


@dataclass(frozen=True, slots=True)
class Unplanned:
    """A valid document the planner cannot handle (cached like a plan, so it is decided once)."""

    reason: str  # one of FALLBACK_REASONS, or NOT_A_QUERY
    detail: str


class PlanCache:
    """Plans (or ``Unplanned`` decisions) by document text, least recently used first out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[str, OperationPlan | Unplanned] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, body: str) -> OperationPlan | Unplanned | None:
        entry = self.entries.get(body)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(body)
        return entry

    def put(self, body: str, entry: OperationPlan | Unplanned) -> None:
        if self.size <= 0:
            return
        self.entries[body] = entry
        self.entries.move_to_end(body)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self.entries)


def _sql_plan(plan: OperationPlan, roots: dict, schema: GraphQLSchema) -> Any:
    """The SQL plans of the document's root fields that have a SQL form throughout, by response key (None:
    none has); the other root fields keep their Python plan (``SqlPlans``)."""
    by_key = {}
    for field_plan in plan.root.fields:
        if field_plan.typename is not None:
            continue
        try:
            by_key[field_plan.key] = root_plan(field_plan, roots, schema)
        except NoSqlForm as reason:
            log.debug("%s.%s keeps its Python plan: %s", plan.name, field_plan.key, reason)
    _nested_sql_plans([field_plan for field_plan in plan.root.fields if field_plan.key not in by_key], roots, schema)
    if not by_key:
        return None
    rest = ObjectPlan(nullable=plan.root.nullable, type_name=plan.root.type_name,
                      fields=[field_plan for field_plan in plan.root.fields if field_plan.key not in by_key])
    rest.keys = tuple(field_plan.key for field_plan in rest.fields)
    return SqlPlans(by_key, rest if rest.fields else None, plan.root.keys)


def _nested_sql_plans(fields: list[FieldPlan], roots: dict, schema: GraphQLSchema) -> None:
    """Give the SQL plan of ``sql_roots``' (type, field) entries to such fields below the Python plan's root.
    Not to one object selected under several aliases: its resolver's DataLoader reads its row once for all of
    them, where each alias's statement would read it again."""
    repeated = {name for name, count in Counter(field_plan.name for field_plan in fields).items() if count > 1}
    for field_plan in fields:
        complete = field_plan.complete
        while isinstance(complete, ListOf):
            complete = complete.item
        if not isinstance(complete, ObjectPlan):
            continue
        root = roots.get((field_plan.parent_type.name, field_plan.name)) if field_plan.parent_type else None
        if field_plan.name in repeated and root is not None and root.one:
            log.debug("%s.%s keeps its Python plan: selected under several aliases", field_plan.parent_type.name,
                      field_plan.key)
        elif field_plan.resolve is not None and field_plan.parent_type is not None:
            try:
                field_plan.sql = root_plan(field_plan, roots, schema, parent=field_plan.parent_type.name)
                continue
            except NoSqlForm as reason:
                log.debug("%s.%s keeps its Python plan: %s", field_plan.parent_type.name, field_plan.key, reason)
        _nested_sql_plans(complete.fields, roots, schema)


@dataclass(frozen=True, slots=True)
class SqlPlans:
    """The root fields answered by SQL (one statement each), and the others' Python plan."""

    by_key: dict[str, Any]  # response key -> compiled.sql.SqlRootPlan
    rest: ObjectPlan | None
    keys: tuple[str, ...]  # every root key, in the document's order

    async def answer(self, run: Run, root_value: Any, db: Any) -> dict[str, Any]:
        answers = {key: await sql.answer(run, db) for key, sql in self.by_key.items()}
        if self.rest is not None:
            (others,) = await run.objects(self.rest, [root_value])
            answers.update(others)
        return {key: answers[key] for key in self.keys}


@dataclass
class CompiledDocuments:
    """The plans of the registered queries (by document id and by text, planned at start-up, kept for
    the process's life) and of any other query document (``cache``, planned when first seen)."""

    schema: GraphQLSchema
    by_id: dict[str, OperationPlan]
    by_body: dict[str, OperationPlan]
    skipped: dict[str, str]  # document id -> why it is not compiled
    answered: int = 0  # requests answered by a plan
    fallbacks: int = 0  # requests with a plan that the generic path answered
    cache: PlanCache = field(default_factory=lambda: PlanCache(DEFAULT_PLAN_CACHE_SIZE))
    rules: tuple[type, ...] = ()
    max_tokens: int | None = None
    sql_roots: dict = field(default_factory=dict)
    documents: TrustedDocuments | None = None

    @classmethod
    def build(cls, strawberry_schema: Any, documents: TrustedDocuments, rules: Iterable[type] = (),
              max_tokens: int | None = None, sql_roots: dict | None = None,
              cache_size: int = DEFAULT_PLAN_CACHE_SIZE) -> CompiledDocuments:
        """Plans for the registered queries; ``sql_roots`` (root field -> ``compiled.sql.SqlRoot``): the
        root fields a document may be answered for by one SQL statement; ``cache_size``: how many other
        documents' plans are kept."""
        schema = strawberry_schema._schema  # noqa: SLF001  (graphql-core's schema, as Strawberry built it)
        rules = tuple(rules)
        by_id: dict[str, OperationPlan] = {}
        by_body: dict[str, OperationPlan] = {}
        skipped: dict[str, str] = {}
        for registered_id, body in documents.bodies.items():
            try:
                plan = compile_document(schema, body, rules, max_tokens)
            except NotCompilable as reason:
                skipped[registered_id] = str(reason)
                continue
            plan.sql = _sql_plan(plan, sql_roots or {}, schema)
            by_id[registered_id] = plan
            by_body[body] = plan
        if documents.bodies:
            log.info("compiled %d registered queries from %s (the other %d registered documents run on the "
                     "generic path)", len(by_id), documents.source, len(skipped))
        else:
            log.warning("no registered documents (%s is missing or empty): nothing compiled, every request "
                        "runs on the generic path and every documentId is PERSISTED_QUERY_NOT_FOUND",
                        documents.source)
        return cls(schema=schema, by_id=by_id, by_body=by_body, skipped=skipped, cache=PlanCache(cache_size),
                   rules=rules, max_tokens=max_tokens, sql_roots=sql_roots or {}, documents=documents)

    def plan_for(self, request: Any, context: Any = None) -> OperationPlan | None:
        """The plan of the document a request body (parsed JSON) names, by id or by text, planned now if
        it is new; None where the generic path must answer (an unknown id, a document that does not
        validate or that the planner cannot handle, free text where registered documents are required)."""
        if not isinstance(request, dict):
            return None
        query, wanted = request.get("query"), requested_id(request)
        if wanted is not None:
            plan = self.by_id.get(wanted)
            if plan is None or (query is not None and self.by_body.get(query) is not plan):
                return None
        elif isinstance(query, str):
            plan = self.by_body.get(query)
            if plan is None:
                if self._registered_only(query, context):
                    return None  # PersistedDocuments refuses it on the generic path
                plan = self._planned(query)
        else:
            return None
        if plan is None:
            return None
        operation_name = request.get("operationName")
        if operation_name is not None and operation_name != plan.name:
            return None
        return plan

    def _registered_only(self, query: str, context: Any) -> bool:
        """BILLING_TRUSTED_DOCUMENTS applies to this request and the text is not a registered document."""
        documents = self.documents
        if documents is None or documents.require == "off":
            return False
        if documents.require == "partner":
            actor = getattr(context, "actor", None)
            if actor is None or actor.role is not Role.PARTNER:
                return False
        return document_id(query) not in documents.bodies

    def _planned(self, query: str) -> OperationPlan | None:
        """The cached plan of a free-text document, planning it on its first use (None: the generic path)."""
        entry = self.cache.get(query)
        if entry is None:
            try:
                entry = compile_document(self.schema, query, self.rules, self.max_tokens)
            except NotCompilable as refusal:
                if refusal.reason == INVALID:
                    return None  # never cached: the generic path gives its errors
                entry = Unplanned(refusal.reason, refusal.detail)
            else:
                entry.sql = _sql_plan(entry, self.sql_roots, self.schema)
            self.cache.put(query, entry)
        if isinstance(entry, Unplanned):
            if entry.reason != NOT_A_QUERY:
                labelled(PLAN_FALLBACKS, entry.reason).inc()
            return None
        return entry

    async def execute(self, plan: OperationPlan, request: dict, context: Any, root_value: Any) -> dict[str, Any]:
        """``{"data": ...}`` for the request, or ``Fallback`` when the generic path must answer it."""
        try:
            result = await self._execute(plan, request, context, root_value)
        except Fallback as reason:
            self.fallbacks += 1
            labelled(COMPILED_REQUESTS, "fallback").inc()
            log.debug("%s runs on the generic path: %s", plan.name, reason)
            raise
        self.answered += 1
        labelled(COMPILED_REQUESTS, "answered").inc()
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
                data = await plan.sql.answer(run, root_value, context.db)
            else:
                (data,) = await run.objects(plan.root, [root_value])
        except Fallback:
            raise
        except Exception as error:  # a resolver's error: the generic path reports it as the schema says
            raise Fallback(f"{type(error).__name__}: {error}") from error
        return {"data": data}
