"""How the services' refusals read in GraphQL: REST field paths become input paths, statuses become codes."""

from __future__ import annotations

import pytest

from gateway.clients.base import Problem, UpstreamRejected
from gateway.types.common import field_path, user_errors


@pytest.mark.parametrize(
    ("upstream", "path"),
    [
        ("email", ["input", "email"]),
        ("owner_id", ["input", "ownerId"]),
        ("utm.source", ["input", "utm", "source"]),
        ("items[3].source_id", ["input", "items", "3", "sourceId"]),
        ("tags[2]", ["input", "tags", "2"]),
        # Keys of the workspace's own (custom fields, mapping targets) are kept as they are, in one piece.
        ("custom.deal_size", ["input", "custom", "deal_size"]),
        ("mapping.custom.deal_size", ["input", "mapping", "custom.deal_size"]),
        ("mapping.utm.source", ["input", "mapping", "utm.source"]),
        ("custom_fields.0.key", ["input", "customFields", "0", "key"]),
        ("Idempotency-Key", ["input", "idempotencyKey"]),
        ("If-Match", ["input", "version"]),
        ("body", ["input"]),
        ("", ["input"]),
    ],
)
def test_upstream_field_paths_become_camel_case_input_paths(upstream, path):
    assert field_path("input", upstream) == path


def test_renamed_fields_point_at_the_input_field_the_client_sent():
    assert field_path("input", "other_lead_id", {"other_lead_id": "other_id"}) == ["input", "otherId"]


def rejected(status: int, type_: str = "about:blank", detail: str = "No.", errors=()) -> UpstreamRejected:
    problem = Problem(type=type_, title="t", status=status, detail=detail, errors=list(errors))
    return UpstreamRejected("leads", status, problem)


@pytest.mark.parametrize(
    ("status", "code", "field"),
    [(403, "FORBIDDEN", ["input"]), (404, "NOT_FOUND", ["input", "id"]), (409, "CONFLICT", ["input"]),
     (412, "STALE_VERSION", ["input", "version"])],
)
def test_refusals_without_field_errors_get_a_code_by_status(status, code, field):
    (error,) = user_errors("input", rejected(status, detail="Because."), fields={404: "id"})

    assert (error.field, error.code, error.message) == (field, code, "Because.")


def test_a_conflict_naming_a_field_points_at_it():
    conflict = rejected(409, errors=[{"field": "email", "code": "duplicate", "message": "Lead X has this email."}])

    (error,) = user_errors("input", conflict)

    assert (error.field, error.code, error.message) == (["input", "email"], "CONFLICT", "Lead X has this email.")


def test_a_key_still_in_progress_says_to_retry_on_the_key():
    in_progress = rejected(409, "https://voronka.dev/problems/idempotency-key-in-progress", "Retry in a moment.")

    (error,) = user_errors("input", in_progress)

    assert (error.field, error.code) == (["input", "idempotencyKey"], "IN_PROGRESS")


def test_invalid_fields_keep_the_services_codes():
    invalid = rejected(422, errors=[{"field": "email", "code": "value_error", "message": "Not an email."},
                                    {"field": "name", "code": "missing", "message": "Name it."}])

    assert [(e.field, e.code) for e in user_errors("input", invalid)] == [
        (["input", "email"], "value_error"), (["input", "name"], "missing")
    ]
