"""Client for the leads service's source endpoints (`/v1/sources`): the workspace's inbound webhook endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.clients.base import Record, ServiceClient, idempotency, if_match


class SourceRecord(Record):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    channel: str
    mapping: dict[str, Any] = {}
    active: bool
    inbound_url: str
    has_secret: bool
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int


class SourceWithCredentialsRecord(SourceRecord):
    """The answer that made the credentials (creation, rotation): the only one that shows them."""

    secret: str
    token: str


class SourcePage(Record):
    items: list[SourceRecord]
    next_cursor: str | None = None


class SourcesClient(ServiceClient):
    # Sources live in the leads service: the same pool, the same name in "... service unavailable".
    service = "leads"

    async def create(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> SourceWithCredentialsRecord:
        response = await self._send(
            "POST", "/v1/sources", ok=(201,), json=dict(body), headers=idempotency(idempotency_key)
        )
        return SourceWithCredentialsRecord.model_validate_json(response.content)

    async def update(self, source_id: uuid.UUID, changes: Mapping[str, Any], *, version: int | None) -> SourceRecord:
        response = await self._send(
            "PATCH", f"/v1/sources/{source_id}", ok=(200,), json=dict(changes), headers=if_match(version)
        )
        return SourceRecord.model_validate_json(response.content)

    async def rotate_secret(self, source_id: uuid.UUID) -> SourceWithCredentialsRecord:
        response = await self._send("POST", f"/v1/sources/{source_id}/rotate-secret", ok=(200,))
        return SourceWithCredentialsRecord.model_validate_json(response.content)

    async def get(self, source_id: uuid.UUID) -> SourceRecord:
        response = await self._send("GET", f"/v1/sources/{source_id}", ok=(200,))
        return SourceRecord.model_validate_json(response.content)

    async def page(self, *, limit: int, cursor: str | None) -> SourcePage:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._send("GET", "/v1/sources", ok=(200,), params=params)
        return SourcePage.model_validate_json(response.content)
