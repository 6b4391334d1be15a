"""Events the leads service publishes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

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
