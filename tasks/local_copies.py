"""The CLI's local transcript files under ``CLAUDE_CONFIG_DIR``: finding, deleting, and not
letting plaintext linger when the store encrypts at rest.

The CLI writes each new session's transcript to ``CLAUDE_CONFIG_DIR/projects/<key>/<id>.jsonl``
in clear. A resume with a session store never reads that file (the SDK materialises the
transcript from the store into a temporary config folder it removes afterwards), so once the
store holds a completed turn the local file is only needed by a warm CLI still writing to it.
With encryption at rest on, this module deletes it as soon as that is no longer the case:

- after a turn whose session has no warm CLI in this process (`after_turn`);
- when the pool closes the session's CLI: eviction, idle close, failure, discard
  (`client_closed`, called by ``tasks.client_pool``);
- at worker exit (an ``atexit`` hook; it runs after the pools have closed their CLIs).

Sessions with file checkpointing are left alone: the SDK cannot mirror them live, so their
local transcript (and its file history) is what resume and file rewind read.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from prefect_claude_sessions.storage.encryption import encryption_configured

from .profile import AgentProfile

logger = logging.getLogger("claude_sessions")

_lock = threading.Lock()
#: Sessions whose local copy waits for its warm CLI to close, with the config folder it is in.
_waiting: dict[str, Path] = {}


def config_dir() -> Path:
    """This worker's CLI config folder (``CLAUDE_CONFIG_DIR``, else ``~/.claude``)."""
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")


def forget_local_copies(session_id: str, config: Path | None = None) -> int:
    """Delete the CLI's local transcript files of ``session_id`` (main file and its subagent
    folder) under every project folder of ``config`` (default `config_dir`); returns how many
    were removed."""
    projects = (config or config_dir()) / "projects"
    if not projects.is_dir():
        return 0
    removed = 0
    for project in projects.iterdir():
        transcript = project / f"{session_id}.jsonl"
        if transcript.is_file():
            transcript.unlink(missing_ok=True)
            removed += 1
        folder = project / session_id
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def after_turn(session_id: str, profile: AgentProfile, pool: Any) -> None:
    """A turn of ``session_id`` completed and is recorded (the store holds it): with encryption
    at rest on, delete the local plaintext now, or when its warm CLI in ``pool`` closes."""
    if profile.file_checkpointing or not encryption_configured():
        return
    if pool is not None and session_id in pool:
        with _lock:
            _waiting[session_id] = config_dir()
        return
    _forget(session_id, config_dir(), "after a cold turn")


def client_closed(session_id: str | None) -> None:
    """The pool closed the CLI holding ``session_id``: delete the local copy it no longer needs
    (only for sessions `after_turn` left waiting, i.e. mirrored with encryption on)."""
    if session_id is None:
        return
    with _lock:
        config = _waiting.pop(session_id, None)
    if config is not None:
        _forget(session_id, config, "its CLI closed")


def waiting() -> list[str]:
    """Sessions whose local copy waits for a warm CLI to close (for tests and diagnostics)."""
    with _lock:
        return sorted(_waiting)


def _forget(session_id: str, config: Path, why: str) -> None:
    try:
        removed = forget_local_copies(session_id, config)
    except OSError as exc:  # never fail a turn or a close over a cleanup
        logger.warning("could not delete the local transcript of %s: %s", session_id, exc)
        return
    if removed:
        logger.debug("deleted the local transcript of %s (%s)", session_id, why)


@atexit.register
def _forget_waiting_at_exit() -> None:
    with _lock:
        pending = list(_waiting.items())
        _waiting.clear()
    for session_id, config in pending:
        _forget(session_id, config, "worker exit")
