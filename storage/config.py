"""Where the store lives and its limits, read from the environment.

``CLAUDE_SESSIONS_DATABASE_URL`` selects the database (any SQLAlchemy URL). Without it the store
is a SQLite file at ``$CLAUDE_SESSIONS_HOME/sessions.db``; ``CLAUDE_SESSIONS_HOME`` defaults to
``~/.claude-sessions``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

DATABASE_URL_ENV = "CLAUDE_SESSIONS_DATABASE_URL"
HOME_ENV = "CLAUDE_SESSIONS_HOME"
MAX_ENTRY_BYTES_ENV = "CLAUDE_SESSIONS_MAX_ENTRY_BYTES"

DEFAULT_MAX_ENTRY_BYTES = 8 * 1024 * 1024
"""Largest single transcript entry accepted (serialised UTF-8 bytes): 8 MiB."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's write lock before failing."""


def sessions_home() -> Path:
    """The folder holding the default SQLite database (``CLAUDE_SESSIONS_HOME`` or ~/.claude-sessions)."""
    raw = os.environ.get(HOME_ENV, "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".claude-sessions"


def default_database_url() -> str:
    """The SQLite URL used when no database URL is configured; creates its folder."""
    home = sessions_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'sessions.db'}"


def database_url() -> str:
    """The configured database URL: ``CLAUDE_SESSIONS_DATABASE_URL`` or the default SQLite file."""
    raw = os.environ.get(DATABASE_URL_ENV, "").strip()
    return raw or default_database_url()


def max_entry_bytes() -> int:
    """Largest accepted transcript entry, from ``CLAUDE_SESSIONS_MAX_ENTRY_BYTES`` (default 8 MiB)."""
    raw = os.environ.get(MAX_ENTRY_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_ENTRY_BYTES
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{MAX_ENTRY_BYTES_ENV} must be an integer, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{MAX_ENTRY_BYTES_ENV} must be positive, got {value}")
    return value


def masked_url(url: str) -> str:
    """The URL as safe to print: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL carries no structure to mask; show no secrets
        return "<unparsable database URL>"
