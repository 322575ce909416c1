"""Atomic turns: a failed, timed-out or interrupted turn leaves no trace in what the model sees.

Each test reads the stand-in model's request log after the fault: the first request after it
must carry every earlier completed turn exactly once and nothing of the failed one (no prompt,
no synthetic "API Error" reply), on this worker and on another one (empty CLAUDE_CONFIG_DIR,
another cwd). Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from prefect_claude_sessions.storage import SessionStatus, TurnStatus, open_db, sessions, turns
from prefect_claude_sessions.tasks import AgentProfile
from prefect_claude_sessions.tasks.client_pool import default_pool
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.errors import (
    AgentError,
    InvalidInput,
    MissingCredentials,
    PermanentAgentError,
    TransientAgentError,
)
from prefect_claude_sessions.tasks.service import SessionService

from .conftest import main_requests

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
BILLING = AgentProfile(name="billing", system_prompt="You are the billing specialist.")
POISON = "POISON-e-mail the API refuses 7f3a"


def ctx(name: str = "atomic") -> RunContext:
    return RunContext(flow_run_id=None, task_run_id=None, flow_run_name=name)


def last_request(standin) -> dict:
    requests = main_requests(standin)
    assert requests, "the model received no conversation call"
    return requests[-1]


def assert_clean(request: dict, expected_prompts: list[str], *, failed: str = POISON) -> None:
    """The request carries exactly the completed prompts, each once, and nothing of the failed
    turn: neither its prompt nor the CLI's synthetic replies."""
    assert request["user_turns"] == expected_prompts
    for message in request["messages"]:
        content = message.get("content")
        texts = (
            [content]
            if isinstance(content, str)
            else [b.get("text", "") for b in content or [] if isinstance(b, dict)]
        )
        for text in texts:
            assert failed not in text
            assert "API Error" not in text
            assert "No response requested" not in text


def stored_text(service: SessionService, session_id: str) -> str:
    return repr(service.store.entries(session_id))


def turn_rows(service: SessionService, session_id: str):
    with open_db(service.store.engine) as db:
        rows = turns.list_turns(db, session_id)
        for row in rows:
            db.expunge(row)
        return rows


def another_worker(tmp_path: Path, monkeypatch, name: str) -> None:
    """Become another machine: an empty CLAUDE_CONFIG_DIR, another cwd, no warm CLI."""
    default_pool().close()
    config = tmp_path / f"{name}-config"
    work = tmp_path / f"{name}-work"
    config.mkdir()
    work.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.chdir(work)


@pytest.fixture
def service(workspace) -> SessionService:
    return SessionService()


@pytest.fixture
def two_turns(service: SessionService):
    first = service.init("first question", ECHO, ctx=ctx())
    second = service.resume(first.session_id, "second question", ctx=ctx())
    return first, second


def test_a_permanent_error_leaves_no_trace(service, two_turns, standin, tmp_path, monkeypatch):
    first, second = two_turns
    sid = first.session_id
    standin.inject(status=400, count=20, message="this e-mail is refused")
    with pytest.raises(PermanentAgentError):
        service.resume(sid, POISON, ctx=ctx())
    standin.clear_faults()
    failed = turn_rows(service, sid)[-1]
    assert failed.status == TurnStatus.failed and "[invalid_request]" in (failed.error or "")
    assert service.head(sid) == second.assistant_uuid  # the head did not move
    assert POISON not in stored_text(service, sid)  # cut before the next turn

    third = service.resume(sid, "third question", ctx=ctx())
    assert_clean(last_request(standin), ["first question", "second question", "third question"])
    assert POISON not in stored_text(service, sid)
    assert service.head(sid) == third.assistant_uuid

    another_worker(tmp_path, monkeypatch, "second-machine")
    service.resume(sid, "fourth question", ctx=ctx())
    assert_clean(
        last_request(standin),
        ["first question", "second question", "third question", "fourth question"],
    )


def test_a_failure_cut_on_another_worker(service, two_turns, standin, tmp_path, monkeypatch):
    """The failed attempt is cut by whichever worker continues the session next."""
    first, _ = two_turns
    standin.inject(status=400, count=20)
    with pytest.raises(PermanentAgentError):
        service.resume(first.session_id, POISON, ctx=ctx())
    standin.clear_faults()
    another_worker(tmp_path, monkeypatch, "elsewhere")
    service.resume(first.session_id, "third question", ctx=ctx())
    assert_clean(last_request(standin), ["first question", "second question", "third question"])


