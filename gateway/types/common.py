"""Types shared by every domain: `UserError` for expected mutation failures, Relay's `PageInfo`, and how an
upstream refusal (problem+json) becomes `userErrors` pointing into the mutation's input.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import NoReturn

import strawberry

from gateway.clients.base import FieldProblem, UpstreamRejected
from gateway.errors import InvalidArgument, NotAllowed


@strawberry.type(
    description=(
        "Why a mutation did not happen, naming the input field at fault. `code` is the REST validation code "
        "for an invalid field (value_error, invalid_email, missing, unknown_field, reused, ...), or one of "
        "FORBIDDEN, NOT_FOUND, CONFLICT, STALE_VERSION and IN_PROGRESS."
    )
)
class UserError:
    field: list[str] = strawberry.field(
        description='Path to the input field, e.g. ["input", "email"] or ["input", "custom", "budget"]; '
        '["input"] when the whole input is at fault.'
    )
    code: str
    message: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


# The codes of refusals that are not about one invalid field, by HTTP status.
STATUS_CODES = {403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT", 412: "STALE_VERSION"}
# Request headers the services name in field errors, and the input fields they come from.
HEADER_FIELDS = {"Idempotency-Key": "idempotency_key", "If-Match": "version"}
# JSON inputs whose keys are the client's own words (custom field keys, mapping targets such as
# "utm.source"): the rest of an upstream path below them is one key, kept as it is.
KEYED_JSON = frozenset({"custom", "mapping"})
# JSON inputs with structure of their own: the rest of the path is kept as it is, segment by segment.
PLAIN_JSON = frozenset({"custom_fields"})

_SEGMENT = re.compile(r"[^.\[\]]+")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def field_path(argument: str, upstream_field: str, renames: Mapping[str, str] | None = None) -> list[str]:
    """An upstream field path as a GraphQL input path.

    `email` -> ["input", "email"]; `utm.source` -> ["input", "utm", "source"]; `items[3].owner_id` ->
    ["input", "items", "3", "ownerId"]; `custom.deal_size` -> ["input", "custom", "deal_size"] (a custom key is
    the workspace's word, not ours to re-case); `mapping.utm.source` -> ["input", "mapping", "utm.source"].
    `renames` maps upstream top-level names to input names where they differ (`other_lead_id` -> `other_id`).
    """
    upstream_field = HEADER_FIELDS.get(upstream_field, upstream_field)
    segments = _SEGMENT.findall(upstream_field)
    if segments[:1] == ["body"]:
        segments = segments[1:]
    if segments and renames and segments[0] in renames:
        segments[0] = renames[segments[0]]
    path = [argument]
    for index, segment in enumerate(segments):
        if segment in KEYED_JSON:
            rest = segments[index + 1 :]
            return [*path, camel(segment), *([".".join(rest)] if rest else [])]
        if segment in PLAIN_JSON:
            return [*path, camel(segment), *segments[index + 1 :]]
        path.append(camel(segment))
    return path


def user_errors(
    argument: str,
    rejected: UpstreamRejected,
    *,
    renames: Mapping[str, str] | None = None,
    fields: Mapping[int, str] | None = None,
) -> list[UserError]:
    """The upstream's refusal as `userErrors` with paths into the GraphQL argument `argument`.

    A 422 gives one error per invalid field, with the service's code. Other refusals give their status code
    (STALE_VERSION, CONFLICT, ...) on the fields the service named, else on `fields[status]` (an upstream
    field name; 412 defaults to `version`), else on the whole input.
    """
    if rejected.status == 422:
        problems: Sequence[FieldProblem] = rejected.errors or [
            FieldProblem(field="", code="invalid", message=rejected.detail)
        ]
        return [
            UserError(field=field_path(argument, p.field, renames), code=p.code, message=p.message)
            for p in problems
        ]
    if rejected.code == "idempotency-key-in-progress":
        # The first request with this key has not answered yet: retrying in a moment gets its answer.
        return [UserError(field=[argument, "idempotencyKey"], code="IN_PROGRESS", message=rejected.detail)]
    code = STATUS_CODES.get(rejected.status, "REFUSED")
    if rejected.errors:
        return [
            UserError(field=field_path(argument, p.field, renames), code=code, message=p.message)
            for p in rejected.errors
        ]
    where = {412: "version", **(fields or {})}.get(rejected.status, "")
    return [UserError(field=field_path(argument, where, renames), code=code, message=rejected.detail)]


def given(values: Mapping[str, object]) -> dict[str, object]:
    """The fields the client set: for create inputs, null and absent mean the same (the service's default)."""
    return {name: value for name, value in values.items() if value is not None and value is not strawberry.UNSET}


def sent(values: Mapping[str, object]) -> dict[str, object]:
    """The fields the client gave, null included (it clears the field): absent ones are left out."""
    return {name: value for name, value in values.items() if value is not strawberry.UNSET}


def parse_uuid(value: str) -> uuid.UUID | None:
    """Ids are UUIDs; anything else names no record (and never reaches an upstream URL)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def no_such(argument: str, field: str, what: str, value: str) -> UserError:
    return UserError(field=[argument, field], code="NOT_FOUND", message=f"There is no {what} {value}.")


def refuse_query(rejected: UpstreamRejected, arguments: Mapping[str, str] | None = None) -> NoReturn:
    """Raises the error the client sees on a query field whose upstream read was refused.

    403 says why (the service's words are written for the client); a 422 on a parameter the client chose is
    an `InvalidArgument` naming the GraphQL argument (`arguments` maps parameter to argument); anything else
    is the gateway's own mistake and is raised as it is, to be masked and logged.
    """
    if rejected.status == 403:
        raise NotAllowed(rejected.detail) from rejected
    if rejected.status == 422:
        arguments = {"cursor": "after", **(arguments or {})}
        named = [(arguments.get(p.field), p) for p in rejected.errors]
        if named and all(argument is not None for argument, _ in named):
            if all(argument == "after" for argument, _ in named):
                raise InvalidArgument("after is not a valid cursor") from rejected
            raise InvalidArgument("; ".join(f"{argument}: {p.message}" for argument, p in named)) from rejected
    raise rejected
