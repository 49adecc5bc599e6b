"""GET /health: the process is up and the database answers."""

from __future__ import annotations

from litestar import Request, Response, get
from sqlalchemy import text

from billing_graphql.db.engine import Database


@get("/health", opt={"exclude_from_rate_limit": True})
async def health(request: Request) -> Response[dict[str, str]]:
    db: Database = request.app.state.db
    try:
        async with db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # the check's whole purpose is to report any failure
        return Response({"status": "error", "database": type(exc).__name__}, status_code=503)
    return Response({"status": "ok", "database": "ok"})
