"""The local spool: transcript batches the database refused while it was down are kept on this
machine, in order, and replayed before anything else of the session once it is back."""

from __future__ import annotations

import asyncio
import logging

import pytest
from cryptography.fernet import Fernet
from prefect_claude_sessions.storage import DatabaseUnavailable, SQLModelSessionStore, spool

PK = "-work-project"
SID = "6a1f2c3d-0000-4000-8000-00000000a001"
DOWN = "postgresql+psycopg://nobody@127.0.0.1:1/gone?connect_timeout=2"


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_SESSIONS_HOME", str(tmp_path / "home"))


def entry(uuid: str, parent: str | None, text: str = "") -> dict:
    return {"type": "user", "uuid": uuid, "parentUuid": parent, "message": {"content": text}}


def mirror(store: SQLModelSessionStore, batch: list[dict]) -> None:
    asyncio.run(store.append({"project_key": PK, "session_id": SID}, batch))


def stored_uuids(store: SQLModelSessionStore) -> list[str]:
    return [e["uuid"] for e in store.entries(SID, PK)]


def test_refused_batches_are_replayed_in_order_once_the_database_is_back(store) -> None:
    mirror(store, [entry("u1", None), entry("u2", "u1")])  # the turns before the outage
    down = SQLModelSessionStore(DOWN)
    first = [entry("u3", "u2", "the prompt")]
    second = [entry("u4", "u3", "the answer")]
    for batch in (first, first, second):  # the SDK retries a failed batch with the same one
        with pytest.raises(DatabaseUnavailable):
            mirror(down, batch)
    assert [len(b.bodies) for b in spool.pending(SID)] == [1, 1]  # the retry is kept once

    # The next batch of the session, once the database is back, goes after the spooled ones.
    mirror(store, [entry("u5", "u4")])
    assert stored_uuids(store) == ["u1", "u2", "u3", "u4", "u5"]
    assert not spool.has_pending(SID)


def test_flush_spool_replays_for_the_retry_and_reports_a_database_still_down(store) -> None:
    mirror(store, [entry("u1", None)])
    with pytest.raises(DatabaseUnavailable):
        mirror(SQLModelSessionStore(DOWN), [entry("u2", "u1", "answer")])
    with pytest.raises(DatabaseUnavailable):
        SQLModelSessionStore(DOWN).flush_spool(SID)
    assert spool.has_pending(SID)  # kept while the database is down
    assert store.flush_spool(SID) == 1
    assert stored_uuids(store) == ["u1", "u2"]
    assert store.flush_spool(SID) == 0


def test_a_spool_the_conversation_moved_past_is_dropped(store, caplog) -> None:
    mirror(store, [entry("u1", None), entry("u2", "u1")])
    with pytest.raises(DatabaseUnavailable):
        mirror(SQLModelSessionStore(DOWN), [entry("stale", "u2", "interrupted prompt")])
    # The store alone cannot tell a sibling from a retry; the service discards the spool when it
    # rolls the uncompleted turn back, before another turn is sent.
    mirror(store, [entry("other", "u2", "another worker's turn")])
    assert stored_uuids(store) == ["u1", "u2", "stale", "other"]

    # Now the other way round: another worker continued first, then this spool is replayed.
    sid2 = "6a1f2c3d-0000-4000-8000-00000000a002"
    key2 = {"project_key": PK, "session_id": sid2}
    asyncio.run(store.append(key2, [entry("a1", None)]))
    with pytest.raises(DatabaseUnavailable):
        asyncio.run(SQLModelSessionStore(DOWN).append(key2, [entry("mine", "a1", "lost")]))
    store.append_sync(PK, sid2, [entry("theirs", "a1", "moved on")])  # not through the mirror
    with caplog.at_level(logging.WARNING, logger="claude_sessions.storage"):
        assert store.flush_spool(sid2) == 0
    assert [e["uuid"] for e in store.entries(sid2, PK)] == ["a1", "theirs"]
    assert not spool.has_pending(sid2)
    assert "moved on without it" in caplog.text


def test_the_spool_is_sealed_when_encryption_is_on(store, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    mirror(store, [entry("u1", None)])
    with pytest.raises(DatabaseUnavailable):
        mirror(SQLModelSessionStore(DOWN), [entry("u2", "u1", "SECRET-MARKER-91")])
    files = list((tmp_path / "home" / "spool").iterdir())
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files)
    assert all("SECRET-MARKER-91" not in f.read_text() for f in files)
    store.flush_spool(SID)
    assert store.entries(SID, PK)[-1]["message"]["content"] == "SECRET-MARKER-91"


def test_a_line_cut_short_by_a_crash_keeps_the_whole_batches_before_it(store, tmp_path) -> None:
    mirror(store, [entry("u1", None)])
    with pytest.raises(DatabaseUnavailable):
        mirror(SQLModelSessionStore(DOWN), [entry("u2", "u1")])
    path = tmp_path / "home" / "spool" / f"{SID}.jsonl"
    with path.open("a") as out:
        out.write('{"project_key": "-work-pro')  # the crash
    assert store.flush_spool(SID) == 1
    assert stored_uuids(store) == ["u1", "u2"]


def test_a_rolled_back_turn_takes_its_spool_with_it(store) -> None:
    mirror(store, [entry("u1", None)])
    with pytest.raises(DatabaseUnavailable):
        mirror(SQLModelSessionStore(DOWN), [entry("u2", "u1")])
    store.discard_spool(SID)
    mirror(store, [entry("u3", "u1")])
    assert stored_uuids(store) == ["u1", "u3"]
