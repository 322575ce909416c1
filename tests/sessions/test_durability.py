"""Durability of the session service with the real CLI: killed workers, concurrent writers,
expired claims, another machine, file rollback, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from claude_agent_sdk import project_key_for_directory
from prefect_claude_sessions.storage import (
    CheckpointNotFound,
    InvalidSessionId,
    SessionBusy,
    SessionNotFound,
    TurnStatus,
    claims,
    decisions,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.tasks import AgentProfile
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.errors import InvalidInput
from prefect_claude_sessions.tasks.service import SessionService
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import main_requests, prompts_sent

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
CRASH_WORKER = Path(__file__).with_name("crash_worker.py")


def ctx(name: str = "t") -> RunContext:
    return RunContext(flow_run_id=f"flow-{name}", task_run_id=None)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_worker(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CRASH_WORKER), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes the CLI with it
    )


def store_snapshot(session_id: str) -> tuple:
    with open_db(get_service().store.engine) as db:
        record = sessions.get_session(db, session_id)
        rows = turns.list_turns(db, session_id)
        return (record.turn_count, [(r.idempotency_key, r.status) for r in rows])


def test_killed_mid_turn_then_rerun_sends_the_prompt_once_more_and_records_it_once(
    workspace, standin
):
    service = get_service()
    first = service.init("Start the incident log.", ECHO, ctx=ctx())
    env = {**os.environ, "CLAUDE_SESSIONS_CLAIM_TTL": "3", "CLAUDE_SESSIONS_BUSY_TIMEOUT": "60"}
    standin.inject(latency_s=30, count=1)
    worker = run_worker(first.session_id, "Log: disk full on db-2.", "incident-42", env=env)
    wait_for(lambda: prompts_sent(standin, "Log: disk full on db-2.") == 1, what="the prompt")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    standin.clear_faults()

    # The killed worker's claim is still there; it expires and the re-run takes over.
    with open_db(service.store.engine) as db:
        assert claims.current_holder(db, first.session_id) is not None
    rerun = run_worker(first.session_id, "Log: disk full on db-2.", "incident-42", env=env)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err[-2000:]
    turn = json.loads(out.strip().splitlines()[-1])

    assert turn["session_id"] == first.session_id and not turn["replayed"]
    # The unanswered prompt was sent again, once; nothing is recorded twice.
    assert prompts_sent(standin, "Log: disk full on db-2.") == 2
    count, rows = store_snapshot(first.session_id)
    assert count == 2
    assert [status for _, status in rows] == [TurnStatus.completed, TurnStatus.completed]
    # The session is consistent: the next turn sees both earlier prompts exactly once.
    service.resume(first.session_id, "Summarise the log.", ctx=ctx("after"))
    seen = main_requests(standin)[-1]["user_turns"]
    assert seen == ["Start the incident log.", "Log: disk full on db-2.", "Summarise the log."]


def test_killed_after_the_answer_was_stored_recovers_it_without_asking_again(workspace, standin):
    service = get_service()
    first = service.init("Open a ticket for the VPN.", ECHO, ctx=ctx())
    env = {**os.environ, "CLAUDE_SESSIONS_CLAIM_TTL": "2"}
    worker = run_worker(
        first.session_id, "Assign it to Sam.", "ticket-vpn", "--die-before-record", env=env
    )
    worker.communicate(timeout=120)
    assert worker.returncode == 9
    assert prompts_sent(standin, "Assign it to Sam.") == 1
    with open_db(service.store.engine) as db:
        # The crash left the turn pending: answered, but not recorded.
        assert [r.status for r in turns.list_turns(db, first.session_id)] == [
            TurnStatus.completed,
            TurnStatus.pending,
        ]

    rerun = run_worker(first.session_id, "Assign it to Sam.", "ticket-vpn", env=env)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err[-2000:]
    turn = json.loads(out.strip().splitlines()[-1])

    assert prompts_sent(standin, "Assign it to Sam.") == 1  # recovered, not re-sent
    assert turn["text"].startswith("echo: Assign it to Sam.")
    count, rows = store_snapshot(first.session_id)
    assert count == 2 and [s for _, s in rows] == [TurnStatus.completed] * 2


def test_two_writers_on_one_session_never_interleave(workspace, standin):
    service = get_service()
    first = service.init("Count with me.", ECHO, ctx=ctx())
    impatient = SessionService(service.store, busy_timeout_s=0.5)
    standin.inject(latency_s=3, count=1)
    outcome: dict[str, object] = {}

    def slow_writer() -> None:
        outcome["slow"] = service.resume(first.session_id, "One.", ctx=ctx("a"))

    thread = threading.Thread(target=slow_writer)
    thread.start()
    wait_for(lambda: prompts_sent(standin, "One.") == 1, what="the first writer's prompt")
    with pytest.raises(SessionBusy, match="is busy"):
        impatient.resume(first.session_id, "Two.", ctx=ctx("b"))
    # A patient writer waits for the first one and then sees its turn.
    patient = SessionService(service.store, busy_timeout_s=60)
    second = patient.resume(first.session_id, "Three.", ctx=ctx("c"))
    thread.join()

    assert prompts_sent(standin, "Two.") == 0
    assert main_requests(standin)[-1]["user_turns"] == ["Count with me.", "One.", "Three."]
    assert second.session_id == first.session_id
    count, _ = store_snapshot(first.session_id)
    assert count == 3


def test_a_session_moves_to_another_machine(workspace, standin, tmp_path, monkeypatch):
    service = get_service()
    first = service.init("My favourite colour is teal.", ECHO, ctx=ctx())

    other_config = tmp_path / "machine-b-config"
    other_work = tmp_path / "machine-b-work"
    other_config.mkdir()
    other_work.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(other_config))
    monkeypatch.chdir(other_work)
    turn = service.resume(first.session_id, "What is my favourite colour?", ctx=ctx("b"))

    assert main_requests(standin)[-1]["user_turns"] == [
        "My favourite colour is teal.",
        "What is my favourite colour?",
    ]
    assert turn.session_id == first.session_id
    with open_db(service.store.engine) as db:
        record = sessions.get_session(db, first.session_id)
        assert record.project_key == project_key_for_directory(str(other_work))
        assert record.turn_count == 2


def test_rewind_restores_files_for_a_file_checkpointing_session(workspace, standin):
    service = get_service()
    writer = AgentProfile(
        name="writer",
        system_prompt="You are a careful assistant.",
        file_checkpointing=True,
        cwd=str(workspace),
    )
    notes = workspace / "notes.txt"
    first = service.init("write file notes.txt with content: version one", writer, ctx=ctx())
    assert notes.read_text() == "version one"
    mark = service.checkpoint(first.session_id, "v1", ctx=ctx())
    service.resume(first.session_id, "write file notes.txt with content: version two", ctx=ctx())
    assert notes.read_text() == "version two"

    branch = service.rewind(mark, ctx=ctx("rewind"))

    assert notes.read_text() == "version one"
    assert branch.parent_id == first.session_id


def test_bad_input_is_refused_clearly_and_changes_nothing(workspace, standin):
    service = get_service()
    first = service.init("Hello.", ECHO, ctx=ctx())
    other = service.init("Another session.", ECHO, ctx=ctx("other"))
    mark = service.checkpoint(other.session_id, "elsewhere", ctx=ctx())
    before = store_snapshot(first.session_id)
    sent_before = len(main_requests(standin))

    with pytest.raises(InvalidInput, match="prompt must not be empty"):
        service.resume(first.session_id, "   ", ctx=ctx())
    with pytest.raises(InvalidInput, match="limit"):
        service.resume(first.session_id, "x" * 300_000, ctx=ctx())
    with pytest.raises(InvalidSessionId):
        service.resume("../../etc/passwd", "Hi", ctx=ctx())
    with pytest.raises(SessionNotFound):
        service.resume("9d1c8f0e-0000-4000-8000-000000000000", "Hi", ctx=ctx())
    with pytest.raises(InvalidInput, match="belongs to session"):
        service.fork(first.session_id, "Branch", at=mark, ctx=ctx())
    with pytest.raises(CheckpointNotFound):
        service.get_checkpoint("9d1c8f0e-0000-4000-8000-000000000001")
    with pytest.raises(InvalidInput, match="payload must be a dict"):
        service.record_decision(first.session_id, "k", ["not", "a", "dict"], ctx=ctx())

    assert store_snapshot(first.session_id) == before
    assert len(main_requests(standin)) == sent_before
    with open_db(service.store.engine) as db:
        assert decisions.list_decisions(db, session_id=first.session_id) == []
