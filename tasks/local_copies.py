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

Whatever the encryption setting, known secret values (`storage.secrets`: the API key a gateway
echoed in an error body, say) are scrubbed from a local copy at the same moments, in place, so
the plaintext file never keeps them either.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from prefect_claude_sessions.storage import secrets
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
    """Delete the CLI's local files of ``session_id``: its transcript (main file and subagent
    folder) under every project folder of ``config`` (default `config_dir`), its file-history
    backups (file checkpointing) and its to-do lists; returns how many were removed."""
    base = config or config_dir()
    removed = 0
    history = base / "file-history" / session_id
    if history.is_dir():
        shutil.rmtree(history, ignore_errors=True)
        removed += 1
    todos = base / "todos"
    if todos.is_dir():
        for todo in todos.glob(f"{session_id}*.json"):
            todo.unlink(missing_ok=True)
            removed += 1
    projects = base / "projects"
    if not projects.is_dir():
        return removed
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


def scrub_local_copies(session_id: str, config: Path | None = None) -> int:
    """Replace known secret values (`storage.secrets.known_secrets`) in the local transcript
    files of ``session_id``, in place (same file, so a CLI appending to it keeps doing so);
    returns how many files changed. Files without a secret are only read."""
    known = [s.encode() for s in secrets.known_secrets()]
    if not known:
        return 0
    changed = 0
    for path in _copies(session_id, config or config_dir()):
        data = path.read_bytes()
        clean = data
        for secret in known:
            clean = clean.replace(secret, secrets.REDACTED.encode())
        if clean != data:
            with path.open("r+b") as fh:
                fh.write(clean)
                fh.truncate()
            changed += 1
    return changed


def after_turn(store: Any, session_id: str, profile: AgentProfile, pool: Any) -> None:
    """A turn of ``session_id`` completed and is recorded (the store holds it).

    Scrub known secrets from the local copy; if the store had to scrub one from this session's
    entries, close its warm CLI, whose memory still holds the secret (the next turn then starts
    from the scrubbed store). With encryption at rest on, delete the local plaintext now, or when
    its warm CLI in ``pool`` closes.
    """
    _scrub(session_id, config_dir())
    take = getattr(store, "take_scrubbed", None)
    if pool is not None and take is not None and take(session_id) and session_id in pool:
        discard_client(pool, session_id)
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
    else:
        _scrub(session_id, config_dir())  # e.g. a failed turn wrote an echoed key there


def discard_client(pool: Any, session_id: str) -> None:
    """Close the pool's CLI for ``session_id`` from synchronous code (any thread)."""
    import asyncio
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(pool.discard(session_id))
        return
    with concurrent.futures.ThreadPoolExecutor(1) as helper:  # a loop runs here: not on it
        helper.submit(asyncio.run, pool.discard(session_id)).result()


def _copies(session_id: str, config: Path) -> list[Path]:
    projects = config / "projects"
    if not projects.is_dir():
        return []
    found: list[Path] = []
    for project in projects.iterdir():
        main = project / f"{session_id}.jsonl"
        if main.is_file():
            found.append(main)
        folder = project / session_id
        if folder.is_dir():
            found += [p for p in folder.rglob("*.jsonl") if p.is_file()]
    return found


def _scrub(session_id: str, config: Path) -> None:
    try:
        scrub_local_copies(session_id, config)
    except OSError as exc:  # never fail a turn or a close over a cleanup
        logger.warning("could not scrub the local transcript of %s: %s", session_id, exc)


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
