"""ask_human in a real deployment run: a real Prefect server (PostgreSQL), a process worker,
`prefect deployment run`. The run suspends (no worker held), is answered through the API the
way the dashboard's form does (``POST /flow_runs/{id}/resume`` with ``run_input``), and
re-runs on another worker: the turn before the question is replayed from the store, never
sent to the model again."""

from __future__ import annotations

import pytest
from prefect_claude_sessions.storage import decisions, get_engine, open_db

from tests.e2e.harness import run_deployment, wait_for_flow_run, wait_for_suspension

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.cli, pytest.mark.slow]

FLOW = """
from prefect import flow
from prefect_claude_sessions.tasks import AgentProfile, ask_human, init_session, resume_session

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@flow(persist_result=True)
def approval(prompt: str = "Draft a reply to ACME."):
    draft = init_session(prompt, agent=ECHO)
    answer = ask_human(draft, "Send the draft to ACME?", timeout_s=600)
    final = resume_session(draft, f"Reviewer: approved={answer.approved}; {answer.comment}")
    return {
        "session_id": draft.session_id,
        "draft_replayed": draft.replayed,
        "approved": answer.approved,
        "comment": answer.comment,
        "answer_replayed": answer.replayed,
        "final": final.text,
    }
"""


def test_a_suspended_deployment_run_is_answered_and_continues_on_another_worker(
    deploy_project, process_pool, start_worker
):
    deployed = deploy_project(
        flows={"approval_flow": FLOW}, deployments={"approval": "approval_flow:approval"}
    )
    server = deployed.server
    first = start_worker(process_pool, name="machine-a", env=deployed.machine("a"))
    run_id = run_deployment(server, "approval/approval")
    # suspended: the flow-run process ended, no worker holds the run
    run = wait_for_suspension(server, run_id, first)
    assert run["state_type"] == "PAUSED"
    first.stop()
    standin = deployed.standin.model()
    sent = [r["user_turns"][-1] for r in standin.requests(kind="main")]
    assert sent == ["Draft a reply to ACME."]

    with open_db(get_engine(deployed.store_url)) as db:
        (pending,) = decisions.list_decisions(db, key="human")
    assert pending.payload["status"] == "pending"

    # a form answer that fails validation is refused; then the real answer
    refused = server.http.post(
        f"/flow_runs/{run_id}/resume", json={"run_input": {"approved": "perhaps"}}
    )
    assert refused.json().get("status") != "ACCEPT", refused.text
    accepted = server.post(
        f"/flow_runs/{run_id}/resume",
        {"run_input": {"approved": True, "comment": "send it"}},
    )
    assert accepted["status"] == "ACCEPT", accepted

    start_worker(process_pool, name="machine-b", env=deployed.machine("b"))
    done = wait_for_flow_run(server, run_id, timeout=240, expect="COMPLETED")
    assert done["labels"].get("prefect.worker.name") == "machine-b"
    user_turns = [r["user_turns"] for r in standin.requests(kind="main")]
    # the draft was not sent again; the reviewer's answer reached the model with the history
    assert [t[-1] for t in user_turns].count("Draft a reply to ACME.") == 1
    assert user_turns[-1] == ["Draft a reply to ACME.", "Reviewer: approved=True; send it"]
    with open_db(get_engine(deployed.store_url)) as db:
        statuses = [d.payload["status"] for d in decisions.list_decisions(db, key="human")]
    assert statuses == ["pending", "answered"]
