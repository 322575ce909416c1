"""Purging a session: its conversation is deleted everywhere this worker can reach, for good.

One implementation, used by ``claude-sessions purge`` and the maintenance flow. The audit records
(lineage, turns, checkpoints, decisions, costs) stay; every later operation on the session fails
with `SessionPurged` before anything is sent to the model.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect_claude_sessions.storage import (
    SessionBusy,
    SessionStatus,
    SQLModelSessionStore,
    claims,
    open_db,
    sessions,
)

from .validation import normalize_session_id

logger = logging.getLogger("claude_sessions")


def purge_session(store: SQLModelSessionStore, session_id: str) -> int:
    """Delete a session's stored transcripts (main and subagents), close any warm CLI holding it
    in this process, delete this machine's local copies, and mark it purged.

    Returns the transcript bytes freed. A session a worker is writing right now (an unexpired
    claim) is refused with `SessionBusy`; purging a purged session frees nothing.
    """
    sid = normalize_session_id(session_id)
    with open_db(store.engine) as db:
        holder = claims.current_holder(db, sid)
        if holder is not None:
            raise SessionBusy(sid, holder)
        record = sessions.get_session(db, sid)
        freed = record.transcript_bytes or 0
    _close_warm_client(sid)
    store.delete_sync(sid)
    removed = forget_local_copies(sid)
    with open_db(store.engine) as db:
        sessions.set_transcript_bytes(db, sid, 0)
        sessions.set_status(db, sid, SessionStatus.purged)
    logger.info("purged session %s (%d bytes stored, %d local files)", sid, freed, removed)
    return freed


def _close_warm_client(session_id: str) -> None:
    from .client_pool import default_pool

    pool = default_pool()
    if session_id not in pool:
        return
    import asyncio

    asyncio.run(pool.discard(session_id))


def forget_local_copies(session_id: str, config_dir: Path | None = None) -> int:
    """Delete the CLI's local transcript files of ``session_id`` under every project folder of
    this machine's ``CLAUDE_CONFIG_DIR``; returns how many were removed."""
    import os
    import shutil

    config = config_dir or Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    projects = config / "projects"
    if not projects.is_dir():
        return 0
    removed = 0
    for project in projects.iterdir():
        transcript = project / f"{session_id}.jsonl"
        if transcript.is_file():
            transcript.unlink()
            removed += 1
        folder = project / session_id
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
