"""HTTP: /v1/imports — upload a CSV of leads, follow its progress, download the rows it could not take.

The upload is checked and stored (202); `import_worker.ImportWorker` takes the rows in from the background.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import asyncpg
import orjson
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from services.common.auth import CurrentPrincipal, Principal
from services.common.bodies import bounded_stream
from services.common.cursors import decode_cursor, encode_cursor
from services.common.db import DB, Connection, Database, ReadConn
from services.common.idempotency import IdempotencyKeyHeader, IdempotentRequest, answer_once
from services.common.ids import new_id
from services.common.problems import (
    InvalidField,
    InvalidFields,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    validation_errors,
)
from services.common.responses import model_response
from services.common.scoping import visible_to
from services.common.settings import get_settings
from services.common.text import NoNul
from services.common.workers import notify
from services.leads import csv_rows
from services.leads.capture import owner_for
from services.leads.import_worker import ImportWorker, InvalidImportFile, inspect_upload
from services.leads.mapping import validate_mapping
from services.leads.models import SCHEMA
from services.leads.schemas import Channel, Tag

router = APIRouter(prefix="/v1/imports", tags=["imports"])

# Room for the multipart framing and the option fields around the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
OPTION_NAMES = ("mapping", "encoding", "delimiter", "source", "channel", "owner_id", "tags")
REJECTIONS_PAGE = 2000


# ---- request and response bodies --------------------------------------------------------------------------


def _encoding_name(value: Any) -> Any:
    if isinstance(value, str):
        name = value.strip().lower().replace("_", "-")
        return {"utf8": "utf-8", "utf-8-sig": "utf-8", "windows-1251": "cp1251", "win-1251": "cp1251"}.get(name, name)
    return value


def _delimiter_name(value: Any) -> Any:
    if isinstance(value, str):
        return {"\t": "tab", "comma": ",", "semicolon": ";"}.get(value, value.strip().lower() or value)
    return value


class ImportOptions(BaseModel):
    """How to read the file and what every lead from it gets."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    mapping: dict[str, Any] = Field(
        default_factory=dict,
        description='Lead field -> column header, e.g. {"name": "ФИО", "utm.source": "utm_source"}; columns left '
        "out are recognized by common names",
    )
    encoding: Annotated[Literal["auto", "utf-8", "cp1251"], BeforeValidator(_encoding_name)] = "auto"
    delimiter: Annotated[Literal["auto", ",", ";", "tab"], BeforeValidator(_delimiter_name)] = "auto"
    source: Annotated[str | None, NoNul] = Field(default=None, max_length=100, description="Every lead's source")
    channel: Channel = Channel.cold_list
    owner_id: uuid.UUID | None = Field(default=None, description="Every new lead's owner (a rep's are their own)")
    tags: list[Tag] = Field(default_factory=list, max_length=50, description="Added to every lead")


class UploadFingerprint(BaseModel):
    """What makes two uploads the same request for Idempotency-Key: the options and the file's bytes."""

    options: ImportOptions
    filename: str | None
    sha256: str


class ImportOut(BaseModel):
    id: uuid.UUID
    status: str = Field(description="pending, running, done or failed")
    filename: str | None
    encoding: str = Field(description="The encoding the file was read with")
    delimiter: str = Field(description='The delimiter the file was read with: ",", ";" or "tab"')
    mapping: dict[str, Any]
    source: str | None
    channel: str | None
    owner_id: uuid.UUID | None
    tags: list[str]
    total_rows: int
    rows_done: int
    created: int
    merged: int
    rejected: int
    error: str | None
    created_by: uuid.UUID
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rejected_file_url: str | None = Field(description="The rejected rows as CSV, once there are any")


class ImportPage(BaseModel):
    items: list[ImportOut]
    next_cursor: str | None


class RejectionOut(BaseModel):
    row_number: int = Field(description="The row as a spreadsheet numbers it (the header is row 1)")
    raw: list[str] = Field(description="The row's cells as they were in the file")
    errors: list[dict[str, str]]


class RejectionPage(BaseModel):
    items: list[RejectionOut]
    next_cursor: str | None


