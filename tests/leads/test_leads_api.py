"""The leads API as a client sees it: create, read, list, errors, and who may see what."""

from __future__ import annotations

import uuid

import pytest

from services.common.auth import Role
from services.common.testing import token_for

pytestmark = pytest.mark.usefixtures("database_url")


async def test_created_lead_is_returned_normalised_and_readable(leads):
    response = await leads.post(
        "/v1/leads",
        json={"name": "  Ivan Petrov ", "email": "Ivan.Petrov@Example.COM", "source": "web_form",
              "phone": "+7 (495) 123-45-67"},
    )
    assert response.status_code == 201, response.text
    lead = response.json()
    assert lead["name"] == "Ivan Petrov"
    assert lead["email"] == "ivan.petrov@example.com"
    assert lead["status"] == "new"
    assert uuid.UUID(lead["id"]).version == 7
    assert lead["created_at"].endswith(("Z", "+00:00"))
    assert response.headers["location"] == f"/v1/leads/{lead['id']}"
    assert response.headers["etag"] == '"1"'
    again = await leads.get(f"/v1/leads/{lead['id']}")
    assert again.status_code == 200
    assert again.json() == lead


async def test_invalid_lead_gets_problem_json_naming_each_field(leads):
    response = await leads.post("/v1/leads", json={"name": "", "email": "not-an-email", "fax": "123"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert {e["field"] for e in problem["errors"]} == {"name", "email", "fax"}
    assert problem["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("field", ["name", "email", "phone", "company", "source"])
async def test_a_nul_character_is_a_422_naming_the_field_not_a_500(leads, field):
    body = {"name": "Ivan Petrov", field: "Ivan\u0000Petrov"}
    response = await leads.post("/v1/leads", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_malformed_json_is_a_422_not_a_500(leads):
    response = await leads.post("/v1/leads", content=b'{"name": ', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_requests_without_a_valid_token_are_refused(stack):
    await stack.start("leads")
    async with stack.client("leads") as anonymous:
        assert (await anonymous.get("/v1/leads")).status_code == 401
        forged = await anonymous.get("/v1/leads", headers={"Authorization": "Bearer not.a.token"})
        assert forged.status_code == 401
        assert forged.headers["content-type"] == "application/problem+json"
        assert (await anonymous.get("/healthz")).status_code == 200


async def test_another_workspaces_lead_is_404_and_never_listed(stack, leads):
    created = (await leads.post("/v1/leads", json={"name": "Acme buyer"})).json()
    outsider = token_for(uuid.uuid4(), Role.admin)
    async with stack.client("leads", outsider) as other:
        response = await other.get(f"/v1/leads/{created['id']}")
        assert response.status_code == 404
        assert "Acme" not in response.text
        assert (await other.get("/v1/leads")).json()["items"] == []
        assert (await other.get(f"/v1/leads?ids={created['id']}")).json()["items"] == []


async def test_a_rep_sees_only_their_own_leads_and_the_head_of_sales_sees_all(stack, workspace):
    await stack.start("leads")
    rep_a, rep_b = uuid.uuid4(), uuid.uuid4()
    async with stack.client("leads", token_for(workspace, Role.rep, rep_a)) as a, \
            stack.client("leads", token_for(workspace, Role.rep, rep_b)) as b, \
            stack.client("leads", token_for(workspace, Role.head_of_sales)) as head:
        lead_a = (await a.post("/v1/leads", json={"name": "A's lead"})).json()
        lead_b = (await b.post("/v1/leads", json={"name": "B's lead"})).json()
        assert lead_a["owner_id"] == str(rep_a)
        assert [x["id"] for x in (await a.get("/v1/leads")).json()["items"]] == [lead_a["id"]]
        assert (await a.get(f"/v1/leads/{lead_b['id']}")).status_code == 404
        everything = {x["id"] for x in (await head.get("/v1/leads")).json()["items"]}
        assert everything == {lead_a["id"], lead_b["id"]}
        handed = await a.post("/v1/leads", json={"name": "For B", "owner_id": str(rep_b)})
        assert handed.status_code == 403


async def test_listing_pages_through_every_lead_once_newest_first(leads):
    created = [(await leads.post("/v1/leads", json={"name": f"Lead {i}"})).json()["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await leads.get("/v1/leads", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


async def test_batch_lookup_by_ids_and_bad_cursors(leads):
    ids = [(await leads.post("/v1/leads", json={"name": f"L{i}"})).json()["id"] for i in range(3)]
    found = (await leads.get("/v1/leads", params={"ids": ",".join([*ids, str(uuid.uuid4())])})).json()["items"]
    assert {x["id"] for x in found} == set(ids)
    bad = await leads.get("/v1/leads", params={"cursor": "@@@"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"
    bad_ids = await leads.get("/v1/leads", params={"ids": "x,y"})
    assert bad_ids.json()["errors"][0]["field"] == "ids"
