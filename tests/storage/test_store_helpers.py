"""The store's sync helpers used by tasks/: append_sync, relocate, import_local_session."""

from __future__ import annotations

import json
import uuid

import pytest
from claude_agent_sdk import project_key_for_directory
from prefect_claude_sessions.storage import (
    SessionOrigin,
    SQLModelSessionStore,
    StorageError,
    open_db,
    sessions,
    turns,
)


def entries(n: int, prefix: str = "e") -> list[dict]:
    return [{"type": "user", "uuid": f"{prefix}-{i}", "n": i} for i in range(n)]


def test_append_sync_is_idempotent_and_reports_new_entries(database_url) -> None:
    store = SQLModelSessionStore(database_url)
    sid = str(uuid.uuid4())
    assert store.append_sync("-p", sid, entries(3)) == 3
    assert store.append_sync("-p", sid, entries(4)) == 1
    assert store.append_sync("-p", sid, []) == 0
    assert store.append_sync("-p", sid, entries(1, "sub"), subpath="subagents/agent-1") == 1
    assert store.entries(sid) == entries(4)


async def test_relocate_moves_main_and_subkeys_in_one_go(database_url) -> None:
    store = SQLModelSessionStore(database_url)
    sid = str(uuid.uuid4())
    with open_db(store.engine) as db:
        sessions.create_session(
            db, id=sid, project_key="-old", agent_name="a", origin=SessionOrigin.init
        )
    store.append_sync("-old", sid, entries(3))
    store.append_sync("-old", sid, entries(2, "s"), subpath="subagents/agent-1")
    assert store.relocate(sid, to_project_key="-new") is True
    assert store.relocate(sid, to_project_key="-new") is False  # already there
    assert await store.load({"project_key": "-old", "session_id": sid}) is None
    assert await store.load({"project_key": "-new", "session_id": sid}) == entries(3)
    assert await store.list_subkeys({"project_key": "-new", "session_id": sid}) == [
        "subagents/agent-1"
    ]
    assert [s["session_id"] for s in await store.list_sessions("-new")] == [sid]
    assert store.project_key_of(sid) == "-new"
    with open_db(store.engine) as db:
        assert sessions.get_session(db, sid).project_key == "-new"
    assert store.relocate(str(uuid.uuid4()), to_project_key="-new") is False  # nothing stored


def test_relocate_refuses_to_merge_two_histories(database_url) -> None:
    store = SQLModelSessionStore(database_url)
    sid = str(uuid.uuid4())
    store.append_sync("-a", sid, entries(2, "a"))
    store.append_sync("-b", sid, entries(2, "b"))
    with pytest.raises(StorageError, match="several project keys"):
        store.relocate(sid, to_project_key="-b")
    assert store.entries(sid, project_key="-a") == entries(2, "a")
    assert store.entries(sid, project_key="-b") == entries(2, "b")


def write_local_transcript(tmp_path, monkeypatch) -> tuple[str, str, str, list[dict]]:
    """A session JSONL under a CLAUDE_CONFIG_DIR, as the CLI leaves it: (sid, workdir, pk, lines)."""
    config, workdir = tmp_path / "config", tmp_path / "work"
    workdir.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    sid = str(uuid.uuid4())
    pk = project_key_for_directory(str(workdir))
    folder = config / "projects" / pk
    folder.mkdir(parents=True)
    lines = [
        {"type": "user", "uuid": f"l-{i}", "sessionId": sid, "message": {"content": f"m{i}"}}
        for i in range(5)
    ]
    (folder / f"{sid}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return sid, str(workdir), pk, lines


def test_import_local_session_copies_the_jsonl_idempotently(
    sqlite_url, tmp_path, monkeypatch
) -> None:
    sid, workdir, pk, lines = write_local_transcript(tmp_path, monkeypatch)
    store = SQLModelSessionStore(sqlite_url)
    store.import_local_session(sid, directory=workdir)
    store.import_local_session(sid, directory=workdir)
    assert store.entries(sid) == lines
    assert store.project_key_of(sid) == pk
    with pytest.raises(FileNotFoundError):  # the SDK's own error for a missing local transcript
        store.import_local_session(str(uuid.uuid4()), directory=workdir)


async def test_import_local_session_works_inside_a_running_loop(
    sqlite_url, tmp_path, monkeypatch
) -> None:
    sid, workdir, _, lines = write_local_transcript(tmp_path, monkeypatch)
    store = SQLModelSessionStore(sqlite_url)
    store.import_local_session(sid, directory=workdir)  # a sync caller inside an event loop
    assert store.entries(sid) == lines


def test_set_project_key_and_turns_of_a_flow_run(database_url) -> None:
    sid = str(uuid.uuid4())
    with open_db(database_url) as db:
        sessions.create_session(db, id=sid, project_key="-a", agent_name="a", origin="init")
        assert sessions.set_project_key(db, sid, "-b").project_key == "-b"
        for i, run in enumerate(["run-1", "run-2", "run-1"]):
            turns.begin_turn(
                db,
                idempotency_key=f"k{i}",
                session_id=sid,
                operation="resume",
                prompt_digest="d",
                flow_run_id=run,
            )
    with open_db(database_url) as db:
        assert sessions.get_session(db, sid).project_key == "-b"
        assert [t.idempotency_key for t in turns.list_turns_for_flow_run(db, "run-1")] == [
            "k0",
            "k2",
        ]
        assert turns.list_turns_for_flow_run(db, "run-3") == []
