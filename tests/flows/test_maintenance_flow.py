"""The maintenance flow: size monitoring, compaction with lineage, retention, dry runs."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect_claude_sessions.flows.maintenance import REPORT_KEY, SIZES_KEY, session_maintenance
from prefect_claude_sessions.storage import (
    SessionOrigin,
    SessionPurged,
    SessionStatus,
    decisions,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.tasks import (
    AgentProfile,
    init_session,
    record_decision,
    resume_session,
)
from prefect_claude_sessions.tasks.compaction import SUMMARY_REQUEST, compact
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import artifacts, engine, main_requests, run_flow

pytestmark = [pytest.mark.cli, pytest.mark.slow]

CHATTY = AgentProfile(name="chatty", system_prompt="You are a careful assistant.")
QUIET = AgentProfile(name="quiet", system_prompt="You are a terse assistant.")


@flow
def conversation(agent: AgentProfile, prompts: list[str]) -> str:
    turn = init_session(prompts[0], agent=agent)
    for prompt in prompts[1:]:
        turn = resume_session(turn, prompt)
    record_decision(turn, "note", {"kept": True})
    return turn.session_id


def state_of(session_id: str) -> tuple:
    with open_db(engine()) as db:
        record = sessions.get_session(db, session_id)
        return record.status, record.turn_count, len(sessions.children(db, session_id))


def test_compaction_retention_and_dry_run(workspace, standin):
    long_id, _ = run_flow(
        conversation,
        agent=CHATTY,
        prompts=["The code word is PELICAN.", "The budget is 5 ms.", "Ship on Friday."],
    )
    short_id, _ = run_flow(conversation, agent=QUIET, prompts=["Hello."])
    with open_db(engine()) as db:
        long_bytes = sessions.get_session(db, long_id).transcript_bytes
    assert long_bytes > 0

    # Dry run: the plan is reported, nothing changes, the model is not asked.
    standin.clear_requests()
    plan, dry_run = run_flow(session_maintenance, compact_over_bytes=1, dry_run=True)
    assert plan.dry_run and [c.session_id for c in plan.compacted] == [long_id]
    assert plan.purged == []
    assert state_of(long_id) == (SessionStatus.active, 3, 0)
    assert main_requests(standin) == []
    sizes = artifacts(dry_run, SIZES_KEY)[0]["data"]
    assert {row["session"] for row in sizes} == {long_id, short_id}
    assert sizes[0]["session"] == long_id  # largest first
    assert "would be compacted" in artifacts(dry_run, REPORT_KEY)[0]["data"]

    # Real run: the long session (3 turns) is compacted, the 1-turn one is below min_turns.
    report, _ = run_flow(session_maintenance, compact_over_bytes=1)
    assert [c.session_id for c in report.compacted] == [long_id]
    child_id = report.compacted[0].new_session_id
    assert child_id and report.purged == []  # archived just now: within retention_days=30
    with open_db(engine()) as db:
        parent = sessions.get_session(db, long_id)
        child = sessions.get_session(db, child_id)
        assert parent.status == SessionStatus.archived
        assert child.origin == SessionOrigin.compaction
        assert child.parent_id == long_id
        assert child.agent_name == "chatty" and child.status == SessionStatus.active
        assert child.turn_count == 1
        assert child.fork_point == turns.list_turns(db, long_id)[-1].assistant_uuid
        assert sessions.get_session(db, short_id).status == SessionStatus.active
    # The fresh session's first prompt carries the old conversation.
    (first,) = main_requests(standin)
    carried = first["user_turns"][0]
    assert first["session_id"] == child_id
    assert "PELICAN" in carried and "Ship on Friday." in carried and long_id in carried
    assert len(first["user_turns"]) == 1

    # Compacting the same session at the same point again gives the same child, sends nothing.
    standin.clear_requests()
    again = compact(get_service(), long_id, ctx=RunContext(flow_run_id=None, task_run_id=None))
    assert again.session_id == child_id and again.replayed
    assert main_requests(standin) == []

    # Retention: dry run lists the archived session, then a real run deletes its transcript
    # and keeps the records.
    plan, _ = run_flow(session_maintenance, retention_days=0, dry_run=True)
    assert plan.purged == [long_id] and plan.compacted == []
    assert get_service().store.entries(long_id)
    report, _ = run_flow(session_maintenance, retention_days=0)
    assert report.purged == [long_id] and report.compacted == []
    with pytest.raises(SessionPurged, match=long_id):  # the store refuses a purged session
        get_service().store.entries(long_id)
    with open_db(engine()) as db:
        parent = sessions.get_session(db, long_id)
        assert parent.status == SessionStatus.purged
        assert parent.transcript_bytes == 0 and parent.turn_count == 3
        assert len(turns.list_turns(db, long_id)) == 3
        assert len(decisions.list_decisions(db, session_id=long_id)) == 1
        assert sessions.get_session(db, child_id).status == SessionStatus.active
    # The compacted session is still a live conversation.
    assert get_service().store.entries(child_id)
    # Purged sessions are no longer measured.
    last, _ = run_flow(session_maintenance)
    assert last.sessions == 2 and long_id not in {s.session_id for s in last.largest}


def test_compaction_with_the_agents_own_summary(workspace, standin):
    session_id, _ = run_flow(
        conversation, agent=CHATTY, prompts=["The code word is HERON.", "Deadline: June."]
    )
    report, _ = run_flow(
        session_maintenance,
        compact_over_bytes=0,
        compact_over_tokens=1,
        agent="chatty",
        summarize_with_agent=True,
    )
    assert [c.session_id for c in report.compacted] == [session_id]
    assert "tokens" in report.compacted[0].reason
    child_id = report.compacted[0].new_session_id
    # The agent was asked for a summary in its own session, and its answer was carried over.
    asked = [r for r in main_requests(standin) if r["user_turns"][-1] == SUMMARY_REQUEST]
    assert len(asked) == 1 and asked[0]["user_turns"][0] == "The code word is HERON."
    (carried,) = [r for r in main_requests(standin) if r["session_id"] == child_id]
    assert f"echo: {SUMMARY_REQUEST}" in carried["user_turns"][0]
    assert state_of(session_id) == (SessionStatus.archived, 3, 1)
