"""Concurrent flows: two resume one session at once (one waits, turns never interleave), eight
work on eight sessions at once through one PostgreSQL store (all complete).

A claim left by a killed worker expiring is covered at the service level by
tests/sessions/test_durability.py (test_killed_mid_turn_then_rerun_...) and at the flow level by
test_flow_crash.py here (the re-run waits out the dead process's claim)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect import flow
from prefect_claude_sessions.storage import claims, open_db
from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import requests_for, store_state, stored_conversation, wait_for

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@flow
def start(prompt: str):
    return init_session(prompt, agent=ECHO)


@flow
def follow_up(session_id: str, prompt: str):
    return resume_session(session_id, prompt)


@flow
def short_conversation(n: int):
    turn = init_session(f"Ticket {n}.", agent=ECHO)
    return resume_session(turn, f"Close ticket {n}.")


def test_two_flows_resuming_one_session_take_turns(workspace, standin):
    first = start("Count with me.")
    standin.inject(latency_s=3, count=1)  # whoever goes first is slow
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(follow_up, first.session_id, "One.")
        wait_for(lambda: requests_for(standin, "One."), what="the first flow's prompt")
        with open_db(get_service().store.engine) as db:
            holder = claims.current_holder(db, first.session_id)
        assert holder is not None
        two = pool.submit(follow_up, first.session_id, "Two.")
        turns = [one.result(timeout=120), two.result(timeout=120)]

    assert {t.session_id for t in turns} == {first.session_id}
    # No interleaving: "Two." was sent only after "One." was answered, and saw it.
    (one_call,) = requests_for(standin, "One.")
    (two_call,) = requests_for(standin, "Two.")
    assert one_call["user_turns"] == ["Count with me.", "One."]
    assert two_call["user_turns"] == ["Count with me.", "One.", "Two."]
    assert two_call["ts"] >= one_call["ts"] + 3
    count, rows, _ = store_state(first.session_id)
    assert count == 3 and [s for _, s in rows] == ["completed"] * 3
    assert stored_conversation(first.session_id) == ["Count with me.", "One.", "Two."]


@pytest.mark.postgres
def test_eight_flows_on_eight_sessions_at_once(pg_workspace, standin):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(short_conversation, range(8)))

    assert len({t.session_id for t in results}) == 8
    for n, turn in enumerate(results):
        assert turn.text.startswith(f"echo: Close ticket {n}.")
        count, rows, _ = store_state(turn.session_id)
        assert count == 2 and [s for _, s in rows] == ["completed"] * 2
        assert stored_conversation(turn.session_id) == [f"Ticket {n}.", f"Close ticket {n}."]
        assert len(requests_for(standin, f"Close ticket {n}.")) == 1
