"""Every event type, who publishes it and who subscribes to it.

Producers fan out from this table; consumers declare what they handle here too, so the routing is reviewed
in one place. docs/architecture.md mirrors it for humans.
"""

from __future__ import annotations

from services.contracts.deals import (
    DealCreatedV1,
    DealLostV1,
    DealUpdatedV1,
    DealWonV1,
    PipelineCreatedV1,
    PipelineDeletedV1,
    PipelineUpdatedV1,
    PlaybookUpdatedV1,
)
from services.contracts.leads import (
    LeadAssignedV1,
    LeadCreatedV1,
    LeadMergedV1,
    LeadQualifiedV1,
    LeadScoredV1,
    LeadStatusChangedV1,
    LeadUpdatedV1,
)
from services.contracts.members import (
    MemberCreatedV1,
    MemberUpdatedV1,
    TeamCreatedV1,
    TeamDeletedV1,
    TeamUpdatedV1,
)
from services.contracts.payload import EventPayload
from services.contracts.tasks import TaskOverdueV1

PAYLOADS: dict[str, type[EventPayload]] = {model.type(): model for model in (
    LeadCreatedV1, LeadMergedV1, LeadStatusChangedV1, LeadUpdatedV1, LeadQualifiedV1, LeadAssignedV1,
    LeadScoredV1, MemberCreatedV1, MemberUpdatedV1, TeamCreatedV1, TeamUpdatedV1, TeamDeletedV1,
    DealCreatedV1, DealUpdatedV1, DealWonV1, DealLostV1, PipelineCreatedV1, PipelineUpdatedV1, PipelineDeletedV1,
    PlaybookUpdatedV1, TaskOverdueV1,
)}

# consumer service -> the event names it subscribes to
SUBSCRIPTIONS: dict[str, frozenset[str]] = {
    "reporting": frozenset({"lead.created"}),
    # Outcomes train the learned conversion model; a won deal hands the client to a farmer; a missed
    # first-contact deadline reassigns the lead.
    "leads": frozenset({"deal.won", "deal.lost", "task.overdue"}),
    # A qualified lead opens a deal (the hunter -> closer hand-off).
    "deals": frozenset({"lead.qualified"}),
}


def produced_by(service: str) -> frozenset[str]:
    return frozenset(model.event for model in PAYLOADS.values() if model.producer == service)


def subscribers_of(service: str) -> dict[str, frozenset[str]]:
    """For a producer: each consumer and the subset of this producer's events it wants."""
    produced = produced_by(service)
    return {
        consumer: names & produced
        for consumer, names in SUBSCRIPTIONS.items()
        if consumer != service and names & produced
    }
