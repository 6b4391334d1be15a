"""Deals over HTTP: opening, reading, listing and changing them as admins, heads of sales, reps and other
workspaces see them; money and line items; the events each change publishes."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.common.auth import Role
from services.common.testing import token_for
from services.deals.schemas import StageIn


def fields_named(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["field"] for e in response.json().get("errors", [])]


async def opened(client: httpx.AsyncClient, body: dict, **headers: str) -> httpx.Response:
    response = await client.post("/v1/deals", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response


async def default_pipeline(client: httpx.AsyncClient) -> dict:
    [pipeline] = (await client.get("/v1/pipelines")).json()["items"]
    return pipeline


# ---- opening ------------------------------------------------------------------------------------------------


async def test_a_deal_opens_in_the_default_pipelines_first_stage_with_its_history_and_event(
    clients, outbox, admin_db
):
    rep = clients[Role.rep]
    response = await opened(rep, {
        "title": "Call centre for Acme", "amount": {"amount": "15000", "currency": "usd"}, "company": "Acme",
        "contact": {"name": "Ann Lee", "email": "ann@acme.test"}, "products": ["crm", "crm"],
        "expected_close_date": "2026-12-31", "custom": {"segment": "smb"}, "tags": ["hot"],
    })

    deal = response.json()
    pipeline = await default_pipeline(rep)
    assert response.headers["location"] == f"/v1/deals/{deal['id']}"
    assert response.headers["etag"] == '"1"'
    assert deal["pipeline_id"] == pipeline["id"]
    assert deal["stage_id"] == pipeline["stages"][0]["id"]
    assert deal["owner_id"] == str(rep.user_id)
    assert deal["created_by"] == str(rep.user_id)
    assert deal["amount"] == {"amount": "15000.00", "currency": "USD"}
    assert deal["products"] == ["crm"]
    assert deal["status"] == "open"
    assert deal["lead_id"] is None
    assert deal["contact"] == {"name": "Ann Lee", "email": "ann@acme.test", "phone": None}
    [history] = await admin_db.fetch("SELECT * FROM deals.deal_stage_history WHERE deal_id = $1", uuid.UUID(deal["id"]))
    assert history["from_stage_id"] is None
    assert str(history["to_stage_id"]) == deal["stage_id"]
    assert history["moved_by"] == rep.user_id
    assert history["seconds_in_previous"] is None
    [event] = await outbox("deal.created")
    assert event["deal_id"] == deal["id"]
    assert event["deal_version"] == 1
    assert event["amount"] == {"amount": "15000.00", "currency": "USD"}
    assert event["title"] == "Call centre for Acme"


async def test_line_items_give_the_amount_when_it_is_left_out(deals):
    response = await opened(deals, {"title": "Licences", "line_items": [
        {"product": "crm", "quantity": "3", "price": {"amount": "100.00", "currency": "EUR"},
         "discount_percent": "10"},
        {"product": "onboarding", "quantity": "1.5", "price": {"amount": "33.33", "currency": "EUR"}},
    ]})

    deal = response.json()
    # 3 x 100 x 0.9 + 1.5 x 33.33 = 270 + 49.995 -> 319.995, rounded half up to cents.
    assert deal["amount"] == {"amount": "320.00", "currency": "EUR"}
    assert deal["line_items"][0] == {
        "product": "crm", "quantity": "3", "price": {"amount": "100.00", "currency": "EUR"}, "discount_percent": "10",
    }
    assert deal["line_items"][1]["discount_percent"] == "0"


async def test_a_given_amount_stays_beside_line_items_in_its_currency(deals):
    response = await opened(deals, {
        "title": "Licences", "amount": {"amount": "250", "currency": "EUR"},
        "line_items": [{"product": "crm", "quantity": "3", "price": {"amount": "100", "currency": "EUR"}}],
    })

    assert response.json()["amount"] == {"amount": "250.00", "currency": "EUR"}


@pytest.mark.parametrize(("body", "field"), [
    ({"amount": {"amount": 15000.5, "currency": "USD"}}, "amount.amount"),
    ({"amount": {"amount": "100"}}, "amount.currency"),
    ({"amount": {"amount": "1.5", "currency": "JPY"}}, "amount.amount"),
    ({"amount": {"amount": "-1", "currency": "USD"}}, "amount.amount"),
    ({"line_items": [{"product": "crm", "quantity": "1", "price": {"amount": "1.234", "currency": "USD"}}]},
     "line_items[0].price.amount"),
    ({"line_items": [{"product": "crm", "quantity": "0", "price": {"amount": "1", "currency": "USD"}}]},
     "line_items[0].quantity"),
    ({"line_items": [{"product": "crm", "quantity": "1", "price": {"amount": "1", "currency": "USD"},
                      "discount_percent": "101"}]}, "line_items[0].discount_percent"),
    ({"amount": {"amount": "10", "currency": "USD"},
      "line_items": [{"product": "crm", "quantity": "1", "price": {"amount": "1", "currency": "EUR"}}]},
     "line_items[0].price.currency"),
    ({"line_items": [{"product": "a", "quantity": "1", "price": {"amount": "1", "currency": "EUR"}},
                     {"product": "b", "quantity": "1", "price": {"amount": "1", "currency": "USD"}}]},
     "line_items[1].price.currency"),
    ({"stage_id": str(uuid.uuid4())}, "stage_id"),
    ({"pipeline_id": str(uuid.uuid4())}, "pipeline_id"),
])
async def test_bad_money_line_items_and_places_are_refused_naming_the_field(deals, body, field):
    response = await deals.post("/v1/deals", json={"title": "Deal", **body})

    assert response.status_code == 422, response.text
    assert field in fields_named(response)


async def test_a_deal_cannot_open_in_the_won_stage(deals):
    pipeline = await default_pipeline(deals)
    won = next(s for s in pipeline["stages"] if s["is_won"])

    response = await deals.post("/v1/deals", json={"title": "Deal", "stage_id": won["id"]})

    assert response.status_code == 422
    assert fields_named(response) == ["stage_id"]


async def test_a_rep_cannot_give_a_new_deal_to_someone_else_and_a_head_of_sales_can(clients):
    other = str(uuid.uuid4())

    refused = await clients[Role.rep].post("/v1/deals", json={"title": "Deal", "owner_id": other})
    given = await opened(clients[Role.head_of_sales], {"title": "Deal", "owner_id": other})

    assert refused.status_code == 403
    assert fields_named(refused) == ["owner_id"]
    assert given.json()["owner_id"] == other


async def test_the_same_idempotency_key_opens_one_deal(deals, outbox):
    key = str(uuid.uuid4())

    first = await opened(deals, {"title": "Deal"}, **{"Idempotency-Key": key})
    again = await opened(deals, {"title": "Deal"}, **{"Idempotency-Key": key})

    assert again.json()["id"] == first.json()["id"]
    assert len(await outbox("deal.created")) == 1
    assert len((await deals.get("/v1/deals")).json()["items"]) == 1


# ---- reading ------------------------------------------------------------------------------------------------


async def test_a_rep_sees_only_their_own_deals_and_another_workspace_none(clients, stack):
    rep, head = clients[Role.rep], clients[Role.head_of_sales]
    mine = (await opened(rep, {"title": "Mine"})).json()
    theirs = (await opened(head, {"title": "Theirs"})).json()

    assert [d["id"] for d in (await rep.get("/v1/deals")).json()["items"]] == [mine["id"]]
    assert [d["id"] for d in (await head.get("/v1/deals")).json()["items"]] == [theirs["id"], mine["id"]]
    assert (await rep.get(f"/v1/deals/{theirs['id']}")).status_code == 404
    assert (await rep.patch(f"/v1/deals/{theirs['id']}", json={"title": "x"})).status_code == 404
    got = await rep.get(f"/v1/deals/{mine['id']}")
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    assert got.json() == mine
    async with stack.client("deals", token_for(uuid.uuid4(), Role.admin)) as stranger:
        assert (await stranger.get(f"/v1/deals/{mine['id']}")).status_code == 404
        assert (await stranger.get("/v1/deals")).json()["items"] == []


async def test_the_list_filters_and_pages(clients):
    head, rep = clients[Role.head_of_sales], clients[Role.rep]
    pipeline = await default_pipeline(head)
    second = pipeline["stages"][1]["id"]
    ids = [(await opened(head, {"title": f"Deal {i}", "stage_id": second if i % 2 else None})).json()["id"]
           for i in range(5)]
    rep_deal = (await opened(rep, {"title": "Rep's"})).json()["id"]

    page = (await head.get("/v1/deals", params={"limit": 2})).json()
    rest = (await head.get("/v1/deals", params={"limit": 10, "cursor": page["next_cursor"]})).json()
    in_second = (await head.get("/v1/deals", params={"pipeline_id": pipeline["id"], "stage_id": second})).json()
    of_rep = (await head.get("/v1/deals", params={"owner_id": str(rep.user_id), "status": "open"})).json()
    won = (await head.get("/v1/deals", params={"status": "won"})).json()

    assert [d["id"] for d in page["items"] + rest["items"]] == [rep_deal, *reversed(ids)]
    assert rest["next_cursor"] is None
    assert [d["id"] for d in in_second["items"]] == [ids[3], ids[1]]
    assert [d["id"] for d in of_rep["items"]] == [rep_deal]
    assert won["items"] == []


# ---- changing -----------------------------------------------------------------------------------------------


async def test_patch_changes_the_fields_sent_merges_custom_and_publishes_what_changed(clients, outbox):
    deals = clients[Role.head_of_sales]
    deal = (await opened(deals, {"title": "Deal", "custom": {"segment": "smb", "size": 10}, "region": "EU"})).json()

    response = await deals.patch(
        f"/v1/deals/{deal['id']}",
        json={"title": "Bigger deal", "custom": {"size": 50, "segment": None, "new": "x"}, "region": None,
              "amount": {"amount": "900", "currency": "GBP"}},
        headers={"If-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert response.headers["etag"] == '"2"'
    assert changed["version"] == 2
    assert changed["title"] == "Bigger deal"
    assert changed["region"] is None
    assert changed["custom"] == {"size": 50, "new": "x"}
    assert changed["amount"] == {"amount": "900.00", "currency": "GBP"}
    [event] = await outbox("deal.updated")
    assert event["changed"] == ["amount", "custom", "region", "title"]
    assert event["deal_version"] == 2
    assert event["updated_by"] == str(deals.user_id)


async def test_patch_with_a_stale_if_match_is_412_and_a_no_op_keeps_the_version(deals, outbox):
    deal = (await opened(deals, {"title": "Deal"})).json()
    await deals.patch(f"/v1/deals/{deal['id']}", json={"title": "Renamed"})

    stale = await deals.patch(f"/v1/deals/{deal['id']}", json={"title": "Again"}, headers={"If-Match": '"1"'})
    same = await deals.patch(f"/v1/deals/{deal['id']}", json={"title": "Renamed"}, headers={"If-Match": '"2"'})

    assert stale.status_code == 412
    assert same.status_code == 200
    assert same.json()["version"] == 2
    assert len(await outbox("deal.updated")) == 1


async def test_new_line_items_without_an_amount_reprice_the_deal(deals):
    deal = (await opened(deals, {"title": "Deal", "amount": {"amount": "10", "currency": "USD"}})).json()

    priced = await deals.patch(f"/v1/deals/{deal['id']}", json={"line_items": [
        {"product": "crm", "quantity": "2", "price": {"amount": "40", "currency": "EUR"}},
    ]})
    wrong = await deals.patch(f"/v1/deals/{deal['id']}", json={"amount": {"amount": "5", "currency": "USD"}})

    assert priced.status_code == 200, priced.text
    assert priced.json()["amount"] == {"amount": "80.00", "currency": "EUR"}
    assert wrong.status_code == 422
    assert fields_named(wrong) == ["amount.currency"]


async def test_patch_refuses_a_null_title_moves_and_a_reps_hand_over(clients):
    rep = clients[Role.rep]
    deal = (await opened(rep, {"title": "Deal"})).json()

    null_title = await rep.patch(f"/v1/deals/{deal['id']}", json={"title": None})
    move = await rep.patch(f"/v1/deals/{deal['id']}", json={"stage_id": str(uuid.uuid4())})
    hand_over = await rep.patch(f"/v1/deals/{deal['id']}", json={"owner_id": str(uuid.uuid4())})

    assert null_title.status_code == 422
    assert fields_named(null_title) == ["title"]
    assert move.status_code == 422
    assert fields_named(move) == ["stage_id"]
    assert hand_over.status_code == 403
    assert fields_named(hand_over) == ["owner_id"]


async def test_a_stage_with_deals_cannot_be_removed(deals):
    pipeline = await default_pipeline(deals)
    await opened(deals, {"title": "Deal"})
    stages = [{k: s[k] for k in StageIn.model_fields} for s in pipeline["stages"][1:]]

    response = await deals.patch(f"/v1/pipelines/{pipeline['id']}", json={"stages": stages})

    assert response.status_code == 409, response.text
    assert fields_named(response) == ["stages"]