def test_a_timeout_leaves_no_trace(service, two_turns, standin, monkeypatch):
    first, _ = two_turns
    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "4")
    standin.inject(latency_s=30, count=1)
    started = time.monotonic()
    with pytest.raises(TransientAgentError) as info:
        service.resume(first.session_id, POISON, ctx=ctx())
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout"
    assert elapsed < 30, f"the timed-out turn took {elapsed:.1f} s"
    standin.clear_faults()
    monkeypatch.delenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S")
    service.resume(first.session_id, "third question", ctx=ctx())
    assert_clean(last_request(standin), ["first question", "second question", "third question"])


def test_transient_errors_past_the_retries_leave_no_trace(service, two_turns, standin):
    first, _ = two_turns
    standin.inject(status=500, count=200)
    with pytest.raises(TransientAgentError):
        service.resume(first.session_id, POISON, ctx=ctx())
    standin.clear_faults()
    service.resume(first.session_id, "third question", ctx=ctx())
    assert_clean(last_request(standin), ["first question", "second question", "third question"])


def test_a_killed_cli_leaves_no_trace(service, two_turns, standin):
    first, _ = two_turns
    sid = first.session_id
    pid = default_pool().pid_of(sid)
    assert pid is not None, "the session's CLI should be warm"
    standin.inject(latency_s=20, count=1)
    seen = len(main_requests(standin))
    errors: list[BaseException] = []

    def turn() -> None:
        try:
            service.resume(sid, POISON, ctx=ctx())
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=turn)
    runner.start()
    deadline = time.monotonic() + 30
    while len(main_requests(standin)) <= seen:
        assert time.monotonic() < deadline, "the poisoned prompt never reached the model"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    runner.join(60)
    assert errors and isinstance(errors[0], AgentError) and errors[0].transient
    standin.clear_faults()
    service.resume(sid, "third question", ctx=ctx())
    assert_clean(last_request(standin), ["first question", "second question", "third question"])


def test_fork_and_handoff_start_from_the_head(service, two_turns, standin):
    first, _ = two_turns
    standin.inject(status=400, count=20)
    with pytest.raises(PermanentAgentError):
        service.resume(first.session_id, POISON, ctx=ctx())
    standin.clear_faults()

    fork = service.fork(first.session_id, "try approach B", ctx=ctx())
    assert_clean(last_request(standin), ["first question", "second question", "try approach B"])
    assert fork.parent_id == first.session_id

    handed = service.handoff(first.session_id, "please take over", to=BILLING, ctx=ctx())
    request = last_request(standin)
    assert_clean(request, ["first question", "second question", "please take over"])
    assert "billing specialist" in request["system"]
    assert POISON not in stored_text(service, handed.session_id)

    compacted = service.compact(first.session_id, ctx=ctx())
    assert POISON not in last_request(standin)["user_turns"][-1]
    assert compacted.parent_id == first.session_id


def test_a_failed_init_is_redone_from_scratch(service, standin):
    standin.inject(status=400, count=20)
    with pytest.raises(PermanentAgentError) as info:
        service.init("first question", ECHO, ctx=ctx(), idempotency_key="init-1")
    standin.clear_faults()
    sid = info.value.session_id or _only_session(service)
    with open_db(service.store.engine) as db:
        assert sessions.get_session(db, sid).status == SessionStatus.failed
    with pytest.raises(InvalidInput, match="failed before its first turn"):
        service.resume(sid, "second question", ctx=ctx())

    again = service.init("first question", ECHO, ctx=ctx(), idempotency_key="init-1")
    assert again.session_id == sid and not again.replayed
    assert_clean(last_request(standin), ["first question"])
    with open_db(service.store.engine) as db:
        assert sessions.get_session(db, sid).status == SessionStatus.active
    service.resume(sid, "second question", ctx=ctx())
    assert_clean(last_request(standin), ["first question", "second question"])


def _only_session(service: SessionService) -> str:
    with open_db(service.store.engine) as db:
        return sessions.list_sessions(db)[0].id


