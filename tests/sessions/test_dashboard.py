"""What the Prefect dashboard shows for session work: run names, agent tags, the lineage
artifact and session events (read back through the Prefect API)."""

from __future__ import annotations

import asyncio
import time

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.runtime import flow_run
from prefect_claude_sessions.tasks import (
    AgentProfile,
    checkpoint_session,
    handoff_session,
    init_session,
    record_decision,
)
from prefect_claude_sessions.tasks.artifacts import report_key, report_publisher

pytestmark = [pytest.mark.cli]

TRIAGE = AgentProfile(name="triage", system_prompt="You are the triage agent.")
BILLING = AgentProfile(name="billing", system_prompt="You are the billing specialist.")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_runs_are_named_tagged_reported_and_announced(workspace, standin):
    @flow
    def dashboard_demo():
        turn = init_session("Invoice 9 was charged twice.", agent=TRIAGE)
        checkpoint_session(turn, label="triaged")
        record_decision(turn, "route", {"to": "billing"})
        handed = handoff_session(turn, "Refund the duplicate.", to=BILLING)
        return flow_run.get_id(), turn, handed

    run_id, turn, handed = dashboard_demo()
    report_publisher.flush()  # a flow without session_report(): its stale report, now

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
            events = []
            for _ in range(50):  # events arrive asynchronously
                response = await client._client.post(
                    "/events/filter",
                    json={
                        "filter": {
                            "event": {"prefix": ["claude-sessions."]},
                            "any_resource": {
                                "id": [
                                    f"claude-sessions.session.{turn.session_id}",
                                    f"claude-sessions.session.{handed.session_id}",
                                ]
                            },
                        },
                        "limit": 50,
                    },
                )
                events = response.json()["events"]
                if len(events) >= 4:
                    break
                time.sleep(0.2)
            return runs, artifacts, events

    runs, artifacts, events = asyncio.run(read())

    names = sorted(r.name for r in runs)
    short = turn.session_id[:8]
    handoff_name = f"handoff {short} → {handed.session_id[:8]} [billing]"
    assert names == sorted(
        [
            f"init → {short} [triage]",
            f"checkpoint {short} [triage] triaged",
            "decision route",
            handoff_name,
        ]
    )
    tags = {r.name: set(r.tags) for r in runs}
    assert "agent:triage" in tags[f"init → {short} [triage]"]
    assert "agent:billing" in tags[handoff_name]

    reports = [a for a in artifacts if (a.key or "").startswith("claude-sessions-")]
    assert len(reports) == 1, "one report per flow run, updated in place"
    latest = reports[0]
    assert latest.key == report_key("dashboard-demo") == "claude-sessions-dashboard-demo"
    assert short in latest.data and handed.session_id[:8] in latest.data
    assert "billing (handoff)" in latest.data

    kinds = {e["event"] for e in events}
    assert {
        "claude-sessions.created",
        "claude-sessions.checkpointed",
        "claude-sessions.decision-recorded",
        "claude-sessions.handed-off",
    } <= kinds
    handed_off = next(e for e in events if e["event"].endswith("handed-off"))
    assert handed_off["resource"]["claude-sessions.agent"] == "billing"
    assert any(r["prefect.resource.role"] == "parent-session" for r in handed_off["related"])
