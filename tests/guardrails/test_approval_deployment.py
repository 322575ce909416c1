"""review_pending_tool in a real deployment run: a real Prefect server (PostgreSQL), process
workers, `prefect deployment run`. The turn stops before the model's Write call, the run
suspends (no worker held, nothing written), is answered through the API the way the dashboard's
form does, and re-runs on another worker: the first turn is replayed from the store (the model
is not asked again), the approved Write runs there, and the model gets its result."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect_claude_sessions.storage import decisions, get_engine, open_db

from tests.e2e.harness import run_deployment, wait_for_flow_run, wait_for_suspension

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.cli, pytest.mark.slow]

FLOW = """
from prefect import flow
from prefect_claude_sessions.tasks import AgentProfile, init_session, review_pending_tool


@flow(persist_result=True)
def gated(workdir: str):
    writer = AgentProfile(
        name="writer", system_prompt="You are careful.", approval_tools=["Write"], cwd=workdir
    )
    turn = init_session("write file out.txt with content: SHIPPED", agent=writer)
    reviewed = review_pending_tool(turn, timeout_s=600)
    return {
        "first_replayed": turn.replayed,
        "tool": turn.pending_tool.name,
        "text": reviewed.text,
        "still_pending": reviewed.pending_tool is not None,
    }
"""


def test_a_suspended_tool_review_is_approved_and_the_tool_runs_on_another_worker(
    deploy_project, process_pool, start_worker, tmp_path: Path
):
    work = tmp_path / "work"
    work.mkdir()
    deployed = deploy_project(flows={"gated_flow": FLOW}, deployments={"gated": "gated_flow:gated"})
    server = deployed.server
    first = start_worker(process_pool, name="machine-a", env=deployed.machine("a"))
    run_id = run_deployment(server, "gated/gated", params={"workdir": str(work)})
    # suspended: the flow-run process ended, no worker holds the run
    run = wait_for_suspension(server, run_id, first)
    assert run["state_type"] == "PAUSED"
    first.stop()
    assert not (work / "out.txt").exists()  # the call waits; nothing ran
    standin = deployed.standin.model()
    asked = standin.requests(kind="main")
    assert [r["tool_calls"][0]["name"] for r in asked] == ["Write"]

    accepted = server.post(
        f"/flow_runs/{run_id}/resume",
        {"run_input": {"approved": True, "comment": "ship it"}},
    )
    assert accepted["status"] == "ACCEPT", accepted
    start_worker(process_pool, name="machine-b", env=deployed.machine("b"))
    done = wait_for_flow_run(server, run_id, timeout=240, expect="COMPLETED")
    assert done["labels"].get("prefect.worker.name") == "machine-b"
    assert (work / "out.txt").read_text() == "SHIPPED"
    requests = standin.requests(kind="main")
    # the first turn was replayed, not sent again; one continuation call with the result
    assert len(requests) == 2, [r["user_turns"] for r in requests]
    last = requests[-1]["messages"][-1]["content"]
    results = [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert len(results) == 1 and not results[0].get("is_error")
    assert requests[-1]["reply_text"].startswith("After the tool: File created")
    with open_db(get_engine(deployed.store_url)) as db:
        statuses = [d.payload["status"] for d in decisions.list_decisions(db, key="human")]
    assert statuses == ["pending", "answered"]