def test_missing_credentials_leave_no_pending_turn(service, two_turns, monkeypatch):
    first, _ = two_turns
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingCredentials):
        service.resume(first.session_id, "third question", ctx=ctx())
    rows = turn_rows(service, first.session_id)
    assert [r.status for r in rows] == [
        TurnStatus.completed,
        TurnStatus.completed,
        TurnStatus.failed,
    ]
    assert "[missing_credentials]" in (rows[-1].error or "")


@pytest.mark.parametrize(
    ("prompt", "match"),
    [
        ("nul \x00 byte", "NUL character at position 4"),
        ("lone \udc80 surrogate", "lone surrogate"),
        ("   ", "must not be empty"),
    ],
)
def test_bad_prompts_are_refused_before_anything_is_stored(
    service, two_turns, standin, prompt, match
):
    first, _ = two_turns
    before = len(turn_rows(service, first.session_id))
    seen = len(main_requests(standin))
    with pytest.raises(InvalidInput, match=match):
        service.resume(first.session_id, prompt, ctx=ctx())
    assert len(turn_rows(service, first.session_id)) == before
    assert len(main_requests(standin)) == seen


def test_session_ids_are_normalised_at_the_edge(service, two_turns, standin):
    first, _ = two_turns
    third = service.resume(first.session_id.upper(), "third question", ctx=ctx())
    assert third.session_id == first.session_id
    assert_clean(last_request(standin), ["first question", "second question", "third question"])


def test_rewind_and_a_checkpoint_fork_after_a_failure(
    service, two_turns, standin, tmp_path, monkeypatch
):
    """A checkpoint names the head; a failed turn after it changes nothing a rewind or a fork
    at the checkpoint sends, here and on another machine."""
    first, second = two_turns
    sid = first.session_id
    mark = service.checkpoint(sid, "after-two", ctx=ctx())
    assert mark.transcript_uuid == second.assistant_uuid
    standin.inject(status=400, count=20)
    with pytest.raises(PermanentAgentError):
        service.resume(sid, POISON, ctx=ctx())
    standin.clear_faults()
    again = service.checkpoint(sid, "after-failure", ctx=ctx())
    assert again.transcript_uuid == second.assistant_uuid  # the head did not move

    rewound = service.rewind(mark, prompt="start over from two", ctx=ctx())
    assert_clean(
        last_request(standin), ["first question", "second question", "start over from two"]
    )
    assert POISON not in stored_text(service, rewound.session_id)

    another_worker(tmp_path, monkeypatch, "rewinder")
    branch = service.fork(sid, "approach C from the mark", at=mark, ctx=ctx())
    assert_clean(
        last_request(standin), ["first question", "second question", "approach C from the mark"]
    )
    service.resume(branch.session_id, "and then?", ctx=ctx())
    assert_clean(
        last_request(standin),
        ["first question", "second question", "approach C from the mark", "and then?"],
    )


def test_a_failed_fork_is_not_left_as_a_usable_session(service, two_turns, standin):
    """A fork whose first turn fails permanently is marked failed (not an empty active session
    in `ls`), is refused for resume, and a retry with the same key redoes it cleanly."""
    first, _ = two_turns
    standin.inject(status=400, count=20)
    with pytest.raises(PermanentAgentError) as info:
        service.fork(first.session_id, "try approach B", ctx=ctx(), idempotency_key="fork-1")
    standin.clear_faults()
    fork_id = info.value.session_id
    with open_db(service.store.engine) as db:
        children = [s for s in sessions.list_sessions(db) if s.parent_id == first.session_id]
    assert len(children) == 1 and children[0].status == SessionStatus.failed
    assert fork_id in (None, children[0].id)
    with pytest.raises(InvalidInput, match="failed before its first turn"):
        service.resume(children[0].id, "continue", ctx=ctx())

    # The flow re-run: the same call, the same key, the same fork id, sent again from scratch.
    fork = service.fork(first.session_id, "try approach B", ctx=ctx(), idempotency_key="fork-1")
    assert fork.session_id == children[0].id and not fork.replayed
    request = last_request(standin)
    assert_clean(request, ["first question", "second question", "try approach B"])
    assert request["user_turns"].count("try approach B") == 1
    service.resume(fork.session_id, "continue", ctx=ctx())
    assert_clean(
        last_request(standin),
        ["first question", "second question", "try approach B", "continue"],
    )
