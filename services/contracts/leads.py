"""Events the leads service publishes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.money import Money
from services.contracts.payload import EventPayload


class LeadCreatedV1(EventPayload):
    """A new lead was taken in (not a repeat of a known one: that is `lead.merged`)."""

    event: ClassVar[str] = "lead.created"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    position: str | None = None
    source: str | None = None
    source_id: uuid.UUID | None = None
    channel: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    custom: dict[str, object] = Field(default_factory=dict)
    status: str = "new"
    # How it reached us: api, batch, webhook or import.
    via: str = "api"
    owner_id: uuid.UUID | None = None
    created_by: uuid.UUID
    created_at: datetime


class LeadMergedV1(EventPayload):
    """A lead absorbed another touch: a repeat submission (`how=auto`) or another lead merged by hand."""

    event: ClassVar[str] = "lead.merged"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    how: Literal["auto", "manual"]
    # The lead folded into `lead_id` (manual merges); null when a new submission matched it.
    merged_lead_id: uuid.UUID | None = None
    # The touch that arrived (auto merges): where it came from and how.
    via: str | None = None
    source: str | None = None
    source_id: uuid.UUID | None = None
    channel: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)
    # Fields the surviving lead took from the incoming data (it was missing them).
    filled: list[str] = Field(default_factory=list)
    owner_id: uuid.UUID | None = None
    merged_by: uuid.UUID
    merged_at: datetime


class LeadStatusChangedV1(EventPayload):
    event: ClassVar[str] = "lead.status_changed"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    from_status: str
    to_status: str
    # For disqualified: a reason from the workspace's list.
    reason: str | None = None
    comment: str | None = None
    owner_id: uuid.UUID | None = None
    changed_by: uuid.UUID
    changed_at: datetime


class LeadUpdatedV1(EventPayload):
    """Editable fields of a lead changed (PATCH): which ones, and the owner before and after."""

    event: ClassVar[str] = "lead.updated"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    changed: list[str]
    owner_id: uuid.UUID | None = None
    previous_owner_id: uuid.UUID | None = None
    lead_version: int
    updated_by: uuid.UUID
    updated_at: datetime


class QualificationV1(BaseModel):
    """A lead's BANT answers as they were when it was qualified."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    budget: Money | None = None
    budget_confirmed: bool = False
    decision_maker: str | None = Field(default=None, description="Who decides: name and position")
    is_decision_maker: bool = Field(default=False, description="Whether the lead's contact is the one who decides")
    need: str | None = Field(default=None, description="The problem the client wants solved")
    products: list[str] = Field(default_factory=list, description="Product codes the need is about")
    timeline: date | None = Field(default=None, description="When the client expects to decide")
    notes: str | None = None


class LeadQualifiedV1(EventPayload):
    """A hunter qualified a lead (POST /v1/leads/{id}/qualify): the hand-off to a closer. It carries everything
    needed to open a deal without calling the leads service back."""

    event: ClassVar[str] = "lead.qualified"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    position: str | None = None
    source: str | None = None
    source_id: uuid.UUID | None = None
    channel: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    custom: dict[str, object] = Field(default_factory=dict)
    owner_id: uuid.UUID | None = Field(default=None, description="The hunter who owns the lead now")
    closer_id: uuid.UUID | None = Field(
        default=None,
        description="The closer distribution assigned (now the lead's owner); null when no closer was free: the "
        "lead then waits in its rule's queue and lead.assigned announces the closer later "
        "(docs/scoring-and-distribution.md, Distribution)",
    )
    qualification: QualificationV1
    # The hunter's words for the closer, as given with the status change.
    comment: str | None = None
    qualified_by: uuid.UUID
    qualified_at: datetime


class LeadAssignedV1(EventPayload):
    """A lead got an owner: by an assignment rule (distribution) or by hand (a head of sales changed owner_id)."""

    event: ClassVar[str] = "lead.assigned"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    owner_id: uuid.UUID | None = None
    previous_owner_id: uuid.UUID | None = None
    stage: Literal["new", "qualified", "client"] = Field(
        description="new: a lead to work (hunters); qualified: for a closer; client: a won client, for a farmer"
    )
    rule_id: uuid.UUID | None = Field(default=None, description="The rule that fired; null for a manual assignment")
    method: Literal["round_robin", "weighted_round_robin", "least_loaded", "fixed", "manual"]
    reason: str = Field(description="Why this member, in words")
    assigned_at: datetime
    assigned_by: uuid.UUID | None = Field(default=None, description="Who assigned it by hand; null: distribution")
    missed_by: uuid.UUID | None = Field(
        default=None,
        description="A reassignment because this member missed the lead's first-contact deadline (task.overdue); "
        "the head of sales is told",
    )


class LeadScoredV1(EventPayload):
    """A lead's stored grade changed (or it got its first one): rescored after a change to the lead, its
    qualification or engagement, the workspace's scoring model, the learned model, or by decay."""

    event: ClassVar[str] = "lead.scored"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    owner_id: uuid.UUID | None = None
    score: int = Field(ge=0, le=100)
    grade: Literal["A", "B", "C", "D"]
    previous_grade: Literal["A", "B", "C", "D"] | None = Field(default=None, description="Null: its first grade")
    temperature: Literal["hot", "warm", "cold"]
    probability: float | None = Field(
        default=None, ge=0, le=1, description="The learned probability of conversion; null without a usable model"
    )
    model_version: int
    cause: Literal["lead_changed", "model_changed", "conversion_model_trained", "nightly", "requested"]
    scored_at: datetime
