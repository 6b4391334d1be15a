"""HTTP: /v1/stats — the numbers built from events."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.common.auth import CurrentPrincipal
from services.common.db import ReadConn

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
    owner = None if principal.sees_whole_workspace else principal.user_id
    rows = await conn.fetch(
        """
        SELECT source, count(*) AS count FROM reporting.lead_facts
        WHERE workspace_id = $1 AND ($2::uuid IS NULL OR owner_id = $2)
        GROUP BY source ORDER BY count(*) DESC, source
        """,
        principal.workspace_id, owner,
    )
    by_source = [SourceCount(source=r["source"], count=r["count"]) for r in rows]
    return LeadStats(total=sum(s.count for s in by_source), by_source=by_source)
