"""The workspace's lead settings in GraphQL: the phone region, disqualification reasons, custom lead fields and the
answers a lead needs to be qualified (`GET`/`PATCH /v1/lead-settings`)."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from gateway.clients.base import UpstreamRejected
from gateway.clients.leads import LeadSettingsRecord
from gateway.context import Info
from gateway.types.common import UserError, user_errors
from gateway.types.qualification import QualificationAnswer


@strawberry.type(description="The workspace's rules for taking leads in.")
class LeadSettings:
    default_region: str | None = strawberry.field(
        description="ISO 3166 region for phone numbers written without +country, e.g. RU."
    )
    disqualification_reasons: list[str] = strawberry.field(
        description="The reasons `changeLeadStatus` accepts when disqualifying."
    )
    custom_fields: JSON = strawberry.field(
        description="The custom lead field definitions: [{key, label, type, required, options}, ...]."
    )
    qualification_required: list[QualificationAnswer] = strawberry.field(
        description="The answers `qualifyLead` requires before a lead becomes QUALIFIED; [] requires none."
    )
    version: int

    @classmethod
    def from_record(cls, record: LeadSettingsRecord) -> LeadSettings:
        return cls(
            default_region=record.default_region,
            disqualification_reasons=list(record.disqualification_reasons),
            custom_fields=JSON(record.custom_fields),
            qualification_required=[QualificationAnswer(answer) for answer in record.qualification_required],
            version=record.version,
        )


@strawberry.input(description="Only the fields given change. Admins only.")
class UpdateLeadSettingsInput:
    default_region: str | None = strawberry.field(
        default=strawberry.UNSET, description="e.g. RU, DE, US; null: numbers must carry their +country."
    )
    disqualification_reasons: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Lower-case words with underscores, e.g. no_budget."
    )
    custom_fields: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the definitions: [{key, label, type, ...}, ...]."
    )
    qualification_required: list[QualificationAnswer] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the list, each answer at most once; [] requires none."
    )
    version: int | None = strawberry.field(
        default=None, description="The `version` you read: the change applies only if nobody changed them since."
    )


@strawberry.type
class UpdateLeadSettingsPayload:
    lead_settings: LeadSettings | None
    user_errors: list[UserError]


async def resolve_lead_settings(info: Info) -> LeadSettings:
    return LeadSettings.from_record(await info.context.clients.leads.settings())


async def update_lead_settings(info: Info, input: UpdateLeadSettingsInput) -> UpdateLeadSettingsPayload:
    given = {
        "default_region": input.default_region,
        "disqualification_reasons": input.disqualification_reasons,
        "custom_fields": input.custom_fields,
        "qualification_required": (
            [answer.value for answer in input.qualification_required]
            if isinstance(input.qualification_required, list)
            else input.qualification_required
        ),
    }
    changes = {name: value for name, value in given.items() if value is not strawberry.UNSET}
    try:
        record = await info.context.clients.leads.update_settings(changes, version=input.version)
    except UpstreamRejected as rejected:
        return UpdateLeadSettingsPayload(lead_settings=None, user_errors=user_errors("input", rejected))
    return UpdateLeadSettingsPayload(lead_settings=LeadSettings.from_record(record), user_errors=[])


@strawberry.type
class LeadSettingsQuery:
    lead_settings: LeadSettings | None = strawberry.field(
        resolver=resolve_lead_settings, description="The workspace's lead settings; everyone may read them."
    )


@strawberry.type
class LeadSettingsMutation:
    update_lead_settings: UpdateLeadSettingsPayload = strawberry.mutation(
        resolver=update_lead_settings, description="Changes the workspace's lead settings (admins only)."
    )
