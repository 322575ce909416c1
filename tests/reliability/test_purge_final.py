"""A purge is final: after it, every operation on the session fails at once with SessionPurged
naming it (in the worker that ran it, with its warm CLI alive, and in a fresh process with
another CLAUDE_CONFIG_DIR), nothing is sent to the model, the store itself refuses to load or
append the transcript, and the purged text is found nowhere: not in the store, the Prefect home
or any CLI config folder. The audit records (turns, decisions, costs) stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from claude_agent_sdk import ClaudeAgentOptions, query
from prefect import flow
from prefect_claude_sessions.flows.cli import app
from prefect_claude_sessions.storage import (
    SessionPurged,
    SessionStatus,
    decisions,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.tasks import (
    AgentProfile,
    checkpoint_session,
    fork_session,
    init_session,
    record_decision,
    resume_session,
)
from prefect_claude_sessions.tasks.client_pool import default_pool
from prefect_claude_sessions.tasks.placement import project_key_of
from prefect_claude_sessions.tasks.retention import purge_session
from prefect_claude_sessions.tasks.session_tasks import get_service
from typer.testing import CliRunner

from tests.conftest import enter_worker_world

from .leak_search import nowhere
from .purged_worker import try_all

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
WORKER = Path(__file__).with_name("purged_worker.py")


@pytest.fixture
def world(tmp_path, standin, database_url, monkeypatch, prefect_harness):
    """A worker on SQLite or PostgreSQL, the real CLI against the stand-in model."""
    work = enter_worker_world(tmp_path, standin, database_url, monkeypatch)
    monkeypatch.delenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", raising=False)
    # The configuration for sensitive text: no answer excerpts in Prefect's logs and artifacts,
    # which live in Prefect's database where a purge cannot reach (test_dashboard_text_setting).
    monkeypatch.setenv("CLAUDE_SESSIONS_DASHBOARD_TEXT", "false")
    yield work
    standin.clear_faults()


def _conversation(marker: str):
    @flow(persist_result=False)
    def customer_conversation():
        first = init_session(f"Customer record {marker}: keep it safe.", agent=ECHO)
        second = resume_session(first, f"The customer {marker} writes again.")
        mark = checkpoint_session(second, "before-reply")
        branch = fork_session(second, "Try approach B.")
        record_decision(second, "route", {"to": "billing"})
        return first.session_id, mark.id, branch.session_id

    return customer_conversation()


def _assert_refused(results: dict[str, list[str]], sid: str, owner: str | None = None) -> None:
    """Each operation raised SessionPurged naming ``sid`` (a rewind names the session its
    checkpoint belongs to, ``owner``)."""
    for operation, (kind, message) in results.items():
        assert kind == "SessionPurged", (operation, kind, message)
        named = (owner or sid) if operation.startswith("rewind") else sid
        assert named in message, (operation, message)


def test_a_purged_session_is_gone_everywhere(world, standin, database_url, tmp_path):
    marker = f"PII-{uuid.uuid4().hex}"
    root, checkpoint, fork = _conversation(marker)
    service = get_service()
    assert root in default_pool(), "the session's CLI should still be warm in this worker"
    assert marker in json.dumps(service.store.entries(fork))  # the fork holds the text too
    with open_db(service.store.engine) as db:
        cost_before = sessions.get_session(db, root).cost_usd
        turns_before = [(t.idempotency_key, t.cost_usd) for t in turns.list_turns(db, root)]
    assert cost_before > 0 and len(turns_before) == 2

    # A stale local copy on another machine, as a worker that once ran the session keeps it.
    other_config = tmp_path / "other-config"
    stale = other_config / "projects" / project_key_of(ECHO) / f"{root}.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"type": "user", "text": marker}) + "\n")

    config = Path(os.environ["CLAUDE_CONFIG_DIR"])
    before = nowhere(marker, database_url, config, other_config)
    assert before and before[0].startswith("store"), before  # the search can see it

    standin.clear_requests()
    freed = purge_session(service.store, root, include_descendants=True)
    assert freed > 0
    assert root not in default_pool() and fork not in default_pool()  # the warm CLI is closed

    # Same worker: every operation fails at once, naming the session.
    _assert_refused(try_all(service, root, checkpoint), root)
    _assert_refused(try_all(service, fork, checkpoint), fork, owner=root)
    exported = CliRunner().invoke(app, ["export", root, "--database", database_url])
    assert exported.exit_code == 2 and "purged" in exported.stderr

    # The bare SDK with our store cannot bring the conversation back either.
    async def bare_resume() -> None:
        options = ClaudeAgentOptions(
            resume=root, session_store=service.store, cwd=str(world), max_turns=1
        )
        async for _ in query(prompt="What was the customer record?", options=options):
            pass

    import asyncio

    with pytest.raises(Exception) as bare:
        asyncio.run(bare_resume())
    assert "purged" in str(bare.value), bare.value

    # A fresh process with another CLAUDE_CONFIG_DIR: refused too, and its stale copy deleted.
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(other_config)}
    done = subprocess.run(
        [sys.executable, str(WORKER), root, checkpoint],
        env=env,
        cwd=world,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    _assert_refused(json.loads(done.stdout.splitlines()[-1]), root)
    assert not stale.exists(), "the stale local copy of a purged session must be deleted"

    # Nothing reached the model after the purge, let alone the purged text.
    after = standin.requests()
    assert not [r for r in after if r.get("kind") == "main"], after
    assert marker not in json.dumps(after)

    # The audit records stay: turns with their costs, the decision, the lineage.
    with open_db(service.store.engine) as db:
        record = sessions.get_session(db, root)
        assert record.status is SessionStatus.purged and record.transcript_bytes == 0
        assert record.cost_usd == cost_before
        kept = [(t.idempotency_key, t.cost_usd) for t in turns.list_turns(db, root)]
        assert kept == turns_before
        assert [d.key for d in decisions.list_decisions(db, session_id=root)] == ["route"]
        assert sessions.get_session(db, fork).parent_id == root
        assert sessions.get_session(db, fork).status is SessionStatus.purged

    # And the purged text is nowhere: store, Prefect home, either config folder.
    assert nowhere(marker, database_url, config, other_config) == []


def test_without_descendants_the_fork_keeps_its_copy(world, standin, database_url):
    """The flag is deliberate: without it a fork (a copy up to the fork point) survives."""
    marker = f"PII-{uuid.uuid4().hex}"
    root, _, fork = _conversation(marker)
    service = get_service()
    purge_session(service.store, root)
    with open_db(service.store.engine) as db:
        assert sessions.get_session(db, root).status is SessionStatus.purged
        assert sessions.get_session(db, fork).status is SessionStatus.active
    assert marker in json.dumps(service.store.entries(fork))
    with pytest.raises(SessionPurged, match=root):
        service.resume(root, "Hello?", ctx=_ctx())
    # The fork lives on: it still answers with its own history.
    standin.clear_requests()
    again = service.resume(fork, "Still there?", ctx=_ctx())
    assert again.session_id == fork
    (request,) = [r for r in standin.requests(kind="main") if r["user_turns"][-1] == "Still there?"]
    assert any(marker in t for t in request["user_turns"])


def _ctx():
    from prefect_claude_sessions.tasks.context import RunContext

    return RunContext(None, None)


def test_a_purge_from_another_process_reaches_this_workers_warm_cli(world, standin, database_url):
    """The operator purges from a shell; the worker that last ran the session still has it
    warm. Its next attempt is refused before the model is asked, and its CLI and local copy go."""
    marker = f"PII-{uuid.uuid4().hex}"
    root, _, _ = _conversation(marker)
    assert root in default_pool()
    config = Path(os.environ["CLAUDE_CONFIG_DIR"])
    assert list((config / "projects").glob(f"*/{root}.jsonl"))  # the warm CLI's live file

    command = str(Path(sys.executable).with_name("claude-sessions"))
    shell = subprocess.run(
        [command, "purge", root, "--yes", "--descendants", "--database", database_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shell.returncode == 0, shell.stderr
    assert root in default_pool()  # another process cannot close this one's CLI...

    standin.clear_requests()
    with pytest.raises(SessionPurged, match=root):
        get_service().resume(root, "Are you still there?", ctx=_ctx())
    assert root not in default_pool()  # ...but this worker does, at its first look
    assert not list((config / "projects").glob(f"*/{root}.jsonl"))
    assert standin.requests(kind="main") == []
    assert nowhere(marker, database_url, config) == []
