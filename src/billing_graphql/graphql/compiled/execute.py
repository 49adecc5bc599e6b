"""Running a plan: the answer level by level, the same resolvers as graphql-core's, no execution context."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLSchema, get_argument_values
from graphql.pyutils import Path
from graphql.type.definition import GraphQLResolveInfo, GraphQLResolveInfoHelpers

from billing_graphql.graphql.compiled.plan import FieldPlan, Leaf, ListOf, ObjectPlan, OperationPlan


class Fallback(Exception):
    """This request must run on the generic path (it would end in an error or in partial data)."""


@dataclass(slots=True)
class Run:
    """One request's execution: what every resolver's info carries."""

    schema: GraphQLSchema
    plan: OperationPlan
    context: Any
    root_value: Any
    variables: Any  # graphql-core's VariableValues

    def info(self, field_plan: FieldPlan) -> GraphQLResolveInfo:
        return GraphQLResolveInfo(
            field_plan.name, [field_plan.node], field_plan.field_def.type, field_plan.parent_type,
            Path(None, field_plan.key, field_plan.parent_type.name), self.schema, self.plan.fragments,
            self.root_value, self.plan.operation, self.variables, self.context, inspect.isawaitable, None,
            _HELPERS,
        )

    def arguments(self, field_plan: FieldPlan) -> dict[str, Any]:
        if field_plan.arguments is not None:
            return field_plan.arguments
        return get_argument_values(field_plan.field_def, field_plan.node, self.variables)

    async def objects(self, plan: ObjectPlan, sources: list[Any]) -> list[dict[str, Any]]:
        """The answers of ``plan`` for every (non-null) source of one level, in order.

        As graphql-core does, every resolver of the level is called before any is awaited (so the
        DataLoaders of sibling fields batch together), and the levels below run side by side."""
        outputs = [dict.fromkeys(plan.keys) for _ in sources]
        resolved: list[tuple[FieldPlan, list[Any]]] = []
        awaited: list[tuple[list[Any], int]] = []
        for field_plan in plan.fields:
            if field_plan.typename is not None:
                values = [field_plan.typename] * len(sources)
            elif field_plan.attribute is not None:
                values = [getattr(source, field_plan.attribute) for source in sources]
            elif field_plan.sql is not None:  # answered by SQL, as JSON text: complete as it is
                values = [field_plan.sql.answer(self, self.context.db, source) for source in sources]
                awaited.extend((values, index) for index in range(len(values)))
            else:
                info, arguments = self.info(field_plan), self.arguments(field_plan)
                values = [field_plan.resolve(source, info, **arguments) for source in sources]
                awaited.extend((values, index) for index, value in enumerate(values) if inspect.isawaitable(value))
            resolved.append((field_plan, values))
        if len(awaited) == 1:  # nothing to run beside it: awaited in this task (no Task, no turn of the loop)
            values, index = awaited[0]
            values[index] = await values[index]
        elif awaited:
            done = await asyncio.gather(*(values[index] for values, index in awaited))
            for (values, index), value in zip(awaited, done, strict=True):
                values[index] = value
        nested = []
        for field_plan, values in resolved:
            if field_plan.sql is not None:
                pass
            elif isinstance(field_plan.complete, Leaf):
                values = _leaves(field_plan.complete, values)
            elif field_plan.complete is not None:  # a list or an object: completed below, side by side
                nested.append((field_plan.key, self.complete(field_plan.complete, values)))
                continue
            for output, value in zip(outputs, values, strict=True):
                output[field_plan.key] = value
        if len(nested) == 1:
            key, coroutine = nested[0]
            for output, value in zip(outputs, await coroutine, strict=True):
                output[key] = value
        elif nested:
            completed = await asyncio.gather(*(coroutine for _, coroutine in nested))
            for (key, _), values in zip(nested, completed, strict=True):
                for output, value in zip(outputs, values, strict=True):
                    output[key] = value
        return outputs

    async def complete(self, completion: Any, values: list[Any]) -> list[Any]:
        """The answers of a list or object field for the values of one level."""
        if isinstance(completion, Leaf):
            return _leaves(completion, values)
        if not completion.nullable and any(value is None for value in values):
            raise Fallback("null in a non-null field")
        present = [value for value in values if value is not None]
        if isinstance(completion, ListOf):
            if any(isinstance(value, str | bytes | dict) or not isinstance(value, Iterable) for value in present):
                raise Fallback("a list field returned something else")
            lists = [list(value) for value in present]
            flat = await self.complete(completion.item, [item for items in lists for item in items])
            done, start = [], 0
            for items in lists:
                done.append(flat[start:start + len(items)])
                start += len(items)
        else:
            done = await self.objects(completion, present)
        answers = iter(done)
        return [None if value is None else next(answers) for value in values]


def _leaves(completion: Leaf, values: list[Any]) -> list[Any]:
    """Serialised leaf values, as graphql-core's ``complete_leaf_value`` gives them."""
    serialize = completion.serialize
    results = [None if value is None else serialize(value) for value in values]
    if None in results and any(result is None and (value is not None or not completion.nullable)
                               for value, result in zip(values, results, strict=True)):
        raise Fallback("a null where the type says non-null, or a value that does not serialise")
    return results


async def _gather(awaitables: Any) -> list[Any]:
    return await asyncio.gather(*awaitables)


_HELPERS = GraphQLResolveInfoHelpers(gather=_gather, track=lambda values: None)
