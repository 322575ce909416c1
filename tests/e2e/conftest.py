"""Fixtures for end-to-end tests: one real Prefect server per pytest session, pools and
workers per test, everything stopped at teardown (also when a test fails)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    TIMINGS,
    PrefectServer,
    Worker,
    create_process_pool,
    delete_pool,
    unique_name,
)


@pytest.fixture(scope="session")
def prefect_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One ``prefect server start`` on a fresh PostgreSQL database for the whole session
    (start-up with migrations takes several seconds)."""
    with PrefectServer(tmp_path_factory.mktemp("prefect-server")) as server:
        yield server


@pytest.fixture
def prefect_server(prefect_server_session: PrefectServer) -> PrefectServer:
    """The session's server, checked alive before each test (a crash earlier in the session
    is reported with its log instead of as a connection error)."""
    assert prefect_server_session.alive(), prefect_server_session.diagnostics()
    return prefect_server_session


@pytest.fixture
def process_pool(prefect_server: PrefectServer) -> Iterator[str]:
    """A fresh process work pool (unique name, so no other test's worker takes its runs)."""
    name = unique_name("e2e-pool")
    create_process_pool(prefect_server, name)
    yield name
    delete_pool(prefect_server, name)


@pytest.fixture
def start_worker(prefect_server: PrefectServer, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """``start_worker(pool, name=..., env=..., cwd=..., limit=...)`` starts a real worker (its
    files under ``tmp_path/<name>``) and waits until it polls; all are stopped at teardown."""
    workers: list[Worker] = []

    def start(pool: str, *, name: str | None = None, **kwargs) -> Worker:
        name = name or unique_name("worker")
        worker = Worker(prefect_server, pool, name=name, workdir=tmp_path / name, **kwargs)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print what the e2e harness measured (server start, deploy, run latency)."""
    if not TIMINGS:
        return
    terminalreporter.section("e2e timings")
    for what, values in TIMINGS.items():
        values_text = ", ".join(f"{v:.2f}" for v in values)
        terminalreporter.write_line(
            f"{what}: n={len(values)} min={min(values):.2f} max={max(values):.2f} [{values_text}]"
        )
