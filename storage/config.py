"""Where the store lives and its limits, from the settings (`storage.settings`).

``CLAUDE_SESSIONS_DATABASE_URL`` selects the database (any SQLAlchemy URL). Without it the store
is a SQLite file at ``$CLAUDE_SESSIONS_HOME/sessions.db``; ``CLAUDE_SESSIONS_HOME`` defaults to
``~/.claude-sessions``.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote_plus

from sqlalchemy.engine import URL, make_url

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


#: Query parameter names (lower-cased) that carry a credential, e.g. ``?password=...``.
SECRET_QUERY_PARAMS = frozenset(
    {"password", "passwd", "pwd", "pass", "sslpassword", "token", "secret", "api_key", "apikey"}
)
#: Parts of a parameter name that mark it secret too (``client_secret``, ``auth_token``, ...).
_SECRET_NAME_PARTS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")
MASK = "***"


def is_secret_param(name: str) -> bool:
    """Whether a URL query parameter called ``name`` holds a credential (case-insensitive)."""
    lowered = name.lower()
    return lowered in SECRET_QUERY_PARAMS or any(part in lowered for part in _SECRET_NAME_PARTS)


def masked_url(url: str | URL) -> str:
    """The URL as safe to print: the password and every credential query parameter (password,
    passwd, pwd, sslpassword, token, secret, api_key, ... in any case) replaced by ``***``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
        base = parsed.set(query={}).render_as_string(hide_password=True)
        pairs = []
        for name, value in parsed.query.items():
            for one in value if isinstance(value, tuple) else (value,):
                shown = MASK if is_secret_param(name) else quote_plus(one)
                pairs.append(f"{quote_plus(name)}={shown}")
        return base + ("?" + "&".join(pairs) if pairs else "")
    except Exception:  # an unparsable URL carries no structure to mask; show no secrets
        return "<unparsable database URL>"


def url_secrets(url: str | URL) -> list[str]:
    """The credential values inside ``url`` (its password, secret query parameters)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return []
    found = [parsed.password] if parsed.password else []
    for name, value in parsed.query.items():
        if is_secret_param(name):
            found.extend(v for v in (value if isinstance(value, tuple) else (value,)) if v)
    return [str(s) for s in found]


def scrub_url_secrets(text: str, url: str | URL) -> str:
    """``text`` (e.g. a driver's error message) with every credential of ``url`` masked, in
    case the driver echoed the connection string. Values shorter than 4 characters are left
    (masking "a" everywhere would garble the message and hide nothing worth hiding)."""
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        if len(secret) < 4:
            continue
        text = re.sub(re.escape(secret), MASK, text)
    return text
