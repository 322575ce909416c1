"""The tables: sessions and their lineage, turns, checkpoints, decisions, claims, transcripts.

Times are timezone-aware UTC. Enumerations are stored as their string values (no database enum
types, so adding a value needs no migration of a type). Columns holding conversation content
(turn answers and errors, decision payloads, transcript summaries) are ``SealedText`` /
``SealedJSON``: encrypted at rest when a key is configured, the same column types otherwise.

The models sit on the plugin's own metadata (see metadata.py), never on ``SQLModel.metadata``;
every table, index and constraint name starts with ``claude_sessions_``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .column_types import BigId, JSONColumn, UTCDateTime, utcnow
from .encryption import SealedJSON, SealedText
from .metadata import PluginModel


class SessionOrigin(str, enum.Enum):
    """How a session was born."""

    init = "init"
    resume = "resume"
    fork = "fork"
    handoff = "handoff"
    compaction = "compaction"
    rewind = "rewind"


class SessionStatus(str, enum.Enum):
    """Where a session is in its life."""

    active = "active"
    archived = "archived"
    failed = "failed"
    purged = "purged"


class TurnStatus(str, enum.Enum):
    """Where one prompt-to-result turn is."""

    pending = "pending"
    completed = "completed"
    failed = "failed"


def _enum(cls: type[enum.Enum]) -> sa.Enum:
    return sa.Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
    )


def _time(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, **kw)


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table of a table model: SQLModel does not declare ``__table__`` to type checkers."""
    return cast(sa.Table, sa.inspect(model).local_table)


class SessionRecord(PluginModel, table=True):
    """One agent session: who runs it, where it came from, and its running totals."""

    __tablename__ = "claude_sessions_sessions"
    __table_args__ = (
        sa.Index("ix_claude_sessions_sessions_agent_name_created_at", "agent_name", "created_at"),
        sa.Index("ix_claude_sessions_sessions_parent_id", "parent_id"),
        sa.Index("ix_claude_sessions_sessions_status_created_at", "status", "created_at"),
    )

    id: str = Field(primary_key=True, sa_type=sa.String(36))
    project_key: str = Field(sa_type=sa.Text, nullable=False)
    agent_name: str = Field(sa_type=sa.String(200), nullable=False)
    agent_profile: dict[str, Any] | None = Field(default=None, sa_type=JSONColumn)
    parent_id: str | None = Field(
        default=None, sa_type=sa.String(36), foreign_key="claude_sessions_sessions.id"
    )
    origin: SessionOrigin = Field(default=SessionOrigin.init, sa_type=_enum(SessionOrigin))
    fork_point: str | None = Field(default=None, sa_type=sa.String(64))
    status: SessionStatus = Field(default=SessionStatus.active, sa_type=_enum(SessionStatus))
    cwd: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _time()
    updated_at: datetime = _time()
    turn_count: int = Field(default=0, nullable=False)
    cost_usd: float = Field(default=0.0, nullable=False)
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    transcript_bytes: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)


class TurnRecord(PluginModel, table=True):
    """One prompt sent to a session, keyed by an idempotency key so a retry never sends it twice."""

    __tablename__ = "claude_sessions_turns"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key"),
        sa.Index("ix_claude_sessions_turns_session_id_started_at", "session_id", "started_at"),
        sa.Index("ix_claude_sessions_turns_flow_run_id", "flow_run_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    idempotency_key: str = Field(sa_type=sa.String(255), nullable=False)
    session_id: str = Field(sa_type=sa.String(36), nullable=False)
    flow_run_id: str | None = Field(default=None, sa_type=sa.String(64))
    task_run_id: str | None = Field(default=None, sa_type=sa.String(64))
    operation: str = Field(sa_type=sa.String(32), nullable=False)
    prompt_digest: str = Field(sa_type=sa.String(64), nullable=False)
    status: TurnStatus = Field(default=TurnStatus.pending, sa_type=_enum(TurnStatus))
    result_text: str | None = Field(default=None, sa_type=SealedText)
    error: str | None = Field(default=None, sa_type=SealedText)
    cost_usd: float | None = Field(default=None)
    usage: dict[str, Any] | None = Field(default=None, sa_type=JSONColumn)
    duration_ms: int | None = Field(default=None)
    num_turns: int | None = Field(default=None)
    assistant_uuid: str | None = Field(default=None, sa_type=sa.String(64))
    user_message_uuid: str | None = Field(default=None, sa_type=sa.String(64))
    started_at: datetime = _time()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Audit: how many times the turn was begun (first try and retries), the classified kind of
    # its last failure (kept after a later success), and the fencing token of the claim its
    # latest attempt ran under (so a stale holder may still mark its own attempt failed).
    attempts: int = Field(
        default=1, nullable=False, sa_column_kwargs={"server_default": sa.text("1")}
    )
    error_kind: str | None = Field(default=None, sa_type=sa.String(64))
    claim_token: int | None = Field(default=None, sa_type=sa.BigInteger)
    # A turn that stopped before a tool needing a person's approval: the call's id, name and
    # input (sealed like the answer: the input may hold what the tool was about to write).
    pending_tool: dict[str, Any] | None = Field(default=None, sa_type=SealedJSON)


class CheckpointRecord(PluginModel, table=True):
    """A named point in a session: a transcript uuid to fork from, a user message to rewind files to."""

    __tablename__ = "claude_sessions_checkpoints"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key"),
        sa.Index(
            "ix_claude_sessions_checkpoints_session_id_created_at", "session_id", "created_at"
        ),
    )

    id: str = Field(primary_key=True, sa_type=sa.String(36))
    session_id: str = Field(
        sa_type=sa.String(36), foreign_key="claude_sessions_sessions.id", nullable=False
    )
    transcript_uuid: str = Field(sa_type=sa.String(64), nullable=False)
    user_message_uuid: str | None = Field(default=None, sa_type=sa.String(64))
    label: str = Field(sa_type=sa.String(200), nullable=False)
    idempotency_key: str | None = Field(default=None, sa_type=sa.String(255))
    created_at: datetime = _time()


