"""A tool call waiting for a person's approval, on the turn that stopped before it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

- ``claude_sessions_turns.pending_tool``: the deferred tool call (``id``, ``name``, ``input``) of
  a turn that stopped before running a tool of ``AgentProfile.approval_tools`` (JSON, JSONB on
  PostgreSQL; sealed like the turn's answer when an encryption key is configured). NULL for
  every other turn, so existing rows need no backfill.

A plain nullable ``ADD COLUMN`` on both databases: no table is rebuilt, no row is copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TURNS = "claude_sessions_turns"


def upgrade() -> None:
    op.add_column(
        TURNS,
        sa.Column(
            "pending_tool",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table(TURNS) as batch:
        batch.drop_column("pending_tool")
