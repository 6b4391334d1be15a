"""The leads service: capture (API, webhooks, imports), dedupe, lifecycle, qualification, scoring, distribution,
the sales team; publishes lead.*, member.* and team.* events."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.leads.api import (
    assignment_rules,
    conversion,
    imports,
    inbound,
    lead_settings,
    leads,
    members,
    qualification,
    scoring,
    sources,
    teams,
    territories,
)
from services.leads.assignment_worker import AssignmentWorker
from services.leads.consumers import HANDLERS
from services.leads.conversion_worker import ConversionTrainer
from services.leads.import_worker import ImportWorker
from services.leads.inbound_worker import InboundWorker
from services.leads.rescore_worker import RescoreWorker
from services.leads.scoring_worker import ScoringWorker


def create_app() -> FastAPI:
    return create_service_app(
        "leads",
        title="Voronka leads",
        routers=[
            leads.router, sources.router, inbound.router, imports.router, lead_settings.router,
            members.router, teams.router, territories.router, qualification.router, assignment_rules.router,
            assignment_rules.lead_router, scoring.router, scoring.lead_router, conversion.router,
        ],
        handlers=HANDLERS,
        workers=[InboundWorker, ImportWorker, AssignmentWorker, ScoringWorker, RescoreWorker,
                 ConversionTrainer],
    )
