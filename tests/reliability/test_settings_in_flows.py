"""Settings changed while a worker process lives (after the service, the pool and the modules
were created) apply to the next task, through real Prefect flows and the real CLI; a bad one
fails the task once (not retried) with a message naming the variable, and changes nothing."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session
from prefect_claude_sessions.tasks.errors import InvalidInput
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import main_requests, store_state, task_runs_of

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@flow
def start():
    return init_session("Hello.", agent=ECHO)


@flow
def carry_on(session_id: str, prompt: str):
    return resume_session(session_id, prompt, return_state=True)


def test_a_changed_prompt_limit_applies_to_the_next_task(workspace, standin, monkeypatch):
    """CLAUDE_SESSIONS_MAX_PROMPT_CHARS used to be read once at import: a later change was
    ignored. Now the running service applies it at the next prompt."""
    first = start()
    before, sent = store_state(first.session_id), len(main_requests(standin))

    monkeypatch.setenv("CLAUDE_SESSIONS_MAX_PROMPT_CHARS", "20")
    state = carry_on(first.session_id, "x" * 30, return_state=True).result(raise_on_failure=False)
    assert state.is_failed()
    with pytest.raises(InvalidInput, match=r"prompt is 30 characters; the limit is 20 "):
        state.result()
    assert [r.run_count for r in task_runs_of(state.state_details.flow_run_id)] == [1]
    assert store_state(first.session_id) == before
    assert len(main_requests(standin)) == sent

    monkeypatch.setenv("CLAUDE_SESSIONS_MAX_PROMPT_CHARS", "40")
    ok = carry_on(first.session_id, "y" * 30, return_state=True).result()
    assert ok.result().session_id == first.session_id
    assert len(main_requests(standin)) == sent + 1


def test_a_bad_variable_fails_the_task_once_naming_it(workspace, standin, monkeypatch):
    first = start()
    before, sent = store_state(first.session_id), len(main_requests(standin))

    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "soon")
    state = carry_on(first.session_id, "Carry on.", return_state=True).result(
        raise_on_failure=False
    )
    assert state.is_failed()
    with pytest.raises(InvalidInput) as caught:
        state.result()
    assert str(caught.value).startswith(
        "CLAUDE_SESSIONS_TURN_TIMEOUT_S must be a number of seconds >= 0 (0 = no limit), got 'soon'"
    )
    assert [r.run_count for r in task_runs_of(state.state_details.flow_run_id)] == [1]
    assert len(main_requests(standin)) == sent
    monkeypatch.delenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S")  # the helpers below read settings too
    assert store_state(first.session_id) == before  # no turn left behind as "running"


def test_the_running_service_follows_claim_and_busy_settings(workspace, monkeypatch):
    service = get_service()
    assert (service.claim_ttl_s, service.busy_timeout_s) == (120.0, 60.0)
    monkeypatch.setenv("CLAUDE_SESSIONS_CLAIM_TTL", "7")
    monkeypatch.setenv("CLAUDE_SESSIONS_BUSY_TIMEOUT", "0.5")
    assert get_service() is service  # the same long-lived object ...
    assert (service.claim_ttl_s, service.busy_timeout_s) == (7.0, 0.5)  # ... new values
    first = start()  # and a turn runs with them (a 7 s lease is plenty for the stand-in)
    assert first.session_id
