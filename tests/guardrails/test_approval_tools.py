"""Tools that need a person's approval, for real: the real CLI runs the stand-in's scripted Write
call; a turn stops before it (``pending_tool``), nothing is written; a person's answer through
the Prefect API (the way the dashboard's form does it) continues the session: approved, the file
is written and the model gets the tool's result; denied, nothing is written and the model gets
the comment. The continuation is one recorded turn, and a replay runs nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.context import FlowRunContext
from prefect.flow_runs import resume_flow_run
from prefect.input import read_flow_run_input
from prefect_claude_sessions.storage import TurnStatus, open_db, turns
from prefect_claude_sessions.tasks import (
    AgentProfile,
    PendingTool,
    SessionTurn,
    init_session,
    resume_session,
    review_pending_tool,
)
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.errors import InvalidInput
from prefect_claude_sessions.tasks.session_tasks import get_service
from pydantic import ValidationError

from tests.sessions.conftest import main_requests

from .test_ask_human import human_records, run_in_thread, wait_paused

pytestmark = [pytest.mark.cli]

WRITER = AgentProfile(
    name="writer", system_prompt="You are a careful assistant.", approval_tools=["Write"]
)
CTX = RunContext(flow_run_id="approval-tests", task_run_id=None)


def write_prompt(name: str, content: str) -> str:
    return f"write file {name} with content: {content}"


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results in the newest user message of a request the model received."""
    last = (request["messages"] or [{}])[-1]
    content = last.get("content") if last.get("role") == "user" else None
    return [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


def stored_turns(service, session_id: str) -> list:
    with open_db(service.store.engine) as db:
        return list(turns.list_turns(db, session_id))


def move_to_another_worker(tmp_path: Path, monkeypatch, name: str) -> None:
    """An empty CLAUDE_CONFIG_DIR: the continuation must restore the session from the store."""
    config = tmp_path / name
    config.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))


def test_a_call_of_an_approval_tool_stops_the_turn_and_is_stored(recorded, standin, workspace):
    service, _ = recorded
    turn = service.init(write_prompt("notes.txt", "hello"), WRITER, ctx=CTX)
    assert isinstance(turn.pending_tool, PendingTool)
    assert turn.pending_tool.name == "Write"
    assert turn.pending_tool.id.startswith("toolu_standin_")
    assert turn.pending_tool.input == {
        "file_path": str(workspace / "notes.txt"),
        "content": "hello",
    }
    assert not (workspace / "notes.txt").exists()  # nothing ran
    # the model was asked once and never got a tool result
    (asked,) = main_requests(standin)
    assert asked["tool_calls"][0]["name"] == "Write" and tool_results(asked) == []
    (row,) = stored_turns(service, turn.session_id)
    assert row.status == TurnStatus.completed
    assert row.pending_tool == turn.pending_tool.model_dump()
    # a replay returns the pending call from the store
    again = service.init(write_prompt("notes.txt", "hello"), WRITER, ctx=CTX)
    assert again.replayed and again.pending_tool == turn.pending_tool
    assert len(main_requests(standin)) == 1
    # the SessionTurn stays JSON-serialisable with its pending call
    assert SessionTurn.model_validate_json(turn.model_dump_json()) == turn

    # a new prompt now is refused: the call waits for its review; nothing is sent
    before = len(main_requests(standin))
    with pytest.raises(InvalidInput, match="waits for a person to review its Write call"):
        service.resume(turn.session_id, "Anything else?", ctx=CTX, anchor=turn.turn_key)
    specialist = AgentProfile(name="spec", system_prompt="You are a specialist.")
    with pytest.raises(InvalidInput, match="waits for a person to review"):
        service.fork(turn.session_id, "Try B", ctx=CTX, anchor=turn.turn_key)
    with pytest.raises(InvalidInput, match="waits for a person to review"):
        service.handoff(turn.session_id, "Take over", to=specialist, ctx=CTX)
    assert len(main_requests(standin)) == before
    assert len(stored_turns(service, turn.session_id)) == 1


