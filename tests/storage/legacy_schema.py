"""The schema as revision 0001 created it before the ``claude_sessions_`` prefix (frozen copy).

Databases created by earlier releases look like this: unprefixed tables and Alembic's default
``alembic_version`` table at ``0001``. The upgrade tests build one with
:func:`create_legacy_database`, fill it, and check that the current code upgrades it intact.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from prefect_claude_sessions.storage.schema import alembic_config
from sqlalchemy.dialects import postgresql

LEGACY_TABLES = [
    "sessions",
    "turns",
    "checkpoints",
    "decisions",
    "session_claims",
    "transcript_keys",
    "transcript_entries",
]


def create_legacy_database(engine: sa.Engine) -> None:
    """Give the empty database behind ``engine`` the pre-prefix schema, stamped ``0001``."""
    with engine.begin() as conn:
        context = MigrationContext.configure(conn)  # default version table: alembic_version
        _create_tables(Operations(context))
        context.stamp(ScriptDirectory.from_config(alembic_config()), "0001")


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _bigid() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _create_tables(op: Operations) -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_key", sa.Text(), nullable=False),
        sa.Column("agent_name", sa.String(200), nullable=False),
        sa.Column("agent_profile", _json(), nullable=True),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("fork_point", sa.String(64), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cwd", sa.Text(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.Column("turn_count", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("transcript_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["sessions.id"], name="fk_sessions_parent_id_sessions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_agent_name_created_at", "sessions", ["agent_name", "created_at"])
    op.create_index("ix_sessions_parent_id", "sessions", ["parent_id"])
    op.create_index("ix_sessions_status_created_at", "sessions", ["status", "created_at"])

    op.create_table(
        "turns",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("task_run_id", sa.String(64), nullable=True),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("prompt_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("result_text", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("usage", _json(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("num_turns", sa.Integer(), nullable=True),
        sa.Column("assistant_uuid", sa.String(64), nullable=True),
        sa.Column("user_message_uuid", sa.String(64), nullable=True),
        _time("started_at"),
        _time("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.UniqueConstraint("idempotency_key", name="uq_turns_idempotency_key"),
    )
    op.create_index("ix_turns_session_id_started_at", "turns", ["session_id", "started_at"])
    op.create_index("ix_turns_flow_run_id", "turns", ["flow_run_id"])

    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("transcript_uuid", sa.String(64), nullable=False),
        sa.Column("user_message_uuid", sa.String(64), nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_checkpoints_session_id_sessions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoints"),
        sa.UniqueConstraint("idempotency_key", name="uq_checkpoints_idempotency_key"),
    )
    op.create_index(
        "ix_checkpoints_session_id_created_at", "checkpoints", ["session_id", "created_at"]
    )

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_decisions_session_id_sessions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.UniqueConstraint("idempotency_key", name="uq_decisions_idempotency_key"),
    )
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.create_index("ix_decisions_key_created_at", "decisions", ["key", "created_at"])
    op.create_index("ix_decisions_session_id_created_at", "decisions", ["session_id", "created_at"])

    op.create_table(
        "session_claims",
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        _time("claimed_at"),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("session_id", name="pk_session_claims"),
    )

    op.create_table(
        "transcript_keys",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("project_key", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("subpath", sa.Text(), nullable=False),
        sa.Column("mtime_ms", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("summary", _json(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_transcript_keys"),
        sa.UniqueConstraint(
            "project_key",
            "session_id",
            "subpath",
            name="uq_transcript_keys_project_key_session_id_subpath",
        ),
    )
    op.create_index("ix_transcript_keys_session_id", "transcript_keys", ["session_id"])

    op.create_table(
        "transcript_entries",
        sa.Column("seq", _bigid(), nullable=False),
        sa.Column("key_id", _bigid(), nullable=False),
        sa.Column("uuid", sa.String(255), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["transcript_keys.id"],
            name="fk_transcript_entries_key_id_transcript_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_transcript_entries"),
        sa.UniqueConstraint("key_id", "uuid", name="uq_transcript_entries_key_id_uuid"),
    )
    op.create_index("ix_transcript_entries_key_id_seq", "transcript_entries", ["key_id", "seq"])
