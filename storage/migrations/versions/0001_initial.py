"""Initial schema: sessions, turns, checkpoints, decisions, session claims, SDK transcripts.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written from Alembic's autogenerate output, then reviewed: plain SQLAlchemy types only (no
imports of application code, so later model changes cannot alter this revision), enums as
VARCHAR(20), JSON as JSONB on PostgreSQL, timezone-aware timestamps.

Every name carries the ``claude_sessions_`` prefix, so a fresh install never creates (or trips
over) a table the application sharing the database may own, such as ``sessions``. Until the
prefix was introduced this revision created unprefixed tables (``sessions``, ``turns``, ...)
recorded in ``alembic_version``; such databases are adopted into the prefixed version table by
``storage/legacy.py`` and renamed by revision 0002, which is a no-op on databases created here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _bigid() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "claude_sessions_sessions",
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
        sa.ForeignKeyConstraint(["parent_id"], ["claude_sessions_sessions.id"], name="fk_claude_sessions_sessions_parent_id"),
        sa.PrimaryKeyConstraint("id", name="pk_claude_sessions_sessions"),
    )
    op.create_index("ix_claude_sessions_sessions_agent_name_created_at", "claude_sessions_sessions", ["agent_name", "created_at"])
    op.create_index("ix_claude_sessions_sessions_parent_id", "claude_sessions_sessions", ["parent_id"])
    op.create_index("ix_claude_sessions_sessions_status_created_at", "claude_sessions_sessions", ["status", "created_at"])

    op.create_table(
        "claude_sessions_turns",
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
        sa.PrimaryKeyConstraint("id", name="pk_claude_sessions_turns"),
        sa.UniqueConstraint("idempotency_key", name="uq_claude_sessions_turns_idempotency_key"),
    )
    op.create_index("ix_claude_sessions_turns_session_id_started_at", "claude_sessions_turns", ["session_id", "started_at"])
    op.create_index("ix_claude_sessions_turns_flow_run_id", "claude_sessions_turns", ["flow_run_id"])

    op.create_table(
        "claude_sessions_checkpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("transcript_uuid", sa.String(64), nullable=False),
        sa.Column("user_message_uuid", sa.String(64), nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["session_id"], ["claude_sessions_sessions.id"], name="fk_claude_sessions_checkpoints_session_id"),
        sa.PrimaryKeyConstraint("id", name="pk_claude_sessions_checkpoints"),
        sa.UniqueConstraint("idempotency_key", name="uq_claude_sessions_checkpoints_idempotency_key"),
    )
    op.create_index("ix_claude_sessions_checkpoints_session_id_created_at", "claude_sessions_checkpoints", ["session_id", "created_at"])

    op.create_table(
        "claude_sessions_decisions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["session_id"], ["claude_sessions_sessions.id"], name="fk_claude_sessions_decisions_session_id"),
        sa.PrimaryKeyConstraint("id", name="pk_claude_sessions_decisions"),
        sa.UniqueConstraint("idempotency_key", name="uq_claude_sessions_decisions_idempotency_key"),
    )
    op.create_index("ix_claude_sessions_decisions_created_at", "claude_sessions_decisions", ["created_at"])
    op.create_index("ix_claude_sessions_decisions_key_created_at", "claude_sessions_decisions", ["key", "created_at"])
    op.create_index("ix_claude_sessions_decisions_session_id_created_at", "claude_sessions_decisions", ["session_id", "created_at"])

    op.create_table(
        "claude_sessions_session_claims",
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        _time("claimed_at"),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("session_id", name="pk_claude_sessions_session_claims"),
    )

    op.create_table(
        "claude_sessions_transcript_keys",
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
        sa.PrimaryKeyConstraint("id", name="pk_claude_sessions_transcript_keys"),
        sa.UniqueConstraint(
            "project_key", "session_id", "subpath",
            name="uq_claude_sessions_transcript_keys_key",
        ),
    )
    op.create_index("ix_claude_sessions_transcript_keys_session_id", "claude_sessions_transcript_keys", ["session_id"])

    op.create_table(
        "claude_sessions_transcript_entries",
        sa.Column("seq", _bigid(), nullable=False),
        sa.Column("key_id", _bigid(), nullable=False),
        sa.Column("uuid", sa.String(255), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["claude_sessions_transcript_keys.id"],
            name="fk_claude_sessions_transcript_entries_key_id", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_claude_sessions_transcript_entries"),
        sa.UniqueConstraint("key_id", "uuid", name="uq_claude_sessions_transcript_entries_key_id_uuid"),
    )
    op.create_index("ix_claude_sessions_transcript_entries_key_id_seq", "claude_sessions_transcript_entries", ["key_id", "seq"])


def downgrade() -> None:
    op.drop_table("claude_sessions_transcript_entries")
    op.drop_table("claude_sessions_transcript_keys")
    op.drop_table("claude_sessions_session_claims")
    op.drop_table("claude_sessions_decisions")
    op.drop_table("claude_sessions_checkpoints")
    op.drop_table("claude_sessions_turns")
    op.drop_table("claude_sessions_sessions")
