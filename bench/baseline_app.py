"""The raw-PostgreSQL baseline: bare FastAPI + asyncpg doing to the database what POST /v1/leads does.

One transaction, two inserts into tables shaped like leads.leads and leads.outbox (same columns and indexes),
the outbox row carrying a CloudEvent of the same size as jsonb. No auth, no middleware, no domain code and no
NOTIFY: what is left is uvicorn, FastAPI, pydantic and asyncpg, the floor the service is compared with.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel

from services.common.settings import get_settings

SCHEMA = "bench_baseline"
WORKSPACE_ID = uuid.UUID("0193a1f0-7c2e-7000-8000-62656e636821")
USER_ID = uuid.UUID("0193a1f0-7c2e-7000-8000-62656e636822")

# Run by the bench (as the superuser) before the app starts; mirrors migrations/leads for leads and outbox.
SCHEMA_SQL = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.leads (
    workspace_id uuid NOT NULL,
    id uuid NOT NULL,
    name varchar NOT NULL,
    email varchar,
    phone varchar,
    company varchar,
    source varchar,
    owner_id uuid,
    status varchar NOT NULL DEFAULT 'new',
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX ix_leads_owner ON {SCHEMA}.leads (workspace_id, owner_id, id);
CREATE TABLE {SCHEMA}.outbox (
    workspace_id uuid NOT NULL,
    id uuid NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    position bigint,
    type text NOT NULL,
    subject text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    event jsonb NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX ix_outbox_unsequenced ON {SCHEMA}.outbox (seq) WHERE position IS NULL;
CREATE UNIQUE INDEX ux_outbox_position ON {SCHEMA}.outbox (position) WHERE position IS NOT NULL;
"""

INSERT_LEAD = f"""
INSERT INTO {SCHEMA}.leads (workspace_id, id, name, email, phone, company, source, owner_id, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, workspace_id, name, email, phone, company, source, owner_id, status, created_by, created_at,
          updated_at, version
"""
INSERT_EVENT = f"""
INSERT INTO {SCHEMA}.outbox (workspace_id, id, type, subject, occurred_at, event) VALUES ($1, $2, $3, $4, $5, $6)
"""


class LeadIn(BaseModel):
    name: str
    email: str | None = None
    source: str | None = None


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )


def create_app() -> FastAPI:
    settings = get_settings()
    dsn = os.environ["BENCH_BASELINE_DATABASE_URL"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The services' pool sizes, so both sides queue for connections alike at 64 clients.
        app.state.pool = await asyncpg.create_pool(
            dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max, init=_init_connection
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/leads", status_code=201)
    async def create_lead(lead: LeadIn, request: Request) -> dict[str, Any]:
        pool: asyncpg.Pool = request.app.state.pool
        lead_id, event_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                INSERT_LEAD, WORKSPACE_ID, lead_id, lead.name, lead.email, None, None, lead.source, None, USER_ID
            )
            assert row is not None
            data = {k: str(v) if isinstance(v, uuid.UUID | datetime) else v for k, v in row.items()}
            event = {
                "specversion": "1.0", "id": str(event_id), "source": "/voronka/leads",
                "type": "voronka.lead.created.v1", "subject": str(lead_id), "time": now.isoformat(),
                "datacontenttype": "application/json", "workspaceid": str(WORKSPACE_ID), "traceparent": None,
                "data": data,
            }
            await conn.execute(INSERT_EVENT, WORKSPACE_ID, event_id, event["type"], event["subject"], now, event)
        return dict(row)

    return app
