"""PLACEHOLDER — the hand-offs helper replaces this module (deal.won -> farmer, task.overdue -> reassign)."""

from __future__ import annotations

from services.common.db import Connection
from services.contracts import DealWonV1, TaskOverdueV1


async def client_to_farmer(conn: Connection, won: DealWonV1) -> None:
    raise NotImplementedError


async def first_contact_missed(conn: Connection, overdue: TaskOverdueV1) -> None:
    raise NotImplementedError
