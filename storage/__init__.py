"""The SQLModel store: SDK transcripts any worker can resume, plus lineage, turns, checkpoints
and decisions. See docs/CONTRACTS.md ("storage/") for the contract other packages rely on."""

from . import checkpoints, claims, decisions, encryption, rotation, sessions, turns
from .config import database_url
from .encryption import EncryptionError, generate_key
from .engine import dispose_engines, get_engine, open_db
from .errors import (
    CheckpointNotFound,
    ClaimLost,
    CorruptEntry,
    DatabaseReadOnly,
    DatabaseUnavailable,
    InvalidEntry,
    InvalidSessionId,
    InvalidSetting,
    SessionBusy,
    SessionNotFound,
    SessionPurged,
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
from .rotation import RotationReport, reencrypt_all
from .session_store import SQLModelSessionStore
from .settings import ClaudeSessionsSettings, get_settings, reload_settings

__all__ = [
    "CheckpointNotFound",
    "CheckpointRecord",
    "ClaimLost",
    "ClaudeSessionsSettings",
    "CorruptEntry",
    "DatabaseReadOnly",
    "DatabaseUnavailable",
    "DecisionRecord",
    "EncryptionError",
    "InvalidEntry",
    "InvalidSessionId",
    "InvalidSetting",
    "RotationReport",
    "SQLModelSessionStore",
    "SessionBusy",
    "SessionClaim",
    "SessionNotFound",
    "SessionOrigin",
    "SessionPurged",
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
    "encryption",
    "generate_key",
    "get_engine",
    "get_settings",
    "open_db",
    "reencrypt_all",
    "reload_settings",
    "rotation",
    "sessions",
    "turns",
]
