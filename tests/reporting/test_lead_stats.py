"""Leads in by source, as reporting counts them from `lead.created`: who sees which numbers."""

from __future__ import annotations

import uuid

import pytest

from services.common.auth import Role
from services.common.testing import auth_headers, eventually, token_for

pytestmark = pytest.mark.usefixtures("database_url")


async def test_a_rep_counts_only_their_own_leads_and_the_head_of_sales_counts_all(stack, workspace):
    await stack.start("leads", "reporting")
    anna, boris = uuid.uuid4(), uuid.uuid4()
    tokens = {who: token_for(workspace, Role.rep, who) for who in (anna, boris)}
    head = token_for(workspace, Role.head_of_sales)
    async with stack.client("leads") as leads:
        for who, source in ((anna, "web_form"), (anna, "referral"), (boris, "web_form")):
            response = await leads.post(
                "/v1/leads", json={"name": "Lead", "source": source}, headers=auth_headers(tokens[who])
            )
            assert response.status_code == 201, response.text

    async with stack.client("reporting") as reporting:

        async def stats(token: str) -> dict[str, object]:
            response = await reporting.get("/v1/stats/leads", headers=auth_headers(token))
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body

        everything = await eventually(lambda: stats(head), lambda body: body["total"] == 3)
        assert everything["by_source"] == [{"source": "web_form", "count": 2}, {"source": "referral", "count": 1}]
        assert await stats(tokens[anna]) == {
            "total": 2,
            "by_source": [{"source": "referral", "count": 1}, {"source": "web_form", "count": 1}],
        }
        assert await stats(tokens[boris]) == {"total": 1, "by_source": [{"source": "web_form", "count": 1}]}
        assert await stats(token_for(uuid.uuid4(), Role.admin)) == {"total": 0, "by_source": []}
