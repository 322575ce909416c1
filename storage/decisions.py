"""Decisions: a JSON log beside each session, queryable by session, key and time range."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from .codec import encode_json_value
from .column_types import utcnow
from .dialect import insert_ignoring_conflicts
from .encryption import SEALED_KEY, is_sealed_document
from .errors import SessionNotFound
from .ids import validate_session_id
from .models import DecisionRecord, SessionRecord, table_of


def record_decision(
    db: Session,
    *,
    session_id: str,
    key: str,
    payload: Any,
    flow_run_id: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[DecisionRecord, bool]:
    """Log a decision; returns ``(row, created)``.

    With an ``idempotency_key`` a retry returns the first row and ``created=False`` (its payload
    is left as first recorded). The payload must be JSON without NUL characters or lone surrogates (ValueError
    otherwise); it is stored encrypted when an encryption key is configured
    (``storage.encryption``). It reads back exactly, except that PostgreSQL ``jsonb`` keeps
    numbers as decimals when stored in clear (``-0.0`` reads as ``0``, ``1e308`` as an int).
    """
    sid = validate_session_id(session_id)
    if db.get(SessionRecord, sid) is None:
        raise SessionNotFound(sid)
    if not key:
        raise ValueError("a decision needs a non-empty key")
    clean = encode_json_value(payload, f"decision payload for key {key!r}")
    if _unstorable(clean):
        raise ValueError(
            f"decision payload for key {key!r} contains a NUL character (\\u0000) or a lone "
            "surrogate, which PostgreSQL cannot store; remove or replace it"
        )
    if is_sealed_document(clean):
        raise ValueError(
            f"decision payload for key {key!r} is a lone {SEALED_KEY!r} field, which the store "
            "reserves for encrypted payloads"
        )
    new_id = str(uuid.uuid4())
    decisions_t = table_of(DecisionRecord)
    result = db.execute(
        insert_ignoring_conflicts(decisions_t, db.get_bind().dialect.name)
        .values(
            id=new_id,
            session_id=sid,
            flow_run_id=flow_run_id,
            key=key,
            payload=clean,
            idempotency_key=idempotency_key,
            created_at=utcnow(),
        )
        .returning(decisions_t.c.id)
    )
    created = result.first() is not None  # a row comes back only if it was inserted
    if idempotency_key is None or created:
        row = db.get(DecisionRecord, new_id)
        assert row is not None
        return row, True
    query = select(DecisionRecord).where(DecisionRecord.idempotency_key == idempotency_key)
    return db.exec(query).one(), False


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: Any) -> bool:
    """True if a string of ``value`` holds NUL or a lone surrogate (PostgreSQL rejects both)."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def list_decisions(
    db: Session,
    *,
    session_id: str | None = None,
    key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[DecisionRecord]:
    """Decisions oldest first, filtered by session, key and ``since <= created_at < until``."""
    query = select(DecisionRecord)
    if session_id is not None:
        query = query.where(DecisionRecord.session_id == validate_session_id(session_id))
    if key is not None:
        query = query.where(DecisionRecord.key == key)
    if since is not None:
        query = query.where(DecisionRecord.created_at >= since)
    if until is not None:
        query = query.where(DecisionRecord.created_at < until)
    query = query.order_by(DecisionRecord.created_at, DecisionRecord.id).limit(limit)  # type: ignore[arg-type]
    return list(db.exec(query).all())


__all__ = ["list_decisions", "record_decision"]
