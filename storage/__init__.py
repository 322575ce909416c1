"""The SQLModel store: SDK transcripts any worker can resume, plus lineage, turns, checkpoints
and decisions. See docs/CONTRACTS.md ("storage/") for the contract other packages rely on."""

from . import checkpoints, claims, decisions, sessions, turns
from .config import database_url
from .engine import dispose_engines, get_engine, open_db
from .errors import (
    CheckpointNotFound,
    DatabaseReadOnly,
    DatabaseUnavailable,
    InvalidEntry,
    InvalidSessionId,
    SessionBusy,
    SessionNotFound,
    StorageError,
)
from .models import (
    CheckpointRecord,
    DecisionRecord,
    SessionClaim,
    SessionOrigin,
    SessionRecord,
    SessionStatus,
    TurnRecord,
    TurnStatus,
)
from .session_store import SQLModelSessionStore

__all__ = [
    "CheckpointNotFound",
    "CheckpointRecord",
    "DatabaseReadOnly",
    "DatabaseUnavailable",
    "DecisionRecord",
    "InvalidEntry",
    "InvalidSessionId",
    "SQLModelSessionStore",
    "SessionBusy",
    "SessionClaim",
    "SessionNotFound",
    "SessionOrigin",
    "SessionRecord",
    "SessionStatus",
    "StorageError",
    "TurnRecord",
    "TurnStatus",
    "checkpoints",
    "claims",
    "database_url",
    "decisions",
    "dispose_engines",
    "get_engine",
    "open_db",
    "sessions",
    "turns",
]
