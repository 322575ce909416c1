"""ask_human for real: a flow pauses on a Prefect test server, the test answers it the way the
dashboard's form does (``resume_flow_run`` with ``run_input``), the answer is recorded beside the
session and asking again returns it without pausing."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_runs import resume_flow_run
from prefect.input import RunInput
from prefect_claude_sessions.storage import SessionPurged, decisions, open_db
from prefect_claude_sessions.tasks import (
    AgentProfile,
    HumanAnswer,
    HumanTimeout,
    ask_human,
    init_session,
)
from prefect_claude_sessions.tasks.errors import InvalidInput
from prefect_claude_sessions.tasks.retention import purge_session
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import Recorder

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
QUESTION = "Send the draft reply to ACME?"


class EditForm(RunInput):
    approved: bool
    reply: str


def run_in_thread(fn, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run a flow in a thread; ``out`` gets its state (or the exception) when it ends."""
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["state"] = fn(*args, return_state=True, **kwargs)
        except BaseException as exc:  # pragma: no cover - shown by the assertions
            out["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, out


def wait_paused(holder: dict[str, Any], timeout_s: float = 60) -> Any:
    """The flow run once the server has it paused (found through the Prefect client)."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run_id = holder.get("flow_run_id")
            if run_id is not None:
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_paused():
                    return run
            time.sleep(0.2)
    raise AssertionError("the flow run never paused")


def human_records(session_id: str) -> list[dict]:
    with open_db(get_service().store.engine) as db:
        return [d.payload for d in decisions.list_decisions(db, session_id=session_id, key="human")]


@pytest.fixture
def events(workspace, monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(get_service(), "emit", recorder)
    return recorder


def test_a_paused_flow_is_answered_through_the_api_and_the_answer_is_kept(
    workspace, standin, events
):
    holder: dict[str, Any] = {}

    @flow
    def review():
        turn = init_session("Draft a reply to ACME about the outage.", agent=ECHO)
        holder["flow_run_id"] = FlowRunContext.get().flow_run.id
        holder["turn"] = turn
        answer = ask_human(
            turn, QUESTION, timeout_s=120, poll_interval_s=0.5, idempotency_key="acme-1"
        )
        again = ask_human(
            turn, QUESTION, timeout_s=120, poll_interval_s=0.5, idempotency_key="acme-1"
        )
        return answer, again

    thread, out = run_in_thread(review)
    run = wait_paused(holder)
    turn = holder["turn"]
    (requested,) = events.named("human.requested")
    assert requested["session_id"] == turn.session_id
    assert requested["payload"]["question"] == QUESTION
    assert requested["payload"]["fields"] == ["approved", "comment"]
    assert requested["payload"]["headline"] == QUESTION.splitlines()[0][:120]
    assert requested["agent"] == turn.agent
    assert [r["status"] for r in human_records(turn.session_id)] == ["pending"]

    # The dashboard's form shows the question above its fields.
    with get_client(sync_client=True) as client:
        keyset = client.read_flow_run(run.id).state.state_details.run_input_keyset
        shown = json.loads(client.read_flow_run_input(run.id, keyset["description"]))
    assert shown.startswith(QUESTION) and turn.session_id in shown

    # An answer that fails the form's validation is refused; the run stays paused.
    with pytest.raises(RuntimeError, match="Cannot resume"):
        resume_flow_run(run.id, run_input={"approved": "perhaps", "comment": 3})
    assert wait_paused(holder).state.is_paused()

    resumed = time.time()
    resume_flow_run(run.id, run_input={"approved": True, "comment": "fine, send it"})
    thread.join(60)
    assert "error" not in out and out["state"].is_completed(), out
    answer, again = out["state"].result()
    assert isinstance(answer, HumanAnswer)
    assert (answer.approved, answer.comment) == (True, "fine, send it")
    assert answer.fields == {"approved": True, "comment": "fine, send it"}
    assert answer.session_id == turn.session_id and not answer.replayed
    assert answer.answered_at is not None
    assert abs(answer.answered_at.timestamp() - resumed) < 30
    assert answer.answered_by is None  # Prefect OSS does not record who resumed a run
    assert again.replayed and again.fields == answer.fields
    assert again.request_id == answer.request_id
    records = human_records(turn.session_id)
    assert [r["status"] for r in records] == ["pending", "answered"]
    assert records[1]["answer"] == {"approved": True, "comment": "fine, send it"}
    assert records[1]["question"] == QUESTION and records[1]["flow_run_id"] == str(run.id)
    assert len(events.named("human.requested")) == 1  # the replay asked nobody

    # A re-run (a new flow run) of the answered request returns the stored answer, no pause.
    @flow
    def rerun():
        holder["rerun_id"] = FlowRunContext.get().flow_run.id
        return ask_human(turn, QUESTION, timeout_s=5, idempotency_key="acme-1")

    started = time.monotonic()
    stored = rerun()
    assert time.monotonic() - started < 20
    assert stored.replayed and stored.approved is True and stored.comment == "fine, send it"
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(holder["rerun_id"])
    assert not any(s.is_paused() for s in states)
    assert len(human_records(turn.session_id)) == 2


def test_a_custom_form_and_a_timeout(workspace, standin, events):
    holder: dict[str, Any] = {}

    @flow
    def edit():
        turn = init_session("Draft a reply to Globex.", agent=ECHO)
        holder["flow_run_id"] = FlowRunContext.get().flow_run.id
        holder["turn"] = turn
        return ask_human(turn, "Edit the reply?", form=EditForm, timeout_s=120, poll_interval_s=0.5)

    thread, out = run_in_thread(edit)
    run = wait_paused(holder)
    assert events.named("human.requested")[0]["payload"]["fields"] == ["approved", "reply"]
    resume_flow_run(run.id, run_input={"approved": False, "reply": "Dear Globex, ..."})
    thread.join(60)
    answer = out["state"].result()
    assert (answer.approved, answer.reply) == (False, "Dear Globex, ...")

    session_id = holder["turn"].session_id

    @flow
    def nobody_answers():
        try:
            return ask_human(session_id, "Anyone there?", timeout_s=2, poll_interval_s=0.5)
        except HumanTimeout as exc:
            holder["timeout"] = exc
            raise

    state = nobody_answers(return_state=True)
    # Prefect fails a run whose pause expired; the flow body got the clear error
    assert state.is_failed()
    assert isinstance(holder["timeout"], HumanTimeout)
    assert re.search(r"'Anyone there\?'.*within 2 s", str(holder["timeout"]))
    assert not holder["timeout"].transient
    statuses = [(r["question"], r["status"]) for r in human_records(session_id)]
    assert ("Anyone there?", "pending") in statuses and ("Anyone there?", "timed_out") in statuses


def test_bad_input_is_refused_before_anything_is_recorded(workspace, standin, events):
    @flow
    def make():
        return init_session("Remember HERON.", agent=ECHO)

    turn = make()

    def asked(**kwargs: Any):
        @flow
        def ask():
            return ask_human(
                kwargs.pop("session", turn), kwargs.pop("question", QUESTION), **kwargs
            )

        return ask(return_state=True).result(raise_on_failure=False)

    assert isinstance(asked(form=dict), InvalidInput)
    assert "form must be a prefect.input.RunInput subclass" in str(asked(form=dict))
    assert "question must be a non-empty string" in str(asked(question="  "))
    assert "timeout_s must be a positive number" in str(asked(timeout_s=-1))
    with pytest.raises(InvalidInput, match="called in a flow body"):
        ask_human(turn, QUESTION)
    assert human_records(turn.session_id) == []
    assert events.named("human.requested") == []

    purge_session(get_service().store, turn.session_id)
    assert isinstance(asked(), SessionPurged)
    assert events.named("human.requested") == []