OUT_COLUMNS = (
    "workspace_id, id, status, filename, encoding, delimiter, mapping, defaults, total_rows, rows_done, created, "
    "merged, rejected, error, created_by, created_at, started_at, finished_at"
)


def _out(row: asyncpg.Record) -> ImportOut:
    defaults = row["defaults"]
    return ImportOut(
        id=row["id"], status=row["status"], filename=row["filename"], encoding=row["encoding"],
        delimiter="tab" if row["delimiter"] == "\t" else row["delimiter"], mapping=row["mapping"],
        source=defaults.get("source"), channel=defaults.get("channel"), owner_id=defaults.get("owner_id"),
        tags=defaults.get("tags", []), total_rows=row["total_rows"], rows_done=row["rows_done"],
        created=row["created"], merged=row["merged"], rejected=row["rejected"], error=row["error"],
        created_by=row["created_by"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"],
        rejected_file_url=f"/v1/imports/{row['id']}/rejections.csv" if row["rejected"] else None,
    )


# ---- reading the upload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Upload:
    content: bytes
    filename: str | None
    fields: dict[str, str]


def _too_large(limit: int) -> str:
    return f"A file may have at most {limit} bytes; split it into smaller files."


def _once(name: str) -> dict[str, str]:
    return {"field": name, "code": "repeated", "message": f"Send {name} once."}


async def _read_multipart(request: Request, limit: int) -> _Upload:
    parser = MultiPartParser(
        request.headers, bounded_stream(request, limit + FORM_OVERHEAD_BYTES, _too_large(limit)),
        max_files=1, max_fields=20,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidField("body", f"The body is not readable multipart/form-data: {exc.message}") from None
    try:
        errors: list[dict[str, str]] = []
        fields: dict[str, str] = {}
        upload: UploadFile | None = None
        for name, value in form.multi_items():
            if name == "file":
                if not isinstance(value, UploadFile):
                    errors.append({"field": "file", "code": "not_a_file",
                                   "message": "Send the CSV as a file part (filename=...), not as text."})
                else:
                    upload = value
            elif isinstance(value, UploadFile):
                errors.append({"field": name, "code": "unexpected_file", "message": "Only `file` is a file."})
            elif name in fields:
                errors.append(_once(name))
            else:
                fields[name] = value
        if upload is None and not any(e["field"] == "file" for e in errors):
            errors.append({"field": "file", "code": "missing", "message": "Send the CSV in the `file` part."})
        if errors or upload is None:
            raise InvalidFields(errors)
        content = await upload.read()
    finally:
        await form.close()
    if len(content) > limit:
        raise PayloadTooLarge(_too_large(limit))
    return _Upload(content=content, filename=upload.filename, fields=fields)


async def _read_csv_body(request: Request, limit: int) -> _Upload:
    chunks = [chunk async for chunk in bounded_stream(request, limit, _too_large(limit))]
    fields: dict[str, str] = {}
    errors = []
    for name, value in request.query_params.multi_items():
        if name in fields:
            errors.append(_once(name))
        fields[name] = value
    if errors:
        raise InvalidFields(errors)
    filename = fields.pop("filename", None)
    # `Content-Type: text/csv; charset=windows-1251` says the encoding when the query does not.
    charset = _encoding_name(_charset(request.headers.get("content-type", "")))
    if charset in ("utf-8", "cp1251") and "encoding" not in fields:
        fields["encoding"] = charset
    return _Upload(content=b"".join(chunks), filename=filename, fields=fields)


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def _options(fields: Mapping[str, str]) -> ImportOptions:
    values: dict[str, Any] = dict(fields)
    errors: list[dict[str, str]] = []
    if "mapping" in values:
        text = values["mapping"].strip()
        try:
            values["mapping"] = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            errors.append({"field": "mapping", "code": "json_invalid",
                           "message": 'The mapping must be a JSON object: {"lead field": "column header"}.'})
            values.pop("mapping")
        else:
            errors += validate_mapping(values["mapping"], flat=True)
    if "tags" in values:
        values["tags"] = [tag.strip() for tag in values["tags"].split(",") if tag.strip()]
    try:
        options = ImportOptions.model_validate(values)
    except ValidationError as exc:
        errors += [e for e in validation_errors(exc.errors()) if not e["field"].startswith("mapping")]
        raise InvalidFields(errors) from None
    if errors:
        raise InvalidFields(errors)
    return options


async def _read_upload(request: Request) -> _Upload:
    limit = get_settings().import_max_bytes
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        return await _read_multipart(request, limit)
    if media_type in ("text/csv", "text/plain", "application/csv", "application/octet-stream"):
        return await _read_csv_body(request, limit)
    raise UnsupportedMediaType(
        f"Send the file as multipart/form-data (a `file` part) or as a text/csv body, not {media_type or 'nothing'}."
    )


# ---- endpoints ------------------------------------------------------------------------------------------

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The CSV (UTF-8 or cp1251)"},
                        "mapping": {"type": "string", "description": "JSON: lead field -> column header"},
                        "encoding": {"type": "string", "enum": ["auto", "utf-8", "cp1251"], "default": "auto"},
                        "delimiter": {"type": "string", "enum": ["auto", ",", ";", "tab"], "default": "auto"},
                        "source": {"type": "string"},
                        "channel": {"type": "string", "enum": [c.value for c in Channel], "default": "cold_list"},
                        "owner_id": {"type": "string", "format": "uuid"},
                        "tags": {"type": "string", "description": "Comma-separated"},
                    },
                }
            },
            "text/csv": {"schema": {"type": "string", "description": "The CSV; options as query parameters"}},
        },
    }
}


