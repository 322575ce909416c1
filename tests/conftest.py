"""Fixtures shared by every test folder: real databases (SQLite and the local PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

POSTGRES_ADMIN_DSN = os.environ.get(
    "CLAUDE_SESSIONS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_reachable() -> None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=5, autocommit=True):
            pass
    except psycopg.OperationalError as exc:  # pragma: no cover - CI guards this in .ci/run
        pytest.fail(
            f"PostgreSQL is required for these tests and is unreachable at {POSTGRES_ADMIN_DSN}: {exc}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _own_claude_sessions_home(tmp_path_factory, monkeypatch) -> None:
    """Each test gets its own CLAUDE_SESSIONS_HOME (default store, spool, demo files), so
    nothing one test leaves on this machine reaches another, nor the developer's own home."""
    monkeypatch.setenv("CLAUDE_SESSIONS_HOME", str(tmp_path_factory.mktemp("cs-home")))


def make_postgres_database(prefix: str = "cs_test") -> tuple[str, str]:
    """Create an empty PostgreSQL database; returns (name, SQLAlchemy URL)."""
    _postgres_reachable()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name, url = make_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'sessions.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> Iterator[str]:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sessions.db'}"
        return
    name, url = make_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


# --- a worker's world: the real CLI against the stand-in model, under a Prefect test harness ---


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    """The local stand-in model, one per test session (tests clear its log and faults)."""
    from prefect_claude_sessions.tasks.standin import StandinModel

    log = tmp_path_factory.mktemp("standin") / "requests.jsonl"
    with StandinModel(log_path=log) as model:
        yield model


@pytest.fixture(scope="session")
def prefect_harness():
    """One in-process Prefect test server for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def enter_worker_world(tmp_path, standin, database_url: str, monkeypatch):
    """Make this test a worker: credentials pointing at the stand-in, an empty
    CLAUDE_CONFIG_DIR, its own working directory and the store at ``database_url``."""
    for name, value in standin.env().items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "claude-config"
    config.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("CLAUDE_SESSIONS_DATABASE_URL", database_url)
    monkeypatch.chdir(work)
    standin.clear_requests()
    standin.clear_faults()
    return work
