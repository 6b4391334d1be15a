"""HTTP: /v1/lead-settings — the workspace's phone region, disqualification reasons, custom lead fields and the
answers a lead needs to be qualified."""

from __future__ import annotations

import re
from typing import Annotated, Any

import phonenumbers
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import CurrentPrincipal, Role
from services.common.db import DB, ReadConn
from services.common.etags import IfMatchHeader, etag, expected_version
from services.common.problems import Forbidden, InvalidField, InvalidFields, PreconditionFailed
from services.common.responses import model_response
from services.common.text import NoNul
from services.leads import lead_settings, normalize
from services.leads.intake import CaptureSettings

router = APIRouter(prefix="/v1/lead-settings", tags=["lead settings"])

_REASON = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


class LeadSettingsOut(BaseModel):
    default_region: str | None = Field(description="ISO 3166 region for phone numbers written without +country")
    disqualification_reasons: list[str]
    custom_fields: list[dict[str, Any]]
    qualification_required: list[str] = Field(
        description="The BANT answers a lead needs before POST /v1/leads/{id}/qualify moves it to qualified"
    )
    version: int


class LeadSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_region: Annotated[str | None, NoNul] = Field(default=None, description="e.g. RU, DE, US; null: none")
    disqualification_reasons: list[Annotated[str, NoNul]] | None = Field(default=None, min_length=1, max_length=50)
    custom_fields: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    qualification_required: list[lead_settings.Answer] | None = Field(
        default=None, max_length=4, description="Any of budget, authority, need, timeline; [] requires none"
    )


def _out(settings: CaptureSettings) -> Response:
    body = LeadSettingsOut(
        default_region=settings.default_region,
        disqualification_reasons=list(settings.disqualification_reasons),
        custom_fields=[dict(f) for f in settings.custom_fields],
        qualification_required=list(settings.qualification_required),
        version=settings.version,
    )
    return model_response(body, headers={"ETag": etag(settings.version)})


@router.get("", response_model=LeadSettingsOut)
async def get_settings(principal: CurrentPrincipal, conn: ReadConn) -> Response:
    return _out(await lead_settings.load(conn, principal.workspace_id))


@router.patch("", response_model=LeadSettingsOut)
async def patch_settings(
    body: LeadSettingsPatch, principal: CurrentPrincipal, db: DB, if_match: IfMatchHeader = None
) -> Response:
    if principal.role not in (Role.admin, Role.service):
        raise Forbidden("Only an admin changes the workspace's lead settings.")
    changes = body.model_dump(exclude_unset=True)
    if "default_region" in changes and changes["default_region"] is not None:
        region = changes["default_region"].upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidField("default_region", f"{region!r} is not an ISO 3166 region phone numbers know, e.g. RU.")
        changes["default_region"] = region
    for i, reason in enumerate(changes.get("disqualification_reasons") or []):
        if not _REASON.match(reason):
            raise InvalidField(
                f"disqualification_reasons[{i}]", "Use lower-case letters, digits and underscores, e.g. no_budget."
            )
    if "qualification_required" in changes:
        _check_required_answers(changes["qualification_required"])
    if changes.get("custom_fields") is not None:
        errors = normalize.validate_definitions(changes["custom_fields"])
        if errors:
            raise InvalidFields(errors)
    async with db.transaction() as conn:
        saved = await lead_settings.save(conn, principal.workspace_id, changes, expected_version(if_match))
    if saved is None:
        raise PreconditionFailed("The settings changed since you read them; read them again and re-apply.")
    return _out(saved)


def _check_required_answers(answers: list[str] | None) -> None:
    if answers is None:
        raise InvalidField(
            "qualification_required", "Send the list of required answers; [] requires none.", code="null"
        )
    for i, answer in enumerate(answers):
        if answer in answers[:i]:
            raise InvalidField(f"qualification_required[{i}]", f"{answer} is already in the list.", code="duplicate")
