"""Secrets stay secret: the API key appears in no log, Prefect result, artifact, event, run
record, exception or store row; decision payloads are redacted of contacts before storage."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH
from prefect_claude_sessions.storage import decisions, dispose_engines, open_db
from prefect_claude_sessions.tasks import (
    AgentProfile,
    init_session,
    record_decision,
    resume_session,
)
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import task_runs_of

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


def raw_sqlite(url: str) -> bytes:
    path = Path(sa.make_url(url).database)
    dispose_engines()
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _prefect_records(flow_run_id) -> str:
    """Everything the Prefect API holds about a flow run: the run, its task runs, logs,
    artifacts and every event, as JSON text."""
    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        task_runs = task_runs_of(flow_run_id)
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        page = client._client.post("/events/filter", json={"limit": 50}).json()
        events = {"events": list(page["events"])}
        while page.get("next_page"):
            page = client._client.get(page["next_page"]).json()
            events["events"] += page["events"]
    parts = [run.model_dump_json(), *(t.model_dump_json() for t in task_runs)]
    parts += [log.model_dump_json() for log in logs]
    parts += [a.model_dump_json() for a in artifacts]
    parts.append(json.dumps(events))
    assert logs and artifacts and events["events"], "nothing to search: the readers are broken"
    return "\n".join(parts)


def test_the_api_key_never_appears_anywhere(
    workspace, standin, monkeypatch, caplog, capfd, sqlite_url
):
    marker = f"sk-ant-api03-LEAKCHECK{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", marker)
    caplog.set_level("DEBUG")

    @flow
    def with_a_secret_key():
        turn = init_session("Invoice 12 is wrong.", agent=ECHO)
        turn = resume_session(turn, "Please fix it.")
        record_decision(turn, "route", {"to": "billing"})
        standin.inject(status=401, count=None)
        try:
            return resume_session(turn, "Now fail.", return_state=True)
        finally:
            standin.clear_faults()

    state = with_a_secret_key(return_state=True)
    failed = state.result(raise_on_failure=False)
    assert failed.is_failed()
    try:
        failed.result()
    except Exception as exc:  # the failing call's exception, as Prefect hands it back
        error = exc
    else:
        raise AssertionError("the 401 did not fail the task")
    assert os.environ["ANTHROPIC_API_KEY"] == marker  # the flow really ran with the marker key
    assert standin.requests(kind="main")[-1]["status"] == 401

    flow_run_id = state.state_details.flow_run_id
    results_dir = Path(PREFECT_LOCAL_STORAGE_PATH.value())
    result_files = [p for p in results_dir.rglob("*") if p.is_file()]
    assert result_files, f"no persisted results under {results_dir}"
    out, err = capfd.readouterr()
    places = {
        "exception": f"{error}\n{error!r}\n{getattr(error, 'outcome', None)!r}",
        "state messages": f"{state.message}\n{failed.message}",
        "captured logs": caplog.text,
        "stdout/stderr": out + err,
        "Prefect API records": _prefect_records(flow_run_id),
        "result storage": "\n".join(
            p.read_bytes().decode("utf-8", "replace") for p in result_files
        ),
        "store": raw_sqlite(sqlite_url).decode("latin-1"),
    }
    leaked = [where for where, text in places.items() if marker in text]
    assert leaked == [], f"the API key leaked into: {leaked}"
    assert "Invoice 12" in places["store"]  # the searches look at real content


def test_decision_payloads_are_redacted_of_contacts_before_storage(
    workspace, monkeypatch, sqlite_url
):
    monkeypatch.setenv("CLAUDE_SESSIONS_REDACT", "contacts")

    @flow
    def triage():
        turn = init_session("A customer wrote in.", agent=ECHO)
        return record_decision(
            turn,
            "contact",
            {"from": "jane.doe@example.com", "note": "call her on +44 20 7946 0958 today", "n": 3},
        )

    decision = triage()

    assert decision.payload == {"from": "[email]", "note": "call her on [phone] today", "n": 3}
    with open_db(get_service().store.engine) as db:
        (stored,) = decisions.list_decisions(db, session_id=decision.session_id)
        assert stored.payload == decision.payload
    raw = raw_sqlite(sqlite_url)
    assert b"jane.doe" not in raw and b"example.com" not in raw and b"7946" not in raw
    assert b"[email]" in raw
