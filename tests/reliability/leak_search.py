"""Where a marker (purged customer text, an API key) could linger, searched byte by byte: the
store (SQLite file with its log, or every PostgreSQL row), the Prefect home (result storage,
the test server's database) and CLI config folders."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import psycopg
import sqlalchemy as sa
from prefect.settings import (
    PREFECT_HOME,
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
)
from prefect_claude_sessions.storage import dispose_engines


def store_bytes(url: str) -> bytes:
    """The raw store: every byte of a SQLite file (and its -wal/-shm), or every row of every
    table of a PostgreSQL database as text."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        dispose_engines()  # close connections; the log is read as it is
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        rows = [
            row[0]
            for (table,) in tables
            for row in conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
        ]
    return "\n".join(rows).encode()


def prefect_dirs() -> list[Path]:
    """The Prefect home, the result storage and the (test) server's database folder."""
    found = [Path(PREFECT_HOME.value()), Path(PREFECT_LOCAL_STORAGE_PATH.value())]
    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    if url and "sqlite" in url:
        found.append(Path(sa.make_url(url).database or "").parent)
    return [p for p in found if p.exists()]


def _readable(data: bytes) -> bytes:
    """The bytes, plus their base64 decoding when they are base64 (Prefect stores pickled
    exceptions that way, where a plain search would not see a marker)."""
    try:
        return data + b"\n" + base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return data


def files_containing(marker: str, *roots: Path) -> list[Path]:
    """Files under ``roots`` whose bytes (or base64-decoded bytes) contain ``marker``."""
    needle = marker.encode()
    hits: list[Path] = []
    for root in roots:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                if path.is_file() and needle in _readable(path.read_bytes()):
                    hits.append(path)
            except OSError:
                continue
    return hits


def nowhere(marker: str, url: str, *config_dirs: Path) -> list[str]:
    """Every place ``marker`` is found ([] when it is nowhere)."""
    places = [f"store {url}"] if marker.encode() in store_bytes(url) else []
    places += [str(p) for p in files_containing(marker, *prefect_dirs(), *config_dirs)]
    return places
