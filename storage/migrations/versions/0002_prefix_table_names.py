"""Prefix every table, index, constraint and sequence with ``claude_sessions_``, keeping the data.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Databases created before the prefix hold ``sessions``, ``turns``, ``checkpoints``, ... (names an
application sharing the database may well use itself). ``storage/legacy.py`` moves their
revision from ``alembic_version`` to ``claude_sessions_alembic_version``; this revision then
gives every object the name revision 0001 now creates, so upgraded and fresh schemas are equal.

- PostgreSQL renames in place (``ALTER ... RENAME``: no row is copied, sequences keep counting).
- SQLite cannot rename constraints, and its index names are global, so each table is rebuilt:
  created under the new names from the reflected old table, its rows copied, the old one dropped.

On a database created by the current 0001 (the prefixed tables already exist) it does nothing.
Downgrading is a no-op too: revision 0001 describes the prefixed schema now.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = "claude_sessions_"

TABLES = [  # parents before children
    "sessions",
    "turns",
    "checkpoints",
    "decisions",
    "session_claims",
    "transcript_keys",
    "transcript_entries",
]

# Every index and constraint the old schema had, by table: old name -> new name.
RENAMES: dict[str, dict[str, str]] = {
    "sessions": {
        "pk_sessions": "pk_claude_sessions_sessions",
        "fk_sessions_parent_id_sessions": "fk_claude_sessions_sessions_parent_id",
        "ix_sessions_agent_name_created_at": "ix_claude_sessions_sessions_agent_name_created_at",
        "ix_sessions_parent_id": "ix_claude_sessions_sessions_parent_id",
        "ix_sessions_status_created_at": "ix_claude_sessions_sessions_status_created_at",
    },
    "turns": {
        "pk_turns": "pk_claude_sessions_turns",
        "uq_turns_idempotency_key": "uq_claude_sessions_turns_idempotency_key",
        "ix_turns_session_id_started_at": "ix_claude_sessions_turns_session_id_started_at",
        "ix_turns_flow_run_id": "ix_claude_sessions_turns_flow_run_id",
    },
    "checkpoints": {
        "pk_checkpoints": "pk_claude_sessions_checkpoints",
        "fk_checkpoints_session_id_sessions": "fk_claude_sessions_checkpoints_session_id",
        "uq_checkpoints_idempotency_key": "uq_claude_sessions_checkpoints_idempotency_key",
        "ix_checkpoints_session_id_created_at": "ix_claude_sessions_checkpoints_session_id_created_at",
    },
    "decisions": {
        "pk_decisions": "pk_claude_sessions_decisions",
        "fk_decisions_session_id_sessions": "fk_claude_sessions_decisions_session_id",
        "uq_decisions_idempotency_key": "uq_claude_sessions_decisions_idempotency_key",
        "ix_decisions_created_at": "ix_claude_sessions_decisions_created_at",
        "ix_decisions_key_created_at": "ix_claude_sessions_decisions_key_created_at",
        "ix_decisions_session_id_created_at": "ix_claude_sessions_decisions_session_id_created_at",
    },
    "session_claims": {
        "pk_session_claims": "pk_claude_sessions_session_claims",
    },
    "transcript_keys": {
        "pk_transcript_keys": "pk_claude_sessions_transcript_keys",
        "uq_transcript_keys_project_key_session_id_subpath": "uq_claude_sessions_transcript_keys_key",
        "ix_transcript_keys_session_id": "ix_claude_sessions_transcript_keys_session_id",
    },
    "transcript_entries": {
        "pk_transcript_entries": "pk_claude_sessions_transcript_entries",
        "fk_transcript_entries_key_id_transcript_keys": "fk_claude_sessions_transcript_entries_key_id",
        "uq_transcript_entries_key_id_uuid": "uq_claude_sessions_transcript_entries_key_id_uuid",
        "ix_transcript_entries_key_id_seq": "ix_claude_sessions_transcript_entries_key_id_seq",
    },
}

# PostgreSQL: the sequences behind the BIGSERIAL keys (named <table>_<column>_seq).
SEQUENCES = {
    "turns_id_seq": "claude_sessions_turns_id_seq",
    "transcript_keys_id_seq": "claude_sessions_transcript_keys_id_seq",
    "transcript_entries_seq_seq": "claude_sessions_transcript_entries_seq_seq",
}


def _new(table: str, old_name: str | None) -> str:
    """The new name of one of ``table``'s indexes or constraints; refuses names it does not know."""
    renames = RENAMES[table]
    if old_name not in renames:
        raise RuntimeError(
            f"table {table!r} has an index or constraint {old_name!r} this migration does not "
            f"know (expected one of {sorted(renames)}); the schema was changed by hand"
        )
    return renames[old_name]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rename_in_place() -> None:
    """PostgreSQL: rename tables, sequences, constraints (their indexes follow) and indexes."""
    bind = op.get_bind()
    insp = sa.inspect(bind)
    for table in TABLES:
        new_table = PREFIX + table
        named: list[str | None] = [insp.get_pk_constraint(table)["name"]]
        named += [fk["name"] for fk in insp.get_foreign_keys(table)]
        named += [uq["name"] for uq in insp.get_unique_constraints(table)]
        constraints = [n for n in named if n]  # PostgreSQL names every constraint
        indexes = [
            ix["name"]
            for ix in insp.get_indexes(table)
            if ix["name"] and ix["name"] not in constraints
        ]
        op.rename_table(table, new_table)
        for name in constraints:
            op.execute(
                f"ALTER TABLE {_q(new_table)} RENAME CONSTRAINT {_q(name)} TO {_q(_new(table, name))}"
            )
        for name in indexes:
            op.execute(f"ALTER INDEX {_q(name)} RENAME TO {_q(_new(table, name))}")
    for old, new in SEQUENCES.items():
        op.execute(f"ALTER SEQUENCE IF EXISTS {_q(old)} RENAME TO {_q(new)}")


