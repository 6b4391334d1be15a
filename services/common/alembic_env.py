"""What every service's migrations/<service>/env.py runs: online migrations of one schema, as its own role."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.common.settings import role_name


def sqlalchemy_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"postgresql+asyncpg://{rest}" if sep and scheme.startswith("postgres") else url


def run_migrations(metadata: MetaData, schema: str) -> None:
    config = context.config
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("Set DATABASE_URL (the admin URL) to run migrations")

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        # Autogenerate looks at this service's schema only.
        return name == schema if type_ == "schema" else True

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
        async with engine.connect() as connection:
            # Objects are created by, and so owned by, the service's role: it alone can touch its schema.
            await connection.execute(text(f"SET ROLE {role_name(schema)}"))
            await connection.execute(text(f"SET search_path TO {schema}"))
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run())
