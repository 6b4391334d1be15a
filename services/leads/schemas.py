"""Request and response bodies of the leads API.

Shapes and limits are checked here; what depends on the workspace (the phone region, custom field
definitions, disqualification reasons) is checked by `services.leads.normalize` before a lead is taken in.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.common.money import Money
from services.common.text import NoNul


def _email(value: str | None) -> str | None:
    from services.leads.normalize import normalize_email

    return normalize_email(value) if value else None


# Emails do not depend on the workspace, so they are checked with the rest of the shape and reported together.
Email = Annotated[Annotated[str, Field(max_length=320)] | None, NoNul, AfterValidator(_email)]


class Channel(StrEnum):
    web_form = "web_form"
    ads = "ads"
    marketing_tool = "marketing_tool"
    cold_list = "cold_list"
    referral = "referral"
    event = "event"
    partner = "partner"
    manual = "manual"
    other = "other"


class Status(StrEnum):
    new = "new"
    working = "working"
    nurturing = "nurturing"
    qualified = "qualified"
    converted = "converted"
    disqualified = "disqualified"
    # Folded into another lead by a hand merge; read-only from then on.
    merged = "merged"


class Via(StrEnum):
    api = "api"
    batch = "batch"
    webhook = "webhook"
    import_ = "import"


class Utm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    medium: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    campaign: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    term: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    content: Annotated[str | None, NoNul] = Field(default=None, max_length=200)

    def compact(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


Tag = Annotated[str, NoNul, Field(min_length=1, max_length=50)]


class LeadFields(BaseModel):
    """The editable fields every way of creating a lead shares."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str | None, NoNul] = Field(
        default=None, min_length=1, max_length=200, description="The person to sell to; defaults to the email or phone"
    )
    email: Email = None
    phone: Annotated[str | None, NoNul] = Field(
        default=None, max_length=40, description="Any common format; stored as E.164 (workspace default region)"
    )
    company: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    position: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    notes: Annotated[str | None, NoNul] = Field(default=None, max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    custom: dict[str, Any] = Field(
        default_factory=dict, description="Values of the workspace's custom fields (GET /v1/lead-settings)"
    )
    owner_id: uuid.UUID | None = Field(
        default=None, description="The rep who works the lead; a rep's own leads are always theirs"
    )


class LeadCreate(LeadFields):
    source: Annotated[str | None, NoNul] = Field(
        default=None, max_length=100, description="Where the lead came from, in words, e.g. 'Spring webinar'"
    )
    source_id: uuid.UUID | None = Field(default=None, description="A configured source (POST /v1/sources)")
    channel: Channel | None = None
    utm: Utm = Field(default_factory=Utm)


class LeadPatch(BaseModel):
    """PATCH /v1/leads/{id}: only the fields present change; null clears a field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str | None, NoNul] = Field(default=None, min_length=1, max_length=200)
    email: Email = None
    phone: Annotated[str | None, NoNul] = Field(default=None, max_length=40)
    company: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    position: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    notes: Annotated[str | None, NoNul] = Field(default=None, max_length=10_000)
    tags: list[Tag] | None = Field(default=None, max_length=50)
    custom: dict[str, Any] | None = None
    owner_id: uuid.UUID | None = None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: Status
    reason: Annotated[str | None, NoNul] = Field(
        default=None, max_length=100, description="Required when disqualifying: one of the workspace's reasons"
    )
    comment: Annotated[str | None, NoNul] = Field(default=None, max_length=2000)


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_lead_id: uuid.UUID = Field(description="The lead folded into this one; it becomes status `merged`")


class LeadOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    company: str | None
    position: str | None
    notes: str | None
    tags: list[str]
    custom: dict[str, Any]
    source: str | None
    source_id: uuid.UUID | None
    channel: str | None
    utm: dict[str, str]
    owner_id: uuid.UUID | None
    hunter_id: uuid.UUID | None = Field(default=None, description="The hunter who qualified it, once a closer owns it")
    assignment_state: str = Field(
        default="assigned", description="Distribution: pending, queued (waits for a member), assigned or unmatched"
    )
    assignment_rule_id: uuid.UUID | None = Field(default=None, description="The rule it is queued on or came by")
    status: str
    disqualification_reason: str | None
    merged_into_id: uuid.UUID | None
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime
    version: int


class HiddenMerge(BaseModel):
    outcome: str = "merged"
    lead_id: uuid.UUID
    detail: str = (
        "This person is already a lead of another rep: your submission was added to that lead's history. "
        "Ask your head of sales if you should work it."
    )


class LeadPage(BaseModel):
    items: list[LeadOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000, description="Up to 1,000 leads, each shaped like POST /v1/leads"
    )


class BatchItemResult(BaseModel):
    index: int
    outcome: str = Field(description="created, merged or rejected")
    lead_id: uuid.UUID | None = None
    errors: list[dict[str, str]] = Field(default_factory=list)


class BatchResult(BaseModel):
    created: int
    merged: int
    rejected: int
    items: list[BatchItemResult]


class TouchOut(BaseModel):
    id: uuid.UUID
    via: str
    source: str | None
    source_id: uuid.UUID | None
    channel: str | None
    utm: dict[str, str]
    data: dict[str, Any]
    origin_id: uuid.UUID | None
    touched_at: datetime


class StatusChangeOut(BaseModel):
    id: uuid.UUID
    from_status: str
    to_status: str
    reason: str | None
    comment: str | None
    changed_by: uuid.UUID
    changed_at: datetime


class MergeOut(BaseModel):
    id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    fields: dict[str, Any]
    merged_by: uuid.UUID
    merged_at: datetime


class LeadHistory(BaseModel):
    touches: list[TouchOut]
    status_changes: list[StatusChangeOut]
    merges: list[MergeOut]


ProductCode = Annotated[str, NoNul, Field(min_length=1, max_length=50)]


class QualificationPatch(BaseModel):
    """PATCH /v1/leads/{id}/qualification: only the answers present change; null clears one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    budget: Money | None = Field(default=None, description='{"amount": "15000.00", "currency": "USD"}')
    budget_confirmed: bool | None = Field(default=None, description="The client confirmed the budget is there")
    decision_maker: Annotated[str | None, NoNul] = Field(
        default=None, min_length=1, max_length=200, description="Who decides: name and position"
    )
    is_decision_maker: bool | None = Field(default=None, description="Our contact is the one who decides")
    need: Annotated[str | None, NoNul] = Field(
        default=None, min_length=1, max_length=2000, description="The problem the client wants solved"
    )
    products: list[ProductCode] | None = Field(
        default=None, max_length=100, description="Product codes the need is about"
    )
    timeline: date | None = Field(default=None, description="When the client expects to decide (YYYY-MM-DD)")
    notes: Annotated[str | None, NoNul] = Field(default=None, max_length=10_000)


class QualifyRequest(QualificationPatch):
    """POST /v1/leads/{id}/qualify: answers saved first (as by the PATCH), then the lead is qualified."""

    comment: Annotated[str | None, NoNul] = Field(
        default=None, max_length=2000, description="Recorded with the status change; passed on to the closer"
    )


class QualificationOut(BaseModel):
    lead_id: uuid.UUID
    budget: Money | None
    budget_confirmed: bool
    decision_maker: str | None
    is_decision_maker: bool
    need: str | None
    products: list[str]
    timeline: date | None
    notes: str | None
    updated_by: uuid.UUID | None = Field(description="null until answers are saved")
    updated_at: datetime | None
    version: int = Field(description="The ETag; 0 until answers are saved")


class QualifiedOut(BaseModel):
    lead: LeadOut
    qualification: QualificationOut
