"""Client for the leads service's lead endpoints (`/v1/leads`, `/v1/lead-settings`), as the gateway's resolvers
and loaders use them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gateway.clients.base import QueryValue, Record, ServiceClient, idempotency, if_match

# The service refuses larger `?ids=` lists and `limit`s.
MAX_IDS = 200
MAX_LIMIT = 200


class LeadRecord(Record):
    """A lead as the leads service returns it (`LeadOut`)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    position: str | None = None
    notes: str | None = None
    tags: list[str] = []
    custom: dict[str, Any] = {}
    source: str | None = None
    source_id: uuid.UUID | None = None
    channel: str | None = None
    utm: dict[str, str] = {}
    owner_id: uuid.UUID | None = None
    # Distribution: the hunter who qualified it (once a closer owns it), where it is in distribution
    # (pending, queued, assigned, unmatched) and the rule it is queued on or came by.
    hunter_id: uuid.UUID | None = None
    assignment_state: str = "assigned"
    assignment_rule_id: uuid.UUID | None = None
    status: str
    disqualification_reason: str | None = None
    merged_into_id: uuid.UUID | None = None
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime
    version: int


class LeadPage(Record):
    items: list[LeadRecord]
    next_cursor: str | None = None


class HiddenMergeRecord(Record):
    """202 to a rep whose submission matched another rep's lead: only that lead's id, and why."""

    lead_id: uuid.UUID
    detail: str


@dataclass(frozen=True, slots=True)
class Captured:
    """What `POST /v1/leads` did: created a lead, or merged the submission into a known one.

    `lead` is None when the known lead is another rep's (`notice` says so).
    """

    outcome: Literal["created", "merged"]
    lead: LeadRecord | None
    notice: str | None = None


class TouchRecord(Record):
    id: uuid.UUID
    via: str
    source: str | None = None
    source_id: uuid.UUID | None = None
    channel: str | None = None
    utm: dict[str, str] = {}
    data: dict[str, Any] = {}
    origin_id: uuid.UUID | None = None
    touched_at: datetime


class StatusChangeRecord(Record):
    id: uuid.UUID
    from_status: str
    to_status: str
    reason: str | None = None
    comment: str | None = None
    changed_by: uuid.UUID
    changed_at: datetime


class MergeRecord(Record):
    id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    fields: dict[str, Any] = {}
    merged_by: uuid.UUID
    merged_at: datetime


class HistoryRecord(Record):
    touches: list[TouchRecord]
    status_changes: list[StatusChangeRecord]
    merges: list[MergeRecord]


class LeadSettingsRecord(Record):
    default_region: str | None = None
    disqualification_reasons: list[str]
    custom_fields: list[dict[str, Any]]
    # The qualification answers (budget, authority, need, timeline) a lead needs before it can be qualified.
    qualification_required: list[str]
    version: int


@dataclass(frozen=True, slots=True)
class LeadQuery:
    """The filters and order of `GET /v1/leads`, named as its query parameters; None leaves a filter out."""

    status: Sequence[str] | None = None
    # Ids as the client gave them: the service says what is wrong with a malformed one.
    owner_id: str | None = None
    unassigned: bool = False
    source_id: str | None = None
    channel: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
    grade: Sequence[str] | None = None
    temperature: Sequence[str] | None = None
    sort: str = "-created_at"

    def params(self) -> dict[str, QueryValue]:
        params: dict[str, QueryValue] = {"sort": self.sort}
        if self.status:
            params["status"] = list(self.status)
        if self.unassigned:
            params["unassigned"] = True
        if self.grade:
            params["grade"] = list(self.grade)
        if self.temperature:
            params["temperature"] = list(self.temperature)
        texts = (("owner_id", self.owner_id), ("source_id", self.source_id), ("channel", self.channel),
                 ("tag", self.tag), ("q", self.q))
        for name, text in texts:
            if text is not None:
                params[name] = text
        for name, moment in (("created_after", self.created_after), ("created_before", self.created_before)):
            if moment is not None:
                params[name] = moment.isoformat()
        return params


class LeadsClient(ServiceClient):
    service = "leads"

    async def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> Captured:
        """Takes a lead in; the service, not the gateway, decides what is valid. A retry with the same
        `idempotency_key` gets the first answer back instead of a second lead."""
        response = await self._send(
            "POST", "/v1/leads", ok=(200, 201, 202), json=dict(body), headers=idempotency(idempotency_key)
        )
        if response.status_code == 202:
            hidden = HiddenMergeRecord.model_validate_json(response.content)
            return Captured(outcome="merged", lead=None, notice=hidden.detail)
        lead = LeadRecord.model_validate_json(response.content)
        return Captured(outcome="created" if response.status_code == 201 else "merged", lead=lead)

    async def update(self, lead_id: uuid.UUID, changes: Mapping[str, Any], *, version: int | None) -> LeadRecord:
        """PATCH: only the fields in `changes` change (None clears one); with `version`, only that version."""
        response = await self._send(
            "PATCH", f"/v1/leads/{lead_id}", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return LeadRecord.model_validate_json(response.content)

    async def change_status(
        self,
        lead_id: uuid.UUID,
        change: Mapping[str, Any],
        *,
        version: int | None,
        idempotency_key: str | None = None,
    ) -> LeadRecord:
        headers = {**if_match(version), **idempotency(idempotency_key)}
        response = await self._send(
            "POST", f"/v1/leads/{lead_id}/status", ok=(200,), json=dict(change), headers=headers
        )
        return LeadRecord.model_validate_json(response.content)

    async def merge(
        self, survivor_id: uuid.UUID, other_id: uuid.UUID, *, idempotency_key: str | None = None
    ) -> LeadRecord:
        """Folds `other_id` into `survivor_id`; returns the survivor."""
        response = await self._send(
            "POST",
            f"/v1/leads/{survivor_id}/merge",
            ok=(200,),
            json={"other_lead_id": str(other_id)},
            headers=idempotency(idempotency_key),
        )
        return LeadRecord.model_validate_json(response.content)

    async def page(self, *, limit: int, cursor: str | None, query: LeadQuery | None = None) -> LeadPage:
        """Newest first unless `query.sort` says otherwise; `cursor` is the previous page's `next_cursor`."""
        params: dict[str, QueryValue] = {"limit": limit, **(query or LeadQuery()).params()}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._send("GET", "/v1/leads", ok=(200,), params=params)
        return LeadPage.model_validate_json(response.content)

    async def by_ids(self, ids: Sequence[uuid.UUID]) -> list[LeadRecord]:
        """The leads among `ids` the caller may see; the others are simply missing from the answer."""
        if not ids:
            return []
        if len(ids) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} ids per call, got {len(ids)}")
        response = await self._send(
            "GET", "/v1/leads", ok=(200,), params={"ids": ",".join(str(i) for i in ids)}
        )
        return LeadPage.model_validate_json(response.content).items

    async def history(self, lead_id: uuid.UUID) -> HistoryRecord:
        response = await self._send("GET", f"/v1/leads/{lead_id}/history", ok=(200,))
        return HistoryRecord.model_validate_json(response.content)

    async def settings(self) -> LeadSettingsRecord:
        response = await self._send("GET", "/v1/lead-settings", ok=(200,))
        return LeadSettingsRecord.model_validate_json(response.content)

    async def update_settings(self, changes: Mapping[str, Any], *, version: int | None) -> LeadSettingsRecord:
        response = await self._send(
            "PATCH", "/v1/lead-settings", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return LeadSettingsRecord.model_validate_json(response.content)
