"""Events the deals service publishes: deals (created, updated, and their outcomes), pipelines with their stages,
and playbooks (docs/deals.md).

deal.won and deal.lost were defined ahead of the deals service so the leads service can learn from outcomes and
hand won clients to farmers; the deals service publishes exactly these payloads. A pipeline event carries the
whole stage list, so another service keeps its own copy of a workspace's pipelines without asking.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

from pydantic import Field

from services.common.money import Money
from services.contracts.payload import EventPayload


class DealWonV1(EventPayload):
    """A deal was won: it reached its pipeline's won stage."""

    event: ClassVar[str] = "deal.won"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"

    deal_id: uuid.UUID
    workspace_id: uuid.UUID
    lead_id: uuid.UUID | None = Field(default=None, description="The lead the deal was opened from, if any")
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    owner_id: uuid.UUID | None = None
    title: str
    amount: Money | None = None
    products: list[str] = Field(default_factory=list)
    won_by: uuid.UUID | None = None
    won_at: datetime


class DealLostV1(EventPayload):
    """A deal was lost, with the reason from the workspace's list."""

    event: ClassVar[str] = "deal.lost"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"

    deal_id: uuid.UUID
    workspace_id: uuid.UUID
    lead_id: uuid.UUID | None = None
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID = Field(description="The stage the deal was in when it was lost")
    owner_id: uuid.UUID | None = None
    title: str
    amount: Money | None = None
    reason: str
    comment: str | None = None
    lost_by: uuid.UUID | None = None
    lost_at: datetime


class LineItemV1(EventPayload):
    """A line of a deal (not an event): a product, how many, at what price, less a discount."""

    product: str
    quantity: Decimal = Field(description="A decimal string, more than zero")
    price: Money = Field(description="The price of one unit")
    discount_percent: Decimal = Field(description="0-100, a decimal string")


class ContactV1(EventPayload):
    """The person at the client the deal is with (not an event)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None


class DealSnapshot(EventPayload):
    """Every field of a deal (the base of deal.created/updated): a consumer keeps its own copy by upserting it
    (newest `deal_version` wins)."""

    deal_id: uuid.UUID
    workspace_id: uuid.UUID
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    title: str
    amount: Money | None = None
    line_items: list[LineItemV1] = Field(default_factory=list)
    expected_close_date: date | None = None
    company: str | None = None
    contact: ContactV1 | None = None
    owner_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = Field(default=None, description="The lead the deal was opened from, if any")
    source: str | None = None
    channel: str | None = None
    region: str | None = None
    products: list[str] = Field(default_factory=list)
    custom: dict[str, object] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    status: str = Field(description="open, won, lost or completed")
    stage_entered_at: datetime
    deal_version: int
    created_by: uuid.UUID | None = Field(default=None, description="Null for a deal opened from lead.qualified")
    created_at: datetime
    updated_at: datetime


class DealCreatedV1(DealSnapshot):
    """A deal was opened: by hand (POST /v1/deals) or from a qualified lead (lead.qualified)."""

    event: ClassVar[str] = "deal.created"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"


class DealUpdatedV1(DealSnapshot):
    """A deal's fields changed (PATCH /v1/deals/{id}); `changed` names them."""

    event: ClassVar[str] = "deal.updated"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"

    changed: list[str]
    updated_by: uuid.UUID


# ------------------------------------------------------------------------------------------------ pipelines


class StageV1(EventPayload):
    """A stage as pipeline.created and pipeline.updated carry it (not an event)."""

    stage_id: uuid.UUID
    position: int
    name: str
    expected_result: str | None = None
    required_actions: list[str]
    exit_criteria: list[str] = Field(
        description="Deal fields that must be filled to leave the stage: amount, expected_close_date, company, "
        "contact, line_items, products, custom.<key>"
    )
    probability: int = Field(description="Default win probability of a deal in this stage, 0-100")
    rotting_days: int | None = None
    phase: str = Field(description="pre_sale, closing or post_sale")
    is_won: bool
    is_completed: bool


class PipelineSnapshot(EventPayload):
    """Every field of a pipeline with its whole stage list, in order (the base of pipeline.created/updated):
    a consumer keeps its own copy by upserting it (newest `pipeline_version` wins)."""

    pipeline_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None = None
    audience: list[str]
    is_default: bool
    position: int
    pipeline_version: int
    stages: list[StageV1]
    created_at: datetime
    updated_at: datetime


class PipelineCreatedV1(PipelineSnapshot):
    """A pipeline was created: by an admin or head of sales, or the workspace's default on first use."""

    event: ClassVar[str] = "pipeline.created"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"

    created_by: uuid.UUID | None = Field(default=None, description="Null for the default pipeline")


class PipelineUpdatedV1(PipelineSnapshot):
    """A pipeline or its stages changed; `changed` names the fields that did (`stages` for any stage change),
    `removed_stage_ids` the stages that are gone."""

    event: ClassVar[str] = "pipeline.updated"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"

    changed: list[str]
    removed_stage_ids: list[uuid.UUID] = Field(default_factory=list)
    updated_by: uuid.UUID


class PipelineDeletedV1(EventPayload):
    event: ClassVar[str] = "pipeline.deleted"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"

    pipeline_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    deleted_by: uuid.UUID
    deleted_at: datetime


class PlaybookStepV1(EventPayload):
    """A step of a playbook: a task template the tasks service turns into a task when a deal enters the stage."""

    title: str
    task_type: str = Field(description="call, meeting, visit, email, proposal, follow_up, other")
    description: str | None = None
    due_in: int = Field(description="How long after the deal enters the stage the task is due, in due_unit")
    due_unit: str = Field(description="working_days, working_hours or working_minutes")
    assignee: str = Field(description="deal_owner, head_of_sales or role:<hunter|closer|farmer|head_of_sales|admin>")
    checkpoint: bool = Field(description="Escalate to the head of sales when the task is missed")


class PlaybookUpdatedV1(EventPayload):
    """A stage's playbook got a new version (also for the default pipeline's starter playbooks)."""

    event: ClassVar[str] = "playbook.updated"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "deals"

    workspace_id: uuid.UUID
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    playbook_version: int
    script: str | None = None
    steps: list[PlaybookStepV1]
    updated_by: uuid.UUID | None = Field(default=None, description="Null for a starter playbook")
    updated_at: datetime
