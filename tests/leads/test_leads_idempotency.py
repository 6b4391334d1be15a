"""Idempotency-Key on POST /v1/leads: a retried create answers like the first one and creates nothing new."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from starlette.responses import Response

from services.common import idempotency
from services.common.auth import Principal, Role
from services.common.db import Database
from services.common.idempotency import KEY_TTL, IdempotentRequest, _remember, answer_once, delete_expired
from services.common.settings import get_settings
from services.common.testing import eventually, token_for
from services.contracts import LeadCreatedV1
from services.leads.schemas import LeadCreate

pytestmark = pytest.mark.usefixtures("database_url")

IVAN = {"name": "Ivan Petrov", "email": "ivan@example.com", "source": "web_form"}


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def lead_count(admin_db: asyncpg.Connection) -> int:
    return await admin_db.fetchval("SELECT count(*) FROM leads.leads")


async def created_events(admin_db: asyncpg.Connection) -> int:
    return await admin_db.fetchval("SELECT count(*) FROM leads.outbox WHERE type = $1", LeadCreatedV1.type())


async def test_a_retried_create_returns_the_first_answer_and_creates_nothing_new(leads, admin_db):
    first = await leads.post("/v1/leads", json=IVAN, headers=keyed("order-7f3a"))
    # The same request as parsed: spacing and field order do not make it another one.
    retry = await leads.post(
        "/v1/leads", json={"source": "web_form", "email": "Ivan@Example.com", "name": " Ivan Petrov "},
        headers=keyed("order-7f3a"),
    )

    assert first.status_code == retry.status_code == 201, retry.text
    assert retry.content == first.content
    for header in ("location", "etag", "content-type"):
        assert retry.headers[header] == first.headers[header]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["x-request-id"] != first.headers["x-request-id"]
    assert await lead_count(admin_db) == 1
    assert await created_events(admin_db) == 1


async def test_a_key_sent_as_a_structured_field_string_is_the_same_key(leads, admin_db):
    first = await leads.post("/v1/leads", json=IVAN, headers=keyed("abc-123"))
    retry = await leads.post("/v1/leads", json=IVAN, headers=keyed('"abc-123"'))

    assert retry.json()["id"] == first.json()["id"]
    assert await lead_count(admin_db) == 1


async def test_reusing_a_key_for_another_lead_is_refused_naming_the_header(leads, admin_db):
    first = await leads.post("/v1/leads", json=IVAN, headers=keyed("k-1"))
    other = await leads.post("/v1/leads", json={**IVAN, "name": "Anna Ivanova"}, headers=keyed("k-1"))

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["type"].endswith("/idempotency-key-reused")
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert await lead_count(admin_db) == 1
    assert await created_events(admin_db) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
async def test_an_empty_too_long_or_non_ascii_key_is_refused_naming_the_header(leads, admin_db, key):
    response = await leads.post("/v1/leads", json=IVAN, headers={"Idempotency-Key": key.encode("latin-1")})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["Idempotency-Key"]
    assert await lead_count(admin_db) == 0


async def test_a_key_of_255_characters_is_accepted(leads):
    key = "k" * 255
    first = await leads.post("/v1/leads", json=IVAN, headers=keyed(key))
    retry = await leads.post("/v1/leads", json=IVAN, headers=keyed(key))

    assert first.status_code == 201
    assert retry.json()["id"] == first.json()["id"]


async def test_simultaneous_requests_with_one_key_create_one_lead(leads, admin_db):
    responses = await asyncio.gather(
        *(leads.post("/v1/leads", json=IVAN, headers=keyed("burst")) for _ in range(8))
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert await lead_count(admin_db) == 1
    assert await created_events(admin_db) == 1


async def test_keys_belong_to_one_user_so_a_colleague_with_the_same_key_gets_their_own_lead(
    stack, workspace, admin_db
):
    await stack.start("leads")
    async with stack.client("leads", token_for(workspace, Role.rep, uuid.uuid4())) as anna, \
            stack.client("leads", token_for(workspace, Role.rep, uuid.uuid4())) as boris:
        annas = await anna.post("/v1/leads", json=IVAN, headers=keyed("form-1"))
        boriss = await boris.post("/v1/leads", json={**IVAN, "email": "boris-ivan@example.com"},
                                  headers=keyed("form-1"))
        annas_retry = await anna.post("/v1/leads", json=IVAN, headers=keyed("form-1"))

    assert annas.status_code == boriss.status_code == 201
    assert annas.json()["id"] != boriss.json()["id"]
    assert annas_retry.json()["id"] == annas.json()["id"]
    assert await lead_count(admin_db) == 2


async def test_the_same_key_in_another_workspace_is_independent(stack, leads, admin_db):
    ours = await leads.post("/v1/leads", json=IVAN, headers=keyed("shared-key"))
    # The same user id in another workspace: the workspace alone tells the keys apart.
    user = uuid.UUID(ours.json()["created_by"])
    async with stack.client("leads", token_for(uuid.uuid4(), Role.admin, user)) as other:
        theirs = await other.post("/v1/leads", json={**IVAN, "name": "Someone else"}, headers=keyed("shared-key"))

    assert theirs.status_code == 201
    assert theirs.json()["id"] != ours.json()["id"]
    assert await lead_count(admin_db) == 2


async def test_a_refused_request_does_not_use_up_its_key(stack, workspace, admin_db):
    await stack.start("leads")
    async with stack.client("leads", token_for(workspace, Role.rep, uuid.uuid4())) as rep:
        refused = await rep.post("/v1/leads", json={**IVAN, "owner_id": str(uuid.uuid4())}, headers=keyed("k"))
        fixed = await rep.post("/v1/leads", json=IVAN, headers=keyed("k"))

    assert refused.status_code == 403
    assert fixed.status_code == 201
    assert await lead_count(admin_db) == 1


async def test_an_expired_key_is_forgotten_and_can_be_deleted(leads, admin_db):
    first = await leads.post("/v1/leads", json=IVAN, headers=keyed("yesterday"))
    await admin_db.execute("UPDATE leads.idempotency_keys SET expires_at = now() - interval '1 second'")

    again = await leads.post(
        "/v1/leads", json={**IVAN, "name": "Anna", "email": "anna@example.com"}, headers=keyed("yesterday")
    )
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert await lead_count(admin_db) == 2
    # The key now answers the second request for another 24 hours.
    replay = await leads.post(
        "/v1/leads", json={**IVAN, "name": "Anna", "email": "anna@example.com"}, headers=keyed("yesterday")
    )
    assert replay.json()["id"] == again.json()["id"]

    await leads.post("/v1/leads", json=IVAN, headers=keyed("old"))
    await admin_db.execute("UPDATE leads.idempotency_keys SET expires_at = now() - interval '1 hour' WHERE key = 'old'")
    workspace = uuid.UUID(first.json()["workspace_id"])
    assert await delete_expired(admin_db, "leads", uuid.uuid4()) == 0
    assert await delete_expired(admin_db, "leads", workspace) == 1
    assert await admin_db.fetchval("SELECT array_agg(key) FROM leads.idempotency_keys") == ["yesterday"]


async def test_a_create_without_a_key_is_not_remembered(leads, admin_db):
    for email in ("ivan@example.com", "anna@example.com"):
        assert (await leads.post("/v1/leads", json={**IVAN, "email": email})).status_code == 201

    assert await lead_count(admin_db) == 2
    assert await admin_db.fetchval("SELECT count(*) FROM leads.idempotency_keys") == 0


async def test_a_request_racing_an_uncommitted_key_waits_and_replays_the_winners_answer(admin_db):
    db = Database(get_settings().service_database_url("leads"), schema="leads", min_size=1, max_size=2)
    await db.connect()
    principal = Principal(workspace_id=uuid.uuid4(), user_id=uuid.uuid4(), role=Role.admin)
    request = IdempotentRequest.of(principal, "race", "POST /v1/leads", LeadCreate(name="Ivan"))
    losers_writes = 0

    async def losers_write(conn) -> Response:
        nonlocal losers_writes
        losers_writes += 1
        return Response(b'{"loser": true}', status_code=201)

    async def waiting_on_a_lock() -> int:
        return await admin_db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )

    try:
        async with db.transaction() as winner:
            stored = await _remember(
                winner, "leads", request, Response(b'{"winner": true}', status_code=201), KEY_TTL
            )
            assert stored
            loser = asyncio.create_task(answer_once(db, "leads", request, losers_write))
            # The loser's insert of the same key blocks on the winner's uncommitted row...
            await eventually(waiting_on_a_lock, lambda n: n == 1)
            assert not loser.done()
        # ...and once the winner commits, it answers with the winner's response.
        replay = await loser
    finally:
        await db.close()

    assert losers_writes == 1
    assert replay.status_code == 201
    assert replay.body == b'{"winner": true}'
    assert replay.headers["idempotent-replayed"] == "true"


async def test_keyed_writes_now_and_then_delete_their_workspaces_expired_keys(leads, admin_db, monkeypatch):
    monkeypatch.setattr(idempotency, "SWEEP_ODDS", 1)  # every keyed write sweeps
    first = await leads.post("/v1/leads", json=IVAN, headers=keyed("stale"))
    await admin_db.execute("UPDATE leads.idempotency_keys SET expires_at = now() - interval '1 hour'")

    await leads.post("/v1/leads", json={**IVAN, "email": "anna@example.com"}, headers=keyed("fresh"))

    async def keys() -> list[str]:
        return await admin_db.fetchval("SELECT array_agg(key) FROM leads.idempotency_keys")

    await eventually(keys, lambda found: found == ["fresh"])
    assert await lead_count(admin_db) == 2
    assert first.status_code == 201
