"""Fencing tokens on session claims; audit columns on turns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

- ``claude_sessions_session_claims.fence_token``: grows by one on every claim of a session; the
  store refuses writes from a holder whose token is no longer the session's current one.
  Existing claims get token 1.
- ``claude_sessions_turns.attempts``: how many times the turn was begun (existing turns: 1).
- ``claude_sessions_turns.error_kind``: the classified kind of the turn's last failure. Existing
  failed turns keep it only inside their ``error`` text (``[kind] message``), which may be
  encrypted, so it is not backfilled.
- ``claude_sessions_turns.claim_token``: the fencing token its latest attempt ran under.

Plain ``ADD COLUMN`` on both databases (SQLite allows it for nullable columns and for
NOT NULL columns with a constant default), so no table is rebuilt and no row is copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TURNS = "claude_sessions_turns"
CLAIMS = "claude_sessions_session_claims"


def upgrade() -> None:
    op.add_column(
        CLAIMS,
        sa.Column("fence_token", sa.BigInteger(), nullable=False, server_default=sa.text("1")),
    )
    op.add_column(
        TURNS, sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("1"))
    )
    op.add_column(TURNS, sa.Column("error_kind", sa.String(length=64), nullable=True))
    op.add_column(TURNS, sa.Column("claim_token", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(TURNS) as batch:
        batch.drop_column("claim_token")
        batch.drop_column("error_kind")
        batch.drop_column("attempts")
    with op.batch_alter_table(CLAIMS) as batch:
        batch.drop_column("fence_token")
