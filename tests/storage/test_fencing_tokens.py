"""Fencing tokens on session claims: they only grow, and the store refuses the writes of a holder
whose claim was taken over (transcript appends, cuts, turn records), on SQLite and PostgreSQL."""

from __future__ import annotations

import pickle
import threading
import time
import uuid

import pytest
from prefect_claude_sessions.storage import (
    ClaimLost,
    SessionBusy,
    SQLModelSessionStore,
    StorageError,
    TurnStatus,
    claims,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.storage.claims import Fence

from .test_repositories import make_session

PK = "-w"


def take(url: str, sid: str, holder: str, ttl: float = 60.0) -> Fence:
    with open_db(url) as db:
        token = claims.claim_session(db, sid, holder=holder, ttl_seconds=ttl)
    assert token is not None, f"{holder} could not claim {sid}"
    return Fence(sid, holder, token)


def line(text: str, parent: str | None = None) -> dict:
    return {"type": "user", "uuid": str(uuid.uuid4()), "parentUuid": parent, "message": text}


def test_tokens_only_grow_across_release_expiry_and_takeover(database_url) -> None:
    sid = make_session(database_url)
    a = take(database_url, sid, "a")
    assert a.token == 1
    with open_db(database_url) as db:
        assert claims.renew_claim(db, a, ttl_seconds=60)  # a renewal keeps the token
        assert claims.claim_session(db, sid, holder="b", ttl_seconds=60) is None
        claims.release_session(db, sid, holder="a", token=a.token)
        assert claims.current_holder(db, sid) is None  # released: free at once
    b = take(database_url, sid, "b", ttl=0.05)
    assert b.token == 2
    time.sleep(0.1)  # b's claim expires without a release
    c = take(database_url, sid, "c")
    assert c.token == 3
    with open_db(database_url) as db:
        assert not claims.renew_claim(db, b, ttl_seconds=60)  # a lost claim is never taken back
        claims.release_session(db, sid, holder="b", token=b.token)  # not b's any more: no effect
        claim = claims.current_claim(db, sid)
        assert (claim.holder, claim.fence_token) == ("c", 3)


def test_store_refuses_a_taken_over_holders_appends_and_cuts(database_url) -> None:
    sid = make_session(database_url)
    stale_store, new_store = SQLModelSessionStore(database_url), SQLModelSessionStore(database_url)
    stale = take(database_url, sid, "stale", ttl=0.05)
    stale_store.hold_fence(stale)
    first = line("before the stall")
    assert stale_store.append_sync(PK, sid, [first]) == 1

    time.sleep(0.1)
    fresh = take(database_url, sid, "fresh")
    new_store.hold_fence(fresh)
    second = line("the new holder's turn", first["uuid"])
    new_store.append_sync(PK, sid, [second])

    with pytest.raises(ClaimLost) as refused:
        stale_store.append_sync(PK, sid, [line("the stale holder woke up", first["uuid"])])
    err = refused.value
    assert isinstance(err, StorageError)
    assert (err.session_id, err.held_token, err.current_token) == (sid, 1, 2)
    assert sid in str(err) and "token 1" in str(err) and "token 2" in str(err)
    assert "'fresh'" in str(err) and "transcript append" in str(err)
    assert stale_store.lost_claim(sid) is err  # the SDK mirror swallows it; the holder asks
    with pytest.raises(ClaimLost):
        stale_store.truncate(sid, keep=1)  # a stale cut would delete the new holder's turn
    with pytest.raises(ClaimLost):
        stale_store.delete_sync(sid)
    assert [e["uuid"] for e in new_store.entries(sid)] == [first["uuid"], second["uuid"]]
    # A store that holds no fence for the session (e.g. a read-only tool) is not fenced.
    assert SQLModelSessionStore(database_url).append_sync(PK, sid, [line("x")]) == 1


def test_an_expired_claim_nobody_took_over_still_writes(database_url) -> None:
    sid = make_session(database_url)
    store = SQLModelSessionStore(database_url)
    store.hold_fence(take(database_url, sid, "slow", ttl=0.05))
    time.sleep(0.1)
    assert store.append_sync(PK, sid, [line("still the only writer")]) == 1
    assert store.lost_claim(sid) is None


def test_turn_records_from_a_stale_holder(database_url) -> None:
    sid = make_session(database_url)
    stale = take(database_url, sid, "stale", ttl=0.05)
    with open_db(database_url) as db:
        turns.begin_turn(
            db, idempotency_key="k-stale", session_id=sid, operation="resume",
            prompt_digest="d", fence=stale,
        )  # fmt: skip
        turns.begin_turn(
            db, idempotency_key="k-retried", session_id=sid, operation="resume",
            prompt_digest="d", fence=stale,
        )  # fmt: skip
    time.sleep(0.1)
    fresh = take(database_url, sid, "fresh")
    with open_db(database_url) as db:  # the new holder retries one of the stale holder's turns
        again = turns.begin_turn(
            db, idempotency_key="k-retried", session_id=sid, operation="resume",
            prompt_digest="d", fence=fresh,
        )  # fmt: skip
        assert (again.attempts, again.claim_token) == (2, fresh.token)

    done = dict(result_text="late", cost_usd=0.1, usage={}, duration_ms=1, num_turns=1)
    with pytest.raises(ClaimLost), open_db(database_url) as db:
        turns.complete_turn(db, "k-stale", session_id=sid, fence=stale, **done)
    with pytest.raises(ClaimLost), open_db(database_url) as db:
        turns.fail_turn(db, "k-retried", error="late", error_kind="claim_lost", fence=stale)
    with pytest.raises(ClaimLost), open_db(database_url) as db:
        turns.begin_turn(
            db, idempotency_key="k-new", session_id=sid, operation="resume",
            prompt_digest="d", fence=stale,
        )  # fmt: skip
    with open_db(database_url) as db:  # its own attempt, which nobody began since: recorded failed
        row = turns.fail_turn(
            db, "k-stale", error="[claim_lost] x", error_kind="claim_lost", fence=stale
        )
        assert (row.status, row.error_kind) == (TurnStatus.failed, "claim_lost")

    with open_db(database_url) as db:
        rows = {r.idempotency_key: r for r in turns.list_turns(db, sid)}
        assert rows["k-stale"].status == TurnStatus.failed
        assert rows["k-retried"].status == TurnStatus.pending  # left to the new holder
        assert "k-new" not in rows
        assert sessions.get_session(db, sid).turn_count == 0  # nothing completed, no totals
        turns.complete_turn(db, "k-retried", session_id=sid, fence=fresh, **done)
        assert sessions.get_session(db, sid).turn_count == 1


def test_errors_read_as_one_sentence_and_survive_pickling() -> None:
    from datetime import datetime, timezone

    sid = str(uuid.uuid4())
    busy = SessionBusy(sid, "host:1:run:ab", datetime(2026, 12, 3, 18, 0, tzinfo=timezone.utc), 60)
    text = str(busy)
    assert text == (
        f"session '{sid}' is busy: 'host:1:run:ab' holds its claim until "
        "2026-12-03T18:00:00+00:00 (waited 60 s for it)"
    )
    assert text.count("session") == 1 and text.count("busy") == 1
    lost = ClaimLost(sid, 3, 4, "host:2:run:cd", action="transcript append")
    for err in (busy, lost):
        back = pickle.loads(pickle.dumps(err))  # Prefect pickles task exceptions
        assert type(back) is type(err) and str(back) == str(err)
    assert "purged" in str(ClaimLost(sid, 3, None))


def test_a_takeover_racing_a_stale_writer_never_interleaves(database_url) -> None:
    """The stale holder appends in a tight loop while its claim expires and another worker
    takes over: every stale entry is stored before every entry of the new holder."""
    sid = make_session(database_url)
    stale_store, new_store = SQLModelSessionStore(database_url), SQLModelSessionStore(database_url)
    stale_store.hold_fence(take(database_url, sid, "stale", ttl=0.3))
    stopped: list[BaseException] = []

    def stale_writer() -> None:
        try:
            while True:
                stale_store.append_sync(PK, sid, [line("stale")])
        except ClaimLost as exc:
            stopped.append(exc)

    writer = threading.Thread(target=stale_writer)
    writer.start()
    time.sleep(0.4)
    new_store.hold_fence(take(database_url, sid, "fresh"))
    for _ in range(20):
        new_store.append_sync(PK, sid, [line("fresh")])
    writer.join(timeout=30)
    assert not writer.is_alive() and len(stopped) == 1
    order = [e["message"] for e in new_store.entries(sid)]
    assert order.count("fresh") == 20 and order.count("stale") > 0
    first_fresh = order.index("fresh")
    assert "stale" not in order[first_fresh:], "a stale append landed after the takeover"
