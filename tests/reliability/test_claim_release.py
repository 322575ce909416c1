"""Releasing a claim never masks the outcome, and an expired claim never blocks.

The report: under a full disk the turn was recorded completed, then releasing the claim failed
inside ``finally``, the caller got a StorageError, the claim stayed held and the next resume
waited 61 s with a garbled ``session "session … is busy: …" is busy``. Here the release fails
the way a full SQLite disk fails it (the driver's "database or disk is full", through the
store's error translation), on SQLite and PostgreSQL.

Findings: the caller gets its completed turn (refuted: no StorageError since `release_quietly`);
the claim does stay held until its TTL (confirmed, by design: nothing can release it while the
database refuses writes); a resume meanwhile fails after its busy timeout with one clear
sentence; once the claim expires the next resume takes it over at once.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest
from prefect_claude_sessions.storage import SessionBusy, TurnStatus, claims, open_db, turns
from prefect_claude_sessions.tasks import AgentProfile
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.service import SessionService
from prefect_claude_sessions.tasks.session_tasks import get_service
from sqlalchemy import exc as sa_exc

from .conftest import main_requests

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
TTL_S = 4.0


def disk_full(*args, **kwargs):
    raise sa_exc.OperationalError(
        "UPDATE claude_sessions_session_claims ...",
        {},
        sqlite3.OperationalError("database or disk is full"),
    )


def busy_error(exc: BaseException) -> SessionBusy | None:
    seen = exc
    while seen is not None:
        if isinstance(seen, SessionBusy):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@pytest.mark.parametrize("world", ["workspace", "pg_workspace"])
def test_a_failed_release_is_logged_and_the_claim_expires_into_the_next_turn(
    world, request, standin, monkeypatch, caplog
):
    request.getfixturevalue(world)
    monkeypatch.setenv("CLAUDE_SESSIONS_CLAIM_TTL", str(TTL_S))
    service = get_service()
    first = service.init("Open the incident log.", ECHO, ctx=RunContext(None, None))
    sid = first.session_id

    release = claims.release_session
    monkeypatch.setattr(claims, "release_session", disk_full)
    with caplog.at_level(logging.WARNING, logger="claude_sessions"):
        turn = service.resume(sid, "Log: disk full on db-3.", ctx=RunContext(None, None))
    released_failed_at = time.monotonic()
    monkeypatch.setattr(claims, "release_session", release)  # the disk has room again

    # The outcome is not masked: the turn came back and is recorded completed.
    assert turn.text.startswith("echo: Log: disk full on db-3.")
    with open_db(service.store.engine) as db:
        assert turns.find_turn(db, turn.turn_key).status == TurnStatus.completed
        holder = claims.current_holder(db, sid)
    assert holder is not None  # the claim stayed held: nothing could release it
    assert "could not release the claim on session " + sid in caplog.text
    assert "database or disk is full" in caplog.text

    # Meanwhile a resume that will not wait long enough is refused in one clear sentence.
    impatient = SessionService(service.store, busy_timeout_s=0.5)
    with pytest.raises(Exception) as refused:
        impatient.resume(sid, "Too early.", ctx=RunContext(None, None))
    busy = busy_error(refused.value)
    assert busy is not None, repr(refused.value)
    text = str(busy)
    assert text.startswith(f"session '{sid}' is busy: '{holder}' holds its claim until 20")
    assert text.count("busy") == 1 and text.count("session") == 1 + holder.count("session")
    assert "(waited 0 s for it)" in text or "(waited 1 s for it)" in text

    # Once the claim expires it never blocks: the next resume takes it over at once.
    patient = SessionService(service.store, busy_timeout_s=30)
    started = time.monotonic()
    after = patient.resume(sid, "Summarise the log.", ctx=RunContext(None, None))
    waited = time.monotonic() - started
    assert after.text.startswith("echo: Summarise the log.")
    assert released_failed_at + TTL_S - 1 < time.monotonic() < released_failed_at + TTL_S + 15
    assert waited < TTL_S + 10  # claim expiry plus one turn, not the 30 s busy timeout

    # What the model received: each completed turn once, nothing of the refused attempt.
    seen = main_requests(standin)[-1]["user_turns"]
    assert seen == ["Open the incident log.", "Log: disk full on db-3.", "Summarise the log."]
