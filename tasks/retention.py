"""Purging a session: its conversation is deleted everywhere this worker can reach, for good.

One implementation, used by ``claude-sessions purge`` and the maintenance flow. The audit records
(lineage, turns, checkpoints, decisions, costs) stay; every later operation on the session fails
with `SessionPurged` before anything is sent to the model, and the store itself refuses to load
or append its transcript (so a path that bypasses the service cannot bring the text back).

Whether a purge takes the session's descendants (forks, handoffs, rewinds, compactions, and
theirs) with it is the caller's explicit choice (``include_descendants``): a fork holds a copy
of its parent's conversation up to the fork point.
"""

from __future__ import annotations

import logging

from prefect_claude_sessions.storage import (
    SessionBusy,
    SessionRecord,
    SessionStatus,
    SQLModelSessionStore,
    claims,
    open_db,
    sessions,
    turns,
)
from sqlmodel import Session

from .local_copies import forget_local_copies
from .validation import normalize_session_id
from .warm_clients import close_warm_client

logger = logging.getLogger("claude_sessions")

__all__ = ["forget_local_copies", "purge_plan", "purge_session"]


def purge_plan(
    db: Session, session_id: str, *, include_descendants: bool = False
) -> list[SessionRecord]:
    """The sessions a purge of ``session_id`` deletes: the session itself and, with
    ``include_descendants``, every session descended from it; those already purged are left
    out. SessionNotFound if ``session_id`` is not recorded."""
    sid = normalize_session_id(session_id)
    if include_descendants:
        family = [record for _, record in sessions.lineage_tree(db, sid)]
    else:
        family = [sessions.get_session(db, sid)]
    return [r for r in family if r.status != SessionStatus.purged]


def purge_session(
    store: SQLModelSessionStore, session_id: str, *, include_descendants: bool = False
) -> int:
    """Purge a session (and, with ``include_descendants``, its forks and handoffs): mark it
    purged, close any warm CLI holding it in this process, delete its stored transcripts (main
    and subagents) and this machine's local copies.

    Returns the transcript bytes freed. If any of the sessions is being written right now (an
    unexpired claim), nothing is purged and `SessionBusy` names it; purging a purged session
    frees nothing.
    """
    sid = normalize_session_id(session_id)
    with open_db(store.engine) as db:
        plan = purge_plan(db, sid, include_descendants=include_descendants)
        for record in plan:
            holder = claims.current_holder(db, record.id)
            if holder is not None:
                raise SessionBusy(record.id, holder)
        targets = [(r.id, r.transcript_bytes or 0) for r in plan]
    freed = 0
    for target, size in targets:
        _purge_one(store, target)
        freed += size
    return freed


def _purge_one(store: SQLModelSessionStore, sid: str) -> None:
    # Purged first: from here on the store refuses to load or append the transcript, so a CLI
    # on another worker cannot write it back between the deletion and the status change.
    with open_db(store.engine) as db:
        sessions.set_status(db, sid, SessionStatus.purged)
    close_warm_client(sid)
    store.delete_sync(sid)
    store.discard_spool(sid)  # batches that waited here for a database outage to end
    removed = forget_local_copies(sid)
    with open_db(store.engine) as db:
        sessions.set_transcript_bytes(db, sid, 0)
        _forget_turn_texts(db, sid)
    _release_freed_pages(store)
    logger.info("purged session %s (%d local files deleted)", sid, removed)


def _forget_turn_texts(db: Session, sid: str) -> None:
    """The turns stay as the audit record (keys, status, costs, tokens, times, uuids); their
    answers and error messages are conversation text and go with the transcript."""
    for turn in turns.list_turns(db, sid):
        if turn.result_text is None and (turn.error is None or turn.error.endswith("]")):
            continue
        turn.result_text = None
        if turn.error is not None:
            # keep the error's kind ("[kind] message" -> "[kind]"): why it failed, not what
            turn.error = (
                turn.error.split("]", 1)[0] + "]" if turn.error.startswith("[") else "[error]"
            )
        db.add(turn)


def _release_freed_pages(store: SQLModelSessionStore) -> None:
    """SQLite keeps a deleted row's old page images in its write-ahead log until a checkpoint;
    copy them back (the engine zeroes freed pages: ``secure_delete``) and empty the log."""
    engine = store.engine
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL: dead rows are unreadable and reclaimed by (auto)vacuum
    try:
        raw = engine.raw_connection()  # outside a transaction: a checkpoint cannot run in one
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    except Exception as exc:  # a busy reader: the next checkpoint does it
        logger.warning("could not checkpoint the SQLite log after a purge: %s", exc)


def _close_warm_client(session_id: str) -> None:
    from .client_pool import default_pool

    pool = default_pool()
    if session_id not in pool:
        return
    import asyncio

    asyncio.run(pool.discard(session_id))
