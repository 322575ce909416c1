"""The e-mail triage digital employee, run in-process with the real CLI against the stand-in."""

from __future__ import annotations

import json

import pytest
from prefect_claude_sessions.flows.profiles import SPECIALIST_FOR_CATEGORY
from prefect_claude_sessions.flows.triage import Email, email_triage, load_inbox
from prefect_claude_sessions.storage import SessionOrigin, decisions, open_db, sessions

from .conftest import artifacts, engine, main_requests, run_flow, triage_requests

pytestmark = [pytest.mark.cli, pytest.mark.slow]

EXPECTED_CATEGORY = {"msg-0001": "technical", "msg-0002": "billing", "msg-0003": "account"}


def test_triage_keeps_one_session_across_runs_and_never_repeats(workspace_any_db, standin):
    inbox = load_inbox()
    results, run_id = run_flow(email_triage, review_priorities=[], team="support")

    # One long-lived team session; every e-mail a turn of it, each decided once.
    assert [r.email_id for r in results] == [e.id for e in inbox]
    team_session = results[0].session_id
    assert {r.session_id for r in results} == {team_session}
    for email_id, category in EXPECTED_CATEGORY.items():
        assert next(r for r in results if r.email_id == email_id).category == category
    seen = triage_requests(standin)
    assert len(seen) == len(inbox)
    # The model saw every earlier e-mail of the inbox when triaging the last one.
    assert len(seen[-1]["user_turns"]) == len(inbox)
    assert json.loads(results[-1].reply and seen[-1]["reply_text"])["earlier_emails"] == 7

    handed = [r for r in results if r.category in SPECIALIST_FOR_CATEGORY]
    assert handed, "the sample inbox has technical and billing cases"
    with open_db(engine()) as db:
        record = sessions.get_session(db, team_session)
        assert record.agent_name == "triage-support"
        assert record.origin == SessionOrigin.init
        assert record.turn_count == len(inbox)
        logged = decisions.list_decisions(db, session_id=team_session, key="triage")
        assert sorted(d.payload["email_id"] for d in logged) == sorted(e.id for e in inbox)
        children = sessions.children(db, team_session)
        assert {c.id for c in children} == {r.specialist_session_id for r in handed}
        for result in handed:
            child = sessions.get_session(db, result.specialist_session_id)
            assert child.origin == SessionOrigin.handoff
            assert child.parent_id == team_session
            assert child.agent_name == SPECIALIST_FOR_CATEGORY[result.category]
        handoffs = decisions.list_decisions(db, session_id=team_session, key="handoff")
        assert len(handoffs) == len(handed)
    for result in handed:
        # The specialist's own system prompt reached the model, with the conversation so far.
        assert result.specialist_answer.startswith("[You are the")
        assert "specialist" in result.specialist_answer.split("]")[0]
        assert "earlier user turns: 0" not in result.specialist_answer
    assert all(r.specialist_session_id is None for r in results if r not in handed)

    table = artifacts(run_id, "triage-results-support")
    assert len(table) == 1 and len(table[0]["data"]) == len(inbox)
    assert {row["category"] for row in table[0]["data"]} >= {"technical", "billing", "account"}
    progress = artifacts(run_id, "triage-progress-support")
    assert progress and float(progress[0]["data"]) == pytest.approx(100.0)

    # A second scheduled run over the same inbox: nothing is sent, nothing recorded twice.
    standin.clear_requests()
    again, _ = run_flow(email_triage, review_priorities=[], team="support")
    assert main_requests(standin) == []
    assert all(r.already_triaged for r in again)
    assert [(r.email_id, r.category, r.specialist_session_id) for r in again] == [
        (r.email_id, r.category, r.specialist_session_id) for r in results
    ]
    with open_db(engine()) as db:
        assert sessions.get_session(db, team_session).turn_count == len(inbox)
        assert len(decisions.list_decisions(db, session_id=team_session)) == len(inbox) + len(
            handed
        )

    # A later inbox with one old and one new e-mail: only the new one is sent, in the same
    # session, and the model sees all earlier e-mails.
    new = Email(
        id="msg-0100", sender="ap@contoso.example", subject="Refund", body="Where is my refund?"
    )
    third, _ = run_flow(email_triage, review_priorities=[], team="support", emails=[inbox[0], new])
    assert third[0].already_triaged and not third[1].already_triaged
    assert third[1].session_id == team_session
    assert third[1].category == "billing" and third[1].specialist_session_id
    seen = triage_requests(standin)
    assert len(seen) == 1
    assert len(seen[0]["user_turns"]) == len(inbox) + 1
    assert seen[0]["user_turns"][0] == inbox[0].as_prompt()


def test_teams_have_separate_sessions_and_bad_team_names_fail(workspace, standin):
    one = [Email(id="a-1", subject="Hi", body="Please send me a quote for 10 seats.")]
    sales, _ = run_flow(
        email_triage, review_priorities=[], team="sales-eu", emails=one, hand_off=False
    )
    other, _ = run_flow(
        email_triage, review_priorities=[], team="sales-us", emails=one, hand_off=False
    )
    assert sales[0].session_id != other[0].session_id
    assert not sales[0].already_triaged and not other[0].already_triaged
    assert len(triage_requests(standin)) == 2

    state = email_triage(team="Sales EU", emails=one, review_priorities=[], return_state=True)
    assert state.is_failed()
    assert "lower-case" in state.message or "lower-case" in str(
        state.result(raise_on_failure=False)
    )


def test_a_run_that_crashed_after_opening_the_session_does_not_resend_its_first_email(
    workspace, standin
):
    """The first e-mail opens the team session with an init turn; if the run dies before the
    decision is recorded, the re-run replays that init instead of resuming with the e-mail."""
    from prefect import flow
    from prefect_claude_sessions.flows.profiles import team_profile
    from prefect_claude_sessions.tasks import init_session

    first, second = load_inbox()[:2]

    @flow
    def crashed_run():
        init_session(
            first.as_prompt(), agent=team_profile("ops"), idempotency_key=f"triage:ops:{first.id}"
        )

    crashed_run()
    results, _ = run_flow(
        email_triage, review_priorities=[], team="ops", emails=[first, second], hand_off=False
    )

    prompts = [r["user_turns"][-1] for r in triage_requests(standin)]
    assert prompts == [first.as_prompt(), second.as_prompt()]  # the first e-mail went out once
    assert results[0].session_id == results[1].session_id
    with open_db(engine()) as db:
        logged = decisions.list_decisions(db, session_id=results[0].session_id, key="triage")
        assert sorted(d.payload["email_id"] for d in logged) == [first.id, second.id]
        assert sessions.get_session(db, results[0].session_id).turn_count == 2
