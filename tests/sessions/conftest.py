"""Fixtures for the session tasks: the real CLI against the stand-in model, a real store
(SQLite and PostgreSQL), and a Prefect test harness for the flows."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect_claude_sessions.tasks.standin import StandinModel

from tests.conftest import enter_worker_world


@pytest.fixture
def workspace(tmp_path: Path, standin, database_url: str, monkeypatch, prefect_harness) -> Path:
    """A worker's world (see `tests.conftest.enter_worker_world`), with the store on SQLite or
    PostgreSQL: each test using it runs on both."""
    yield enter_worker_world(tmp_path, standin, database_url, monkeypatch)
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
