"""The published language: event envelope, versioned payloads and the routing catalogue."""

from services.contracts.catalogue import PAYLOADS, SUBSCRIPTIONS, produced_by, subscribers_of
from services.contracts.envelope import CloudEvent, event_name, event_type
from services.contracts.leads import (
    LeadAssignedV1,
    LeadCreatedV1,
    LeadMergedV1,
    LeadQualifiedV1,
    LeadStatusChangedV1,
    LeadUpdatedV1,
    QualificationV1,
)
from services.contracts.payload import EventPayload

__all__ = [
    "PAYLOADS",
    "SUBSCRIPTIONS",
    "CloudEvent",
    "EventPayload",
    "LeadAssignedV1",
    "LeadCreatedV1",
    "LeadMergedV1",
    "LeadQualifiedV1",
    "LeadStatusChangedV1",
    "LeadUpdatedV1",
    "QualificationV1",
    "event_name",
    "event_type",
    "produced_by",
    "subscribers_of",
]
