"""The deals service's tables, in its own `deals` schema and MetaData.

pipelines    a workspace's sales processes (by client type, product, channel or audience); one is the default
stages       each pipeline's ordered stages: expected result, actions, exit criteria, probability, rotting, phase
playbooks    every version of each stage's playbook: the rep's script and the steps the tasks service turns into
             tasks (the newest version is the playbook; older ones stay readable)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, CheckConstraint, Column, DateTime, Index, MetaData, SmallInteger, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.event_tables import add_event_tables
from services.common.idempotency import add_idempotency_table

SCHEMA = "deals"
metadata = MetaData(schema=SCHEMA)


class DealsTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of this service's tables: they land in its MetaData, not SQLModel's global one."""


def _now() -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")))


def _text_array() -> Any:
    return Field(sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")))


class Pipeline(DealsTable, table=True):
    """A sales process. A workspace gets its default one on first use (services.deals.default_pipeline)."""

    __tablename__ = "pipelines"
    __table_args__ = (
        # Names are unique in the workspace whatever their case.
        Index("uq_pipelines_name", "workspace_id", text("lower(name)"), unique=True),
        # One default per workspace: also what makes two first calls at once create one default pipeline.
        Index("uq_pipelines_default", "workspace_id", unique=True, postgresql_where=text("is_default")),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str
    description: str | None = None
    # Who the process is for: client types, products, channels, audiences (free tags).
    audience: list[str] = _text_array()
    is_default: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # Where the pipeline shows among the workspace's pipelines (the board's tabs).
    position: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = _now()
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Stage(DealsTable, table=True):
    """A stage of a pipeline. A pipeline's stages are rewritten as a whole when it changes (ids kept), so the
    position and the won and completed marks are unique per pipeline without deferred constraints."""

    __tablename__ = "stages"
    __table_args__ = (
        Index("uq_stages_position", "workspace_id", "pipeline_id", "position", unique=True),
        Index("uq_stages_won", "workspace_id", "pipeline_id", unique=True, postgresql_where=text("is_won")),
        Index(
            "uq_stages_completed", "workspace_id", "pipeline_id", unique=True,
            postgresql_where=text("is_completed"),
        ),
        CheckConstraint("probability BETWEEN 0 AND 100", name="ck_stages_probability"),
        CheckConstraint("rotting_days IS NULL OR rotting_days > 0", name="ck_stages_rotting_days"),
        CheckConstraint("phase IN ('pre_sale', 'closing', 'post_sale')", name="ck_stages_phase"),
        CheckConstraint("NOT (is_won AND is_completed)", name="ck_stages_marks"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    pipeline_id: uuid.UUID
    position: int
    name: str
    # The result that ends the stage ("the client confirmed the budget").
    expected_result: str | None = None
    required_actions: list[str] = _text_array()
    # Deal fields that must be filled to leave the stage (services.deals.stages.EXIT_CRITERIA, custom.<key>).
    exit_criteria: list[str] = _text_array()
    # The default win probability of a deal in this stage, in percent.
    probability: int = Field(sa_column=Column(SmallInteger, nullable=False))
    # Days a deal may sit in the stage before it is rotting; null: never.
    rotting_days: int | None = None
    # pre_sale | closing | post_sale
    phase: str
    is_won: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    is_completed: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    created_at: datetime = _now()
    updated_at: datetime = _now()


class Playbook(DealsTable, table=True):
    """One version of a stage's playbook; a change adds a version, and the newest is the stage's playbook."""

    __tablename__ = "playbooks"
    __table_args__ = (
        Index("uq_playbooks_version", "workspace_id", "stage_id", "version", unique=True),
        # GET .../playbook/versions pages newest first on the id (UUIDv7).
        Index("ix_playbooks_stage", "workspace_id", "stage_id", "id"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    version: int
    script: str | None = None
    # [{"title", "task_type", "due_in", "due_unit", "assignee", "checkpoint", "description"}]
    steps: list[dict[str, Any]] = Field(
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    created_at: datetime = _now()
    # Null when Voronka wrote it (the default pipeline's starter playbooks).
    created_by: uuid.UUID | None = None


add_event_tables(metadata)
add_idempotency_table(metadata)
