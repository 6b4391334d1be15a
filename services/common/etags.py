"""Optimistic concurrency: a resource's ETag is its version; `If-Match` must name the version being replaced."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from services.common.problems import InvalidField, PreconditionFailed

_TAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')

IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The ETag from your last read (e.g. "3"): the change applies only if nobody changed it since.',
    ),
]


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version `If-Match` names; None when absent or `*` (any version)."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _TAG.match(if_match.strip())
    if match is None:
        raise InvalidField("If-Match", 'Send the ETag exactly as it was given, e.g. "3".', code="invalid_etag")
    return int(match.group(1))


def check_version(if_match: str | None, current: int) -> None:
    """412 when the caller edited an older version than the current one."""
    expected = expected_version(if_match)
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"The resource changed since you read it (you have version {expected}, it is at {current}). "
            "Read it again and re-apply your change."
        )
