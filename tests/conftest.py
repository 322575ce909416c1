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
