"""CSV imports: reading an uploaded file, and the background worker that takes its rows in, chunk by chunk.

A run survives a crash without losing or repeating a row. Each chunk of rows commits in one transaction with
everything it did: its leads (capture), its rejected rows, the counters, and the checkpoint `rows_done`
(how many data rows of the file are behind us). A worker that dies mid-chunk leaves that transaction
uncommitted, so whoever resumes starts exactly after the last committed chunk.

Who works an import: the worker that holds a session-level advisory lock on it, taken on a connection of its
own (outside the pool, whose sessions never hold locks). The lock lives as long as that worker's connection,
so it goes when the worker's process dies, and the next worker to look claims the import at once, `running`
or not: no lease to expire, no heartbeat. Correctness does not rest on the lock, though: each chunk's
transaction locks the import's row and checks that `rows_done` is still the checkpoint the worker started the
chunk from, so even two workers on one import (a lock connection lost while its worker carried on) could not
both commit the same rows; the one that finds the checkpoint moved stops.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import signal
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from services.common.auth import Principal, Role
from services.common.db import Connection, Database
from services.common.workers import QueueWorker
from services.leads import capture, csv_rows, intake
from services.leads.mapping import MappingError
from services.leads.models import SCHEMA
from services.leads.schemas import Via

log = logging.getLogger("voronka.leads.imports")

CHUNK_ROWS = 1000
# Checking rows (mapping, pydantic, email and E.164 phone) is 0.15-0.25 ms of Python a row: 15-25 s of one
# core for 100,000 rows. It runs in checker processes beside the service: in a thread it holds the GIL the event loop
# needs for every database round trip of the chunk being committed, and 20,000 rows took 25-35% longer
# (on the event loop itself, 60% longer, and requests would wait). "thread" is for where processes cannot start.
CheckIn = Literal["process", "thread"]
MAX_CHECKERS = 4
# The advisory-lock key space of imports (the two-key form; the other key comes from the import's id).
LOCK_SPACE = 0x494D5054  # "IMPT"
# A chunk whose transaction fails is retried this many times (after 0.5 s, 1 s, ...) before the import is
# marked failed: a dropped connection heals, a row that breaks capture every time must not spin forever.
CHUNK_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.5
# The upload's delimiter option, and the characters themselves (what an import row stores).
DELIMITER_NAMES = {",": ",", ";": ";", "tab": "\t", "\t": "\t"}


class InvalidImportFile(Exception):
    """The file (or the mapping against its header) cannot be imported; `errors` name `file` or `mapping.<x>`."""

    def __init__(self, errors: Sequence[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = list(errors)


def _file_error(code: str, message: str) -> InvalidImportFile:
    return InvalidImportFile([{"field": "file", "code": code, "message": message}])


@dataclass
class CsvFile:
    """A decoded file: the encoding and delimiter it was read with, its header and its data rows (lazy)."""

    encoding: str
    delimiter: str
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]


def open_csv(content: bytes, encoding: str = "auto", delimiter: str = "auto") -> CsvFile:
    """Decodes the file and reads its header; raises InvalidImportFile naming `file`."""
    # UTF-16 is only ever detected (Excel's "Unicode text"), never asked for: reading it again means "auto".
    try:
        text, used = csv_rows.decode(content, "auto" if encoding == "utf-16" else encoding)
    except ValueError as exc:
        raise _file_error("undecodable", str(exc)) from None
    chosen = csv_rows.sniff_delimiter(text) if delimiter == "auto" else DELIMITER_NAMES.get(delimiter, delimiter)
    try:
        header, rows = csv_rows.read_rows(text, chosen)
    except ValueError as exc:
        raise _file_error("unreadable", str(exc)) from None
    if not any(header):
        raise _file_error("no_header", "The file has no header row: the first row must name the columns.")
    return CsvFile(used, chosen, header, rows)


def check_columns(header: Sequence[str], mapping: Mapping[str, Any]) -> None:
    """Every column the mapping names is in the header (exactly, or ignoring case as the rows are read)."""
    present = {column.strip().casefold() for column in header}
    errors = []
    for target, columns in mapping.items():
        wanted = [columns] if isinstance(columns, str) else list(columns)
        missing = [c for c in wanted if c not in header and c.strip().casefold() not in present]
        if missing:
            errors.append({
                "field": f"mapping.{target}",
                "code": "missing_column",
                "message": (
                    f"The file has no column {', '.join(repr(c) for c in missing)}. "
                    f"Its columns: {', '.join(repr(c) for c in header if c)}."
                ),
            })
    if errors:
        raise InvalidImportFile(errors)


@dataclass(frozen=True)
class Inspected:
    """What an upload is stored with."""

    encoding: str
    delimiter: str
    header: list[str]
    total_rows: int


def inspect_upload(content: bytes, encoding: str, delimiter: str, mapping: Mapping[str, Any]) -> Inspected:
    """Reads the whole file once at upload: it decodes, its header has the mapped columns, and how many rows
    it has (the total progress counts towards). CPU work: call it in a thread."""
    csv_file = open_csv(content, encoding, delimiter)
    check_columns(csv_file.header, mapping)
    try:
        total = sum(1 for _ in csv_file.rows)
    except ValueError as exc:
        raise _file_error("unreadable", str(exc)) from None
    return Inspected(csv_file.encoding, csv_file.delimiter, csv_file.header, total)


# ---- one chunk of rows ----------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Rows read and checked, ready for one transaction: the leads to capture and the rows rejected."""

    rows: int = 0
    items: list[Any] = field(default_factory=list)  # LeadCreate
    rejections: list[dict[str, Any]] = field(default_factory=list)  # {"row_number", "raw", "errors"}