def test_approved_on_another_worker_runs_the_tool_and_the_model_goes_on(
    recorded, standin, workspace, tmp_path, monkeypatch
):
    service, events = recorded
    turn = service.init(write_prompt("approved.txt", "APPROVED-CONTENT"), WRITER, ctx=CTX)
    assert turn.pending_tool is not None and not (workspace / "approved.txt").exists()
    standin.clear_requests()
    move_to_another_worker(tmp_path, monkeypatch, "config-b")

    done = service.continue_tool(turn, approved=True, comment="go ahead", ctx=CTX)
    assert (workspace / "approved.txt").read_text() == "APPROVED-CONTENT"
    assert done.pending_tool is None and done.session_id == turn.session_id
    assert done.text.startswith("After the tool: File created successfully")
    # One model call: it received the tool's real result and the whole earlier conversation.
    (received,) = main_requests(standin)
    (result,) = tool_results(received)
    assert result["tool_use_id"] == turn.pending_tool.id and not result.get("is_error")
    assert "File created successfully" in result_text(result)
    assert received["user_turns"][0] == write_prompt("approved.txt", "APPROVED-CONTENT")
    rows = stored_turns(service, turn.session_id)
    assert [(r.status, r.pending_tool is None) for r in rows] == [
        (TurnStatus.completed, False),
        (TurnStatus.completed, True),
    ]
    assert rows[1].assistant_uuid == done.assistant_uuid != turn.assistant_uuid
    (resumed,) = events.named("resumed")
    assert resumed["payload"]["reviewed_tool"] == turn.pending_tool.id
    assert resumed["payload"]["approved"] is True

    # A replay of the review runs nothing and asks nobody.
    (workspace / "approved.txt").unlink()
    standin.clear_requests()
    again = service.continue_tool(turn, approved=True, comment="go ahead", ctx=CTX)
    assert again.replayed and again.text == done.text
    assert main_requests(standin) == [] and not (workspace / "approved.txt").exists()
    # A second, different review of the same call is refused: it was decided.
    with pytest.raises(InvalidInput, match="reviewed already or the session moved on"):
        service.continue_tool(turn, approved=False, ctx=CTX)

    # The session goes on normally; the model sees the approved call in its history.
    nxt = service.resume(turn.session_id, "Which file?", ctx=CTX, anchor=done.turn_key)
    assert nxt.pending_tool is None
    last = main_requests(standin)[-1]
    assert last["user_turns"][-1] == "Which file?"
    assert "File created successfully" in json.dumps(last["messages"])


def test_denied_the_tool_never_runs_and_the_model_gets_the_comment(
    recorded, standin, workspace, tmp_path, monkeypatch
):
    service, _ = recorded
    turn = service.init(write_prompt("denied.txt", "NEVER"), WRITER, ctx=CTX)
    standin.clear_requests()
    move_to_another_worker(tmp_path, monkeypatch, "config-c")

    done = service.continue_tool(
        turn, approved=False, comment="not on a Friday, use drafts/", ctx=CTX
    )
    assert not (workspace / "denied.txt").exists()
    assert done.pending_tool is None
    assert done.text.startswith("The tool did not run:")
    assert "not on a Friday, use drafts/" in done.text
    (received,) = main_requests(standin)
    (result,) = tool_results(received)
    assert result["tool_use_id"] == turn.pending_tool.id and result.get("is_error")
    assert "denied it; the tool did not run" in result_text(result)
    assert "not on a Friday, use drafts/" in result_text(result)
    assert not (workspace / "denied.txt").exists()


def test_bad_input_is_refused_clearly(recorded, standin, workspace):
    service, _ = recorded
    with pytest.raises(ValidationError, match="approval_tools: unknown tool 'Wrtie'"):
        AgentProfile(name="w", system_prompt="s", approval_tools=["Wrtie"])
    with pytest.raises(ValidationError, match="is a rule; name the whole tool"):
        AgentProfile(name="w", system_prompt="s", approval_tools=["Bash(rm:*)"])
    assert AgentProfile(
        name="w", system_prompt="s", approval_tools=["Write", "mcp__mail__send", "Write"]
    ).approval_tools == ["Write", "mcp__mail__send"]

    plain = service.init("Remember HERON.", AgentProfile(name="echo", system_prompt="s"), ctx=CTX)
    assert plain.pending_tool is None
    with pytest.raises(InvalidInput, match="has no pending tool call"):
        service.continue_tool(plain, approved=True, ctx=CTX)
    with pytest.raises(InvalidInput, match="turn must be a SessionTurn"):
        service.continue_tool(plain.session_id, approved=True, ctx=CTX)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="has no pending tool call"):
        review_pending_tool(plain)
    assert len(stored_turns(service, plain.session_id)) == 1


