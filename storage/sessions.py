"""Session records: creation (idempotent), lookup, lineage (parents, children, trees), status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from .column_types import utcnow
from .dialect import insert_ignoring_conflicts
from .errors import SessionNotFound
from .ids import validate_session_id
from .models import SessionOrigin, SessionRecord, SessionStatus, table_of


def create_session(
    db: Session,
    *,
    id: str,
    project_key: str,
    agent_name: str,
    origin: SessionOrigin | str,
    parent_id: str | None = None,
    fork_point: str | None = None,
    cwd: str | None = None,
    agent_profile: dict[str, Any] | None = None,
) -> SessionRecord:
    """Record a session; if ``id`` already exists, return the existing record unchanged.

    Idempotent so a retried init/fork/handoff task never fails on its own earlier write. A
    ``parent_id`` must name a recorded session (SessionNotFound otherwise).
    """
    sid = validate_session_id(id)
    parent = validate_session_id(parent_id) if parent_id is not None else None
    if parent is not None and parent != sid and db.get(SessionRecord, parent) is None:
        raise SessionNotFound(parent)
    now = utcnow()
    db.execute(
        insert_ignoring_conflicts(table_of(SessionRecord), db.get_bind().dialect.name).values(
            id=sid,
            project_key=project_key,
            agent_name=agent_name,
            agent_profile=agent_profile,
            parent_id=parent,
            origin=SessionOrigin(origin).value,
            fork_point=fork_point,
            status=SessionStatus.active.value,
            cwd=cwd,
            created_at=now,
            updated_at=now,
            turn_count=0,
            cost_usd=0.0,
            input_tokens=0,
            output_tokens=0,
            transcript_bytes=0,
        )
    )
    return get_session(db, sid)


def find_session(db: Session, session_id: str) -> SessionRecord | None:
    """The session with this id, or None."""
    return db.get(SessionRecord, validate_session_id(session_id), populate_existing=True)


def get_session(db: Session, session_id: str) -> SessionRecord:
    """The session with this id; SessionNotFound names it if there is none."""
    record = find_session(db, session_id)
    if record is None:
        raise SessionNotFound(session_id)
    return record


def list_sessions(
    db: Session,
    *,
    agent_name: str | None = None,
    status: SessionStatus | str | None = None,
    updated_before: datetime | None = None,
    limit: int | None = 100,
) -> list[SessionRecord]:
    """Sessions, newest first, optionally of one agent, one status and/or last updated before
    ``updated_before`` (retention: sessions idle since then); ``limit=None`` returns them all."""
    query = select(SessionRecord)
    if agent_name is not None:
        query = query.where(SessionRecord.agent_name == agent_name)
    if status is not None:
        query = query.where(SessionRecord.status == SessionStatus(status))
    if updated_before is not None:
        query = query.where(SessionRecord.updated_at < updated_before)
    query = query.order_by(
        sa.desc(col(SessionRecord.created_at)),
        sa.desc(col(SessionRecord.id)),
    )
    if limit is not None:
        query = query.limit(limit)
    return list(db.exec(query).all())


def ancestors(db: Session, session_id: str) -> list[SessionRecord]:
    """The chain of parents: direct parent first, root last (empty for a root)."""
    record = get_session(db, session_id)
    chain: list[SessionRecord] = []
    seen = {record.id}
    while record.parent_id is not None and record.parent_id not in seen:
        parent = db.get(SessionRecord, record.parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
        record = parent
    return chain


def children(db: Session, session_id: str) -> list[SessionRecord]:
    """Sessions born from this one (forks, handoffs, ...), oldest first."""
    sid = get_session(db, session_id).id
    query = (
        select(SessionRecord)
        .where(SessionRecord.parent_id == sid)
        .order_by(SessionRecord.created_at, SessionRecord.id)  # type: ignore[arg-type]
    )
    return list(db.exec(query).all())


def lineage_tree(db: Session, root_id: str) -> list[tuple[int, SessionRecord]]:
    """The session and all its descendants as ``(depth, record)``, depth-first, root at depth 0."""
    root = get_session(db, root_id)
    out: list[tuple[int, SessionRecord]] = []
    stack: list[tuple[int, SessionRecord]] = [(0, root)]
    seen: set[str] = set()
    while stack:
        depth, record = stack.pop()
        if record.id in seen:
            continue
        seen.add(record.id)
        out.append((depth, record))
        stack.extend((depth + 1, child) for child in reversed(children(db, record.id)))
    return out


def set_status(db: Session, session_id: str, status: SessionStatus | str) -> SessionRecord:
    """Change a session's status (e.g. archived after compaction)."""
    record = get_session(db, session_id)
    record.status = SessionStatus(status)
    record.updated_at = utcnow()
    db.add(record)
    db.flush()
    return record


def set_transcript_bytes(db: Session, session_id: str, n: int) -> None:
    """Record a session's transcript size (the store also keeps it current on every append)."""
    record = get_session(db, session_id)
    record.transcript_bytes = int(n)
    record.updated_at = utcnow()
    db.add(record)
    db.flush()


def set_project_key(db: Session, session_id: str, project_key: str) -> SessionRecord:
    """Record the project key a session's transcript now lives under (see store.relocate)."""
    record = get_session(db, session_id)
    record.project_key = project_key
    record.updated_at = utcnow()
    db.add(record)
    db.flush()
    return record
