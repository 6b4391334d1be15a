"""Events the tasks service publishes that other services consume already (the tasks issue adds the rest)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from services.contracts.payload import EventPayload


class TaskOverdueV1(EventPayload):
    """An open task passed its due time; published once per task by the tasks service's scheduler."""

    event: ClassVar[str] = "task.overdue"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "tasks"

    task_id: uuid.UUID
    workspace_id: uuid.UUID
    kind: Literal["first_contact", "playbook", "follow_up", "manual"] = Field(
        description="first_contact: the task lead.assigned created for the new owner, due within the response SLA"
    )
    task_type: str = Field(description="call, meeting, visit, email, proposal, follow_up, other")
    title: str
    lead_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    assignee_id: uuid.UUID
    checkpoint: bool = False
    due_at: datetime
    overdue_at: datetime
