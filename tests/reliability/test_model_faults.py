"""The model misbehaves inside real Prefect flows (real CLI, stand-in model, real store):
transient faults are retried by Prefect with backoff until the model recovers, permanent ones
end the task at once; either way nothing is lost and nothing is recorded twice."""

from __future__ import annotations

import itertools

import pytest
from prefect import flow
from prefect.runtime import flow_run
from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session
from prefect_claude_sessions.tasks.errors import PermanentAgentError

from .conftest import answered, requests_for, store_state, stored_conversation, task_run_named

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@flow
def two_turns(first: str, second: str):
    turn = init_session(first, agent=ECHO)
    nxt = resume_session(turn, second)
    return flow_run.get_id(), turn, nxt


def _run_with_fault_on_second_turn(standin, first: str, second: str, **fault):
    """Runs `two_turns`; the fault hits the second turn's conversation calls only."""
    standin.inject(latency_s=0.001, count=1)  # passes the first turn's call through
    standin.inject(**fault)
    return two_turns(first, second)


@pytest.mark.parametrize(
    ("status", "failing_calls", "attempts"),
    [(529, 4, 3), (429, 2, 2), (500, 2, 2)],
    ids=["529-twice-beyond-cli-retries", "429", "500"],
)
def test_transient_statuses_are_retried_with_backoff_until_the_model_recovers(
    workspace, standin, status, failing_calls, attempts
):
    second = f"Status {status}: are you back?"
    run_id, first, nxt = _run_with_fault_on_second_turn(
        standin, "Open the incident.", second, status=status, count=failing_calls
    )

    calls = requests_for(standin, second)
    # Each Prefect attempt made two calls (the CLI's own single retry), then one succeeded.
    assert [c["status"] for c in calls] == [status] * failing_calls + [200]
    run = task_run_named(run_id, "resume")
    assert run.run_count == attempts and run.state.is_completed()
    # Prefect waited between attempts (exponential backoff from 2 s, jitter 0.5: >= 1 s).
    attempt_starts = [calls[i]["ts"] for i in range(0, len(calls), 2)]
    gaps = [b - a for a, b in itertools.pairwise(attempt_starts)]
    assert len(gaps) == attempts - 1 and all(g >= 1.0 for g in gaps), gaps

    assert nxt.session_id == first.session_id and nxt.text.startswith(f"echo: {second}")
    assert answered(standin, second) == 1
    count, rows, _ = store_state(first.session_id)
    assert count == 2 and [s for _, s in rows] == ["completed", "completed"]
    assert stored_conversation(first.session_id) == ["Open the incident.", second]
    # The model saw the prompt once in its context on every attempt (failed attempts are a
    # dead branch, not repeated text).
    assert all(c["user_turns"] == ["Open the incident.", second] for c in calls)


def test_a_slow_model_completes(workspace, standin):
    second = "Take your time."
    run_id, first, nxt = _run_with_fault_on_second_turn(
        standin, "Slow day.", second, latency_s=4, count=1
    )
    assert task_run_named(run_id, "resume").run_count == 1
    assert nxt.text.startswith(f"echo: {second}")
    assert [c["status"] for c in requests_for(standin, second)] == [200]
    assert store_state(first.session_id)[0] == 2


def test_a_cut_stream_is_retried_and_succeeds(workspace, standin):
    second = "Say it again without cutting off."
    run_id, first, nxt = _run_with_fault_on_second_turn(
        standin, "Stream test.", second, cut_stream=True, count=4
    )
    calls = requests_for(standin, second)
    # The CLI retries a cut stream itself too; the cuts outlasted it, so Prefect retried.
    assert [bool((c.get("fault") or {}).get("cut_stream")) for c in calls] == [True] * 4 + [False]
    assert task_run_named(run_id, "resume").run_count >= 2
    assert nxt.text.startswith(f"echo: {second}")
    assert answered(standin, second) == 1
    count, rows, _ = store_state(first.session_id)
    assert count == 2 and [s for _, s in rows] == ["completed", "completed"]
    assert stored_conversation(first.session_id) == ["Stream test.", second]
    assert all(c["user_turns"] == ["Stream test.", second] for c in calls)


@pytest.mark.parametrize(
    ("status", "kind"), [(400, "invalid_request"), (401, "authentication")], ids=["400", "401"]
)
def test_a_permanent_failure_ends_the_task_at_once_with_a_clear_error(
    workspace, standin, status, kind
):
    second = f"This will get a {status}."
    state = None

    @flow
    def doomed():
        turn = init_session("Before the failure.", agent=ECHO)
        return turn, resume_session(turn, second, return_state=True)

    standin.inject(latency_s=0.001, count=1)
    standin.inject(status=status, count=None)
    first, state = doomed()

    assert state.is_failed()
    with pytest.raises(PermanentAgentError) as info:
        state.result()
    err = info.value
    assert err.kind == kind and err.status == status and str(err)
    assert f"kind={kind!r}, status={status}" in repr(err)
    # No Prefect retry: one attempt (whatever the CLI tried by itself), no answer.
    run_id = state.state_details.flow_run_id
    assert task_run_named(run_id, "resume").run_count == 1
    statuses = {c["status"] for c in requests_for(standin, second)}
    assert statuses == {status}
    count, rows, _ = store_state(first.session_id)
    assert count == 1 and [s for _, s in rows] == ["completed", "failed"]
    assert stored_conversation(first.session_id)[0] == "Before the failure."
