"""What the dashboard shows of a flow run, read back through the Prefect API of the test server:
the run, its task runs, its artifacts, its log lines and session events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler


def wait_for(read: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    """``read()`` until ``ok`` holds (the server records task runs and logs from events, a
    moment after the run); the last value either way, so the assertion shows what was seen."""
    deadline = time.monotonic() + timeout
    value = read()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def flow_run(run_id: str) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def task_run_names(run_id: str) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)]))
        )
    return sorted(r.name for r in runs)


def run_artifacts(run_id: str) -> list[Any]:
    """Every artifact linked to the flow run."""
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        )


def lineage_reports(run_id: str) -> list[Any]:
    """The run's session reports (keys ``claude-sessions-*``)."""
    return [a for a in run_artifacts(run_id) if (a.key or "").startswith("claude-sessions-")]


def log_lines(run_id: str) -> list[str]:
    """The run's log messages (its tasks' too), once the log handler has sent them."""
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)])), limit=200
        )
    return [log.message for log in logs]


def session_events(prefix: str, resource_ids: list[str], since: Any) -> list[dict[str, Any]]:
    """Events named ``prefix...`` about these resources since ``since`` (a datetime)."""
    with get_client(sync_client=True) as client:
        response = client._client.post(
            "/events/filter",
            json={
                "filter": {
                    "event": {"prefix": [prefix]},
                    "any_resource": {"id": resource_ids},
                    "occurred": {"since": since.isoformat()},
                },
                "limit": 50,
            },
        )
    response.raise_for_status()
    return response.json()["events"]
