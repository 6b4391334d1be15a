"""`voronka migrate`: each service's role and schema, then its Alembic migrations to head."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from services.common.db import asyncpg_dsn
from services.common.settings import SERVICES, role_name, role_password

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(service: str, admin_url: str) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"), ini_section=service)
    config.set_main_option("script_location", str(MIGRATIONS_DIR / service))
    config.attributes["database_url"] = admin_url
    return config


EXTENSIONS = ("pg_trgm", "btree_gin")


async def bootstrap(admin_url: str) -> None:
    """Creates (or updates) each service's login role and its schema, owned by that role."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('voronka-bootstrap'))")
            # Contrib extensions the services' indexes use (trigram search, btree columns in GIN indexes).
            # They are database-wide, so the admin creates them; the roles only use them.
            for extension in EXTENSIONS:
                await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension} WITH SCHEMA public")
        for service in SERVICES:
            role = role_name(service)
            password = role_password(service).replace("'", "''")
            # Two `voronka migrate` runs at once must not fail on the same CREATE ROLE.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('voronka-bootstrap'))")
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
                verb = "ALTER" if exists else "CREATE"
                await conn.execute(f"{verb} ROLE {role} LOGIN PASSWORD '{password}'")
                await conn.execute(f"ALTER ROLE {role} SET search_path = {service}")
                # The admin runs migrations as the role (SET ROLE), so it must be a member.
                await conn.execute(f"GRANT {role} TO current_user")
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {role}")
                await conn.execute(f"REVOKE ALL ON SCHEMA {service} FROM PUBLIC")
    finally:
        await conn.close()


def migrate(admin_url: str) -> None:
    """Brings every service's schema to the latest revision. Safe to run again."""
    asyncio.run(bootstrap(admin_url))
    for service in SERVICES:
        command.upgrade(alembic_config(service, admin_url), "head")
