"""Events the deals service publishes that other services consume already (the deals issue adds the rest).

Defined ahead of the deals service so the leads service can learn from outcomes and hand won clients to
farmers; the deals service publishes exactly these payloads.
"""

from __future__ import annotations

import uuid
from datetime import datetime
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
