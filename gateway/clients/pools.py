"""The gateway's connection pools, one per upstream service, opened in the app lifespan and closed on
shutdown; `bind` hands each GraphQL request clients that carry its caller's identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from gateway.clients.base import Caller, open_pool
from gateway.clients.conversion import ConversionClient
from gateway.clients.distribution import AssignmentRulesClient
from gateway.clients.imports import ImportsClient
from gateway.clients.leads import LeadsClient
from gateway.clients.pipelines import PipelinesClient
from gateway.clients.qualification import QualificationClient
from gateway.clients.reporting import ReportingClient
from gateway.clients.roster import MembersClient, TeamsClient, TerritoriesClient
from gateway.clients.scoring import ScoringClient
from gateway.clients.sources import SourcesClient
from services.common.settings import Settings


@dataclass(frozen=True, slots=True)
class Clients:
    """The upstream clients of one request."""

    leads: LeadsClient
    qualification: QualificationClient
    scoring: ScoringClient
    conversion: ConversionClient
    sources: SourcesClient
    imports: ImportsClient
    members: MembersClient
    teams: TeamsClient
    territories: TerritoriesClient
    assignment_rules: AssignmentRulesClient
    pipelines: PipelinesClient
    reporting: ReportingClient


@dataclass(frozen=True, slots=True)
class UpstreamPools:
    leads: httpx.AsyncClient
    deals: httpx.AsyncClient
    reporting: httpx.AsyncClient

    @classmethod
    def open(
        cls, settings: Settings, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None
    ) -> UpstreamPools:
        """`transports` replaces the network for the named services (tests pass httpx.MockTransport)."""
        transports = transports or {}
        return cls(
            leads=open_pool(settings.leads_url, transports.get("leads")),
            deals=open_pool(settings.deals_url, transports.get("deals")),
            reporting=open_pool(settings.reporting_url, transports.get("reporting")),
        )

    def bind(self, caller: Caller) -> Clients:
        # Qualification, scoring (the rules and the learned model), sources, imports, the roster and distribution
        # are the leads service's too: their clients share its pool.
        return Clients(
            leads=LeadsClient(self.leads, caller),
            qualification=QualificationClient(self.leads, caller),
            scoring=ScoringClient(self.leads, caller),
            conversion=ConversionClient(self.leads, caller),
            sources=SourcesClient(self.leads, caller),
            imports=ImportsClient(self.leads, caller),
            members=MembersClient(self.leads, caller),
            teams=TeamsClient(self.leads, caller),
            territories=TerritoriesClient(self.leads, caller),
            assignment_rules=AssignmentRulesClient(self.leads, caller),
            pipelines=PipelinesClient(self.deals, caller),
            reporting=ReportingClient(self.reporting, caller),
        )

    async def aclose(self) -> None:
        for pool in (self.leads, self.deals, self.reporting):
            await pool.aclose()
