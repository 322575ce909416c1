"""Known secret values, and scrubbing them out of what the store writes.

A gateway may echo the API key in an error body, or a model may repeat a token it saw; the CLI
then writes it into the transcript, and the store would keep it for good. The store therefore
replaces every *known* secret value (the configured API key and auth tokens, the passwords of
the database URLs in use, the encryption keys, and anything registered here) before it writes
transcript entries, turn answers or turn errors.

Storage does not import ``tasks``: the agent side registers what it learns (credentials from a
Prefect block) with `register_secret`; ``tasks.errors.register_secret`` forwards here.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from sqlalchemy.engine import make_url

REDACTED = "***"

#: Environment variables whose values are credentials wherever they show up.
SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "CLAUDE_SESSIONS_ENCRYPTION_KEY",
)

#: Shorter values are not scrubbed: replacing them would mangle ordinary text.
MIN_SECRET_CHARS = 6

_lock = threading.Lock()
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret: the store will never write it (from now on)."""
    if not value:
        return
    for part in _parts(value):
        with _lock:
            _registered.add(part)


def register_url_password(url: str | None) -> None:
    """Remember the password of a database URL (if it has one) as a secret."""
    if not url:
        return
    try:
        password = make_url(url).password
    except Exception:  # an unparsable URL is reported by the engine; nothing to learn here
        return
    if password:
        register_secret(str(password))


def known_secrets() -> list[str]:
    """Every known secret value, longest first (so a secret containing another goes whole)."""
    with _lock:
        found = set(_registered)
    for name in SECRET_ENV_VARS:
        found.update(_parts(os.environ.get(name) or ""))
    url = os.environ.get("CLAUDE_SESSIONS_DATABASE_URL")
    if url:
        try:
            password = make_url(url).password
        except Exception:
            password = None
        if password and len(str(password)) >= MIN_SECRET_CHARS:
            found.add(str(password))
    return sorted(found, key=len, reverse=True)


def scrub_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    for secret in known_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub_value(value: Any, secrets: list[str] | None = None) -> Any:
    """A JSON-like value (a transcript entry) with every string scrubbed of known secrets.

    Returns ``value`` itself when nothing changed, so the common case copies nothing.
    """
    chain = known_secrets() if secrets is None else secrets
    if not chain:
        return value
    return _walk(value, chain)


def _walk(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        out = {k: _walk(v, secrets) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list):
        items = [_walk(v, secrets) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _parts(value: str) -> list[str]:
    # a comma-separated key list (encryption keys) holds several secrets
    parts = [value.strip(), *(p.strip() for p in value.split(",") if "," in value)]
    return [p for p in parts if len(p) >= MIN_SECRET_CHARS]
