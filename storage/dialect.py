"""SQL that differs per database: ``INSERT ... ON CONFLICT DO NOTHING``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring_conflicts(table: sa.Table, dialect_name: str) -> sa.Insert:
    """An INSERT into ``table`` that silently skips rows violating a unique constraint."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"storage supports SQLite and PostgreSQL, not {dialect_name!r}")
