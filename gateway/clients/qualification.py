"""Client for the leads service's qualification endpoints: a lead's BANT answers
(`/v1/leads/{id}/qualification`) and the move that hands it to a closer (`/v1/leads/{id}/qualify`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from gateway.clients.base import Record, ServiceClient, idempotency, if_match
from gateway.clients.leads import LeadRecord


class MoneyRecord(Record):
    """An amount as the services send it: a decimal string in the currency's places, never a float."""

    amount: str
    currency: str


class QualificationRecord(Record):
    """A lead's answers as the leads service returns them (`QualificationOut`); version 0 before any is saved."""

    lead_id: uuid.UUID
    budget: MoneyRecord | None = None
    budget_confirmed: bool = False
    decision_maker: str | None = None
    is_decision_maker: bool = False
    need: str | None = None
    products: list[str] = []
    timeline: date | None = None
    notes: str | None = None
    updated_by: uuid.UUID | None = None
    updated_at: datetime | None = None
    version: int


class QualifiedRecord(Record):
    """What `POST /v1/leads/{id}/qualify` answers: the lead, now qualified, and the answers it was qualified on."""

    lead: LeadRecord
    qualification: QualificationRecord


class QualificationClient(ServiceClient):
    service = "leads"

    async def get(self, lead_id: uuid.UUID) -> QualificationRecord:
        response = await self._send("GET", f"/v1/leads/{lead_id}/qualification", ok=(200,))
        return QualificationRecord.model_validate_json(response.content)

    async def update(
        self, lead_id: uuid.UUID, answers: Mapping[str, Any], *, version: int | None
    ) -> QualificationRecord:
        """PATCH: only the answers given change (None clears one); `version` is the qualification's own."""
        response = await self._send(
            "PATCH", f"/v1/leads/{lead_id}/qualification", ok=(200,), json=dict(answers), headers=if_match(version)
        )
        return QualificationRecord.model_validate_json(response.content)

    async def qualify(
        self,
        lead_id: uuid.UUID,
        body: Mapping[str, Any],
        *,
        version: int | None,
        idempotency_key: str | None = None,
    ) -> QualifiedRecord:
        """Saves the answers in `body`, then qualifies the lead; `version` is the lead's, as for a status move."""
        headers = {**if_match(version), **idempotency(idempotency_key)}
        response = await self._send(
            "POST", f"/v1/leads/{lead_id}/qualify", ok=(200,), json=dict(body), headers=headers
        )
        return QualifiedRecord.model_validate_json(response.content)
