"""Apply Alembic migrations from code (the CLI's ``migrate`` and ``serve`` call this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""
    config = alembic_config()

    def _upgrade(connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")

    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        return
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
