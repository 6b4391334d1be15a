"""Request and response models of the deals API: pipelines, stages, the pipeline check, playbooks and deals."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.common.money import Money
from services.common.text import NoNul
from services.deals import playbooks, stages
from services.deals.stages import Phase

Name = Annotated[str, NoNul, Field(min_length=1, max_length=100)]
Description = Annotated[str, NoNul, Field(max_length=2000)]
Tag = Annotated[str, NoNul, Field(min_length=1, max_length=50)]
Sentence = Annotated[str, NoNul, Field(min_length=1, max_length=500)]
ExitCriterion = Annotated[str, NoNul, AfterValidator(stages.check_exit_criterion)]
Assignee = Annotated[str, NoNul, AfterValidator(playbooks.check_assignee)]


class StageIn(BaseModel):
    """A stage as sent: with the `id` of one of the pipeline's stages to keep it (and its playbook), without
    to add a new one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: uuid.UUID | None = None
    name: Name
    expected_result: Annotated[str, NoNul, Field(max_length=500)] | None = Field(
        default=None, description="The result that ends the stage"
    )
    required_actions: list[Sentence] = Field(default_factory=list, max_length=30)
    exit_criteria: list[ExitCriterion] = Field(
        default_factory=list, max_length=30,
        description=f"Deal fields that must be filled to leave the stage: {', '.join(stages.EXIT_CRITERIA)}, "
        "custom.<key>",
    )
    probability: int = Field(ge=0, le=100, description="Default win probability of a deal in this stage, %")
    rotting_days: int | None = Field(default=None, ge=1, le=3650)
    phase: Phase
    is_won: bool = False
    is_completed: bool = False


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name = Field(description="Unique in the workspace, ignoring case")
    description: Description | None = None
    audience: list[Tag] = Field(default_factory=list, max_length=20, description="Client types, products, channels")
    position: int | None = Field(default=None, ge=0, le=10_000, description="Default: after the others")
    stages: list[StageIn] = Field(min_length=1, max_length=stages.MAX_STAGES)


class PipelinePatch(BaseModel):
    """Only the fields present change. `stages` is the whole new list in order: stages sent with an id are kept
    (renamed, moved, changed), stages without one are added, the pipeline's stages left out are removed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name | None = None
    description: Description | None = None
    audience: list[Tag] | None = Field(default=None, max_length=20)
    position: int | None = Field(default=None, ge=0, le=10_000)
    is_default: Literal[True] | None = Field(
        default=None, description="true makes this the workspace's default pipeline (the old default stops being it)"
    )
    stages: list[StageIn] | None = Field(default=None, min_length=1, max_length=stages.MAX_STAGES)


class StageOut(BaseModel):
    id: uuid.UUID
    position: int
    name: str
    expected_result: str | None
    required_actions: list[str]
    exit_criteria: list[str]
    probability: int
    rotting_days: int | None
    phase: Phase
    is_won: bool
    is_completed: bool


class PipelineOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None
    audience: list[str]
    is_default: bool
    position: int
    stages: list[StageOut]
    created_at: datetime
    updated_at: datetime
    version: int


class PipelinePage(BaseModel):
    items: list[PipelineOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class FindingOut(BaseModel):
    code: str
    severity: Literal["warning", "info"]
    stage_id: uuid.UUID | None = Field(description="The stage the finding is about; null: the whole pipeline")
    message: str = Field(description="What is wrong and why it matters")


class CheckOut(BaseModel):
    pipeline_id: uuid.UUID
    pipeline_version: int
    findings: list[FindingOut]


class StepIn(BaseModel):
    """A step of a playbook: a task template."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: Annotated[str, NoNul, Field(min_length=1, max_length=200)]
    task_type: playbooks.TaskType
    description: Annotated[str, NoNul, Field(max_length=2000)] | None = None
    due_in: int = Field(ge=0, le=10_000, description="How long after the deal enters the stage the task is due")
    due_unit: playbooks.DueUnit = playbooks.DueUnit.working_days
    assignee: Assignee = Field(
        default="deal_owner",
        description="deal_owner, head_of_sales, or role:<hunter|closer|farmer|head_of_sales|admin>",
    )
    checkpoint: bool = Field(default=False, description="Escalate to the head of sales when the task is missed")


