"""Inbound webhooks as a sender and an admin see them: signed or token deliveries become leads, replays and
bad requests are refused, and what cannot be mapped waits in quarantine until the mapping is fixed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from services.common.auth import Role
from services.common.db import Database, service_dsn
from services.common.settings import get_settings
from services.common.testing import eventually, token_for
from services.leads import capture
from services.leads.inbound_worker import MAX_ATTEMPTS, InboundWorker

pytestmark = pytest.mark.usefixtures("database_url")


@pytest.fixture
def admin(leads: httpx.AsyncClient) -> httpx.AsyncClient:
    return leads


@pytest.fixture
async def sender(stack, admin) -> AsyncIterator[httpx.AsyncClient]:
    """A marketing tool or a browser: no Voronka token, only what the source gave it."""
    async with stack.client("leads") as client:
        yield client


@pytest.fixture
def no_background_workers(monkeypatch):
    """The service stores requests but leaves the processing to the InboundWorkers a test runs itself."""
    monkeypatch.setenv("VORONKA_WORKERS_ENABLED", "false")
    get_settings.cache_clear()


@pytest.fixture
async def leads_db(database_url) -> AsyncIterator[Database]:
    db = Database(service_dsn(get_settings(), "leads"), schema="leads")
    await db.connect()
    yield db
    await db.close()


async def new_source(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Source {uuid.uuid4().hex[:8]}", "channel": "web_form", "mapping": {}, **fields}
    response = await admin.post("/v1/sources", json=body)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    return source


def signed(secret: str, body: bytes, message_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers, as a sender's library makes them."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body.decode()),
    }


async def request_status(admin: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    response = await admin.get(f"/v1/inbound-requests/{request_id}")
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


async def settled(admin: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    """The request once the background worker has processed or quarantined it."""
    return await eventually(lambda: request_status(admin, request_id), lambda r: r["status"] != "pending")


async def stored_requests(admin_db) -> int:
    return await admin_db.fetchval("SELECT count(*) FROM leads.inbound_requests")


async def test_a_signed_json_webhook_becomes_a_lead_and_a_redelivery_does_not(admin, sender, admin_db):
    source = await new_source(
        admin, name="Spring ads", channel="ads",
        mapping={"name": "contact.name", "email": "contact.email", "utm.campaign": "campaign.name"},
    )
    body = orjson.dumps(
        {"contact": {"name": "Ivan Petrov", "email": "Ivan@Example.com"}, "campaign": {"name": "spring"},
         "utm_source": "google"}
    )
    headers = signed(source["secret"], body, message_id="msg_2Lx1")

    response = await sender.post(source["inbound_url"], content=body, headers=headers)

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted"
    assert response.headers["location"] == f"/v1/inbound-requests/{accepted['id']}"
    done = await settled(admin, accepted["id"])
    assert done["status"] == "processed", done
    assert done["outcome"] == "created"
    lead = (await admin.get(f"/v1/leads/{done['lead_id']}")).json()
    assert (lead["name"], lead["email"]) == ("Ivan Petrov", "ivan@example.com")
    assert (lead["source"], lead["source_id"], lead["channel"]) == ("Spring ads", source["id"], "ads")
    assert lead["utm"] == {"source": "google", "campaign": "spring"}
    [touch] = (await admin.get(f"/v1/leads/{lead['id']}/history")).json()["touches"]
    assert (touch["via"], touch["origin_id"]) == ("webhook", accepted["id"])

    # The sender timed out and delivers the same message again: recognised, not taken in twice.
    again = await sender.post(source["inbound_url"], content=body, headers=signed(source["secret"], body, "msg_2Lx1"))
    assert again.status_code == 200, again.text
    assert again.json() == {"id": accepted["id"], "status": "duplicate"}
    assert await stored_requests(admin_db) == 1
    listed = (await admin.get("/v1/leads", params={"source_id": source["id"]})).json()["items"]
    assert [x["id"] for x in listed] == [lead["id"]]


async def test_a_plain_html_form_with_the_token_in_its_url_creates_a_lead(admin, sender, admin_db):
    source = await new_source(admin, name="Tilda landing")
    # What a Tilda form posts: its own fields, capitalised, with its ids and the page's UTM tags.
    form = {"Name": "Anna Smirnova", "Email": "anna@example.com", "Phone": "+7 (916) 123-45-67",
            "tranid": "1234567:8901234", "formid": "form123456", "utm_source": "yandex", "utm_medium": "cpc"}

    response = await sender.post(
        source["inbound_url"], params={"token": source["token"]}, data=form,
        headers={"user-agent": "Tilda.cc", "referer": "https://example.tilda.ws/"},
    )

    assert response.status_code == 202, response.text
    done = await settled(admin, response.json()["id"])
    assert done["status"] == "processed", done
    lead = (await admin.get(f"/v1/leads/{done['lead_id']}")).json()
    assert (lead["name"], lead["email"], lead["phone"]) == ("Anna Smirnova", "anna@example.com", "+79161234567")
    assert (lead["source"], lead["channel"]) == ("Tilda landing", "web_form")
    assert lead["utm"] == {"source": "yandex", "medium": "cpc"}
    assert done["headers"]["user-agent"] == "Tilda.cc"
    assert done["headers"]["referer"] == "https://example.tilda.ws/"
    assert done["content_type"] == "application/x-www-form-urlencoded"
    # The token is never kept with the request.
    row = await admin_db.fetchrow("SELECT body, headers::text AS headers FROM leads.inbound_requests")
    assert source["token"] not in row["headers"]
    assert source["token"].encode() not in row["body"]


async def test_tildas_connection_check_is_answered_and_not_kept(admin, sender, admin_db):
    source = await new_source(admin, name="Tilda landing")
    response = await sender.post(source["inbound_url"], params={"token": source["token"]}, data={"test": "test"})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert await admin_db.fetchval("SELECT count(*) FROM leads.inbound_requests") == 0
    # Without the source's token it is refused like any other request.
    refused = await sender.post(source["inbound_url"], params={"token": "wrong"}, data={"test": "test"})
    assert refused.status_code == 401


async def test_the_token_may_come_as_a_bearer_or_header_and_an_idempotency_key_dedupes(admin, sender):
    source = await new_source(admin)
    url = source["inbound_url"]
    body = {"name": "Oleg", "phone": "+44 20 7946 0958"}

    bearer = await sender.post(url, json=body, headers={"Authorization": f"Bearer {source['token']}",
                                                          "Idempotency-Key": "order-1"})
    repeat = await sender.post(url, json=body, headers={"X-Voronka-Token": source["token"],
                                                          "Idempotency-Key": "order-1"})
    assert bearer.status_code == 202, bearer.text
    assert repeat.status_code == 200
    assert repeat.json() == {"id": bearer.json()["id"], "status": "duplicate"}
    # Without a key, a token request cannot be recognised when repeated: each one is stored.
    first = await sender.post(url, json=body, headers={"X-Voronka-Token": source["token"]})
    second = await sender.post(url, json=body, headers={"X-Voronka-Token": source["token"]})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]
    # The same person three times: one lead, merged into.
    outcomes = [(await settled(admin, r.json()["id"]))["outcome"] for r in (bearer, first, second)]
    assert outcomes == ["created", "merged", "merged"]


async def test_unauthenticated_deliveries_are_401_problems_and_nothing_is_kept(admin, sender, admin_db):
    source = await new_source(admin)
    url = source["inbound_url"]
    body = orjson.dumps({"name": "Mallory"})
    other_secret = (await new_source(admin))["secret"]
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    forged_body = orjson.dumps({"name": "Mallory", "email": "m@example.com"})
    tampered = {**signed(source["secret"], body), "content-type": "application/json"}

    refused = {
        "bad signature": await sender.post(url, content=body, headers=signed(other_secret, body)),
        "tampered body": await sender.post(url, content=forged_body, headers=tampered),
        "old timestamp": await sender.post(url, content=body, headers=signed(source["secret"], body,
                                                                              at=ten_minutes_ago)),
        "wrong token": await sender.post(url, json={"name": "M"}, headers={"X-Voronka-Token": "guess"}),
        "no credentials": await sender.post(url, json={"name": "M"}),
        "unknown source": await sender.post(f"/v1/inbound/{uuid.uuid4()}", params={"token": source["token"]},
                                            json={"name": "M"}),
        "not a source id": await sender.post("/v1/inbound/tilda", params={"token": source["token"]},
                                             json={"name": "M"}),
    }

    for case, response in refused.items():
        assert response.status_code == 401, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json", case
    assert "old" in refused["old timestamp"].json()["detail"]
    # An unknown source and a wrong token get the same answer: the URL does not tell whether a source exists.
    assert refused["unknown source"].json()["detail"] == refused["wrong token"].json()["detail"]
    assert await stored_requests(admin_db) == 0


async def test_an_inactive_source_refuses_deliveries(admin, sender, admin_db):
    source = await new_source(admin, active=False)
    response = await sender.post(source["inbound_url"], json={"name": "Late"}, params={"token": source["token"]})
    assert response.status_code == 401
    assert "inactive" in response.json()["detail"]
    await admin.patch(f"/v1/sources/{source['id']}", json={"active": True})
    response = await sender.post(source["inbound_url"], json={"name": "Late"}, params={"token": source["token"]})
    assert response.status_code == 202


async def test_oversized_and_unsupported_bodies_are_refused_as_problems(admin, sender, admin_db):
    source = await new_source(admin)
    token = {"X-Voronka-Token": source["token"]}
    url = source["inbound_url"]
    big = orjson.dumps({"name": "Big", "notes": "x" * 300_000})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b"x" * 10_000

    answers = {
        413: [
            await sender.post(url, content=big, headers={**token, "content-type": "application/json"}),
            # No Content-Length: refused while it streams in.
            await sender.post(url, content=chunks(), headers={**token, "content-type": "application/json"}),
        ],
        415: [
            await sender.post(url, content=b"name=Anna", headers={**token, "content-type": "text/plain"}),
            await sender.post(url, files={"name": (None, "Anna")}, headers=token),
            await sender.post(url, content=b"{}", headers=token),
        ],
    }

    for status, responses in answers.items():
        for response in responses:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/problem+json"
    assert await stored_requests(admin_db) == 0


async def test_an_unmappable_payload_waits_in_quarantine_until_the_mapping_is_fixed(admin, sender):
    source = await new_source(admin, name="Webinar tool", channel="marketing_tool",
                              mapping={"email": "attendee.mail"})
    token = {"X-Voronka-Token": source["token"]}
    unnamed = orjson.dumps({"attendee": {"full_name": "Olga Ivanova", "email_address": "olga@example.com"}})
    bad_email = orjson.dumps({"attendee": {"mail": "olga-at-example"}})

    first = (await sender.post(source["inbound_url"], content=unnamed,
                               headers={**token, "content-type": "application/json"})).json()
    second = (await sender.post(source["inbound_url"], content=bad_email,
                                headers={**token, "content-type": "application/json"})).json()

    quarantined = await settled(admin, first["id"])
    assert quarantined["status"] == "quarantined"
    assert quarantined["errors"]
    assert quarantined["lead_id"] is None
    # Nothing is lost: the raw body is kept as it came.
    assert quarantined["body"] == unnamed.decode()
    assert quarantined["body_encoding"] == "utf-8"
    invalid = await settled(admin, second["id"])
    assert invalid["status"] == "quarantined"
    assert [e["field"] for e in invalid["errors"]] == ["email"]
    listed = (await admin.get("/v1/inbound-requests",
                              params={"status": "quarantined", "source_id": source["id"]})).json()
    assert [r["id"] for r in listed["items"]] == [second["id"], first["id"]]

    fixed = await admin.patch(f"/v1/sources/{source['id']}",
                              json={"mapping": {"name": "attendee.full_name",
                                                    "email": ["attendee.email_address", "attendee.mail"]}})
    assert fixed.status_code == 200
    replay = await admin.post(f"/v1/inbound-requests/{first['id']}/replay")
    assert replay.status_code == 202, replay.text
    done = await settled(admin, first["id"])
    assert done["status"] == "processed", done
    lead = (await admin.get(f"/v1/leads/{done['lead_id']}")).json()
    assert (lead["name"], lead["email"], lead["channel"]) == ("Olga Ivanova", "olga@example.com", "marketing_tool")

    again = await admin.post(f"/v1/inbound-requests/{first['id']}/replay")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    # Replaying the whole source: the bad email is still bad, and stays in quarantine with its reason.
    everything = await admin.post(f"/v1/sources/{source['id']}/replay-quarantined")
    assert everything.status_code == 202
    assert everything.json() == {"replayed": 1}
    still = await eventually(lambda: request_status(admin, second["id"]),
                             lambda r: r["status"] == "quarantined" and r["errors"])
    assert [e["field"] for e in still["errors"]] == ["email"]


async def test_a_signed_body_that_is_not_utf8_is_kept_and_shown_as_base64(admin, sender):
    source = await new_source(admin)
    raw = "{\"name\": \"Jos\u00e9\"}".encode("latin-1")
    # Standard Webhooks signs the bytes of the body, whatever their encoding.
    stamp = str(int(datetime.now(UTC).timestamp()))
    key = base64.b64decode(source["secret"].removeprefix("whsec_"))
    digest = hmac.new(key, f"msg_latin1.{stamp}.".encode() + raw, hashlib.sha256).digest()
    headers = {"content-type": "application/json", "webhook-id": "msg_latin1", "webhook-timestamp": stamp,
               "webhook-signature": f"v1,{base64.b64encode(digest).decode()}"}

    response = await sender.post(source["inbound_url"], content=raw, headers=headers)

    assert response.status_code == 202, response.text
    done = await settled(admin, response.json()["id"])
    assert done["status"] == "quarantined"
    assert [e["code"] for e in done["errors"]] == ["invalid_encoding"]
    assert done["body_encoding"] == "base64"
    assert base64.b64decode(done["body"]) == raw


async def test_a_request_that_keeps_failing_is_quarantined_after_its_attempts(
    no_background_workers, admin, sender, leads_db, monkeypatch
):
    source = await new_source(admin)
    accepted = (await sender.post(source["inbound_url"], json={"name": "Unlucky"},
                                  params={"token": source["token"]})).json()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database had a bad day")

    monkeypatch.setattr(capture, "capture", broken)
    await InboundWorker(leads_db).drain()
    failed = await request_status(admin, accepted["id"])
    assert failed["status"] == "quarantined"
    assert failed["attempts"] == MAX_ATTEMPTS
    assert [e["code"] for e in failed["errors"]] == ["processing_failed"]

    monkeypatch.undo()
    assert (await admin.post(f"/v1/inbound-requests/{accepted['id']}/replay")).status_code == 202
    await InboundWorker(leads_db).drain()
    assert (await request_status(admin, accepted["id"]))["status"] == "processed"


async def test_two_workers_on_one_queue_take_each_request_once(no_background_workers, admin, sender, leads_db,
                                                              admin_db):
    source = await new_source(admin)
    # 100 people, each sending the form twice, in shuffled order.
    people = [i % 100 for i in range(200)]
    random.Random(7).shuffle(people)
    gate = asyncio.Semaphore(20)

    async def send(person: int) -> None:
        async with gate:
            response = await sender.post(source["inbound_url"], params={"token": source["token"]},
                                         data={"name": f"Person {person}", "email": f"p{person}@example.com"})
            assert response.status_code == 202

    await asyncio.gather(*(send(p) for p in people))
    assert await stored_requests(admin_db) == 200

    taken = await asyncio.gather(InboundWorker(leads_db).drain(), InboundWorker(leads_db).drain())

    assert all(taken), taken  # both replicas worked the queue

    outcomes = dict(await admin_db.fetch(
        "SELECT outcome, count(*) FROM leads.inbound_requests WHERE status = 'processed' GROUP BY outcome"
    ))
    assert outcomes == {"created": 100, "merged": 100}
    assert await admin_db.fetchval("SELECT count(*) FROM leads.leads") == 100
    touches = await admin_db.fetch("SELECT origin_id FROM leads.lead_touches")
    assert len(touches) == len({t["origin_id"] for t in touches}) == 200


async def test_only_admins_and_heads_of_sales_see_inbound_requests_of_their_workspace(stack, admin, sender,
                                                                                     workspace):
    source = await new_source(admin)
    accepted = (await sender.post(source["inbound_url"], json={}, params={"token": source["token"]})).json()
    await settled(admin, accepted["id"])
    url = f"/v1/inbound-requests/{accepted['id']}"
    async with stack.client("leads", token_for(workspace, Role.rep)) as rep, \
            stack.client("leads", token_for(workspace, Role.head_of_sales)) as head, \
            stack.client("leads", token_for(uuid.uuid4(), Role.admin)) as outsider:
        assert (await rep.get("/v1/inbound-requests")).status_code == 403
        assert (await rep.get(url)).status_code == 403
        assert (await head.get(url)).status_code == 200
        assert (await outsider.get(url)).status_code == 404
        assert (await outsider.post(f"{url}/replay")).status_code == 404
        assert (await outsider.get("/v1/inbound-requests")).json()["items"] == []
    bad_filter = await admin.get("/v1/inbound-requests", params={"status": "lost"})
    assert bad_filter.status_code == 422
    assert bad_filter.json()["errors"][0]["field"] == "status"


async def test_one_poisoned_request_does_not_hold_back_the_rest_of_its_batch(
    no_background_workers, admin, sender, leads_db, monkeypatch
):
    source = await new_source(admin)
    names = ["Anna", "Poison", "Boris", "Clara"]
    for name in names:
        response = await sender.post(source["inbound_url"], json={"name": name}, params={"token": source["token"]})
        assert response.status_code == 202
    real_capture = capture.capture

    async def allergic(conn: Any, principal: Any, items: Any, **kwargs: Any) -> Any:
        if any(item.name == "Poison" for item in items):
            raise RuntimeError("capture cannot take this one")
        return await real_capture(conn, principal, items, **kwargs)

    monkeypatch.setattr(capture, "capture", allergic)
    await InboundWorker(leads_db).step()

    listed = (await admin.get("/v1/inbound-requests")).json()["items"]
    assert sorted(r["status"] for r in listed) == ["pending", "processed", "processed", "processed"]
    leads = (await admin.get("/v1/leads")).json()["items"]
    assert sorted(lead["name"] for lead in leads) == ["Anna", "Boris", "Clara"]
