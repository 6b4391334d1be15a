"""The published language: event envelope, versioned payloads and the routing catalogue."""

from services.contracts.catalogue import PAYLOADS, SUBSCRIPTIONS, produced_by, subscribers_of
from services.contracts.deals import (
    ContactV1,
    DealCreatedV1,
    DealLostV1,
    DealSnapshot,
    DealUpdatedV1,
    DealWonV1,
    LineItemV1,
    PipelineCreatedV1,
    PipelineDeletedV1,
    PipelineUpdatedV1,
    PlaybookStepV1,
    PlaybookUpdatedV1,
    StageV1,
)
from services.contracts.envelope import CloudEvent, event_name, event_type
from services.contracts.leads import (
    LeadAssignedV1,
    LeadCreatedV1,
    LeadMergedV1,
    LeadQualifiedV1,
    LeadScoredV1,
    LeadStatusChangedV1,
    LeadUpdatedV1,
    QualificationV1,
)
from services.contracts.payload import EventPayload
from services.contracts.tasks import TaskOverdueV1

__all__ = [
    "PAYLOADS",
    "SUBSCRIPTIONS",
    "CloudEvent",
    "ContactV1",
    "DealCreatedV1",
    "DealLostV1",
    "DealSnapshot",
    "DealUpdatedV1",
    "DealWonV1",
    "EventPayload",
    "LeadAssignedV1",
    "LeadCreatedV1",
    "LeadMergedV1",
    "LeadQualifiedV1",
    "LeadScoredV1",
    "LeadStatusChangedV1",
    "LeadUpdatedV1",
    "LineItemV1",
    "PipelineCreatedV1",
    "PipelineDeletedV1",
    "PipelineUpdatedV1",
    "PlaybookStepV1",
    "PlaybookUpdatedV1",
    "QualificationV1",
    "StageV1",
    "TaskOverdueV1",
    "event_name",
    "event_type",
    "produced_by",
    "subscribers_of",
]
