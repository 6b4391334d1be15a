"""RFC 9457 problem+json: every error a client sees, with the offending fields named.

Each domain error is its own `Problem` subclass; `install_problem_handlers` maps them, validation errors,
unknown routes and anything unexpected onto one response shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.observability import request_id_var

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://voronka.dev/problems/"

log = logging.getLogger("voronka.errors")


class Problem(Exception):
    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors)
        self.headers = headers or {}


class Unauthorized(Problem):
    status, code, title = 401, "unauthorized", "Not authenticated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(Problem):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, code, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, code, title = 409, "conflict", "Conflict"


class PreconditionFailed(Problem):
    status, code, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(Problem):
    status, code, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(Problem):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class InvalidField(Problem):
    """A value that passed parsing but breaks a rule; names the field like a validation error does."""

    status, code, title = 422, "validation-error", "The request has invalid fields"

    def __init__(self, field: str, message: str, code: str = "invalid") -> None:
        super().__init__(message, errors=[{"field": field, "code": code, "message": message}])


class InvalidFields(Problem):
    """Several fields break rules at once: each is named in `errors`."""

    status, code, title = 422, "validation-error", "The request has invalid fields"

    def __init__(self, errors: Sequence[dict[str, str]]) -> None:
        fields = ", ".join(sorted({e["field"] for e in errors}))
        super().__init__(f"Check these fields: {fields}.", errors=errors)


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: Sequence[dict[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = list(errors)
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_path(loc: Sequence[int | str]) -> str:
    """('body', 'lead', 'email') -> 'lead.email'; ('query', 'limit') -> 'limit'; list indexes as [i]."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    if not parts:
        return "body"
    out = ""
    for index, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if index else str(part)
    return out


def validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    result = []
    for error in errors:
        message = str(error.get("msg", "invalid value"))
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        result.append({"field": field_path(error.get("loc", ())), "code": str(error.get("type")), "message": message})
    return result


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.status, exc.code, exc.title, exc.detail,
            instance=request.url.path, errors=exc.errors, headers=exc.headers,
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors())
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem_response(
            422, "validation-error", "The request has invalid fields", f"Invalid: {fields}.",
            instance=request.url.path, errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        titles = {404: "Not found", 405: "Method not allowed", 413: "Payload too large",
                  415: "Unsupported media type"}
        title = titles.get(exc.status_code, "HTTP error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        code = title.lower().replace(" ", "-")
        return problem_response(exc.status_code, code, title, detail, instance=request.url.path,
                                headers=dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # RequestContextMiddleware calls this inside the request's context (observability.py), so the log
        # line and the body carry the request id the response's X-Request-ID header gives the client.
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(
            500, "internal-error", "Internal error",
            "Something went wrong on our side; quote the request id when you report it.",
            instance=request.url.path,
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
