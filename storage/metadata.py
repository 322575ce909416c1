"""The plugin's own SQLAlchemy ``MetaData``, table names and Alembic version table.

The tables live on a private registry, not on the global ``SQLModel.metadata``: a user's own
SQLModel table called ``sessions`` or ``checkpoints`` then coexists with ours in one process, the
user's ``SQLModel.metadata.create_all`` and Alembic autogenerate never see our tables, and our
naming convention never changes the names of theirs. Every physical name (tables, indexes,
constraints, sequences, the version table) starts with ``claude_sessions_`` so that the plugin's
tables can share a database with an application's.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import SQLModel

TABLE_PREFIX = "claude_sessions_"
"""Every table of the plugin is named ``claude_sessions_<name>``."""

VERSION_TABLE = "claude_sessions_alembic_version"
"""Alembic's version table for the plugin's schema (not ``alembic_version``, the user's)."""

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    # Without the referred table: "fk_claude_sessions_checkpoints_session_id_claude_sessions_sessions"
    # would pass PostgreSQL's 63-character identifier limit.
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names for the plugin's tables (explicit names in models.py win over these)."""

POSTGRES_IDENTIFIER_LIMIT = 63
"""PostgreSQL silently truncates longer identifiers; the tests check every name fits."""

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""The plugin's tables, and only those (Alembic's target metadata)."""


def table_name(name: str) -> str:
    """The physical name of the plugin table ``name`` (``"turns"`` -> ``"claude_sessions_turns"``)."""
    return TABLE_PREFIX + name


class PluginModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of the plugin's table models: SQLModel, on the plugin's own registry and metadata."""


__all__ = [
    "NAMING_CONVENTION",
    "POSTGRES_IDENTIFIER_LIMIT",
    "TABLE_PREFIX",
    "VERSION_TABLE",
    "PluginModel",
    "metadata",
    "table_name",
]
