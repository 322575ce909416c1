"""Helpers for the storage tests (the database fixtures live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from prefect_claude_sessions.storage import SQLModelSessionStore, dispose_engines, get_engine


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    """Each test starts and ends with no cached engines (databases are per test)."""
    dispose_engines()
    yield
    dispose_engines()


@pytest.fixture
def store(database_url: str) -> SQLModelSessionStore:
    """A store on a fresh database, once on SQLite and once on PostgreSQL."""
    return SQLModelSessionStore(database_url)


def wipe_transcripts(url: str) -> None:
    """Delete every stored transcript (keeps the schema)."""
    with get_engine(url).begin() as conn:
        conn.execute(sa.text("DELETE FROM claude_sessions_transcript_entries"))
        conn.execute(sa.text("DELETE FROM claude_sessions_transcript_keys"))
