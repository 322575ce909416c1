"""Adopting a database created before the plugin's names were prefixed.

Such a database holds unprefixed tables (``sessions``, ``turns``, ...) and records its revision,
``0001``, in Alembic's default ``alembic_version`` table, a name the application sharing the
database may want for its own migrations. Before migrating, :func:`adopt_legacy_version_table`
moves that revision into :data:`~.metadata.VERSION_TABLE` and drops ``alembic_version``;
revision 0002 then renames the tables. Runs inside the migration's transaction (env.py), so a
failure leaves the database as it was.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .errors import StorageError
from .metadata import VERSION_TABLE

LEGACY_VERSION_TABLE = "alembic_version"
LEGACY_REVISION = "0001"
"""The only revision that ever used ``alembic_version``."""

LEGACY_MARKER_TABLES = ("session_claims", "transcript_keys", "transcript_entries")
"""Tables only the unprefixed plugin schema has (``sessions`` alone might be the user's)."""


def adopt_legacy_version_table(connection: sa.Connection, script: ScriptDirectory) -> bool:
    """Move an unprefixed plugin schema's revision into the plugin's version table.

    Returns True when it adopted the database. Does nothing (False) when the plugin's version
    table already exists or the database has no unprefixed plugin schema. Raises StorageError
    when the unprefixed tables are there but ``alembic_version`` does not hold exactly their
    revision: then the plugin cannot tell what they are, and guessing could lose data.
    """
    insp = sa.inspect(connection)
    if insp.has_table(VERSION_TABLE):
        return False
    if not all(insp.has_table(name) for name in LEGACY_MARKER_TABLES):
        return False
    versions: list[str] = []
    if insp.has_table(LEGACY_VERSION_TABLE):
        versions = list(
            connection.execute(sa.text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}")).scalars()
        )
    if versions != [LEGACY_REVISION]:
        raise StorageError(
            f"the database holds the unprefixed tables of an older prefect-claude-sessions "
            f"({', '.join(LEGACY_MARKER_TABLES)}), but its {LEGACY_VERSION_TABLE!r} table holds "
            f"{versions!r} instead of [{LEGACY_REVISION!r}]; cannot tell which schema they have. "
            f"If they are the plugin's at revision {LEGACY_REVISION}, put exactly that row back"
        )
    MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).stamp(
        script, LEGACY_REVISION
    )
    connection.execute(sa.text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
    return True


__all__ = ["adopt_legacy_version_table"]
