"""Sources as an admin sees them: create (the secret shown once), list, change, rotate, and who may do what."""

from __future__ import annotations

import uuid

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")

TILDA = {"name": "Tilda landing", "channel": "web_form", "mapping": {"name": "Name", "phone": "Phone"}}


@pytest.fixture
def sources(leads):
    return leads


async def test_a_new_source_shows_its_secret_and_token_once(sources):
    response = await sources.post("/v1/sources", json=TILDA)

    assert response.status_code == 201, response.text
    source = response.json()
    assert source["name"] == "Tilda landing"
    assert source["channel"] == "web_form"
    assert source["mapping"] == {"name": "Name", "phone": "Phone"}
    assert source["active"] is True
    assert source["inbound_url"] == f"/v1/inbound/{source['id']}"
    assert source["secret"].startswith("whsec_")
    assert len(source["token"]) >= 40
    assert response.headers["location"] == f"/v1/sources/{source['id']}"
    assert response.headers["etag"] == '"1"'

    read = await sources.get(f"/v1/sources/{source['id']}")
    assert read.status_code == 200
    assert read.headers["etag"] == '"1"'
    shown = read.json()
    assert shown["has_secret"] is True
    assert "secret" not in shown
    assert "token" not in shown
    assert source["secret"] not in read.text
    assert source["token"] not in read.text
    listed = (await sources.get("/v1/sources")).json()
    assert [s["id"] for s in listed["items"]] == [source["id"]]
    assert listed["next_cursor"] is None
    assert source["token"] not in str(listed)


async def test_the_token_is_stored_only_as_its_hash(sources, admin_db):
    source = (await sources.post("/v1/sources", json=TILDA)).json()
    stored = await admin_db.fetchrow("SELECT token_hash FROM leads.sources WHERE id = $1", uuid.UUID(source["id"]))
    assert source["token"] not in stored["token_hash"]
    assert len(stored["token_hash"]) == 64


async def test_listing_pages_through_every_source_once(sources):
    created = [(await sources.post("/v1/sources", json={**TILDA, "name": f"Form {i}"})).json()["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = (await sources.get("/v1/sources", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created


async def test_a_change_needs_the_current_version_when_if_match_is_sent(sources):
    source = (await sources.post("/v1/sources", json=TILDA)).json()
    url = f"/v1/sources/{source['id']}"

    changed = await sources.patch(url, json={"name": "Tilda (spring)", "active": False}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Tilda (spring)"
    assert changed.json()["active"] is False
    assert changed.json()["mapping"] == TILDA["mapping"]
    assert changed.headers["etag"] == '"2"'

    stale = await sources.patch(url, json={"channel": "ads"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await sources.get(url)).json()["channel"] == "web_form"

    remapped = await sources.patch(url, json={"mapping": {"email": "contact.email"}})
    assert remapped.json()["mapping"] == {"email": "contact.email"}
    assert remapped.json()["version"] == 3


async def test_a_duplicate_name_is_a_conflict(sources):
    assert (await sources.post("/v1/sources", json=TILDA)).status_code == 201
    again = await sources.post("/v1/sources", json={**TILDA, "channel": "ads"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["errors"][0]["field"] == "name"

    other = (await sources.post("/v1/sources", json={**TILDA, "name": "Ads"})).json()
    renamed = await sources.patch(f"/v1/sources/{other['id']}", json={"name": "Tilda landing"})
    assert renamed.status_code == 409


async def test_a_bad_mapping_is_refused_naming_the_target(sources):
    response = await sources.post(
        "/v1/sources", json={**TILDA, "mapping": {"fax": "Fax", "email": "a..b", "name": "Name"}}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in response.json()["errors"]} == {"mapping.fax", "mapping.email"}

    source = (await sources.post("/v1/sources", json=TILDA)).json()
    patched = await sources.patch(f"/v1/sources/{source['id']}", json={"mapping": {"utm.nope": "x"}})
    assert patched.status_code == 422
    assert patched.json()["errors"][0]["field"] == "mapping.utm.nope"
    unknown_channel = await sources.post("/v1/sources", json={**TILDA, "channel": "carrier_pigeon"})
    assert unknown_channel.json()["errors"][0]["field"] == "channel"


async def test_rotating_the_secret_shows_new_credentials_and_retires_the_old(stack, sources):
    source = (await sources.post("/v1/sources", json=TILDA)).json()
    rotated = await sources.post(f"/v1/sources/{source['id']}/rotate-secret")

    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert fresh["secret"].startswith("whsec_")
    assert fresh["secret"] != source["secret"]
    assert fresh["token"] != source["token"]
    assert fresh["version"] == 2
    # The old token stops working at once, the new one works.
    url = source["inbound_url"]
    async with stack.client("leads") as form:
        old = await form.post(url, data={"Name": "Anna"}, headers={"X-Voronka-Token": source["token"]})
        assert old.status_code == 401
        new = await form.post(url, data={"Name": "Anna"}, headers={"X-Voronka-Token": fresh["token"]})
        assert new.status_code == 202


async def test_a_retried_create_with_an_idempotency_key_makes_one_source(sources, admin_db):
    first = await sources.post("/v1/sources", json=TILDA, headers={"Idempotency-Key": "src-1"})
    retry = await sources.post("/v1/sources", json=TILDA, headers={"Idempotency-Key": "src-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert await admin_db.fetchval("SELECT count(*) FROM leads.sources") == 1


async def test_only_admins_manage_sources_and_heads_of_sales_read_them(stack, sources, workspace):
    source = (await sources.post("/v1/sources", json=TILDA)).json()
    url = f"/v1/sources/{source['id']}"
    async with stack.client("leads", token_for(workspace, Role.rep)) as rep, \
            stack.client("leads", token_for(workspace, Role.head_of_sales)) as head:
        assert (await rep.get("/v1/sources")).status_code == 403
        assert (await rep.get(url)).status_code == 403
        assert (await rep.post("/v1/sources", json={**TILDA, "name": "Rep's"})).status_code == 403
        assert (await head.get(url)).status_code == 200
        assert (await head.get("/v1/sources")).json()["items"][0]["id"] == source["id"]
        assert (await head.patch(url, json={"active": False})).status_code == 403
        assert (await head.post(f"{url}/rotate-secret")).status_code == 403
        assert (await head.post("/v1/sources", json={**TILDA, "name": "Head's"})).status_code == 403


async def test_another_workspaces_source_is_404(stack, sources):
    source = (await sources.post("/v1/sources", json=TILDA)).json()
    url = f"/v1/sources/{source['id']}"
    async with stack.client("leads", token_for(uuid.uuid4(), Role.admin)) as other:
        assert (await other.get(url)).status_code == 404
        assert (await other.patch(url, json={"name": "Mine now"})).status_code == 404
        assert (await other.post(f"{url}/rotate-secret")).status_code == 404
        assert (await other.post(f"{url}/replay-quarantined")).status_code == 404
        assert (await other.get("/v1/sources")).json()["items"] == []
        # Another workspace may use the same name.
        assert (await other.post("/v1/sources", json=TILDA)).status_code == 201
    assert (await sources.get(url)).json()["name"] == "Tilda landing"
