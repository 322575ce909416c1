"""Explore-approaches and the manual-operation flows, in-process with the real CLI."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect_claude_sessions.flows import manual
from prefect_claude_sessions.flows.explore import explore_approaches
from prefect_claude_sessions.flows.profiles import get_profile
from prefect_claude_sessions.storage import (
    SessionOrigin,
    checkpoints,
    decisions,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.tasks import init_session

from .conftest import artifacts, engine, main_requests, run_flow

pytestmark = [pytest.mark.cli, pytest.mark.slow]

APPROACHES = ["add an index", "cache the report", "precompute nightly"]


@flow
def start_session(prompt: str, agent: str = "explorer") -> str:
    return init_session(prompt, agent=get_profile(agent)).session_id


def test_explore_forks_each_approach_and_records_the_choice(workspace, standin):
    result, run_id = run_flow(
        explore_approaches, approaches=APPROACHES, problem="The monthly report takes 40 s."
    )
    base = result.base_session_id
    assert [o.approach for o in result.outcomes] == APPROACHES
    assert len({o.session_id for o in result.outcomes} | {base}) == len(APPROACHES) + 1
    assert result.chosen in APPROACHES
    for outcome in result.outcomes:
        # Each fork carries the base conversation and answered its own approach.
        assert f"Explore this approach: {outcome.approach}" in outcome.result
        assert "earlier user turns: 1" in outcome.result
        assert "first: The monthly report takes 40 s." in outcome.result
    with open_db(engine()) as db:
        forks = sessions.children(db, base)
        assert {f.id for f in forks} == {o.session_id for o in result.outcomes}
        assert {f.origin for f in forks} == {SessionOrigin.fork}
        assert sessions.get_session(db, base).turn_count == 1  # the parent is untouched
        chosen = decisions.list_decisions(db, session_id=base, key="approach-chosen")
        assert len(chosen) == 1
        assert chosen[0].payload["approach"] == result.chosen
        assert chosen[0].payload["session_id"] in {f.id for f in forks}
    table = artifacts(run_id, "explore-approaches")[0]["data"]
    assert [row["approach"] for row in table] == APPROACHES
    assert [row["approach"] for row in table if row["chosen"] == "yes"] == [result.chosen]


def test_explore_from_a_checkpoint(workspace, standin):
    base, _ = run_flow(start_session, prompt="Remember: the budget is 5 ms.")
    ck, _ = run_flow(manual.checkpoint, session_id=base, label="budget-set")
    run_flow(manual.resume, session_id=base, prompt="Now the budget is 50 ms.")
    result, _ = run_flow(
        explore_approaches, approaches=APPROACHES[:2], session_id=base, checkpoint_id=ck.id
    )
    for outcome in result.outcomes:
        # Branched at the checkpoint: the later turn is not part of the fork's history.
        assert "earlier user turns: 1" in outcome.result
    with open_db(engine()) as db:
        for outcome in result.outcomes:
            assert sessions.get_session(db, outcome.session_id).fork_point == ck.transcript_uuid

    bad = explore_approaches(approaches=["x"], return_state=True)
    assert bad.is_failed()  # neither a session nor a problem


def test_manual_operations(workspace, standin):
    base, _ = run_flow(start_session, prompt="The code word is PELICAN.")

    turn, _ = run_flow(manual.resume, session_id=base, prompt="What is the code word?")
    assert turn.session_id == base and turn.operation == "resume"
    assert "earlier user turns: 1" in turn.text

    ck, _ = run_flow(manual.checkpoint, session_id=base, label="after-question")
    assert ck.session_id == base and ck.transcript_uuid == turn.assistant_uuid

    run_flow(manual.resume, session_id=base, prompt="Forget it.")

    forked, _ = run_flow(manual.fork, session_id=base, prompt="Side quest", checkpoint_id=ck.id)
    assert forked.parent_id == base and forked.session_id != base
    assert "earlier user turns: 2" in forked.text  # at the checkpoint, before "Forget it."

    handed, _ = run_flow(
        manual.handoff, session_id=base, prompt="Settle the invoice.", to_agent="billing-specialist"
    )
    assert handed.text.startswith("[You are the billing specialist.]")
    assert "earlier user turns: 3" in handed.text

    before = len(main_requests(standin))
    rewound, _ = run_flow(manual.rewind, checkpoint_id=ck.id)
    assert rewound.operation == "rewind" and rewound.text == ""
    assert len(main_requests(standin)) == before  # a rewind without a prompt asks nothing
    answered, _ = run_flow(manual.rewind, checkpoint_id=ck.id, prompt="Try again")
    assert "earlier user turns: 2" in answered.text

    view, show_run = run_flow(manual.show, session_id=base)
    assert view.id == base and view.turns == 3 and view.origin == "init"
    assert [c["label"] for c in view.checkpoints] == ["after-question"]
    markdown = artifacts(show_run, "session-show")[0]["data"]
    assert base in markdown and "## Lineage" in markdown
    for child in (forked.session_id, handed.session_id, rewound.session_id):
        assert child[:8] in markdown

    with open_db(engine()) as db:
        origins = {c.id: c.origin for c in sessions.children(db, base)}
        assert origins[forked.session_id] == SessionOrigin.fork
        assert origins[handed.session_id] == SessionOrigin.handoff
        assert origins[rewound.session_id] == SessionOrigin.rewind
        assert origins[answered.session_id] == SessionOrigin.rewind
        assert len(turns.list_turns(db, base)) == 3
        assert len(checkpoints.list_checkpoints(db, base)) == 1

    unknown = manual.handoff(session_id=base, prompt="x", to_agent="nobody", return_state=True)
    assert unknown.is_failed()  # not one of the known profiles (a choice in the run form)
    assert "billing-specialist" in str(unknown.result(raise_on_failure=False))
