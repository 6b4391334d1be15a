"""Reading request bodies with a size limit: refused with 413 as soon as the body is known to be too large."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from fastapi import Request

from services.common.problems import PayloadTooLarge


async def bounded_stream(request: Request, limit: int, too_large: str) -> AsyncGenerator[bytes, None]:
    """The body's chunks; 413 (`too_large` as the detail) from Content-Length before anything is read, else as
    soon as the chunks pass `limit` (a chunked body, or a sender that lies about the length)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_large)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large)
        yield chunk


async def read_bounded_body(request: Request, limit: int, too_large: str) -> bytes:
    return b"".join([chunk async for chunk in bounded_stream(request, limit, too_large)])
