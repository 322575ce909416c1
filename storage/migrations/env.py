"""Alembic environment for the storage schema.

Normally run by :func:`storage.schema.upgrade_to_head`, which hands over an open connection in
``config.attributes["connection"]`` (inside its locked transaction). Run by hand, it connects to
``sqlalchemy.url`` or to :func:`storage.config.database_url`.
"""

from __future__ import annotations

import prefect_claude_sessions.storage.models  # noqa: F401  (registers the tables)
from alembic import context
from sqlmodel import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
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
