"""Fixtures for the bundled flows: each flow runs in-process under a Prefect test harness, the
real SDK and CLI talking to the stand-in model, the store on a fresh database per test.

The stand-in and the harness are the session-wide fixtures of `tests/conftest.py`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.sorting import ArtifactSort
from prefect_claude_sessions.tasks.session_tasks import get_service
from prefect_claude_sessions.tasks.standin import StandinModel

from tests.conftest import enter_worker_world
from tests.sessions.conftest import main_requests

__all__ = ["main_requests"]


@pytest.fixture
def workspace(tmp_path, standin, sqlite_url, monkeypatch, prefect_harness) -> Path:
    """A worker's world with the store on SQLite (credentials for the stand-in, an empty
    CLAUDE_CONFIG_DIR, a working directory)."""
    yield enter_worker_world(tmp_path, standin, sqlite_url, monkeypatch)
    standin.clear_faults()


@pytest.fixture
def workspace_any_db(tmp_path, standin, database_url, monkeypatch, prefect_harness) -> Path:
    """Like ``workspace``, run once on SQLite and once on PostgreSQL."""
    yield enter_worker_world(tmp_path, standin, database_url, monkeypatch)
    standin.clear_faults()


def engine():
    return get_service().store.engine


def run_flow(fn: Callable[..., Any], **params: Any) -> tuple[Any, str]:
    """Run a flow in-process; return (its result, its flow run id). A failed run raises."""
    state = fn(**params, return_state=True)
    flow_run_id = str(state.state_details.flow_run_id)
    assert state.is_completed(), f"{fn.__name__} ended {state.type}: {state.message}"
    return state.result(), flow_run_id


def artifacts(flow_run_id: str, key: str) -> list[dict[str, Any]]:
    """The artifacts with ``key`` a flow run created (newest first), ``data`` decoded."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            ),
            sort=ArtifactSort.CREATED_DESC,
        )
    out = []
    for artifact in found:
        data = artifact.data
        if artifact.type == "table" and isinstance(data, str):
            data = json.loads(data)
        out.append({"type": artifact.type, "data": data, "description": artifact.description})
    return out


def triage_requests(standin: StandinModel) -> list[dict]:
    """Conversation calls answered by the triage brain."""
    return [r for r in main_requests(standin) if r.get("brain") == "triage"]
