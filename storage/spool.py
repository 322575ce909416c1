"""A local spool for transcript batches the database could not take.

When the database goes away mid-turn, the CLI has already written the model's answer to its
local transcript, but the mirror to the store fails. Without a spool the answer exists only in
a temporary config directory that the SDK deletes, so the retry asks the model again. The spool
keeps each refused batch on this machine, in order, as the store would have held it (sealed
when encryption at rest is on), and the next append or turn of that session replays it into the
store first. The service's retry then finds the answer in the store and records it without a
second request to the model.

A spool is trusted only while it still continues the stored conversation: if another worker
moved the session on in the meantime, the spooled batches are stale and are dropped (the
interrupted prompt is then asked again, which is the documented fallback when the answer exists
nowhere the service can reach).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import get_settings

logger = logging.getLogger("claude_sessions.storage")

_lock = threading.Lock()


@dataclass(frozen=True)
class SpooledBatch:
    """One refused append: its key, the stored form of each entry, and the raw batch's digest."""

    project_key: str
    session_id: str
    subpath: str
    bodies: list[str]
    digest: str


def spool_dir() -> Path:
    """Where this machine keeps refused batches (``CLAUDE_SESSIONS_HOME``/spool)."""
    return get_settings().home / "spool"


def batch_digest(raw: list[Any]) -> str:
    """A stable digest of a raw batch: the SDK retries a failed append with the same batch,
    and it must be spooled once."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _path(session_id: str) -> Path:
    return spool_dir() / f"{session_id}.jsonl"


def has_pending(session_id: str) -> bool:
    """True if batches of this session wait in this machine's spool."""
    return _path(session_id).exists()


def add(batch: SpooledBatch) -> bool:
    """Keep ``batch`` after the ones already spooled for its session; False if it is there."""
    path = _path(batch.session_id)
    with _lock:
        if any(b.digest == batch.digest for b in _read(path)):
            return False
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = json.dumps(
            {
                "project_key": batch.project_key,
                "session_id": batch.session_id,
                "subpath": batch.subpath,
                "bodies": batch.bodies,
                "digest": batch.digest,
            }
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
    return True


def pending(session_id: str) -> list[SpooledBatch]:
    """The spooled batches of a session, oldest first."""
    with _lock:
        return _read(_path(session_id))


def discard(session_id: str) -> None:
    """Forget a session's spool (replayed, stale, or the session was purged)."""
    with _lock:
        _path(session_id).unlink(missing_ok=True)


def _read(path: Path) -> list[SpooledBatch]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    batches = []
    for number, line in enumerate(lines, 1):
        try:
            data = json.loads(line)
            batches.append(
                SpooledBatch(
                    project_key=data["project_key"],
                    session_id=data["session_id"],
                    subpath=data.get("subpath") or "",
                    bodies=list(data["bodies"]),
                    digest=data["digest"],
                )
            )
        except (ValueError, KeyError, TypeError):
            # A line cut short by a crash while it was written: the batches before it are
            # whole, and nothing after it can be trusted to follow them.
            logger.warning("ignoring a damaged spool line %d in %s and what follows", number, path)
            break
    return batches
