"""The CloudEvents 1.0 envelope (structured JSON mode) every Voronka event travels in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TYPE_PREFIX = "voronka."


class CloudEvent(BaseModel):
    """A CloudEvent; `workspaceid` and `traceparent` are extension attributes."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime
    datacontenttype: str = "application/json"
    workspaceid: uuid.UUID
    traceparent: str | None = None
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """`voronka.lead.created.v1` -> `lead.created`."""
        return event_name(self.type)


def event_type(name: str, version: int = 1) -> str:
    return f"{TYPE_PREFIX}{name}.v{version}"


def event_name(type_: str) -> str:
    if not type_.startswith(TYPE_PREFIX):
        return type_
    body = type_.removeprefix(TYPE_PREFIX)
    head, _, tail = body.rpartition(".")
    return head if tail.startswith("v") and tail[1:].isdigit() else body