@pytest.fixture
def quiet_events(workspace, monkeypatch):
    from .conftest import Recorder

    recorder = Recorder()
    monkeypatch.setattr(get_service(), "emit", recorder)
    return recorder


@pytest.mark.parametrize("approved", [True, False])
def test_review_pending_tool_pauses_shows_the_call_and_continues(
    workspace, standin, quiet_events, approved
):
    holder: dict[str, Any] = {}
    name = f"review-{approved}.txt"

    @flow
    def agent():
        holder["flow_run_id"] = FlowRunContext.get().flow_run.id
        turn = init_session(write_prompt(name, "FROM-THE-FLOW"), agent=WRITER)
        holder["turn"] = turn
        reviewed = review_pending_tool(turn, timeout_s=120, poll_interval_s=0.5)
        return turn, reviewed

    thread, out = run_in_thread(agent)
    run = wait_paused(holder)
    turn = holder["turn"]
    assert turn.pending_tool is not None and not (workspace / name).exists()
    (requested,) = quiet_events.named("human.requested")
    assert requested["payload"]["fields"] == ["approved", "comment"]
    assert requested["payload"]["form"] == "ToolReviewForm"
    assert turn.pending_tool.id in requested["payload"]["question"]
    # The dashboard's form shows the tool and its input above the approved/comment fields.
    key = f"paused-{run.state.state_details.pause_key}-description"
    description = read_flow_run_input(key, flow_run_id=run.id)
    assert "`Write`" in description and "FROM-THE-FLOW" in description
    assert str(workspace / name) in description
    standin.clear_requests()

    resume_flow_run(run.id, run_input={"approved": approved, "comment": "checked by Ana"})
    thread.join(120)
    assert "error" not in out and out["state"].is_completed(), out
    first, reviewed = out["state"].result()
    assert reviewed.pending_tool is None
    (received,) = main_requests(standin)
    (result,) = tool_results(received)
    assert result["tool_use_id"] == first.pending_tool.id
    if approved:
        assert (workspace / name).read_text() == "FROM-THE-FLOW"
        assert not result.get("is_error")
    else:
        assert not (workspace / name).exists()
        assert result.get("is_error") and "checked by Ana" in result_text(result)
        assert "checked by Ana" in reviewed.text
    records = human_records(turn.session_id)
    assert [r["status"] for r in records] == ["pending", "answered"]
    assert records[1]["answer"] == {"approved": approved, "comment": "checked by Ana"}


def test_resume_session_task_refuses_a_session_waiting_for_review(workspace, standin):
    @flow
    def agent():
        turn = init_session(write_prompt("wait.txt", "x"), agent=WRITER)
        return turn, resume_session(turn, "Skip the review")

    state = agent(return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert "waits for a person to review its Write call" in str(error)
    assert not (workspace / "wait.txt").exists()


@pytest.mark.parametrize("approved", [True, False])
def test_a_scripted_bash_call_runs_only_when_approved(recorded, standin, workspace, approved):
    service, _ = recorded
    shell = AgentProfile(name="shell", system_prompt="You are careful.", approval_tools=["Bash"])
    marker = workspace / f"bash-{approved}.txt"
    turn = service.init(f"run command: echo RAN > {marker}", shell, ctx=CTX)
    assert turn.pending_tool is not None and turn.pending_tool.name == "Bash"
    assert turn.pending_tool.input["command"] == f"echo RAN > {marker}"
    assert not marker.exists()
    standin.clear_requests()
    done = service.continue_tool(turn, approved=approved, comment="no shell today", ctx=CTX)
    (received,) = main_requests(standin)
    (result,) = tool_results(received)
    assert result["tool_use_id"] == turn.pending_tool.id
    if approved:
        assert marker.read_text() == "RAN\n" and not result.get("is_error")
        assert done.text.startswith("After the tool:")
    else:
        assert not marker.exists() and result.get("is_error")
        assert "no shell today" in result_text(result) and "no shell today" in done.text
