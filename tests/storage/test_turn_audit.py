"""Audit columns on turns (revision 0003): ``attempts`` and ``error_kind``, on SQLite and
PostgreSQL, on a fresh database and on a 0002 database upgraded with turns in it; and
`claude-sessions show` listing them for failed turns."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import command
from prefect_claude_sessions.flows.cli import app
from prefect_claude_sessions.storage import TurnStatus, claims, get_engine, open_db, turns
from prefect_claude_sessions.storage.engine import create_engine_for
from prefect_claude_sessions.storage.schema import alembic_config, current_revision
from typer.testing import CliRunner

from .test_repositories import make_session

DONE = dict(result_text="ok", cost_usd=0.01, usage={}, duration_ms=5, num_turns=1)


def begin(url: str, key: str, sid: str):
    with open_db(url) as db:
        row = turns.begin_turn(
            db, idempotency_key=key, session_id=sid, operation="resume", prompt_digest="d"
        )
        return row.status, row.attempts, row.error_kind


def test_attempts_count_every_begin_and_error_kind_keeps_the_last_failure(database_url) -> None:
    sid = make_session(database_url)
    assert begin(database_url, "k", sid) == (TurnStatus.pending, 1, None)
    with open_db(database_url) as db:
        turns.fail_turn(db, "k", error="[timeout] took 30 s", error_kind="timeout")
    assert begin(database_url, "k", sid) == (TurnStatus.pending, 2, "timeout")
    # A worker killed mid-turn leaves it pending; the re-run's begin is a further attempt.
    assert begin(database_url, "k", sid) == (TurnStatus.pending, 3, "timeout")
    with open_db(database_url) as db:
        turns.fail_turn(db, "k", error="[api_error] 400", error_kind="api_error")
    assert begin(database_url, "k", sid) == (TurnStatus.pending, 4, "api_error")
    with open_db(database_url) as db:
        row = turns.complete_turn(db, "k", session_id=sid, **DONE)
    assert (row.status, row.attempts, row.error_kind) == (TurnStatus.completed, 4, "api_error")
    # Beginning a completed turn replays it: no new attempt.
    assert begin(database_url, "k", sid) == (TurnStatus.completed, 4, "api_error")


def _at_0002(url: str) -> sa.Engine:
    engine = create_engine_for(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
    return engine


def test_upgrading_a_0002_database_with_turns_and_claims(database_url) -> None:
    old = _at_0002(database_url)
    sid = str(uuid.uuid4())
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with old.begin() as conn:
        cols = {c["name"] for c in sa.inspect(conn).get_columns("claude_sessions_turns")}
        assert "attempts" not in cols and "error_kind" not in cols  # really the old schema
        conn.execute(
            sa.text(
                "INSERT INTO claude_sessions_sessions (id, project_key, agent_name, origin, "
                "status, created_at, updated_at, turn_count, cost_usd, input_tokens, "
                "output_tokens, transcript_bytes) VALUES (:id, '-w', 'triage', 'init', 'active', "
                ":t, :t, 1, 0, 0, 0, 0)"
            ),
            {"id": sid, "t": now},
        )
        for key, status, error in [
            ("old-done", "completed", None),
            ("old-failed", "failed", "[api_error] 400 bad request"),
            ("old-pending", "pending", None),
        ]:
            conn.execute(
                sa.text(
                    "INSERT INTO claude_sessions_turns (idempotency_key, session_id, operation, "
                    "prompt_digest, status, error, started_at) "
                    "VALUES (:k, :s, 'resume', 'd', :st, :e, :t)"
                ),
                {"k": key, "s": sid, "st": status, "e": error, "t": now},
            )
        conn.execute(
            sa.text(
                "INSERT INTO claude_sessions_session_claims (session_id, holder, claimed_at, "
                "expires_at) VALUES (:s, 'old-worker', :t, :t)"
            ),
            {"s": sid, "t": now},
        )
    old.dispose()

    engine = get_engine(database_url)  # upgrades to head
    with engine.connect() as conn:
        assert current_revision(conn) == "0004"
    with open_db(database_url) as db:
        rows = {r.idempotency_key: r for r in turns.list_turns(db, sid)}
        assert {k: (r.status.value, r.attempts, r.error_kind) for k, r in rows.items()} == {
            "old-done": ("completed", 1, None),
            "old-failed": ("failed", 1, None),
            "old-pending": ("pending", 1, None),
        }
        assert rows["old-failed"].error == "[api_error] 400 bad request"  # kept as it was
        # The old (expired) claim got token 1; the next claim continues from it.
        assert claims.claim_session(db, sid, holder="new-worker", ttl_seconds=60) == 2
    assert begin(database_url, "old-failed", sid) == (TurnStatus.pending, 2, None)
    with open_db(database_url) as db:
        turns.fail_turn(db, "old-failed", error="[timeout] again", error_kind="timeout")

    runner = CliRunner(env={"COLUMNS": "220"})
    shown = runner.invoke(app, ["show", sid, "--database", database_url, "--json"])
    assert shown.exit_code == 0, shown.output
    listed = {t["status"]: t for t in json.loads(shown.stdout)["turns"]}
    assert (listed["failed"]["attempts"], listed["failed"]["error_kind"]) == (2, "timeout")
    table = runner.invoke(app, ["show", sid, "--database", database_url])
    assert table.exit_code == 0, table.output
    failed_line = next(ln for ln in table.stdout.splitlines() if "failed" in ln and "│" in ln)
    assert "timeout" in failed_line and " 2 " in failed_line
    header = next(ln for ln in table.stdout.splitlines() if "operation" in ln)
    assert "attempts" in header and "error kind" in header
