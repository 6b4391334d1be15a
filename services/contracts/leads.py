"""Events the leads service publishes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from services.contracts.payload import EventPayload


class LeadCreatedV1(EventPayload):
    event: ClassVar[str] = "lead.created"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    lead_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    source: str | None = None
    owner_id: uuid.UUID | None = None
    created_by: uuid.UUID
    created_at: datetime
