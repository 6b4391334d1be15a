"""HTTP: /v1/stats — the numbers built from events."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.common.auth import CurrentPrincipal
from services.common.db import ReadConn
from services.reporting.repository import FactsRepository

router = APIRouter(prefix="/v1/stats", tags=["stats"])


class SourceCount(BaseModel):
    source: str
    count: int


class LeadStats(BaseModel):
    total: int
    by_source: list[SourceCount]


@router.get("/leads", response_model=LeadStats)
async def lead_stats(principal: CurrentPrincipal, conn: ReadConn) -> LeadStats:
    """Leads in, by source: the whole workspace for heads of sales and admins, a rep's own for a rep."""
    rows = await FactsRepository(conn, principal).leads_by_source()
    by_source = [SourceCount(source=r["source"], count=r["count"]) for r in rows]
    return LeadStats(total=sum(s.count for s in by_source), by_source=by_source)
