"""Migrations and models agree, and each service's role can touch only its own schema."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.common.alembic_env import sqlalchemy_url
from services.common.settings import SERVICES, get_settings, role_name


def _metadata(service: str):
    import importlib

    return importlib.import_module(f"services.{service}.models").metadata


@pytest.mark.parametrize("service", SERVICES)
async def test_models_and_migrations_do_not_differ(database_url, service):
    engine = create_async_engine(sqlalchemy_url(database_url), poolclass=NullPool)

    def diff(connection):
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _: name == service if type_ == "schema" else True,
                "compare_type": True,
                "compare_server_default": True,
                "version_table_schema": service,
            },
        )
        return compare_metadata(context, _metadata(service))

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    await engine.dispose()
    assert differences == [], f"run: alembic -c migrations/alembic.ini -n {service} revision --autogenerate"


async def test_a_service_role_cannot_read_another_services_schema(database_url):
    leads_conn = await asyncpg.connect(get_settings().service_database_url("leads"))
    try:
        assert await leads_conn.fetchval("SELECT count(*) FROM leads.leads") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await leads_conn.fetchval("SELECT count(*) FROM reporting.lead_facts")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await leads_conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await leads_conn.close()


async def test_every_key_and_index_of_workspace_data_leads_with_workspace_id(admin_db):
    """Tables can later be distributed by workspace_id (Citus): it leads every primary key, unique
    constraint and index of the tables that hold a workspace's data."""
    rows = await admin_db.fetch(
        """
        SELECT n.nspname AS schema, c.relname AS table, ic.relname AS index, a.attname AS first_column
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE n.nspname = ANY($1::text[])
        """,
        list(SERVICES),
    )
    # Each service's event log is ordered across workspaces (one gap-free position per service), so its
    # tables stay per-service when workspace data is distributed: see docs/architecture.md, "Scale-out".
    event_log = {"outbox", "subscriptions", "dead_letters", "alembic_version"}
    # Inbound webhook URLs name only the source: a reference table, replicated rather than distributed.
    reference = {"leads.sources (uq_sources_id)"}
    offenders = [
        f"{r['schema']}.{r['table']} ({r['index']})" for r in rows
        if r["table"] not in event_log and r["first_column"] != "workspace_id"
    ]
    offenders = [o for o in offenders if o not in reference]
    assert offenders == []
    assert {r["schema"] for r in rows if r["table"] not in event_log} == set(SERVICES)


async def test_migrating_again_changes_nothing(database_url):
    from services.cli.migrate import migrate

    await asyncio.to_thread(migrate, database_url)
    conn = await asyncpg.connect(database_url)
    try:
        for service in SERVICES:
            owner = await conn.fetchval(
                "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'outbox'", service
            )
            assert owner == role_name(service)
    finally:
        await conn.close()
