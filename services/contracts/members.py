"""Events the leads service publishes about the sales team: members and teams (docs/scoring-and-distribution.md).

A member event carries the member's whole record after the change, so a consumer keeps its own copy by
upserting the snapshot (newest `member_version` wins) without asking the leads service for anything.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from services.contracts.payload import EventPayload


class MemberSnapshot(EventPayload):
    """Every field of a member as it is after the change (the base of the member.* payloads, not an event)."""

    member_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None = None
    # The role in the sales process: hunter, closer, farmer, head_of_sales, admin (not the token's auth role).
    role: str
    team_id: uuid.UUID | None = None
    territory_ids: list[uuid.UUID]
    products: list[str]
    channels: list[str]
    time_zone: str
    # {"mon": [["09:00", "18:00"]], ..., "sun": []}: [start, end) intervals in the member's local time.
    working_hours: dict[str, list[list[str]]]
    # The most open leads the member takes; null: no limit.
    capacity: int | None = None
    # active, away or inactive (someone who left: they keep their history).
    status: str
    away_until: datetime | None = None
    member_version: int
    created_at: datetime
    updated_at: datetime


class MemberCreatedV1(MemberSnapshot):
    """A member joined the roster: added by an admin or head of sales, or on their own first visit."""

    event: ClassVar[str] = "member.created"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    created_by: uuid.UUID


class MemberUpdatedV1(MemberSnapshot):
    """A member's record changed; `changed` names the fields that did."""

    event: ClassVar[str] = "member.updated"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    changed: list[str]
    updated_by: uuid.UUID


class TeamSnapshot(EventPayload):
    """Every field of a team as it is after the change (the base of team.created and team.updated)."""

    team_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str | None = None
    head_id: uuid.UUID | None = None
    team_version: int
    created_at: datetime
    updated_at: datetime


class TeamCreatedV1(TeamSnapshot):
    event: ClassVar[str] = "team.created"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    created_by: uuid.UUID


class TeamUpdatedV1(TeamSnapshot):
    event: ClassVar[str] = "team.updated"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    changed: list[str]
    updated_by: uuid.UUID


class TeamDeletedV1(EventPayload):
    """A team nobody was in any more was removed."""

    event: ClassVar[str] = "team.deleted"
    version: ClassVar[int] = 1
    producer: ClassVar[str] = "leads"

    team_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    deleted_by: uuid.UUID
    deleted_at: datetime
