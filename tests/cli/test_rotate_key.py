"""`claude-sessions rotate-key`: re-encrypt the store with the newest key."""

from __future__ import annotations

import json
import uuid

from prefect_claude_sessions.flows.cli import app
from prefect_claude_sessions.storage import decisions, generate_key, open_db, sessions
from prefect_claude_sessions.storage.encryption import ENCRYPTION_KEY_ENV
from typer.testing import CliRunner

runner = CliRunner()


def test_rotate_key_reseals_with_the_newest_key_and_reports_it(sqlite_url, monkeypatch):
    old, new = generate_key(), generate_key()
    sid = str(uuid.uuid4())
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, old)
    with open_db(sqlite_url) as db:
        sessions.create_session(db, id=sid, project_key="p", agent_name="a", origin="init")
        decisions.record_decision(db, session_id=sid, key="route", payload={"to": "billing"})

    monkeypatch.setenv(ENCRYPTION_KEY_ENV, f"{new},{old}")
    first = runner.invoke(app, ["rotate-key", "--database", sqlite_url, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["resealed"]["decisions.payload"] == 1
    again = runner.invoke(app, ["rotate-key", "--database", sqlite_url, "--json"])
    assert json.loads(again.stdout)["changed"] == 0

    monkeypatch.setenv(ENCRYPTION_KEY_ENV, new)  # the old key retired: still readable
    with open_db(sqlite_url) as db:
        assert [d.payload for d in decisions.list_decisions(db, session_id=sid)] == [
            {"to": "billing"}
        ]


def test_rotate_key_without_a_key_is_a_clear_error(sqlite_url, monkeypatch):
    monkeypatch.delenv(ENCRYPTION_KEY_ENV, raising=False)
    result = runner.invoke(app, ["rotate-key", "--database", sqlite_url])
    assert result.exit_code == 2
    assert "no key is configured" in result.output
