"""Apply Alembic migrations from code (the CLI's ``migrate`` and ``serve`` call this)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@dataclass(frozen=True, slots=True)
class Migration:
    """What ``migrate`` did: the revision before (None: an empty database) and after, and the
    number of tables there are now."""

    before: str | None
    after: str | None
    tables: int

    def summary(self) -> str:
        if self.before is None:
            return f"created the schema at revision {self.after}: {self.tables} tables"
        if self.before != self.after:
            return f"upgraded the database from revision {self.before} to {self.after}: {self.tables} tables"
        return f"database is up to date (revision {self.after})"


async def migrate(engine: AsyncEngine, revision: str = "head") -> Migration:
    """Upgrade the database behind ``engine`` to ``revision``; what was done."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    config = alembic_config()
    done: list[Migration] = []

    def _upgrade(connection) -> None:
        config.attributes["connection"] = connection
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
        done.append(Migration(before, after, len(inspect(connection).get_table_names())))
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")

    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        return done[0]
    # SQLite batch migrations rebuild a table (copy, drop, rename). With foreign keys on,
    # dropping the old table would delete (ON DELETE CASCADE) or refuse the rows that reference
    # it, so they are switched off around the upgrade, which SQLite allows only outside a
    # transaction; PRAGMA foreign_key_check then verifies every reference before the commit.
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            async with connection.begin():
                await connection.run_sync(_upgrade)
        finally:
            await raw.driver_connection.execute("PRAGMA foreign_keys=ON")
    return done[0]
