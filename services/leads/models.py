"""The leads service's tables, in its own `leads` schema and MetaData."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Index, MetaData, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.event_tables import add_event_tables
from services.common.idempotency import add_idempotency_table

SCHEMA = "leads"
metadata = MetaData(schema=SCHEMA)


class LeadsTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of this service's tables: they land in its MetaData, not SQLModel's global one."""


class Lead(LeadsTable, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        # A rep's own leads, newest first.
        Index("ix_leads_owner", "workspace_id", "owner_id", "id"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    source: str | None = None
    owner_id: uuid.UUID | None = None
    status: str = Field(default="new", sa_column_kwargs={"server_default": "new"})
    created_by: uuid.UUID
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


add_event_tables(metadata)
add_idempotency_table(metadata)
