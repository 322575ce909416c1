"""Fixtures for the reliability suite: the real CLI against the stand-in model, a real store
(SQLite or PostgreSQL), a Prefect test harness, and readers for what Prefect recorded."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect_claude_sessions.storage import dispose_engines, open_db, sessions, turns
from prefect_claude_sessions.tasks.session_tasks import get_service
from prefect_claude_sessions.tasks.standin import (
    StandinModel,
)  # the standin/prefect_harness fixtures: tests/conftest.py

from tests.conftest import enter_worker_world


def _world(tmp_path: Path, standin: StandinModel, url: str, monkeypatch) -> Path:
    work = enter_worker_world(tmp_path, standin, url, monkeypatch)
    # One CLI-level retry at most, so Prefect's retries are what the tests see.
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")
    for name in (
        "CLAUDE_SESSIONS_ENCRYPTION_KEY",
        "CLAUDE_SESSIONS_ENCRYPTION_KEY_BLOCK",
        "CLAUDE_SESSIONS_REDACT",
    ):
        monkeypatch.delenv(name, raising=False)
    return work


@pytest.fixture
def workspace(tmp_path, standin, sqlite_url, monkeypatch, prefect_harness) -> Iterator[Path]:
    """A worker's world on a SQLite store: credentials for the stand-in, an empty
    CLAUDE_CONFIG_DIR, a working directory."""
    yield _world(tmp_path, standin, sqlite_url, monkeypatch)
    standin.clear_faults()


@pytest.fixture
def pg_workspace(tmp_path, standin, postgres_url, monkeypatch, prefect_harness) -> Iterator[Path]:
    """The same on a fresh PostgreSQL database."""
    yield _world(tmp_path, standin, postgres_url, monkeypatch)
    standin.clear_faults()
    dispose_engines()  # let the database be dropped


# --------------------------------------------------------------------- what the model saw


def main_requests(standin: StandinModel) -> list[dict]:
    return standin.requests(kind="main")


def _is_tool_followup(request: dict) -> bool:
    content = request["messages"][-1].get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def requests_for(standin: StandinModel, prompt: str) -> list[dict]:
    """Conversation calls whose newest user prompt is ``prompt`` (any status)."""
    return [
        r
        for r in main_requests(standin)
        if r["user_turns"] and r["user_turns"][-1] == prompt and not _is_tool_followup(r)
    ]


def answered(standin: StandinModel, prompt: str) -> int:
    """How many times the model answered ``prompt`` successfully (HTTP 200, not cut)."""
    return sum(
        1
        for r in requests_for(standin, prompt)
        if r["status"] == 200 and not (r.get("fault") or {}).get("cut_stream")
    )


# --------------------------------------------------------------------- what Prefect recorded


def task_runs_of(flow_run_id: Any) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def task_run_named(flow_run_id: Any, prefix: str) -> Any:
    runs = [r for r in task_runs_of(flow_run_id) if r.name.startswith(prefix)]
    assert len(runs) == 1, [r.name for r in task_runs_of(flow_run_id)]
    return runs[0]


# --------------------------------------------------------------------- what the store holds


def store_state(session_id: str) -> tuple[int, list[tuple[str, str]], int]:
    """(turn_count, [(turn key, status)], transcript entry count) of a session."""
    service = get_service()
    with open_db(service.store.engine) as db:
        record = sessions.get_session(db, session_id)
        rows = [(r.idempotency_key, r.status.value) for r in turns.list_turns(db, session_id)]
        count = record.turn_count
    return count, rows, len(service.store.entries(session_id))


def _prompt_text(entry: dict) -> str | None:
    if entry.get("type") != "user" or entry.get("isMeta"):
        return None
    content = (entry.get("message") or {}).get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n".join(texts) if texts else None
    return None


def stored_conversation(session_id: str) -> list[str]:
    """The prompts of the stored conversation as the CLI will rebuild it: the parentUuid chain
    from the newest entry back to the start (dead branches of failed attempts left out)."""
    entries = [e for e in get_service().store.entries(session_id) if not e.get("isSidechain")]
    by_uuid = {e["uuid"]: e for e in entries if e.get("uuid")}
    leaf = next((e for e in reversed(entries) if e.get("uuid")), None)
    chain = []
    while leaf is not None:
        chain.append(leaf)
        leaf = by_uuid.get(leaf.get("parentUuid") or "")
    return [t for t in (_prompt_text(e) for e in reversed(chain)) if t is not None]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
