"""The database goes away during a turn (a private PostgreSQL cluster is stopped while the
model is slow, then started again): the task fails its attempt with a clear error and Prefect
retries it; after recovery the answer kept in the local spool is recorded without asking the
model again, the session resumes and the store is consistent."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from prefect import flow
from prefect_claude_sessions.storage import DatabaseUnavailable, dispose_engines, spool
from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import main_requests, requests_for, store_state, stored_conversation, wait_for
from .private_postgres import PrivatePostgres

pytestmark = [pytest.mark.cli, pytest.mark.postgres]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        yield pg
        dispose_engines()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@flow
def start(prompt: str):
    return init_session(prompt, agent=ECHO)


@flow
def follow_up(session_id: str, prompt: str):
    return resume_session(session_id, prompt)


def test_the_database_goes_away_mid_turn_and_comes_back(
    workspace, standin, private_pg, monkeypatch
):
    url = private_pg.create_database("sessions")
    monkeypatch.setenv("CLAUDE_SESSIONS_DATABASE_URL", url)
    monkeypatch.setenv("CLAUDE_SESSIONS_CLAIM_TTL", "2")  # the dead attempt could not release
    first = start("Open the outage log.")
    prompt = "Log: the primary database is down."

    log = _Collect()
    logging.getLogger("prefect.task_runs").addHandler(log)
    outcome: dict[str, object] = {}
    standin.inject(latency_s=5, count=1)
    runner = threading.Thread(
        target=lambda: outcome.setdefault("turn", follow_up(first.session_id, prompt))
    )
    try:
        runner.start()
        wait_for(lambda: requests_for(standin, prompt), what="the prompt at the model")
        private_pg.stop()

        # While it is down, every store operation says so plainly (URL shown, no password).
        with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1:\d+/sessions is unavailable"):
            get_service().resume(first.session_id, "anyone there?", ctx=_ctx())
        failure = wait_for(
            lambda: next((m for m in log.messages if "Task run failed" in m), None),
            timeout=60,
            what="the failed attempt",
        )
        # Down before the CLI mirrored the answer: the store did not take the transcript
        # (store_unavailable); down after it: recording the turn failed (DatabaseUnavailable).
        # Either way the attempt is retried, and the error names the server that is down.
        assert "Retry 1/3" in failure, failure
        assert "store_unavailable" in failure or "DatabaseUnavailable" in failure, failure
        assert "127.0.0.1" in failure, failure
        private_pg.start()
        runner.join(timeout=120)
    finally:
        logging.getLogger("prefect.task_runs").removeHandler(log)
        if not private_pg.running:
            private_pg.start()
        runner.join(timeout=120)

    turn = outcome["turn"]
    assert turn.session_id == first.session_id and turn.text.startswith(f"echo: {prompt}")
    # The answer of the attempt that lost the database waited in this worker's spool; the
    # retry replayed it into the store and recorded it without asking the model again.
    assert [r["status"] for r in requests_for(standin, prompt)] == [200]
    assert not spool.has_pending(first.session_id)
    count, rows, _ = store_state(first.session_id)
    assert count == 2 and [s for _, s in rows] == ["completed", "completed"]
    assert stored_conversation(first.session_id) == ["Open the outage log.", prompt]
    follow_up(first.session_id, "Is it back?")
    assert main_requests(standin)[-1]["user_turns"] == [
        "Open the outage log.",
        prompt,
        "Is it back?",
    ]
    assert store_state(first.session_id)[0] == 3


def _ctx():
    from prefect_claude_sessions.tasks.context import RunContext

    return RunContext(flow_run_id=None, task_run_id=None)
