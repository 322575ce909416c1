"""Where the store lives and its limits, from the settings (`storage.settings`).

``CLAUDE_SESSIONS_DATABASE_URL`` selects the database (any SQLAlchemy URL). Without it the store
is a SQLite file at ``$CLAUDE_SESSIONS_HOME/sessions.db``; ``CLAUDE_SESSIONS_HOME`` defaults to
``~/.claude-sessions``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from .settings import ClaudeSessionsSettings, get_settings

DATABASE_URL_ENV = "CLAUDE_SESSIONS_DATABASE_URL"
HOME_ENV = "CLAUDE_SESSIONS_HOME"
MAX_ENTRY_BYTES_ENV = "CLAUDE_SESSIONS_MAX_ENTRY_BYTES"

DEFAULT_MAX_ENTRY_BYTES: int = ClaudeSessionsSettings.model_fields["max_entry_bytes"].default
"""Largest single transcript entry accepted (serialised UTF-8 bytes): 8 MiB."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's write lock before failing."""


def sessions_home(settings: ClaudeSessionsSettings | None = None) -> Path:
    """The folder holding the default SQLite database (``CLAUDE_SESSIONS_HOME`` or ~/.claude-sessions)."""
    return (settings or get_settings()).home


def default_database_url(settings: ClaudeSessionsSettings | None = None) -> str:
    """The SQLite URL used when no database URL is configured; creates its folder."""
    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings.sqlite_url()


def database_url(settings: ClaudeSessionsSettings | None = None) -> str:
    """The configured database URL: ``CLAUDE_SESSIONS_DATABASE_URL`` or the default SQLite file."""
    settings = settings or get_settings()
    return settings.database_url or default_database_url(settings)


def max_entry_bytes(settings: ClaudeSessionsSettings | None = None) -> int:
    """Largest accepted transcript entry, from ``CLAUDE_SESSIONS_MAX_ENTRY_BYTES`` (default 8 MiB)."""
    return (settings or get_settings()).max_entry_bytes


def masked_url(url: str) -> str:
    """The URL as safe to print: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL carries no structure to mask; show no secrets
        return "<unparsable database URL>"
