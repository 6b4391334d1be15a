"""Rules for text every request body shares, whichever service parses it."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def _refuse_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold U+0000: let through, it failed the INSERT with a 500 that named no field.
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError("nul_character", "Text must not contain the NUL character (\\u0000)")
    return value


# On every string field of a request body: the check runs before any other, so it is the one error reported.
NoNul = BeforeValidator(_refuse_nul)
