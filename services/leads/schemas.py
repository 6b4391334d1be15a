"""Request and response bodies of the leads API."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from services.common.text import NoNul

_PHONE_CHARS = re.compile(r"^\+?[0-9 ()\-.]{5,40}$")


def _phone(value: str | None) -> str | None:
    # Full E.164 normalisation (phonenumbers, per-workspace region) comes with lead capture; until then we
    # refuse what cannot be a phone number rather than store it.
    if value is None or value == "":
        return None
    if not _PHONE_CHARS.match(value) or sum(c.isdigit() for c in value) < 5:
        raise ValueError("not a phone number: use digits, spaces, dashes, brackets and an optional leading +")
    return value


def _email(value: str | None) -> str | None:
    return value.lower() if value else None


class LeadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, NoNul] = Field(min_length=1, max_length=200, description="The person or company to sell to")
    email: Annotated[EmailStr | None, NoNul, AfterValidator(_email)] = None
    phone: Annotated[str | None, NoNul, AfterValidator(_phone)] = Field(default=None, max_length=40)
    company: Annotated[str | None, NoNul] = Field(default=None, max_length=200)
    source: Annotated[str | None, NoNul] = Field(
        default=None, max_length=100, description="Where the lead came from, e.g. web_form"
    )
    owner_id: uuid.UUID | None = Field(
        default=None, description="The rep who works the lead; a rep's own leads are always theirs"
    )


class LeadOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    company: str | None
    source: str | None
    owner_id: uuid.UUID | None
    status: str
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int


class LeadPage(BaseModel):
    items: list[LeadOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")
