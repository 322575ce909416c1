"""Checkpoints: named points in a session to fork from (transcript uuid) or rewind files to."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from .column_types import utcnow
from .dialect import insert_ignoring_conflicts
from .errors import CheckpointNotFound, SessionNotFound
from .ids import validate_session_id
from .models import CheckpointRecord, SessionRecord, table_of


def create_checkpoint(
    db: Session,
    *,
    session_id: str,
    transcript_uuid: str,
    label: str,
    user_message_uuid: str | None = None,
    idempotency_key: str | None = None,
) -> CheckpointRecord:
    """Record a checkpoint of a recorded session; with an ``idempotency_key`` a retry returns the first."""
    sid = validate_session_id(session_id)
    if db.get(SessionRecord, sid) is None:
        raise SessionNotFound(sid)
    if not transcript_uuid:
        raise ValueError("a checkpoint needs the transcript uuid it points at")
    new_id = str(uuid.uuid4())
    db.execute(
        insert_ignoring_conflicts(table_of(CheckpointRecord), db.get_bind().dialect.name).values(
            id=new_id,
            session_id=sid,
            transcript_uuid=transcript_uuid,
            user_message_uuid=user_message_uuid,
            label=label,
            idempotency_key=idempotency_key,
            created_at=utcnow(),
        )
    )
    if idempotency_key is None:
        return get_checkpoint(db, new_id)
    query = select(CheckpointRecord).where(CheckpointRecord.idempotency_key == idempotency_key)
    return db.exec(query).one()


def get_checkpoint(db: Session, checkpoint_id: str) -> CheckpointRecord:
    """The checkpoint with this id; CheckpointNotFound names it if there is none."""
    record = db.get(CheckpointRecord, str(checkpoint_id))
    if record is None:
        raise CheckpointNotFound(str(checkpoint_id))
    return record


def list_checkpoints(db: Session, session_id: str) -> list[CheckpointRecord]:
    """A session's checkpoints, oldest first."""
    sid = validate_session_id(session_id)
    query = (
        select(CheckpointRecord)
        .where(CheckpointRecord.session_id == sid)
        .order_by(CheckpointRecord.created_at, CheckpointRecord.id)  # type: ignore[arg-type]
    )
    return list(db.exec(query).all())
