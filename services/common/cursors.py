"""Opaque cursors for lists paginated on their UUIDv7 primary key (the next page starts after this id)."""

from __future__ import annotations

import base64
import binascii
import uuid

from services.common.problems import InvalidField


def encode_cursor(row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(row_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidField("cursor", "The cursor is not one this endpoint gave out.") from exc
