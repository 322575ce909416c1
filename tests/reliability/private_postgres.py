"""A private PostgreSQL cluster for tests that stop and start the database.

The shared server at 127.0.0.1:5432 serves other test runs and must never be stopped; this
one lives in a temporary folder on a free port and dies with the test. PostgreSQL refuses to run
as root, so as root the cluster runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        found = [p for p in [shutil.which("initdb")] if p]
    assert found, "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """``with PrivatePostgres() as pg: pg.url("db"); pg.stop(); pg.start()``."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = _free_port()
        self.base = Path(tempfile.mkdtemp(prefix="cs-private-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise AssertionError(
                f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:]}\n{log[-2000:]}"
            )

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.log), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