def _rebuilt(old: sa.Table, target: sa.MetaData, insp: sa.Inspector) -> sa.Table:
    """A copy of the reflected table ``old`` on ``target``, every name prefixed."""
    table = old.name
    args: list[sa.schema.SchemaItem] = [
        sa.Column(c.name, c.type, nullable=c.nullable, autoincrement=False) for c in old.columns
    ]
    pk = insp.get_pk_constraint(table)
    args.append(sa.PrimaryKeyConstraint(*pk["constrained_columns"], name=_new(table, pk["name"])))
    for fk in insp.get_foreign_keys(table):
        referred = PREFIX + fk["referred_table"]
        args.append(
            sa.ForeignKeyConstraint(
                fk["constrained_columns"],
                [f"{referred}.{c}" for c in fk["referred_columns"]],
                name=_new(table, fk["name"]),
                ondelete=(fk.get("options") or {}).get("ondelete"),
            )
        )
    for uq in insp.get_unique_constraints(table):
        args.append(sa.UniqueConstraint(*uq["column_names"], name=_new(table, uq["name"])))
    for ix in insp.get_indexes(table):
        args.append(
            sa.Index(
                _new(table, ix["name"]),
                *[c for c in ix["column_names"] if c is not None],
                unique=bool(ix["unique"]),
            )
        )
    return sa.Table(PREFIX + table, target, *args)


def _rebuild_under_new_names() -> None:
    """SQLite (and any other database): new tables from the reflected old ones, rows copied."""
    bind = op.get_bind()
    insp = sa.inspect(bind)
    old = sa.MetaData()
    old.reflect(bind, only=TABLES)
    new = sa.MetaData()
    for table in TABLES:  # parents first, so the foreign keys hold while copying
        source = old.tables[table]
        target = _rebuilt(source, new, insp)
        target.create(bind)
        names = [c.name for c in source.columns]
        bind.execute(target.insert().from_select(names, sa.select(*source.columns)))
    for table in reversed(TABLES):  # children first: dropping a parent checks its children
        old.tables[table].drop(bind)


def upgrade() -> None:
    bind = op.get_bind()
    if sa.inspect(bind).has_table(PREFIX + "sessions"):
        return  # created by the current 0001: already prefixed
    if bind.dialect.name == "postgresql":
        _rename_in_place()
    else:
        _rebuild_under_new_names()


def downgrade() -> None:
    pass  # 0001 creates the prefixed schema now; nothing to undo
