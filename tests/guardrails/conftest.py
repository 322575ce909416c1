"""Fixtures for the guardrails: the real CLI against the stand-in model, the store on SQLite
and PostgreSQL, and a service whose events are recorded (the Prefect tasks pass Prefect's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect_claude_sessions.storage import SQLModelSessionStore
from prefect_claude_sessions.tasks.service import SessionService

from tests.conftest import enter_worker_world


@pytest.fixture
def workspace(tmp_path: Path, standin, database_url: str, monkeypatch, prefect_harness) -> Path:
    """A worker's world on SQLite or PostgreSQL (each test runs on both)."""
    yield enter_worker_world(tmp_path, standin, database_url, monkeypatch)
    standin.clear_faults()


class Recorder:
    """An injected ``emit`` that keeps every event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, action: str, session_id: str, **kw: Any) -> None:
        self.events.append({"action": action, "session_id": session_id, **kw})

    def named(self, action: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["action"] == action]


@pytest.fixture
def recorded(workspace, database_url) -> tuple[SessionService, Recorder]:
    """A service over the test's store whose events are recorded."""
    recorder = Recorder()
    service = SessionService(SQLModelSessionStore(database_url), emit=recorder)
    yield service, recorder
    service.store.engine.dispose()


# The real Prefect server, pools and workers of the end-to-end tests (for the deployment test).
from tests.e2e.conftest import (  # noqa: E402
    prefect_server,
    prefect_server_session,
    process_pool,
    start_worker,
)

__all__ = ["prefect_server", "prefect_server_session", "process_pool", "start_worker"]
