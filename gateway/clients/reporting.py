"""Client for the reporting service's REST API (`/v1/stats/...`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gateway.clients.base import ServiceClient


class SourceCountRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    source: str
    count: int


class LeadStatsRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    total: int
    by_source: list[SourceCountRecord]


class ReportingClient(ServiceClient):
    service = "reporting"

    async def lead_stats(self) -> LeadStatsRecord:
        response = await self._send("GET", "/v1/stats/leads", ok=(200,))
        return LeadStatsRecord.model_validate_json(response.content)
