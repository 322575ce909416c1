"""Fixtures for the guardrails: the real CLI against the stand-in model, the store on SQLite
and PostgreSQL, and a service whose events are recorded (the Prefect tasks pass Prefect's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect_claude_sessions.storage import SQLModelSessionStore, dispose_engines
from prefect_claude_sessions.tasks.service import SessionService

from tests.conftest import drop_postgres_database, enter_worker_world, make_postgres_database


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


# The real Prefect server, pools and workers of the end-to-end tests (for the deployment tests).
from tests.e2e.conftest import (  # noqa: E402
    prefect_server,
    prefect_server_session,
    process_pool,
    start_worker,
)
from tests.e2e.harness import (  # noqa: E402
    PrefectServer,
    StandinProcess,
    deploy_all,
    machine_env,
    write_project,
)


@dataclass
class DeployedProject:
    """A user's project deployed to the real server, the stand-in model its runs talk to, and
    the session store (a fresh PostgreSQL database) every machine shares."""

    server: PrefectServer
    pool: str
    project: Path
    standin: StandinProcess
    store_url: str

    def machine(self, name: str) -> dict[str, str]:
        """One machine's worker environment (its own local transcripts, the shared store)."""
        return machine_env(
            self.standin.url,
            self.store_url,
            self.project.parent / name,
            PYTHONPATH=str(self.project),
        )


@pytest.fixture
def deploy_project(
    prefect_server: PrefectServer, process_pool: str, tmp_path: Path
) -> Iterator[Callable[..., DeployedProject]]:
    """``deploy_project(flows={module: source}, deployments={name: entrypoint})`` writes a
    scratch project, deploys it with ``prefect deploy --all`` and starts the model; all is
    stopped (and the store dropped) at teardown."""
    cleanups: list[Callable[[], None]] = []

    def deploy(*, flows: dict[str, str], deployments: dict[str, str]) -> DeployedProject:
        project = write_project(
            tmp_path / "project",
            name="guardrails-e2e",
            pool=process_pool,
            flows=flows,
            deployments=deployments,
        )
        standin = StandinProcess(tmp_path).start()
        cleanups.append(standin.stop)
        db_name, store_url = make_postgres_database("cs_guard_store")
        cleanups.append(lambda: drop_postgres_database(db_name))
        cleanups.append(dispose_engines)
        deploy_all(prefect_server, project, env=prefect_server.env(PYTHONPATH=str(project)))
        return DeployedProject(prefect_server, process_pool, project, standin, store_url)

    yield deploy
    for cleanup in reversed(cleanups):
        cleanup()


__all__ = ["prefect_server", "prefect_server_session", "process_pool", "start_worker"]