class DecisionRecord(PluginModel, table=True):
    """A decision an agent or flow made, logged beside its session with a JSON payload."""

    __tablename__ = "claude_sessions_decisions"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key"),
        sa.Index("ix_claude_sessions_decisions_session_id_created_at", "session_id", "created_at"),
        sa.Index("ix_claude_sessions_decisions_key_created_at", "key", "created_at"),
        sa.Index("ix_claude_sessions_decisions_created_at", "created_at"),
    )

    id: str = Field(primary_key=True, sa_type=sa.String(36))
    session_id: str = Field(
        sa_type=sa.String(36), foreign_key="claude_sessions_sessions.id", nullable=False
    )
    flow_run_id: str | None = Field(default=None, sa_type=sa.String(64))
    key: str = Field(sa_type=sa.String(200), nullable=False)
    payload: Any = Field(default=None, sa_type=SealedJSON)
    idempotency_key: str | None = Field(default=None, sa_type=sa.String(255))
    created_at: datetime = _time()


class SessionClaim(PluginModel, table=True):
    """A lease on a session: one worker at a time drives it, until release or expiry.

    The row outlives a release (its ``expires_at`` is set back to ``claimed_at``), so
    ``fence_token`` only grows: each new claim gets the previous token plus one.
    """

    __tablename__ = "claude_sessions_session_claims"

    session_id: str = Field(primary_key=True, sa_type=sa.String(36))
    holder: str = Field(sa_type=sa.String(255), nullable=False)
    claimed_at: datetime = _time()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    fence_token: int = Field(
        default=1,
        sa_type=sa.BigInteger,
        nullable=False,
        sa_column_kwargs={"server_default": sa.text("1")},
    )


class TranscriptKey(PluginModel, table=True):
    """One transcript of the SDK store (a main session or a subagent ``subpath``) and its index.

    ``mtime_ms`` is the storage write time (strictly increasing per key), shared by
    ``list_sessions`` and the summary sidecar; ``summary`` is the SDK's opaque folded summary
    (main transcripts only).
    """

    __tablename__ = "claude_sessions_transcript_keys"
    __table_args__ = (
        # Named by hand: the convention's name would be 65 characters, past PostgreSQL's 63.
        sa.UniqueConstraint(
            "project_key", "session_id", "subpath", name="uq_claude_sessions_transcript_keys_key"
        ),
        sa.Index("ix_claude_sessions_transcript_keys_session_id", "session_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    project_key: str = Field(sa_type=sa.Text, nullable=False)
    session_id: str = Field(sa_type=sa.Text, nullable=False)
    subpath: str = Field(default="", sa_type=sa.Text, nullable=False)
    mtime_ms: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    entry_count: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    total_bytes: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    summary: dict[str, Any] | None = Field(default=None, sa_type=SealedJSON)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class TranscriptEntry(PluginModel, table=True):
    """One transcript line, stored as codec text; ``seq`` keeps append order."""

    __tablename__ = "claude_sessions_transcript_entries"
    __table_args__ = (
        sa.UniqueConstraint("key_id", "uuid"),
        sa.Index("ix_claude_sessions_transcript_entries_key_id_seq", "key_id", "seq"),
    )

    seq: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    key_id: int = Field(
        sa_type=BigId,
        nullable=False,
        foreign_key="claude_sessions_transcript_keys.id",
        ondelete="CASCADE",
    )
    uuid: str | None = Field(default=None, sa_type=sa.String(255))
    body: str = Field(sa_type=sa.Text, nullable=False)


__all__ = [
    "CheckpointRecord",
    "DecisionRecord",
    "SessionClaim",
    "SessionOrigin",
    "SessionRecord",
    "SessionStatus",
    "TranscriptEntry",
    "TranscriptKey",
    "TurnRecord",
    "TurnStatus",
    "table_of",
]
