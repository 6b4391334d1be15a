"""Reporting numbers in GraphQL: `leadStats`, read from the reporting service."""

from __future__ import annotations

import strawberry

from gateway.context import Info


@strawberry.type
class SourceCount:
    source: str = strawberry.field(
        description='Where the leads came from; leads that came without one count as "unknown".'
    )
    count: int


@strawberry.type
class LeadStats:
    total: int
    by_source: list[SourceCount]


@strawberry.type
class StatsQuery:
    @strawberry.field
    async def lead_stats(self, info: Info) -> LeadStats | None:
        """Leads in, by source. Null (with an error) when reporting is unavailable."""
        stats = await info.context.clients.reporting.lead_stats()
        return LeadStats(
            total=stats.total,
            by_source=[SourceCount(source=s.source, count=s.count) for s in stats.by_source],
        )