def _created(row: asyncpg.Record) -> Response:
    return model_response(_out(row), status.HTTP_202_ACCEPTED, {"Location": f"/v1/imports/{row['id']}"})


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ImportOut, openapi_extra=UPLOAD_BODY)
async def post_import(
    request: Request, principal: CurrentPrincipal, db: DB, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Takes a CSV of leads and imports it in the background (202): follow `GET /v1/imports/{id}`. Send it as
    multipart/form-data (`file` and the options as fields) or as a text/csv body with the options as query
    parameters. Every row ends up created, merged into a known lead, or rejected with its reasons."""
    upload = await _read_upload(request)
    unknown = sorted(set(upload.fields) - set(OPTION_NAMES))
    if unknown:
        raise InvalidFields([{"field": name, "code": "extra_forbidden", "message": "Extra inputs are not permitted"}
                             for name in unknown])
    options = _options(upload.fields)
    owner_for(principal, options.owner_id)  # a rep imports for themselves only (403)
    try:
        # Decoding and counting 100,000 rows is ~0.3 s of CPU: not on the event loop.
        inspected = await asyncio.to_thread(
            inspect_upload, upload.content, options.encoding, options.delimiter, options.mapping
        )
    except InvalidImportFile as exc:
        raise InvalidFields(exc.errors) from None

    defaults = {
        "source": options.source, "channel": options.channel.value,
        "owner_id": str(options.owner_id) if options.owner_id else None, "tags": options.tags,
        # The worker takes the rows in as the uploader, with the role they had when uploading.
        "role": principal.role.value,
        "header": inspected.header,
    }

    async def write(conn: Connection) -> Response:
        row = await conn.fetchrow(
            f"""
            INSERT INTO {SCHEMA}.imports (workspace_id, id, filename, status, encoding, delimiter, mapping, defaults,
                                         content, total_rows, created_by)
            VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10)
            RETURNING {OUT_COLUMNS}
            """,
            principal.workspace_id, new_id(), upload.filename, inspected.encoding, inspected.delimiter,
            options.mapping, defaults, upload.content, inspected.total_rows, principal.user_id,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        await notify(conn, ImportWorker.channel)
        return _created(row)

    if idempotency_key is None:
        async with db.transaction() as conn:
            response = await write(conn)
        # Committed: the file is ours now, and the worker was woken.
        return response
    fingerprint = UploadFingerprint(
        options=options, filename=upload.filename, sha256=hashlib.sha256(upload.content).hexdigest()
    )
    keyed = IdempotentRequest.of(principal, idempotency_key, "POST /v1/imports", fingerprint)
    return await answer_once(db, SCHEMA, keyed, write)


async def _visible_import(conn: Connection, principal: Principal, import_id: uuid.UUID) -> asyncpg.Record:
    scope, args = visible_to(principal, 2, owner_column="created_by")
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {OUT_COLUMNS} FROM {SCHEMA}.imports WHERE id = $1 AND {scope}", import_id, *args
    )
    if row is None:
        raise NotFound(f"There is no import {import_id}.")
    return row


@router.get("", response_model=ImportPage)
async def list_imports(
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> ImportPage:
    """Imports, newest first; a rep sees their own."""
    scope, args = visible_to(principal, 3, owner_column="created_by")
    rows = await conn.fetch(
        f"""
        SELECT {OUT_COLUMNS} FROM {SCHEMA}.imports
        WHERE ($1::uuid IS NULL OR id < $1) AND {scope}
        ORDER BY id DESC LIMIT $2
        """,
        decode_cursor(cursor) if cursor else None, limit + 1, *args,
    )
    items = [_out(r) for r in rows[:limit]]
    return ImportPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/{import_id}", response_model=ImportOut)
async def get_import(import_id: uuid.UUID, principal: CurrentPrincipal, conn: ReadConn) -> Response:
    """The import's progress: rows done of total, and how many were created, merged and rejected."""
    return model_response(_out(await _visible_import(conn, principal, import_id)))


