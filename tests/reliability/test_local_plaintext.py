"""With encryption at rest on, no plaintext transcript lingers under CLAUDE_CONFIG_DIR: a
session's local copy goes after a cold turn, when the pool evicts or idly closes its CLI, and at
worker exit; a later resume materialises the conversation from the store, with its history."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from prefect_claude_sessions.storage import SQLModelSessionStore, generate_key
from prefect_claude_sessions.tasks import AgentProfile
from prefect_claude_sessions.tasks.client_pool import ClientPool
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.local_copies import waiting
from prefect_claude_sessions.tasks.service import SessionService

from tests.conftest import enter_worker_world

from .conftest import wait_for
from .leak_search import files_containing

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
CTX = RunContext(None, None)


@pytest.fixture
def sealed_world(tmp_path, standin, database_url, monkeypatch):
    work = enter_worker_world(tmp_path, standin, database_url, monkeypatch)
    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", generate_key())
    yield work, Path(os.environ["CLAUDE_CONFIG_DIR"])
    standin.clear_faults()


def _service(pool: ClientPool | None) -> SessionService:
    return SessionService(SQLModelSessionStore(), pool=lambda: pool, credentials=lambda _b: {})


def _local_files(config: Path, sid: str) -> list[Path]:
    return list((config / "projects").glob(f"*/{sid}.jsonl"))


def test_no_plaintext_after_eviction_idle_close_and_cold_turns(sealed_world, standin):
    _, config = sealed_world
    marker = f"PII-{uuid.uuid4().hex}"
    pool = ClientPool(max_size=1, idle_timeout_s=2.0, name="sealed-pool")
    try:
        warm = _service(pool)
        first = warm.init(f"Customer {marker} called.", ECHO, ctx=CTX)
        # The warm CLI is still writing its local transcript: kept until it closes.
        assert first.session_id in pool and first.session_id in waiting()
        assert _local_files(config, first.session_id)

        # Eviction: a second session takes the only slot.
        second = warm.init(f"Another customer {marker}-2.", ECHO, ctx=CTX)
        assert first.session_id not in pool
        assert not _local_files(config, first.session_id)

        # Idle close: the reaper closes the second CLI; its local copy goes with it.
        wait_for(lambda: second.session_id not in pool, timeout=30, what="the idle close")
        wait_for(lambda: not _local_files(config, second.session_id), timeout=10, what="cleanup")
        assert files_containing(marker, config) == []

        # Resume materialises from the store: the model gets the whole conversation.
        standin.clear_requests()
        again = warm.resume(first.session_id, "What did the customer say?", ctx=CTX)
        assert again.session_id == first.session_id
        (request,) = [
            r
            for r in standin.requests(kind="main")
            if r["user_turns"][-1] == "What did the customer say?"
        ]
        assert any(marker in turn for turn in request["user_turns"])
    finally:
        pool.close()
    assert files_containing(marker, config) == []  # pool closed: nothing left

    # A cold turn (no pool): the local copy is deleted right after the turn.
    cold = _service(None).init(f"Cold customer {marker}-3.", ECHO, ctx=CTX)
    assert not _local_files(config, cold.session_id)
    assert files_containing(marker, config) == []


def test_no_plaintext_after_worker_exit(sealed_world, database_url, tmp_path):
    """A worker that exits with a warm CLI (no explicit close): the exit hooks clean up."""
    work, config = sealed_world
    marker = f"PII-{uuid.uuid4().hex}"
    script = textwrap.dedent(
        f"""
        from prefect_claude_sessions.tasks import AgentProfile
        from prefect_claude_sessions.tasks.client_pool import default_pool
        from prefect_claude_sessions.tasks.context import RunContext
        from prefect_claude_sessions.tasks.service import SessionService
        from prefect_claude_sessions.storage import SQLModelSessionStore
        service = SessionService(SQLModelSessionStore(), credentials=lambda _b: {{}})
        turn = service.init("Exit customer {marker}.", AgentProfile(name="echo",
                            system_prompt="You are a careful assistant."), ctx=RunContext(None, None))
        assert turn.session_id in default_pool()
        print(turn.session_id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=work, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    sid = done.stdout.split()[-1]
    assert SQLModelSessionStore(database_url).transcript_stats(sid)[0] > 0  # stored, sealed
    assert not _local_files(config, sid)
    assert files_containing(marker, config) == []