@dataclass(frozen=True)
class RowRules:
    """How every row of one import becomes a lead."""

    header: list[str]
    mapping: dict[str, Any]
    defaults: dict[str, Any]
    settings: intake.CaptureSettings
    principal: Principal


def _with_defaults(raw: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    # The upload's source, channel and owner apply to every row (the mapping cannot name them); its tags are
    # added to the row's own.
    for name in ("source", "channel", "owner_id"):
        if defaults.get(name) is not None:
            raw[name] = defaults[name]
    if defaults.get("tags"):
        raw["tags"] = [*raw.get("tags", []), *defaults["tags"]]
    return raw


def _row_errors(errors: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    # A rule about the whole lead ("needs a name, an email or a phone") comes back without a field: in a
    # file, it is about the row.
    return [{**e, "field": "row"} if e["field"] in ("", "body") else e for e in errors]


def take_rows(rows: Iterator[tuple[int, list[str]]], size: int) -> list[tuple[int, list[str]]]:
    """The next `size` rows of the file (the csv module's C parser: a few microseconds a row)."""
    return list(itertools.islice(rows, size))


def check_rows(rows: Sequence[tuple[int, list[str]]], rules: RowRules) -> Chunk:
    """Checks each row as a lead: mapped, given the upload's defaults, validated and normalized. The CPU-heavy
    part of an import; it runs in the worker's checker process, off the event loop."""
    chunk = Chunk(rows=len(rows))
    for row_number, cells in rows:
        try:
            raw = _with_defaults(csv_rows.row_to_raw(rules.header, cells, rules.mapping), rules.defaults)
            chunk.items.append(intake.validate_lead(raw, rules.settings))
        except (MappingError, intake.InvalidLead) as exc:
            chunk.rejections.append({"row_number": row_number, "raw": cells, "errors": _row_errors(exc.errors)})
    return chunk


def skip_rows(rows: Iterator[tuple[int, list[str]]], count: int) -> None:
    """Moves past the rows a previous run committed."""
    for _ in itertools.islice(rows, count):
        pass


def _checker_started() -> None:
    # Ctrl-C reaches the whole process group: the service shuts its checkers down itself, without a traceback
    # from each of them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---- the worker -----------------------------------------------------------------------------------------


IMPORT_COLUMNS = "workspace_id, id, status, encoding, delimiter, mapping, defaults, rows_done, total_rows, created_by"


def lock_key(import_id: uuid.UUID) -> int:
    """The import's key inside LOCK_SPACE: 32 random bits of its id (two imports sharing one just take turns)."""
    return int.from_bytes(import_id.bytes[-4:], "big", signed=True)


class ImportWorker(QueueWorker):
    channel = "leads_imports"

    def __init__(
        self, db: Database, *, chunk_rows: int = CHUNK_ROWS, checkers: int | None = None, check_in: CheckIn = "process"
    ) -> None:
        super().__init__(db)
        self.chunk_rows = chunk_rows
        self.check_in = check_in
        # One checker process per spare core (the rest: this process's capture work and PostgreSQL), each with
        # a chunk in flight while the current one commits.
        self.checkers = checkers or max(1, min(MAX_CHECKERS, (os.cpu_count() or 2) - 1))
        self._pool: ProcessPoolExecutor | None = None
        # Holds the advisory locks of the imports this worker runs; opened when first needed.
        self._holder: asyncpg.Connection | None = None

    async def step(self) -> int:
        """Claims one import (pending, or running with no live worker) and runs it to the end; the rows it took."""
        claimed = await self._claim()
        if claimed is None:
            return 0
        try:
            # At least 1 for a claimed import, so the loop looks for the next one at once.
            return max(await self._run(claimed), 1)
        finally:
            await self._unlock(claimed["id"])

    async def stop(self) -> None:
        await super().stop()
        await self._close_holder()
        self._close_pool()

    # -- claiming --

    async def _claim(self) -> asyncpg.Record | None:
        async with self.db.connection() as conn:
            # The partial index ix_imports_pending holds exactly these rows, so this stays cheap however many
            # imports are done.
            candidates = await conn.fetch(
                f"SELECT workspace_id, id FROM {SCHEMA}.imports WHERE status IN ('pending', 'running') "
                "ORDER BY id LIMIT 20"
            )
        if not candidates:
            return None
        holder = await self._holder_connection()
        for candidate in candidates:
            try:
                locked = await holder.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", LOCK_SPACE, lock_key(candidate["id"])
                )
            except Exception:
                await self._close_holder()  # the next step opens a fresh one
                raise
            if not locked:
                continue  # a live worker has it
            # Locked: nobody else works it now. It may have finished between the query above and the lock.
            try:
                async with self.db.transaction() as conn:
                    row: asyncpg.Record | None = await conn.fetchrow(
                        f"""
                        UPDATE {SCHEMA}.imports SET status = 'running', started_at = coalesce(started_at, now())
                        WHERE workspace_id = $1 AND id = $2 AND status IN ('pending', 'running')
                        RETURNING {IMPORT_COLUMNS}
                        """,
                        candidate["workspace_id"], candidate["id"],
                    )
            except BaseException:
                await self._unlock(candidate["id"])
                raise
            if row is not None:
                return row
            await self._unlock(candidate["id"])
        return None

    async def _holder_connection(self) -> asyncpg.Connection:
        if self._holder is None or self._holder.is_closed():
            self._holder = await asyncpg.connect(
                self.db.dsn, server_settings={"application_name": "voronka-leads-imports"}
            )
        return self._holder

    async def _unlock(self, import_id: uuid.UUID) -> None:
        holder = self._holder
        if holder is None or holder.is_closed():
            return  # the lock went with its connection
        try:
            await holder.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_SPACE, lock_key(import_id))
        except Exception:
            # Whatever state the connection is in (dropped, half-broken): closing it lets go of every lock it
            # holds.
            await self._close_holder()

    async def _close_holder(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        try:
            await holder.close(timeout=5)
        except Exception:
            # A broken connection cannot say goodbye; dropping the socket ends the session (and its locks).
            holder.terminate()

    # -- running --

    async def _run(self, job: asyncpg.Record) -> int:
        workspace_id, import_id = job["workspace_id"], job["id"]
        async with self.db.connection() as conn:
            content: bytes = await conn.fetchval(
                f"SELECT content FROM {SCHEMA}.imports WHERE workspace_id = $1 AND id = $2", workspace_id, import_id
            )
            settings = await intake.load_settings(conn, workspace_id)
        defaults = dict(job["defaults"])
        principal = Principal(
            workspace_id=workspace_id, user_id=job["created_by"], role=Role(defaults.get("role", Role.rep.value))
        )
        checkpoint: int = job["rows_done"]
        try:
            csv_file = await asyncio.to_thread(self._reopen, content, job["encoding"], job["delimiter"], checkpoint)
        except InvalidImportFile as exc:
            await self._fail(workspace_id, import_id, " ".join(e["message"] for e in exc.errors))
            return 0
        rules = RowRules(csv_file.header, dict(job["mapping"]), defaults, settings, principal)

        # Checking the next chunks (CPU, in the checker processes) overlaps the current chunk's transaction.
        taken = 0
        in_flight = deque(self._check_next(csv_file, rules) for _ in range(self._depth))
        try:
            while True:
                try:
                    chunk = await in_flight.popleft()
                except ValueError as exc:  # a record csv cannot read: the file is broken from here on
                    await self._fail(workspace_id, import_id, str(exc))
                    return taken
                except BrokenProcessPool:
                    # A checker died (killed, out of memory): a new pool for the next step, which resumes here.
                    self._close_pool()
                    raise
                if chunk.rows == 0:
                    break
                in_flight.append(self._check_next(csv_file, rules))
                if not await self._commit_with_retries(job, principal, chunk, checkpoint):
                    return taken
                checkpoint += chunk.rows
                taken += chunk.rows
        finally:
            for future in in_flight:
                future.cancel()
        await self._finish(workspace_id, import_id, checkpoint, job["total_rows"])
        return taken

    @property
    def _depth(self) -> int:
        return self.checkers if self.check_in == "process" else 1

    def _check_next(self, csv_file: CsvFile, rules: RowRules) -> asyncio.Future[Chunk]:
        """Takes the next rows off the file (here: the csv module is quick) and has them checked."""
        loop = asyncio.get_running_loop()
        try:
            rows = take_rows(csv_file.rows, self.chunk_rows)
        except ValueError as exc:
            failed: asyncio.Future[Chunk] = loop.create_future()
            failed.set_exception(exc)
            return failed
        if self.check_in == "thread":
            return asyncio.ensure_future(asyncio.to_thread(check_rows, rows, rules))
        if self._pool is None:
            # spawn, not fork: this process runs an event loop and threads, which a fork would copy mid-flight.
            self._pool = ProcessPoolExecutor(
                self.checkers, mp_context=multiprocessing.get_context("spawn"), initializer=_checker_started
            )
        return loop.run_in_executor(self._pool, check_rows, rows, rules)

    def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _reopen(content: bytes, encoding: str, delimiter: str, checkpoint: int) -> CsvFile:
        csv_file = open_csv(content, encoding, delimiter)
        try:
            skip_rows(csv_file.rows, checkpoint)
        except ValueError as exc:
            raise _file_error("unreadable", str(exc)) from None
        return csv_file

    async def _commit_with_retries(
        self, job: asyncpg.Record, principal: Principal, chunk: Chunk, checkpoint: int
    ) -> bool:
        for attempt in range(1, CHUNK_ATTEMPTS + 1):
            try:
                return await self._commit(job, principal, chunk, checkpoint)
            except Exception:
                # A dropped connection or a restarted server heals on a retry; anything else that fails the same
                # chunk every time must end the import rather than stall the queue behind it.
                if attempt == CHUNK_ATTEMPTS:
                    log.exception("import chunk failed", extra={"import_id": str(job["id"]), "row": checkpoint})
                    await self._fail(
                        job["workspace_id"], job["id"],
                        f"Stopped after {checkpoint} rows: an internal error kept the next rows from being "
                        "taken in. The rows before are in; quote this import's id when you report it.",
                    )
                    return False
                await asyncio.sleep(RETRY_PAUSE_SECONDS * 2 ** (attempt - 1))
        return False

    async def _commit(self, job: asyncpg.Record, principal: Principal, chunk: Chunk, checkpoint: int) -> bool:
        """One chunk, one transaction; False when another worker has moved the import on (stop here)."""
        workspace_id, import_id = job["workspace_id"], job["id"]
        async with self.db.transaction() as conn:
            # The fence: the row lock orders this chunk after any other worker's, and the checkpoint says
            # whether that worker already took these rows.
            current = await conn.fetchval(
                f"SELECT rows_done FROM {SCHEMA}.imports WHERE workspace_id = $1 AND id = $2 AND status = 'running' "
                "FOR UPDATE",
                workspace_id, import_id,
            )
            if current != checkpoint:
                log.warning("import moved on by another worker", extra={"import_id": str(import_id)})
                return False
            captured = await capture.capture(
                conn, principal, chunk.items, via=Via.import_, origin_ids=[import_id] * len(chunk.items)
            )
            created = sum(1 for c in captured if c.outcome == "created")
            await _add_rejections(conn, workspace_id, import_id, chunk.rejections)
            await conn.execute(
                f"""
                UPDATE {SCHEMA}.imports
                SET rows_done = rows_done + $3, created = created + $4, merged = merged + $5, rejected = rejected + $6
                WHERE workspace_id = $1 AND id = $2
                """,
                workspace_id, import_id, chunk.rows, created, len(captured) - created, len(chunk.rejections),
            )
        return True

    async def _finish(self, workspace_id: uuid.UUID, import_id: uuid.UUID, rows: int, counted: int) -> None:
        if rows != counted:
            # Both counts come from the same reader; a difference would be a bug worth hearing about.
            log.warning("import row count differs from the upload's", extra={"import_id": str(import_id)})
        async with self.db.transaction() as conn:
            await conn.execute(
                f"""
                UPDATE {SCHEMA}.imports SET status = 'done', finished_at = now(), total_rows = rows_done
                WHERE workspace_id = $1 AND id = $2 AND status = 'running' AND rows_done = $3
                """,
                workspace_id, import_id, rows,
            )

    async def _fail(self, workspace_id: uuid.UUID, import_id: uuid.UUID, error: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                f"""
                UPDATE {SCHEMA}.imports SET status = 'failed', error = $3, finished_at = now()
                WHERE workspace_id = $1 AND id = $2 AND status = 'running'
                """,
                workspace_id, import_id, error,
            )


async def _add_rejections(
    conn: Connection, workspace_id: uuid.UUID, import_id: uuid.UUID, rejections: Sequence[dict[str, Any]]
) -> None:
    if not rejections:
        return
    await conn.execute(
        f"""
        INSERT INTO {SCHEMA}.import_rejections (workspace_id, import_id, row_number, raw, errors)
        SELECT $1, $2, row_number, raw, errors
        FROM jsonb_to_recordset($3::jsonb) AS r(row_number integer, raw text[], errors jsonb)
        """,
        workspace_id, import_id, rejections,
    )
