"""Editing a deal (PATCH): the fields sent change, `custom` merges key by key, the amount follows the line items
when they change without one, and deal.updated names what changed. The stage and the status are not edited
here: they move through their own operations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.common.auth import Principal
from services.common.db import Connection
from services.common.money import Money
from services.common.outbox import publish
from services.common.problems import Forbidden, InvalidField
from services.contracts.deals import DealUpdatedV1
from services.deals import amounts
from services.deals.opening import event_fields
from services.deals.repository import COLUMNS
from services.deals.schemas import DealPatch, LineItemIn

LISTS = ("products", "tags")


def _amount_and_items(deal: asyncpg.Record, patch: DealPatch, sent: set[str]) -> dict[str, Any]:
    """The amount, currency and line items after the patch: a deal with line items and no amount sent takes their
    total."""
    if not sent & {"amount", "line_items"}:
        return {}
    if "line_items" in sent:
        items = patch.line_items or []
    else:
        items = [LineItemIn.model_validate(item) for item in deal["line_items"]]
    amount: Money | None
    if "amount" in sent and patch.amount is not None:
        amount = patch.amount
        amounts.check_currencies(amount, items, amount_field="line_items" not in sent)
    elif items:
        amounts.check_currencies(None, items)
        amount = amounts.total(items)
    elif "amount" in sent or deal["amount"] is None:
        amount = None
    else:
        amount = Money(amount=deal["amount"], currency=deal["currency"])
    return {
        "amount": amount.amount if amount is not None else None,
        "currency": amount.currency if amount is not None else None,
        "line_items": amounts.stored_items(items),
    }


def _values(deal: asyncpg.Record, patch: DealPatch) -> dict[str, Any]:
    """The patch's fields as stored columns."""
    sent = set(patch.model_fields_set)
    if "title" in sent and patch.title is None:
        raise InvalidField("title", "A deal keeps a title; send a new one instead of null.", "null")
    values: dict[str, Any] = _amount_and_items(deal, patch, sent)
    for field in ("title", "expected_close_date", "company", "owner_id", "source", "channel", "region"):
        if field in sent:
            values[field] = getattr(patch, field)
    if "contact" in sent:
        values["contact"] = patch.contact.model_dump() if patch.contact else None
    for field in LISTS:
        if field in sent:
            values[field] = list(dict.fromkeys(getattr(patch, field) or []))
    if "custom" in sent:
        # JSON merge patch: keys sent replace, keys sent as null are removed, the rest stay; null clears them all.
        merged = {**deal["custom"], **patch.custom} if patch.custom is not None else {}
        values["custom"] = {k: v for k, v in merged.items() if v is not None}
    return values


async def edit_deal(conn: Connection, principal: Principal, deal: asyncpg.Record, patch: DealPatch) -> asyncpg.Record:
    """Applies a patch to a locked deal; returns it unchanged (same version, no event) when nothing differs."""
    values = _values(deal, patch)
    changed = {f: v for f, v in values.items() if v != deal[f]}
    if "owner_id" in changed and not principal.sees_whole_workspace:
        message = "Handing a deal to another rep is the head of sales' call."
        raise Forbidden(message, errors=[{"field": "owner_id", "code": "forbidden", "message": message}])
    if "owner_id" in changed and changed["owner_id"] is None:
        raise InvalidField("owner_id", "A deal always has an owner; send the new owner's id.", "null")
    if not changed:
        return deal
    now = datetime.now(UTC)
    assignments = ", ".join(f"{f} = ${i}" for i, f in enumerate(changed, start=4))
    row = await conn.fetchrow(
        f"""
        UPDATE deals.deals SET {assignments}, updated_at = $3, version = version + 1
        WHERE workspace_id = $1 AND id = $2
        RETURNING {COLUMNS}
        """,
        deal["workspace_id"], deal["id"], now, *changed.values(),
    )
    assert row is not None  # the caller holds the row lock
    names = sorted({"amount" if f == "currency" else f for f in changed})
    await publish(
        conn, DealUpdatedV1(**event_fields(row), changed=names, updated_by=principal.user_id),
        workspace_id=deal["workspace_id"], subject=deal["id"],
    )
    return row
