"""PLACEHOLDER — the conversion-model helper replaces this module (recording deal outcomes per lead)."""

from __future__ import annotations

import uuid

from services.common.db import Connection
from services.contracts import DealLostV1, DealWonV1


async def record_won(conn: Connection, won: DealWonV1, event_id: uuid.UUID) -> None:
    raise NotImplementedError


async def record_lost(conn: Connection, lost: DealLostV1, event_id: uuid.UUID) -> None:
    raise NotImplementedError
