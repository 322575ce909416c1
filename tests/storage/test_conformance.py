"""The SDK's own SessionStore conformance kit, on SQLite and on PostgreSQL."""

from __future__ import annotations

from claude_agent_sdk.testing import run_session_store_conformance
from prefect_claude_sessions.storage import SQLModelSessionStore
from prefect_claude_sessions.storage.session_store import SessionStore

from tests.storage.conftest import wipe_transcripts

OPTIONAL = ("list_sessions", "list_session_summaries", "delete", "list_subkeys")


async def test_sdk_conformance_kit_passes(database_url: str) -> None:
    calls = 0

    def make_store() -> SQLModelSessionStore:
        nonlocal calls
        calls += 1
        wipe_transcripts(database_url)  # each contract gets an empty store
        return SQLModelSessionStore(database_url)

    await run_session_store_conformance(make_store)
    assert calls >= 14  # every contract ran (none skipped as "not implemented")


def test_every_optional_method_is_implemented() -> None:
    for name in OPTIONAL:
        assert getattr(SQLModelSessionStore, name) is not getattr(SessionStore, name), name
