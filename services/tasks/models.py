"""The tasks service's tables, in its own `tasks` schema and MetaData."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from services.common.event_tables import add_event_tables

SCHEMA = "tasks"
metadata = MetaData(schema=SCHEMA)


class TasksTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of this service's tables: they land in its MetaData, not SQLModel's global one."""


add_event_tables(metadata)