class StepOut(BaseModel):
    title: str
    task_type: playbooks.TaskType
    description: str | None
    due_in: int
    due_unit: playbooks.DueUnit
    assignee: str
    checkpoint: bool


class PlaybookPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    script: Annotated[str, NoNul, Field(max_length=20_000)] | None = Field(
        default=None, description="What the rep says and asks at this stage"
    )
    steps: list[StepIn] = Field(default_factory=list, max_length=playbooks.MAX_STEPS)


class PlaybookOut(BaseModel):
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    version: int = Field(description="0: the stage has no playbook yet")
    script: str | None
    steps: list[StepOut]
    created_at: datetime | None = Field(description="When this version was saved")
    created_by: uuid.UUID | None = Field(description="Null for a starter playbook")


class PlaybookPage(BaseModel):
    items: list[PlaybookOut]
    next_cursor: str | None


# ---------------------------------------------------------------------------------------------------- deals

Title = Annotated[str, NoNul, Field(min_length=1, max_length=200)]
Short = Annotated[str, NoNul, Field(min_length=1, max_length=200)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6)]
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]
DealStatus = Literal["open", "won", "lost", "completed"]


class ContactIn(BaseModel):
    """The person at the client: any of name, email, phone."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Short | None = None
    email: Annotated[str, NoNul, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, NoNul, Field(min_length=1, max_length=50)] | None = None


class LineItemIn(BaseModel):
    """A line of the deal: `quantity` units of `product` at `price` each, less `discount_percent`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    product: Short
    quantity: Quantity = Field(description='A decimal string, more than zero, e.g. "2" or "1.5"')
    price: Money = Field(description='The price of one unit: {"amount": "100.00", "currency": "USD"}')
    discount_percent: Percent = Field(default=Decimal(0), description="0-100, default 0")


class DealFields(BaseModel):
    """The fields a deal is created with and changed by."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    amount: Money | None = Field(
        default=None, description='{"amount": "15000.00", "currency": "USD"}; default: the line items\' total'
    )
    line_items: list[LineItemIn] | None = Field(default=None, max_length=100, description="All in one currency")
    expected_close_date: date | None = None
    company: Short | None = None
    contact: ContactIn | None = None
    owner_id: uuid.UUID | None = Field(default=None, description="Heads of sales and admins only; default: you")
    source: Short | None = None
    channel: Short | None = None
    region: Short | None = None
    products: list[Tag] | None = Field(default=None, max_length=50)
    custom: dict[str, Any] | None = Field(default=None, description="Your own fields; PATCH merges them key by key")
    tags: list[Tag] | None = Field(default=None, max_length=50)


class DealCreate(DealFields):
    title: Title
    pipeline_id: uuid.UUID | None = Field(default=None, description="Default: the workspace's default pipeline")
    stage_id: uuid.UUID | None = Field(default=None, description="Default: the pipeline's first stage")


class DealPatch(DealFields):
    """Only the fields present change; null clears one (not `title`); `custom` merges key by key (a key sent as
    null is removed). The stage and the status change through their own operations (next part)."""

    title: Title | None = None


class ContactOut(BaseModel):
    name: str | None = None
    email: str | None = None
    phone: str | None = None


class LineItemOut(BaseModel):
    product: str
    quantity: Decimal
    price: Money
    discount_percent: Decimal


class DealOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    title: str
    amount: Money | None
    line_items: list[LineItemOut]
    expected_close_date: date | None
    company: str | None
    contact: ContactOut | None
    owner_id: uuid.UUID | None
    lead_id: uuid.UUID | None = Field(description="The lead the deal was opened from (lead.qualified), if any")
    source: str | None
    channel: str | None
    region: str | None
    products: list[str]
    custom: dict[str, Any]
    tags: list[str]
    status: DealStatus
    stage_entered_at: datetime
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


class DealPage(BaseModel):
    items: list[DealOut]
    next_cursor: str | None = None
