"""The base of every event payload: a versioned pydantic model that knows its type and producer."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from services.contracts.envelope import event_type


class EventPayload(BaseModel):
    # Consumers ignore fields added by a newer producer; removing or changing one needs a new version.
    model_config = ConfigDict(extra="ignore", frozen=True)

    event: ClassVar[str]
    version: ClassVar[int]
    producer: ClassVar[str]

    @classmethod
    def type(cls) -> str:
        return event_type(cls.event, cls.version)
