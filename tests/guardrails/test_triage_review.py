"""The triage flow uses the guardrails: a P1 e-mail's draft reply waits for a person (the flow
pauses on the ``ReplyReview`` form) before it counts as sent, and the team's session is told the
outcome, so its later drafts can learn from it. A re-run asks nobody and sends nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect_claude_sessions.flows.triage import Email, email_triage
from prefect_claude_sessions.storage import decisions, open_db
from prefect_claude_sessions.tasks.session_tasks import get_service

from .test_ask_human import run_in_thread

pytestmark = [pytest.mark.cli]

URGENT = Email(
    id="rev-1",
    sender="ops@acme.test",
    subject="Production database down",
    body="Our production database is down since 9:00 and nothing works. Urgent!",
)
ROUTINE = Email(
    id="rev-2",
    sender="buyer@acme.test",
    subject="Enterprise pricing",
    body="What does the enterprise plan cost per seat?",
)
EDITED = "We are on it: follow status.acme.test for updates every 30 minutes."


def wait_for_a_paused_run(timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    paused = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=paused)
            if runs:
                return runs[0]
            time.sleep(0.3)
    raise AssertionError("the triage run never paused for the review")


def test_a_p1_reply_waits_for_a_person_and_the_session_learns_the_outcome(workspace, standin):
    thread, out = run_in_thread(
        email_triage, team="review", emails=[URGENT, ROUTINE], hand_off=False
    )
    run = wait_for_a_paused_run()
    # Nothing of the second e-mail was sent while the first one waits for its review.
    assert not any("Enterprise pricing" in r["user_turns"][-1] for r in standin.requests("main"))

    resume_flow_run(
        run.id,
        run_input={"approved": True, "comment": "Always link the status page.", "reply": EDITED},
    )
    thread.join(timeout=180)
    assert not thread.is_alive() and "error" not in out, out
    state = out["state"]
    assert state.is_completed(), state
    urgent, routine = state.result()
    assert (urgent.priority, urgent.reply_status, urgent.reply) == ("P1", "edited", EDITED)
    assert routine.reply_status is None  # not a reviewed priority

    # The team's session was told, before the next e-mail: the model received the outcome once.
    told = [
        r
        for r in standin.requests("main")
        if r["user_turns"][-1].startswith("Review of your reply to e-mail rev-1")
    ]
    assert len(told) == 1
    assert "edited your draft reply" in told[0]["user_turns"][-1]
    assert "Always link the status page." in told[0]["user_turns"][-1]
    last = standin.requests("main")[-1]["user_turns"]
    assert any(t.startswith("Review of your reply to e-mail rev-1") for t in last[:-1])

    # The decision log holds the review beside the triage.
    with open_db(get_service().store.engine) as db:
        triaged = {
            d.payload["email_id"]: d.payload
            for d in decisions.list_decisions(db, session_id=urgent.session_id, key="triage")
        }
        humans = decisions.list_decisions(db, session_id=urgent.session_id, key="human")
    assert triaged["rev-1"]["reply_status"] == "edited" and triaged["rev-1"]["reply"] == EDITED
    assert {h.payload["status"] for h in humans} == {"pending", "answered"}

    # A re-run (a retry, the next schedule) asks nobody and sends nothing.
    sent = len(standin.requests("main"))
    again = email_triage(team="review", emails=[URGENT, ROUTINE], hand_off=False)
    assert [r.already_triaged for r in again] == [True, True]
    assert again[0].reply_status == "edited"
    assert len(standin.requests("main")) == sent


def test_a_rejected_reply_is_not_sent_and_the_session_is_told(workspace, standin):
    thread, out = run_in_thread(
        email_triage, team="review-no", emails=[URGENT], hand_off=False, review_priorities=["P1"]
    )
    run = wait_for_a_paused_run()
    resume_flow_run(run.id, run_input={"approved": False, "comment": "Wrong tone."})
    thread.join(timeout=180)
    (urgent,) = out["state"].result()
    assert urgent.reply_status == "rejected"
    last = standin.requests("main")[-1]["user_turns"][-1]
    assert "rejected your draft reply; it was not sent" in last and "Wrong tone." in last
