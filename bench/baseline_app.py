"""The baseline: a raw Litestar endpoint answering POST with a fixed JSON body, no GraphQL, no database."""

from __future__ import annotations

from litestar import Litestar, post

BODY = {"data": {"plans": [{"name": f"Plan {i}", "slug": f"plan-{i}",
                            "basePriceMonthly": {"amount": "29.00", "currency": "USD"}} for i in range(7)]}}


@post("/graphql", status_code=200, sync_to_thread=False)
def graphql() -> dict:
    return BODY


app = Litestar(route_handlers=[graphql], debug=False)
