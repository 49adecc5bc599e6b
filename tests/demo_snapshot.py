"""The demo data for tests that read it: seeded through ``seed_demo`` once per database and settings of a
test worker, then copied back row for row into later tests' emptied tables (1.2 s of seeding becomes a
few bulk inserts). ``tests/api/test_demo_data.py`` and ``test_catalog_seed.py`` seed for real each time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Base
from billing_graphql.demo import seed_demo
from billing_graphql.domain.roles import Role
from tests.conftest import KEPT_TABLES
from tests.helpers import T0


_SNAPSHOTS: dict[tuple[str, Any], tuple[dict[str, list[dict[str, Any]]], dict[Role, str]]] = {}


async def demo_keys(db: Database, settings: Any) -> dict[Role, str]:
    """What ``seed_demo(db, T0, settings)`` returns, with the database as it leaves it."""
    name = (db.engine.url.render_as_string(hide_password=False), settings)
    if name not in _SNAPSHOTS:
        keys = await seed_demo(db, T0, settings)
        _SNAPSHOTS[name] = (await _rows(db), keys)
        return keys
    rows, keys = _SNAPSHOTS[name]
    await _restore(db, rows)
    return keys


def _tables() -> list:
    return [table for table in Base.metadata.sorted_tables if table.name != "alembic_version"]


async def _rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    async with db.read() as session:
        return {table.name: [dict(row._mapping) for row in await session.execute(select(table))]
                for table in _tables()}


async def _restore(db: Database, rows: dict[str, list[dict[str, Any]]]) -> None:
    async with db.write() as session:
        for table in _tables():  # parents first
            wanted = rows[table.name]
            if table.name in KEPT_TABLES:  # the reference rows the migrations wrote are there already
                key = [column.name for column in table.primary_key.columns]
                present = {tuple(row) for row in await session.execute(select(*table.primary_key.columns))}
                wanted = [row for row in wanted if tuple(row[name] for name in key) not in present]
            if wanted:
                await session.execute(table.insert(), wanted)
