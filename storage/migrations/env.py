"""Alembic environment for the storage schema.

Normally run by :func:`storage.schema.upgrade_to_head`, which hands over an open connection in
``config.attributes["connection"]`` (inside its locked transaction). Run by hand, it connects to
``sqlalchemy.url`` or to :func:`storage.config.database_url`.

The target is the plugin's own metadata (never ``SQLModel.metadata``, which is the user's) and
the version table is ``claude_sessions_alembic_version``. A database from before those names is
adopted first (storage/legacy.py) whenever a connection is at hand (not in offline mode).
"""

from __future__ import annotations

import prefect_claude_sessions.storage.models  # noqa: F401  (registers the tables)
from alembic import context
from prefect_claude_sessions.storage.legacy import adopt_legacy_version_table
from prefect_claude_sessions.storage.metadata import TABLE_PREFIX, VERSION_TABLE, metadata

config = context.config
target_metadata = metadata


def _only_plugin_tables(name, type_, parent_names) -> bool:
    """Autogenerate looks at the plugin's tables only: the database may hold the application's."""
    return type_ != "table" or name is None or name.startswith(TABLE_PREFIX)


def _configure_and_run(connection) -> None:
    adopt_legacy_version_table(connection, context.script)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=_only_plugin_tables,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    from prefect_claude_sessions.storage.config import database_url

    context.configure(
        url=config.get_main_option("sqlalchemy.url") or database_url(),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from prefect_claude_sessions.storage.config import database_url
    from prefect_claude_sessions.storage.engine import create_engine_for

    engine = create_engine_for(config.get_main_option("sqlalchemy.url") or database_url())
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
