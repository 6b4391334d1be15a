"""Client for the leads service's REST API (`/v1/leads`), as the gateway's resolvers and loaders use it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from gateway.clients.base import ServiceClient

# The service refuses larger `?ids=` lists and `limit`s.
MAX_IDS = 200
MAX_LIMIT = 200


class LeadRecord(BaseModel):
    """A lead as the leads service returns it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    source: str | None = None
    owner_id: uuid.UUID | None = None
    status: str
    created_at: datetime
    updated_at: datetime
    version: int


class LeadPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[LeadRecord]
    next_cursor: str | None = None


class NewLead(BaseModel):
    """The body of `POST /v1/leads`; the service, not the gateway, decides what is valid."""

    name: str
    email: str | None = None
    phone: str | None = None
    source: str | None = None
    company: str | None = None


class LeadsClient(ServiceClient):
    service = "leads"

    async def create(self, lead: NewLead, *, idempotency_key: str | None = None) -> LeadRecord:
        """A retry with the same `idempotency_key` gets the first answer back instead of a second lead."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        response = await self._send(
            "POST", "/v1/leads", ok=(201,), json=lead.model_dump(mode="json"), headers=headers
        )
        return LeadRecord.model_validate_json(response.content)

    async def page(self, *, limit: int, cursor: str | None) -> LeadPage:
        """Newest first; `cursor` is the previous page's `next_cursor`."""
        params: dict[str, str | int] = {"limit": limit}
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
