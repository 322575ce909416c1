"""Fixtures for the session tasks: the real CLI against the stand-in model, a real store
(SQLite and PostgreSQL), and a Prefect test harness for the flows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from tasks.standin import StandinModel


@pytest.fixture(scope="session")
def standin(tmp_path_factory) -> Iterator[StandinModel]:
    log = tmp_path_factory.mktemp("standin") / "requests.jsonl"
    with StandinModel(log_path=log) as model:
        yield model


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def workspace(
    tmp_path: Path, standin: StandinModel, database_url: str, monkeypatch, prefect_harness
) -> Path:
    """A worker's world: credentials pointing at the stand-in, an empty CLAUDE_CONFIG_DIR, a
    working directory, and the store on SQLite or PostgreSQL (each test runs on both)."""
    for name, value in standin.env().items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "claude-config"
    config.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("CLAUDE_SESSIONS_DATABASE_URL", database_url)
    monkeypatch.chdir(work)
    standin.clear_requests()
    standin.clear_faults()
    yield work
    standin.clear_faults()


def main_requests(standin: StandinModel) -> list[dict]:
    """What the model received in conversation calls (titles and other side calls left out)."""
    return standin.requests(kind="main")


def prompts_sent(standin: StandinModel, text: str) -> int:
    """How many conversation calls ended with ``text`` as the newest user prompt: a prompt sent
    twice shows up twice here (tool round trips repeat the prompt, so count distinct turns)."""
    return sum(
        1
        for r in main_requests(standin)
        if r["user_turns"] and r["user_turns"][-1] == text and not _is_tool_followup(r)
    )


def _is_tool_followup(request: dict) -> bool:
    last = request["messages"][-1]
    content = last.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
