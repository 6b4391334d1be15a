"""Qualification (BANT) in GraphQL: a lead's answers on budget, authority, need and timeline
(`Lead.qualification`), `updateLeadQualification` to save them piece by piece, and `qualifyLead`, which checks the
answers the workspace requires and moves the lead to QUALIFIED: the hand-off from the hunter to a closer.

The rules are the leads service's (`/v1/leads/{id}/qualification`, `/v1/leads/{id}/qualify`); the gateway passes
the answers the client sent and turns the service's refusals into `userErrors`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import Enum
from typing import Any

import strawberry

from gateway.clients.base import UpstreamRejected
from gateway.clients.qualification import QualificationRecord
from gateway.context import Info
from gateway.types.common import UserError, given, no_such, parse_uuid, sent, user_errors
from gateway.types.leads import IDEMPOTENCY_KEY, Lead
from gateway.types.leads import VERSION as LEAD_VERSION
from gateway.types.money import Money, MoneyInput


@strawberry.enum(description="The four things a lead is qualified on (BANT).")
class QualificationAnswer(Enum):
    BUDGET = "budget"
    AUTHORITY = "authority"
    NEED = "need"
    TIMELINE = "timeline"


# The input field each answer is given in, for REQUIRED errors: authority is given by naming the decision maker
# (or by `isDecisionMaker`, which the message mentions).
ANSWER_FIELDS = {
    QualificationAnswer.BUDGET.value: "budget",
    QualificationAnswer.AUTHORITY.value: "decisionMaker",
    QualificationAnswer.NEED.value: "need",
    QualificationAnswer.TIMELINE.value: "timeline",
}

VERSION = (
    "The qualification's `version` you read (0 before anything was saved): the answers are saved only if nobody "
    "saved any since (else STALE_VERSION)."
)


# ---- the Qualification type -------------------------------------------------------------------------------


@strawberry.type(description="A lead's answers so far; nothing answered and version 0 before anything was saved.")
class Qualification:
    lead_id: strawberry.ID
    budget: Money | None = strawberry.field(description="The money the client has for this.")
    budget_confirmed: bool = strawberry.field(description="The client confirmed the money is there.")
    decision_maker: str | None = strawberry.field(description="Who decides: name and position.")
    is_decision_maker: bool = strawberry.field(description="Our contact is the one who decides.")
    need: str | None = strawberry.field(description="The problem the client wants solved.")
    products: list[str] = strawberry.field(description="Codes of the products the need is about.")
    timeline: date | None = strawberry.field(description="When the client expects to decide.")
    notes: str | None
    updated_by: strawberry.ID | None = strawberry.field(description="Who saved answers last; null until then.")
    updated_at: datetime | None
    version: int = strawberry.field(
        description="Goes up with every change of the answers; pass it back as `version` to "
        "`updateLeadQualification` to change only what you read."
    )

    @classmethod
    def from_record(cls, record: QualificationRecord) -> Qualification:
        return cls(
            lead_id=strawberry.ID(str(record.lead_id)),
            budget=Money.from_record(record.budget) if record.budget else None,
            budget_confirmed=record.budget_confirmed,
            decision_maker=record.decision_maker,
            is_decision_maker=record.is_decision_maker,
            need=record.need,
            products=list(record.products),
            timeline=record.timeline,
            notes=record.notes,
            updated_by=strawberry.ID(str(record.updated_by)) if record.updated_by else None,
            updated_at=record.updated_at,
            version=record.version,
        )


# ---- inputs and payloads ----------------------------------------------------------------------------------

BUDGET_HELP = 'e.g. {amount: "15000", currency: "USD"}; read back with the currency\'s decimal places.'
PRODUCTS_HELP = "Replaces them: up to 100 codes of 1 to 50 characters each; repeats are dropped."


@strawberry.input(description="Only the answers given change; null clears one (false for the yes/no ones).")
class UpdateLeadQualificationInput:
    lead_id: strawberry.ID
    version: int | None = strawberry.field(default=None, description=VERSION)
    budget: MoneyInput | None = strawberry.field(default=strawberry.UNSET, description=BUDGET_HELP)
    budget_confirmed: bool | None = strawberry.UNSET
    decision_maker: str | None = strawberry.field(default=strawberry.UNSET, description="1 to 200 characters.")
    is_decision_maker: bool | None = strawberry.UNSET
    need: str | None = strawberry.field(default=strawberry.UNSET, description="1 to 2,000 characters.")
    products: list[str] | None = strawberry.field(default=strawberry.UNSET, description=PRODUCTS_HELP)
    timeline: date | None = strawberry.UNSET
    notes: str | None = strawberry.field(default=strawberry.UNSET, description="Up to 10,000 characters.")


@strawberry.input(
    description=(
        "The answers given are saved as by `updateLeadQualification`; then every answer the workspace requires "
        "(`leadSettings.qualificationRequired`) must be there. A refused qualifyLead saves nothing."
    )
)
class QualifyLeadInput:
    lead_id: strawberry.ID
    version: int | None = strawberry.field(
        default=None, description=f"The lead's `version`, not the qualification's. {LEAD_VERSION}"
    )
    budget: MoneyInput | None = strawberry.field(default=strawberry.UNSET, description=BUDGET_HELP)
    budget_confirmed: bool | None = strawberry.UNSET
    decision_maker: str | None = strawberry.field(default=strawberry.UNSET, description="1 to 200 characters.")
    is_decision_maker: bool | None = strawberry.UNSET
    need: str | None = strawberry.field(default=strawberry.UNSET, description="1 to 2,000 characters.")
    products: list[str] | None = strawberry.field(default=strawberry.UNSET, description=PRODUCTS_HELP)
    timeline: date | None = strawberry.UNSET
    notes: str | None = strawberry.field(default=strawberry.UNSET, description="Up to 10,000 characters.")
    comment: str | None = strawberry.field(
        default=None, description="Kept with the status change and passed on to the closer; up to 2,000 characters."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


async def resolve_payload_lead(root: UpdateLeadQualificationPayload, info: Info) -> Lead | None:
    if root.qualification is None:
        return None
    record = await info.context.loaders.lead.load(uuid.UUID(root.qualification.lead_id))
    return Lead.from_record(record) if record else None


@strawberry.type
class UpdateLeadQualificationPayload:
    qualification: Qualification | None = strawberry.field(description="The answers saved; null on userErrors.")
    lead: Lead | None = strawberry.field(
        resolver=resolve_payload_lead, description="The lead whose answers these are (saving them does not change it)."
    )
    user_errors: list[UserError]


@strawberry.type
class QualifyLeadPayload:
    lead: Lead | None = strawberry.field(description="The lead, now QUALIFIED; null on userErrors.")
    qualification: Qualification | None = strawberry.field(description="The answers it was qualified on.")
    user_errors: list[UserError]


def _answers(input: UpdateLeadQualificationInput | QualifyLeadInput) -> dict[str, Any]:
    """The answers the client gave, as the service takes them; null included (it clears the answer)."""
    budget, timeline = input.budget, input.timeline
    return sent(
        {
            "budget": budget.as_json() if isinstance(budget, MoneyInput) else budget,
            "budget_confirmed": input.budget_confirmed,
            "decision_maker": input.decision_maker,
            "is_decision_maker": input.is_decision_maker,
            "need": input.need,
            "products": input.products,
            "timeline": timeline.isoformat() if isinstance(timeline, date) else timeline,
            "notes": input.notes,
        }
    )


def _missing_answer(error: UserError) -> UserError:
    """The service names a missing required answer `qualification.<answer>`, which is no field of the input: it
    becomes REQUIRED on the input field that gives the answer."""
    match error.field:
        case ["input", "qualification", answer] if error.code == "required" and answer in ANSWER_FIELDS:
            return UserError(field=["input", ANSWER_FIELDS[answer]], code="REQUIRED", message=error.message)
    return error


# ---- resolvers --------------------------------------------------------------------------------------------


async def update_lead_qualification(
    info: Info, input: UpdateLeadQualificationInput
) -> UpdateLeadQualificationPayload:
    lead_id = parse_uuid(input.lead_id)
    if lead_id is None:
        errors = [no_such("input", "leadId", "lead", input.lead_id)]
        return UpdateLeadQualificationPayload(qualification=None, user_errors=errors)
    try:
        record = await info.context.clients.qualification.update(lead_id, _answers(input), version=input.version)
    except UpstreamRejected as rejected:
        # 409 is a converted or merged lead, whose answers are final: the message says which.
        errors = user_errors("input", rejected, fields={404: "lead_id"})
        return UpdateLeadQualificationPayload(qualification=None, user_errors=errors)
    # `lead { qualification }` in the payload reads what was just saved, not an answer loaded before.
    info.context.loaders.qualification.prime(lead_id, record, force=True)
    return UpdateLeadQualificationPayload(qualification=Qualification.from_record(record), user_errors=[])


async def qualify_lead(info: Info, input: QualifyLeadInput) -> QualifyLeadPayload:
    lead_id = parse_uuid(input.lead_id)
    if lead_id is None:
        errors = [no_such("input", "leadId", "lead", input.lead_id)]
        return QualifyLeadPayload(lead=None, qualification=None, user_errors=errors)
    body = {**_answers(input), **given({"comment": input.comment})}
    try:
        qualified = await info.context.clients.qualification.qualify(
            lead_id, body, version=input.version, idempotency_key=input.idempotency_key
        )
    except UpstreamRejected as rejected:
        # 409 is a lead whose status cannot become qualified: the message lists the moves allowed.
        errors = [_missing_answer(e) for e in user_errors("input", rejected, fields={404: "lead_id"})]
        return QualifyLeadPayload(lead=None, qualification=None, user_errors=errors)
    info.context.loaders.qualification.prime(lead_id, qualified.qualification, force=True)
    return QualifyLeadPayload(
        lead=Lead.from_record(qualified.lead),
        qualification=Qualification.from_record(qualified.qualification),
        user_errors=[],
    )


@strawberry.type
class QualificationMutation:
    update_lead_qualification: UpdateLeadQualificationPayload = strawberry.mutation(
        resolver=update_lead_qualification,
        description=(
            "Saves the answers given (at any status but CONVERTED and MERGED, whose answers are final: CONFLICT). "
            "Does not change the lead."
        ),
    )
    qualify_lead: QualifyLeadPayload = strawberry.mutation(
        resolver=qualify_lead,
        description=(
            "Saves the answers given and moves the lead to QUALIFIED, handing it to a closer. Each required answer "
            'still missing is a REQUIRED userError on the input field that gives it (["input", "need"]; authority: '
            '["input", "decisionMaker"]); a lead that cannot become QUALIFIED is CONFLICT. A refusal saves nothing.'
        ),
    )
