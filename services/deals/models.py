"""The deals service's tables, in its own `deals` schema and MetaData.

pipelines    a workspace's sales processes (by client type, product, channel or audience); one is the default
stages       each pipeline's ordered stages: expected result, actions, exit criteria, probability, rotting, phase
playbooks    every version of each stage's playbook: the rep's script and the steps the tasks service turns into
             tasks (the newest version is the playbook; older ones stay readable)
deals        the deals themselves: where each is in its pipeline, what it is worth, who owns it
deal_stage_history
             every stage a deal entered, from its creation on (the time spent in each stage)
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    text,
)
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


def _jsonb(default: str) -> Any:
    return Field(sa_column=Column(JSONB, nullable=False, server_default=text(f"'{default}'::jsonb")))


class Deal(DealsTable, table=True):
    """A deal: a chance to sell, in one stage of one pipeline. No foreign keys (the service keeps pipeline_id and
    stage_id pointing at its own rows); a deal opened from a lead keeps the lead's id, once per lead."""

    __tablename__ = "deals"
    __table_args__ = (
        # A rep's deals, newest first (GET /v1/deals as a rep, or ?owner_id=).
        Index("ix_deals_owner", "workspace_id", "owner_id", "id"),
        # A pipeline's deals by stage: ?pipeline_id=&stage_id= now, the board later.
        Index("ix_deals_stage", "workspace_id", "pipeline_id", "stage_id", "id"),
        # One deal per lead: what makes the lead.qualified hand-off open one deal however often it arrives.
        Index("uq_deals_lead", "workspace_id", "lead_id", unique=True, postgresql_where=text("lead_id IS NOT NULL")),
        CheckConstraint("(amount IS NULL) = (currency IS NULL)", name="ck_deals_amount_currency"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="ck_deals_amount"),
        CheckConstraint("status IN ('open', 'won', 'lost', 'completed')", name="ck_deals_status"),
    )

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    title: str
    amount: Decimal | None = Field(default=None, sa_column=Column(Numeric, nullable=True))
    currency: str | None = None
    # [{"product", "quantity" (decimal string), "price" {"amount", "currency"}, "discount_percent" (decimal string)}]
    line_items: list[dict[str, Any]] = _jsonb("[]")
    expected_close_date: date | None = None
    company: str | None = None
    # {"name", "email", "phone"}, or null
    contact: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    owner_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = None
    source: str | None = None
    channel: str | None = None
    region: str | None = None
    products: list[str] = _text_array()
    custom: dict[str, Any] = _jsonb("{}")
    tags: list[str] = _text_array()
    # open | won | lost | completed
    status: str = Field(default="open", sa_column_kwargs={"server_default": "open"})
    stage_entered_at: datetime = _now()
    # Null for a deal opened from a lead.qualified event.
    created_by: uuid.UUID | None = None
    created_at: datetime = _now()
    updated_at: datetime = _now()
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class DealStageHistory(DealsTable, table=True):
    """A deal entering a stage: the first row, at creation, has no previous stage."""

    __tablename__ = "deal_stage_history"
    __table_args__ = (Index("ix_deal_stage_history_deal", "workspace_id", "deal_id", "id"),)

    workspace_id: uuid.UUID = Field(primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    deal_id: uuid.UUID
    from_stage_id: uuid.UUID | None = None
    to_stage_id: uuid.UUID
    moved_by: uuid.UUID | None = None
    moved_at: datetime = _now()
    # Time spent in from_stage; null for the first row.
    seconds_in_previous: int | None = None


add_event_tables(metadata)
add_idempotency_table(metadata)
