"""Session ids that reach file paths are validated: no path traversal through our store, the
SDK's materialisation of a stored session, or the session operations.

Where a session id meets a path: the SDK writes ``<CLAUDE_CONFIG_DIR>/projects/<project key>/
<session id>.jsonl`` (and ``<session id>/<subpath>.jsonl`` for subagents) when it resumes from the
store; the CLI writes the same layout for live sessions; file rewind resumes by the stored id;
``claude-sessions export`` (flows/cli.py) writes to a path the user names, after validating the id
as a UUID. Our session ids are UUIDs (validated everywhere they enter), store key parts are single
safe path segments, subpaths are relative without '..'."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from claude_agent_sdk import ClaudeAgentOptions, project_key_for_directory
from claude_agent_sdk._internal.session_resume import materialize_resume_session
from prefect_claude_sessions.storage import (
    CheckpointNotFound,
    InvalidSessionId,
    SQLModelSessionStore,
    checkpoints,
    open_db,
)
from prefect_claude_sessions.storage.models import TranscriptEntry, TranscriptKey
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.service import SessionService

CTX = RunContext(flow_run_id=None, task_run_id=None)
HOSTILE_IDS = ["../../etc/passwd", "..", "a/b", "a\\b", "/abs", "x\x00y", "."]
HOSTILE_SUBPATHS = ["../escape", "subagents/../../escape", "/abs/agent", "a//b", "a\\b"]


def _entry() -> dict:
    return {"type": "user", "uuid": str(uuid.uuid4()), "message": {"role": "user", "content": "hi"}}


def test_the_store_refuses_traversal_in_every_key_part(sqlite_url):
    store = SQLModelSessionStore(sqlite_url)

    async def attempts() -> None:
        for bad in HOSTILE_IDS:
            for key in (
                {"project_key": "p", "session_id": bad},
                {"project_key": bad, "session_id": "s"},
            ):
                for call in (store.append(key, [_entry()]), store.load(key), store.delete(key)):
                    with pytest.raises(InvalidSessionId):
                        await call
            with pytest.raises(InvalidSessionId):
                await store.list_sessions(bad)
        for sub in HOSTILE_SUBPATHS:
            key = {"project_key": "p", "session_id": "s", "subpath": sub}
            with pytest.raises(InvalidSessionId):
                await store.append(key, [_entry()])

    asyncio.run(attempts())
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(TranscriptKey)).scalar() == 0
    for bad in HOSTILE_IDS:
        for call in (
            store.entries,
            store.transcript_stats,
            store.project_key_of,
            store.import_local_session,
        ):
            with pytest.raises(InvalidSessionId):
                call(bad)


def test_session_operations_refuse_traversal_ids(sqlite_url):
    service = SessionService(SQLModelSessionStore(sqlite_url))
    for bad in HOSTILE_IDS:
        for call, args in (
            (service.resume, (bad, "Hi")),
            (service.fork, (bad, "Hi")),
            (service.checkpoint, (bad, "label")),
            (service.record_decision, (bad, "k", {})),
        ):
            with pytest.raises(InvalidSessionId):
                call(*args, ctx=CTX)
        with pytest.raises((InvalidSessionId, CheckpointNotFound)):
            service.get_checkpoint(bad)
        with open_db(service.store.engine) as db, pytest.raises(InvalidSessionId):
            checkpoints.list_checkpoints(db, bad)


def test_materialising_a_stored_session_writes_only_inside_its_folder(sqlite_url, tmp_path):
    store = SQLModelSessionStore(sqlite_url)
    cwd = tmp_path / "work"
    cwd.mkdir()
    project = project_key_for_directory(str(cwd))
    sid = str(uuid.uuid4())
    store.append_sync(project, sid, [_entry()])
    store.append_sync(project, sid, [_entry()], subpath="subagents/agent-1")
    # Something other than the store planted hostile subpaths in the database.
    with store.engine.begin() as conn:
        for sub in HOSTILE_SUBPATHS:
            key_id = conn.execute(
                sa.insert(TranscriptKey.__table__).values(
                    project_key=project, session_id=sid, subpath=sub, mtime_ms=1,
                    entry_count=1, total_bytes=1,
                ).returning(TranscriptKey.__table__.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(
                sa.insert(TranscriptEntry.__table__).values(
                    key_id=key_id, uuid=None, body='{"type":"user"}'
                )
            )

    subkeys = asyncio.run(store.list_subkeys({"project_key": project, "session_id": sid}))
    assert subkeys == ["subagents/agent-1"]

    async def materialise(resume: str):
        options = ClaudeAgentOptions(resume=resume, session_store=store, cwd=str(cwd))
        return await materialize_resume_session(options)

    assert asyncio.run(materialise("../../etc/passwd")) is None  # the SDK refuses it too
    done = asyncio.run(materialise(sid))
    try:
        root = Path(done.config_dir)
        written = sorted(str(p.relative_to(root)) for p in root.rglob("*.jsonl"))
        assert written == [
            f"projects/{project}/{sid}.jsonl",
            f"projects/{project}/{sid}/subagents/agent-1.jsonl",
        ]
        assert not list(root.parent.glob("escape*")) and not Path("/abs/agent.jsonl").exists()
    finally:
        asyncio.run(done.cleanup())
