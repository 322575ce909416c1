"""Bringing a database to the Alembic head revision, safely when several processes start at once.

A process first reads the current revision without locking (the common case: already at head).
Otherwise it takes a write lock for the whole upgrade (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
a transaction-scoped advisory lock), so concurrent starters wait and then find the work done.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .config import masked_url
from .errors import StorageError
from .metadata import VERSION_TABLE

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x436C5345  # arbitrary constant: "ClSE"


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config pointing at ``storage/migrations`` (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations has no revisions"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at (None for an empty or not yet adopted database).

    Read from the plugin's own version table, ``claude_sessions_alembic_version``.
    """
    opts = {"version_table": VERSION_TABLE}
    return MigrationContext.configure(connection, opts=opts).get_current_revision()


def upgrade_to_head(engine: sa.Engine) -> None:
    """Apply pending migrations; a no-op (one read) when the database is already at head."""
    head = head_revision()
    with engine.connect().execution_options(storage_read_only=True) as conn:
        current = current_revision(conn)
    if current == head:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current is not None and current not in known:
        raise StorageError(
            f"database {masked_url(engine.url.render_as_string(hide_password=False))} is at schema "
            f"revision {current!r}, which this version of storage does not know (its head is {head!r}); "
            "upgrade prefect-claude-sessions"
        )
    with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite: one migrator at a time
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
        command.upgrade(alembic_config(conn), "head")
