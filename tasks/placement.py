"""Where a session's transcript lives, and keeping it equal to the session's completed history.

The SDK finds a transcript by (project key of the cwd, session id), so a worker in another
directory must see the session under its own project key (`localise`). And the stored
transcript must hold the completed turns only: the CLI writes a turn's prompt before the model
answers, so a failed, timed-out or interrupted attempt leaves its prompt (and the CLI's
synthetic error reply) behind. `cut_to_head` removes that tail, so no later request to the
model carries it, on this worker or any other.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from claude_agent_sdk import project_key_for_directory
from prefect_claude_sessions.storage import (
    SessionNotFound,
    SessionPurged,
    SessionStatus,
    SQLModelSessionStore,
)

from . import transcript
from .local_copies import forget_local_copies
from .profile import AgentProfile
from .warm_clients import close_warm_client

logger = logging.getLogger("claude_sessions")

#: Entry types that open a new turn: the CLI's queue bookkeeping (which carries the prompt text)
#: and the prompt itself.
_TURN_OPENERS = frozenset({"queue-operation", "user"})


def cwd_of(profile: AgentProfile) -> str:
    """The directory the agent works in (the profile's, else this process's)."""
    return str(profile.cwd) if profile.cwd else os.getcwd()


def project_key_of(profile: AgentProfile) -> str:
    """The SDK's project key for the profile's working directory."""
    return project_key_for_directory(cwd_of(profile))


def localise(store: SQLModelSessionStore, session_id: str, profile: AgentProfile) -> None:
    """Make the session's transcript visible under this worker's project key (one transaction
    in the store, so the session keeps one home and any worker can resume it by id alone).

    A purged session raises `SessionPurged`, and the stale local copy this worker may still
    have of it is deleted first (see `drop_if_purged`)."""
    try:
        store.relocate(session_id, to_project_key=project_key_of(profile))
    except SessionPurged:
        close_warm_client(session_id)
        forget_local_copies(session_id)
        raise


def drop_if_purged(session_id: str, status: object) -> None:
    """Before a worker uses anything of a session: if its recorded ``status`` is purged, close
    this worker's warm CLI of it, delete its stale local copy and raise `SessionPurged`."""
    if status == SessionStatus.purged:
        close_warm_client(session_id)  # purged elsewhere while this worker kept its CLI warm
        removed = forget_local_copies(session_id)
        if removed:
            logger.info("deleted %d stale local files of purged session %s", removed, session_id)
        raise SessionPurged(session_id)


def stored_entries(store: SQLModelSessionStore, session_id: str) -> list[dict[str, Any]]:
    """The session's stored main transcript ([] when it has none yet)."""
    try:
        return store.entries(session_id)
    except SessionNotFound:
        return []


def tail_start(entries: list[dict[str, Any]], head: str | None) -> int | None:
    """Where the uncompleted tail after ``head`` begins (None: the transcript ends at the head).

    Without a head (a new session whose first turn never completed) the whole transcript is tail.
    Entries after the head that belong to the completed turn itself (its closing attachments and
    bookkeeping) are kept; the tail starts at the first entry that opens another turn.
    """
    if head is None:
        return 0 if entries else None
    index = transcript.find_index(entries, head)
    if index is None:
        raise LookupError(f"the session's head {head} is not in its stored transcript")
    for position in range(index + 1, len(entries)):
        if entries[position].get("type") in _TURN_OPENERS:
            return position
    return None


def cut_to_head(
    store: SQLModelSessionStore, session_id: str, head: str | None, *, local_dir: str | None = None
) -> int:
    """Remove the stored (and, for file-checkpointing sessions, local) transcript past ``head``.

    Returns how many entries were removed. A session without a head loses its whole transcript
    (its creation is redone from scratch).
    """
    # Batches of the uncompleted turn that waited in this machine's spool go with its tail.
    store.discard_spool(session_id)
    entries = stored_entries(store, session_id)
    start = tail_start(entries, head)
    if start is None:
        return 0
    removed = len(entries) - start
    if start == 0:
        store.delete_sync(session_id)
    else:
        store.truncate(session_id, keep=start)
    if local_dir is not None:
        _cut_local(session_id, local_dir, entries[:start])
    logger.info(
        "session %s: removed %d transcript entries of an uncompleted turn after %s",
        session_id,
        removed,
        head or "its start",
    )
    return removed


def local_transcript_path(session_id: str, directory: str) -> Path:
    """The CLI's own transcript file for ``session_id`` when it runs in ``directory``."""
    config = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    return config / "projects" / project_key_for_directory(directory) / f"{session_id}.jsonl"


def _cut_local(session_id: str, directory: str, kept: list[dict[str, Any]]) -> None:
    path = local_transcript_path(session_id, directory)
    if not path.exists():
        return
    if not kept:
        path.unlink()
        return
    temporary = path.with_suffix(".jsonl.cut")
    temporary.write_text("".join(json.dumps(entry) + "\n" for entry in kept))
    temporary.replace(path)
