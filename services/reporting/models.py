"""The reporting read model, in its own `reporting` schema: facts copied from other services' events."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Index, MetaData
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.event_tables import add_event_tables

SCHEMA = "reporting"
metadata = MetaData(schema=SCHEMA)


class ReportingTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of this service's tables: they land in its MetaData, not SQLModel's global one."""


class LeadFact(ReportingTable, table=True):
    """One row per lead that came in, from `lead.created`."""

    __tablename__ = "lead_facts"
    __table_args__ = (Index("ix_lead_facts_source", "workspace_id", "source"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    lead_id: uuid.UUID = Field(primary_key=True)
    source: str
    owner_id: uuid.UUID | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


add_event_tables(metadata)
