"""ask_human in a real deployment run: a real Prefect server (PostgreSQL), a process worker,
`prefect deployment run`. The run suspends (no worker held), is answered through the API the
way the dashboard's form does (``POST /flow_runs/{id}/resume`` with ``run_input``), and
re-runs on another worker: the turn before the question is replayed from the store, never
sent to the model again."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from prefect_claude_sessions.storage import decisions, dispose_engines, get_engine, open_db
from prefect_claude_sessions.tasks.standin import StandinModel

from tests.conftest import drop_postgres_database, make_postgres_database
from tests.e2e.harness import (
    ManagedProcess,
    deploy_all,
    free_port,
    read_flow_run,
    run_deployment,
    wait_for_flow_run,
    wait_until,
)

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


def _healthy(url: str) -> bool:
    try:
        return bool(StandinModel.attach(url).health().get("ok"))
    except Exception:
        return False


def test_a_suspended_deployment_run_is_answered_and_continues_on_another_worker(
    prefect_server, process_pool, start_worker, tmp_path: Path
):
    server = prefect_server
    project = tmp_path / "project"
    project.mkdir()
    (project / "approval_flow.py").write_text(FLOW)
    (project / "prefect.yaml").write_text(
        "name: guard-e2e\nprefect-version: 3.9.1\npull: []\ndeployments:\n"
        "  - name: approval\n    entrypoint: approval_flow:approval\n"
        f"    work_pool:\n      name: {process_pool}\n      job_variables:\n"
        '        working_dir: "."\n'
    )
    port = free_port()
    model = ManagedProcess(
        "stand-in model",
        [sys.executable, "-m", "prefect_claude_sessions.tasks.standin", "--port", str(port)],
        env={**os.environ},
        cwd=tmp_path,
        log_path=tmp_path / "model.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    db_name, store_url = make_postgres_database("cs_guard_store")
    try:
        wait_until(lambda: _healthy(url), timeout=30, message=lambda: model.describe())
        deploy_all(server, project, env=server.env(PYTHONPATH=str(project)))

        def machine(name: str) -> dict[str, str]:
            (tmp_path / name / "claude").mkdir(parents=True)
            return {
                **StandinModel.attach(url).env(),
                "CLAUDE_SESSIONS_DATABASE_URL": store_url,
                "CLAUDE_CONFIG_DIR": str(tmp_path / name / "claude"),
                "PYTHONPATH": str(project),
            }

        first = start_worker(process_pool, name="machine-a", env=machine("a"))
        run_id = run_deployment(server, "approval/approval")
        run = wait_until(
            lambda: (r := read_flow_run(server, run_id))["state_type"] == "PAUSED" and r,
            timeout=180,
            message=lambda: server.diagnostics(run_id),
        )
        assert run["state_name"] == "Suspended"
        # suspended: the flow-run process ended, no worker holds the run
        wait_until(lambda: not first.flow_run_pids(), timeout=60, message=first.tail)
        first.stop()
        standin = StandinModel.attach(url)
        sent = [r["user_turns"][-1] for r in standin.requests(kind="main")]
        assert sent == ["Draft a reply to ACME."]

        with open_db(get_engine(store_url)) as db:
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

        start_worker(process_pool, name="machine-b", env=machine("b"))
        done = wait_for_flow_run(server, run_id, timeout=240, expect="COMPLETED")
        assert done["labels"].get("prefect.worker.name") == "machine-b"
        user_turns = [r["user_turns"] for r in standin.requests(kind="main")]
        # the draft was not sent again; the reviewer's answer reached the model with the history
        assert [t[-1] for t in user_turns].count("Draft a reply to ACME.") == 1
        assert user_turns[-1] == ["Draft a reply to ACME.", "Reviewer: approved=True; send it"]
        with open_db(get_engine(store_url)) as db:
            statuses = [d.payload["status"] for d in decisions.list_decisions(db, key="human")]
        assert statuses == ["pending", "answered"]
    finally:
        model.stop()
        dispose_engines()
        drop_postgres_database(db_name)
