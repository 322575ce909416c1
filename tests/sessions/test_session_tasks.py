"""The session tasks inside real Prefect flows, with the real SDK and CLI against the stand-in
model, on SQLite and PostgreSQL. Each semantic is proven from what the model received."""

from __future__ import annotations

import pytest
from prefect import flow, unmapped
from prefect_claude_sessions.storage import (
    SessionOrigin,
    TurnStatus,
    checkpoints,
    decisions,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.tasks import (
    AgentProfile,
    checkpoint_session,
    fork_session,
    handoff_session,
    init_session,
    record_decision,
    resume_session,
    rewind_session,
)
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import main_requests, prompts_sent

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
TRIAGE = AgentProfile(name="triage", system_prompt="You are the triage agent for support e-mail.")
BILLING = AgentProfile(
    name="billing", system_prompt="You are the billing specialist. You settle invoices and refunds."
)


def last_request_for(standin, prompt: str) -> dict:
    matches = [
        r for r in main_requests(standin) if r["user_turns"] and r["user_turns"][-1] == prompt
    ]
    assert matches, f"the model never received {prompt!r}"
    return matches[-1]


def store_engine():
    return get_service().store.engine


def test_resume_sends_every_earlier_turn(workspace, standin):
    @flow
    def conversation():
        first = init_session("Remember the code word PELICAN.", agent=ECHO)
        second = resume_session(first, "Which code word did I give you?")
        third = resume_session(second, "And once more?")
        return first, second, third

    first, second, third = conversation()

    assert first.session_id == second.session_id == third.session_id
    seen = last_request_for(standin, "And once more?")["user_turns"]
    assert seen == [
        "Remember the code word PELICAN.",
        "Which code word did I give you?",
        "And once more?",
    ]
    with open_db(store_engine()) as db:
        record = sessions.get_session(db, first.session_id)
        assert record.turn_count == 3
        assert record.origin == SessionOrigin.init
        assert record.transcript_bytes > 0
        rows = turns.list_turns(db, first.session_id)
        assert [r.status for r in rows] == [TurnStatus.completed] * 3
        assert len({r.idempotency_key for r in rows}) == 3


def test_fork_branches_without_touching_the_parent_and_runs_in_parallel(workspace, standin):
    approaches = [
        "Try approach A: indexes.",
        "Try approach B: caching.",
        "Try approach C: fewer queries.",
    ]

    @flow
    def explore():
        base = init_session("The report query takes 30 seconds.", agent=ECHO)
        base = resume_session(base, "We measured it twice.")
        forks = fork_session.map(unmapped(base), approaches)
        return base, [f.result() for f in forks]

    base, forks = explore()

    assert len({f.session_id for f in forks}) == 3
    assert all(f.parent_id == base.session_id and f.session_id != base.session_id for f in forks)
    for prompt in approaches:
        assert last_request_for(standin, prompt)["user_turns"] == [
            "The report query takes 30 seconds.",
            "We measured it twice.",
            prompt,
        ]
    with open_db(store_engine()) as db:
        parent = sessions.get_session(db, base.session_id)
        assert parent.turn_count == 2
        kids = sessions.children(db, base.session_id)
        assert sorted(k.id for k in kids) == sorted(f.session_id for f in forks)
        assert {k.origin for k in kids} == {SessionOrigin.fork}
    parent_entries_before = get_service().store.entries(base.session_id)
    # A later resume of the parent does not see any fork's prompt.
    resume_session.fn(base.session_id, "Back on the main line.")
    seen = last_request_for(standin, "Back on the main line.")["user_turns"]
    assert not set(approaches) & set(seen)
    assert len(get_service().store.entries(base.session_id)) > len(parent_entries_before)


def test_fork_at_a_checkpoint_branches_from_that_point(workspace, standin):
    @flow
    def branch():
        one = init_session("Step one: gather logs.", agent=ECHO)
        mark = checkpoint_session(one, label="after-step-one")
        two = resume_session(one, "Step two: blame the network.")
        alt = fork_session(two, "Step two instead: check the disk.", at=mark)
        return mark, two, alt

    mark, two, alt = branch()

    assert mark.session_id == two.session_id
    assert alt.parent_id == two.session_id
    assert last_request_for(standin, "Step two instead: check the disk.")["user_turns"] == [
        "Step one: gather logs.",
        "Step two instead: check the disk.",
    ]
    with open_db(store_engine()) as db:
        stored = checkpoints.list_checkpoints(db, two.session_id)
        assert [c.label for c in stored] == ["after-step-one"]
        assert sessions.get_session(db, alt.session_id).fork_point == mark.transcript_uuid


def test_handoff_reaches_the_model_with_the_specialists_prompt_and_the_conversation(
    workspace, standin
):
    email = "Subject: charged twice\n\nHi, my invoice 1182 was charged twice this month."

    @flow
    def triage_then_billing():
        triaged = init_session(email, agent=TRIAGE)
        return triaged, handoff_session(triaged, "Please settle this refund.", to=BILLING)

    triaged, billing = triage_then_billing()

    received = last_request_for(standin, "Please settle this refund.")
    assert "You are the billing specialist" in received["system"]
    assert "triage agent" not in received["system"]
    assert received["user_turns"][0] == email
    assert billing.agent == "billing" and billing.parent_id == triaged.session_id
    with open_db(store_engine()) as db:
        record = sessions.get_session(db, billing.session_id)
        assert (record.origin, record.parent_id, record.agent_name) == (
            SessionOrigin.handoff,
            triaged.session_id,
            "billing",
        )
        # The triage session keeps its own prompt and history.
        assert sessions.get_session(db, triaged.session_id).turn_count == 1


def test_rewind_continues_from_the_checkpoint_as_a_new_branch(workspace, standin):
    @flow
    def rollback():
        one = init_session("Plan: migrate the users table.", agent=ECHO)
        mark = checkpoint_session(one, label="planned")
        resume_session(one, "Drop the old column now.")
        branch = rewind_session(mark)
        return one, mark, branch, resume_session(branch, "Instead, keep the old column.")

    requests_before = len(main_requests(standin))
    one, _mark, branch, _after = rollback()

    assert branch.session_id not in (one.session_id,)
    assert branch.parent_id == one.session_id and branch.operation == "rewind"
    # Rewinding itself sent nothing: only the three prompts reached the model.
    assert len(main_requests(standin)) - requests_before == 3
    assert last_request_for(standin, "Instead, keep the old column.")["user_turns"] == [
        "Plan: migrate the users table.",
        "Instead, keep the old column.",
    ]
    with open_db(store_engine()) as db:
        assert sessions.get_session(db, branch.session_id).origin == SessionOrigin.rewind
        assert sessions.get_session(db, one.session_id).turn_count == 2


def test_a_flow_retry_sends_no_prompt_twice_and_records_nothing_twice(workspace, standin, tmp_path):
    crashed_once = tmp_path / "crashed-once"

    @flow(retries=1, retry_delay_seconds=0)
    def flaky():
        first = init_session("Open ticket 7 for the outage.", agent=ECHO)
        second = resume_session(first, "Escalate ticket 7.")
        record_decision(second, "escalation", {"ticket": 7, "level": 2})
        if not crashed_once.exists():
            crashed_once.touch()
            raise RuntimeError("the worker fell over after the turns")
        return first, second

    first, _second = flaky()

    assert prompts_sent(standin, "Open ticket 7 for the outage.") == 1
    assert prompts_sent(standin, "Escalate ticket 7.") == 1
    with open_db(store_engine()) as db:
        assert len(turns.list_turns(db, first.session_id)) == 2
        assert sessions.get_session(db, first.session_id).turn_count == 2
        logged = decisions.list_decisions(db, session_id=first.session_id)
        assert [(d.key, d.payload) for d in logged] == [("escalation", {"ticket": 7, "level": 2})]


def test_an_explicit_idempotency_key_dedupes_across_flow_runs(workspace, standin):
    @flow
    def inbox(message_id: str):
        return init_session("Customer asks for a callback.", agent=ECHO, idempotency_key=message_id)

    a = inbox("msg-001")
    b = inbox("msg-001")
    c = inbox("msg-002")

    assert a.session_id == b.session_id != c.session_id
    assert b.replayed and not a.replayed
    assert prompts_sent(standin, "Customer asks for a callback.") == 2
