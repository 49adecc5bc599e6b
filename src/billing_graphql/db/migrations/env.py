"""Alembic environment: runs on the connection handed over by ``db.migrate``."""

from __future__ import annotations

import asyncio

from alembic import context

from billing_graphql.db.models import Base

target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Command-line use: `alembic -x url=... upgrade head`.
    from billing_graphql.db.engine import make_engine

    url = context.get_x_argument(as_dictionary=True)["url"]

    async def _main() -> None:
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(_main())


run_migrations_online()
