"""Types shared by every domain: `UserError` for expected mutation failures and Relay's `PageInfo`."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry

from gateway.clients.base import FieldProblem, UpstreamRejected


@strawberry.type(description="Why a mutation did not happen, naming the input field at fault.")
class UserError:
    field: list[str] = strawberry.field(description='Path to the input field, e.g. ["input", "email"].')
    code: str
    message: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# Request headers the services name in field errors, and the input fields they come from.
HEADER_FIELDS = {"Idempotency-Key": "idempotency_key"}


def field_path(argument: str, upstream_field: str) -> list[str]:
    """Upstream `email` or `address.city` -> ["input", "email"] / ["input", "address", "city"]."""
    upstream_field = HEADER_FIELDS.get(upstream_field, upstream_field)
    parts = [_camel(part) for part in upstream_field.split(".") if part and part != "body"]
    return [argument, *parts]


def user_errors(argument: str, rejected: UpstreamRejected) -> list[UserError]:
    """The upstream's 422 field errors, with field paths into the GraphQL argument `argument`."""
    problems: Sequence[FieldProblem] = rejected.errors or [
        FieldProblem(field="", code="invalid", message=rejected.detail)
    ]
    return [
        UserError(field=field_path(argument, p.field), code=p.code, message=p.message) for p in problems
    ]
