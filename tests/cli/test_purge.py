"""`claude-sessions purge`: retention deletes stored transcripts and marks sessions purged; the
audit trail (lineage, turns, decisions) stays."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from prefect_claude_sessions.flows.cli import app
from prefect_claude_sessions.storage import (
    SessionNotFound,
    SessionPurged,
    SessionStatus,
    SQLModelSessionStore,
    decisions,
    open_db,
    sessions,
)
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.retention import purge_session
from prefect_claude_sessions.tasks.service import SessionService

from .conftest import FilledStore, fill_store

pytestmark = [pytest.mark.cli]


@pytest.fixture(scope="module")
def purgeable(cli_world) -> FilledStore:
    return fill_store(f"sqlite:///{cli_world / 'purge.db'}")


def status_of(url: str, sid: str) -> tuple[SessionStatus, int]:
    with open_db(url) as db:
        record = sessions.get_session(db, sid)
        return record.status, record.transcript_bytes


def transcript_exists(url: str, sid: str) -> bool:
    try:
        SQLModelSessionStore(url).transcript_stats(sid)
    except SessionNotFound:
        return False
    return True


def age(url: str, sid: str, days: int) -> None:
    with open_db(url) as db:
        record = sessions.get_session(db, sid)
        record.updated_at = datetime.now(timezone.utc) - timedelta(days=days)
        db.add(record)


def test_purge_flow(runner, purgeable) -> None:
    url = purgeable.url
    assert transcript_exists(url, purgeable.fork)

    # declined at the prompt: nothing happens
    declined = runner.invoke(app, ["purge", purgeable.fork, "--database", url], input="n\n")
    assert declined.exit_code == 1
    assert status_of(url, purgeable.fork)[0] is SessionStatus.active
    assert transcript_exists(url, purgeable.fork)

    # one session by id, confirmed at the prompt
    done = runner.invoke(app, ["purge", purgeable.fork, "--database", url], input="y\n")
    assert done.exit_code == 0, done.output
    assert "Purged 1 sessions" in done.stdout
    assert status_of(url, purgeable.fork) == (SessionStatus.purged, 0)
    assert not transcript_exists(url, purgeable.fork)
    assert transcript_exists(url, purgeable.root)  # the parent keeps its transcript
    exported = runner.invoke(app, ["export", purgeable.fork, "--database", url])
    assert exported.exit_code == 2 and "purged" in exported.stderr
    ls = json.loads(
        runner.invoke(app, ["ls", "--status", "purged", "--json", "--database", url]).stdout
    )
    assert [r["id"] for r in ls] == [purgeable.fork]
    again = runner.invoke(app, ["purge", purgeable.fork, "--yes", "--database", url])
    assert again.exit_code == 0 and "Nothing to purge" in again.stdout

    # by age: only sessions idle for longer than the limit
    age(url, purgeable.handoff, days=45)
    dry = runner.invoke(
        app, ["purge", "--older-than", "30", "--dry-run", "--json", "--database", url]
    )
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["sessions"] == [purgeable.handoff]
    assert transcript_exists(url, purgeable.handoff)

    needs_yes = runner.invoke(app, ["purge", "--older-than", "30", "--json", "--database", url])
    assert needs_yes.exit_code == 2

    result = runner.invoke(
        app, ["purge", "--older-than", "30", "--yes", "--json", "--database", url]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["purged"] == [purgeable.handoff] and report["skipped"] == []
    assert report["bytes_freed"] > 0
    assert status_of(url, purgeable.handoff) == (SessionStatus.purged, 0)
    assert not transcript_exists(url, purgeable.handoff)
    assert status_of(url, purgeable.root)[0] is SessionStatus.active
    assert transcript_exists(url, purgeable.root)

    # the audit trail stays
    with open_db(url) as db:
        assert [d.key for d in decisions.list_decisions(db, session_id=purgeable.root)] == ["route"]
        assert sessions.get_session(db, purgeable.handoff).parent_id == purgeable.root


def test_purge_needs_exactly_one_selector(runner, purgeable) -> None:
    for args in (["purge"], ["purge", purgeable.root, "--older-than", "3"]):
        result = runner.invoke(app, [*args, "--database", purgeable.url, "--yes"])
        assert result.exit_code == 2
        assert "either a session ID or --older-than" in result.stderr
    assert status_of(purgeable.url, purgeable.root)[0] is SessionStatus.active


def test_purge_with_descendants_lists_them_first(runner, cli_world) -> None:
    """``--descendants`` takes the forks and handoffs too; the sessions (ids and agents) are
    listed before the question, and a declined question deletes nothing."""
    family = fill_store(f"sqlite:///{cli_world / 'family.db'}")
    url = family.url
    everyone = [family.root, family.fork, family.handoff]

    declined = runner.invoke(
        app, ["purge", family.root, "--descendants", "--database", url], input="n\n"
    )
    assert declined.exit_code == 1
    listing = declined.stdout
    assert "To purge: 3 sessions" in listing
    for sid in everyone:
        assert sid in listing
    assert "echo" in listing and "billing" in listing  # the agents
    assert all(status_of(url, sid)[0] is SessionStatus.active for sid in everyone)

    dry = runner.invoke(
        app, ["purge", family.root, "--descendants", "--dry-run", "--json", "--database", url]
    )
    assert sorted(json.loads(dry.stdout)["sessions"]) == sorted(everyone)

    done = runner.invoke(
        app, ["purge", family.root, "--descendants", "--yes", "--json", "--database", url]
    )
    assert done.exit_code == 0, done.output
    assert sorted(json.loads(done.stdout)["purged"]) == sorted(everyone)
    for sid in everyone:
        assert status_of(url, sid) == (SessionStatus.purged, 0)
        assert not transcript_exists(url, sid)
    with open_db(url) as db:  # the audit trail stays
        assert [d.key for d in decisions.list_decisions(db, session_id=family.root)] == ["route"]
        assert sessions.get_session(db, family.fork).parent_id == family.root


def test_rewind_of_a_purged_session_names_it(cli_world) -> None:
    """Not "No message found with message.uuid": the rewind is refused as purged, at once."""
    family = fill_store(f"sqlite:///{cli_world / 'rewind.db'}")
    service = SessionService(SQLModelSessionStore(family.url), credentials=lambda _b: {})
    purge_session(service.store, family.root)
    for prompt in ("Start again.", None):
        with pytest.raises(SessionPurged, match=family.root):
            service.rewind(family.checkpoint, prompt=prompt, ctx=RunContext(None, None))
