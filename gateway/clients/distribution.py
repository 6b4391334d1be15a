"""Client for the leads service's distribution endpoints: assignment rules (`/v1/assignment-rules`) and each
lead's record of assignments (`/v1/leads/{id}/assignments`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.clients.base import QueryValue, Record, ServiceClient, idempotency, if_match


class AssignmentRuleRecord(Record):
    """A rule as the leads service returns it (`RuleOut`)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    position: int
    active: bool
    stage: str
    # Only the lists given, by their REST names (channels, source_ids, tags, countries, territory_ids, products).
    conditions: dict[str, list[str]] = {}
    method: str
    team_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] | None = None
    # Member id -> weight.
    weights: dict[str, int] = {}
    only_working_hours: bool
    created_at: datetime
    updated_at: datetime
    version: int


class AssignmentRulePage(Record):
    items: list[AssignmentRuleRecord]
    next_cursor: str | None = None


class AssignmentRecord(Record):
    """One entry of a lead's record (`AssignmentOut`); `member_id` None: the lead was queued."""

    id: uuid.UUID
    lead_id: uuid.UUID
    member_id: uuid.UUID | None = None
    previous_owner_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    stage: str
    method: str
    reason: str
    # [{"member_id": ..., "why": ...}]
    skipped: list[dict[str, str]] = []
    assigned_at: datetime
    assigned_by: uuid.UUID | None = None


class AssignmentList(Record):
    items: list[AssignmentRecord]


# Distribution lives in the leads service: the client shares its pool and its name in "... service unavailable".


class AssignmentRulesClient(ServiceClient):
    service = "leads"

    async def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> AssignmentRuleRecord:
        response = await self._send(
            "POST", "/v1/assignment-rules", ok=(201,), json=dict(body), headers=idempotency(idempotency_key)
        )
        return AssignmentRuleRecord.model_validate_json(response.content)

    async def update(
        self, rule_id: uuid.UUID, changes: Mapping[str, Any], *, version: int | None
    ) -> AssignmentRuleRecord:
        """PATCH: only the fields in `changes` change (None clears team_id or member_ids); the service then checks
        the rule as a whole."""
        response = await self._send(
            "PATCH", f"/v1/assignment-rules/{rule_id}", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return AssignmentRuleRecord.model_validate_json(response.content)

    async def delete(self, rule_id: uuid.UUID, *, version: int | None) -> None:
        await self._send("DELETE", f"/v1/assignment-rules/{rule_id}", ok=(204,), headers=if_match(version))

    async def get(self, rule_id: uuid.UUID) -> AssignmentRuleRecord:
        response = await self._send("GET", f"/v1/assignment-rules/{rule_id}", ok=(200,))
        return AssignmentRuleRecord.model_validate_json(response.content)

    async def page(self, *, limit: int, cursor: str | None, stage: str | None = None) -> AssignmentRulePage:
        """In evaluation order: stage, position, then creation."""
        params: dict[str, QueryValue] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        if stage is not None:
            params["stage"] = stage
        response = await self._send("GET", "/v1/assignment-rules", ok=(200,), params=params)
        return AssignmentRulePage.model_validate_json(response.content)

    async def assignments(self, lead_id: uuid.UUID) -> AssignmentList:
        """The lead's record, oldest first; 404 for a lead the caller may not see."""
        response = await self._send("GET", f"/v1/leads/{lead_id}/assignments", ok=(200,))
        return AssignmentList.model_validate_json(response.content)