@router.get("/{import_id}/rejections", response_model=RejectionPage)
async def list_rejections(
    import_id: uuid.UUID,
    principal: CurrentPrincipal,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> RejectionPage:
    """The rows the import could not take, in file order, each with its cells and what is wrong with them."""
    row = await _visible_import(conn, principal, import_id)
    after = 0
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) < 10):
            raise InvalidField("cursor", "The cursor is not one this endpoint gave out.")
        after = int(cursor)
    rows = await _rejections(conn, row, after, limit + 1)
    items = [RejectionOut(row_number=r["row_number"], raw=r["raw"], errors=r["errors"]) for r in rows[:limit]]
    return RejectionPage(items=items, next_cursor=str(items[-1].row_number) if len(rows) > limit else None)


async def _rejections(conn: Connection, job: asyncpg.Record, after: int, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""
        SELECT row_number, raw, errors FROM {SCHEMA}.import_rejections
        WHERE workspace_id = $1 AND import_id = $2 AND row_number > $3
        ORDER BY row_number LIMIT $4
        """,
        job["workspace_id"], job["id"], after, limit,
    )
    return rows


def reason(errors: list[dict[str, str]]) -> str:
    """"field: message; field: message" — what the rejections file says about a row."""
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors)


async def _rejections_csv(db: Database, job: asyncpg.Record) -> AsyncIterator[bytes]:
    delimiter = job["delimiter"]
    header: list[str] = job["defaults"].get("header", [])
    # The byte order mark makes Excel read the file as UTF-8 (Cyrillic included) when it is double-clicked.
    yield ("\ufeff" + csv_rows.csv_line([*header, "rejection_reason"], delimiter) + "\r\n").encode()
    after = 0
    while True:
        async with db.connection() as conn:
            rows = await _rejections(conn, job, after, REJECTIONS_PAGE)
        lines = []
        for r in rows:
            cells = list(r["raw"])
            cells += [""] * (len(header) - len(cells))  # a short row: the reason still lands in its column
            lines.append(csv_rows.csv_line([*cells, reason(r["errors"])], delimiter) + "\r\n")
        if lines:
            yield "".join(lines).encode()
        if len(rows) < REJECTIONS_PAGE:
            return
        after = rows[-1]["row_number"]


@router.get(
    "/{import_id}/rejections.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The rejected rows with a rejection_reason column"}},
)
async def download_rejections(import_id: uuid.UUID, principal: CurrentPrincipal, db: DB) -> StreamingResponse:
    """The rejected rows as CSV (UTF-8 with a byte order mark, the file's own delimiter): the original header
    plus `rejection_reason`, rows in file order, ready to fix and import again."""
    async with db.connection() as conn:
        job = await _visible_import(conn, principal, import_id)
    stem = (job["filename"] or "import").rsplit(".", 1)[0]
    name = f"{stem}-rejections.csv"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return StreamingResponse(
        _rejections_csv(db, job), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )
