"""Session claims: a lease so only one worker drives a session at a time."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session

from .column_types import utcnow
from .dialect import insert_ignoring_conflicts
from .ids import validate_session_id
from .models import SessionClaim, table_of

claims_t: sa.Table = table_of(SessionClaim)


def claim_session(db: Session, session_id: str, *, holder: str, ttl_seconds: float) -> bool:
    """Take (or renew) the lease on a session for ``ttl_seconds``; False if another holder has it.

    Succeeds when the session is unclaimed, already held by ``holder`` (renewal) or the other
    holder's lease has expired. Each step is one atomic statement, so two workers racing for the
    same session cannot both win.
    """
    sid = validate_session_id(session_id)
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    dialect = db.get_bind().dialect.name
    inserted = db.execute(
        insert_ignoring_conflicts(claims_t, dialect)
        .values(session_id=sid, holder=holder, claimed_at=now, expires_at=expires)
        .returning(claims_t.c.session_id)
    )
    if inserted.first() is not None:  # a row comes back only if it was inserted
        return True
    taken = db.execute(
        sa.update(claims_t)
        .where(
            claims_t.c.session_id == sid,
            sa.or_(claims_t.c.holder == holder, claims_t.c.expires_at <= now),
        )
        .values(holder=holder, claimed_at=now, expires_at=expires)
        .returning(claims_t.c.session_id)
    )
    return taken.first() is not None


def release_session(db: Session, session_id: str, *, holder: str) -> None:
    """Drop ``holder``'s lease on a session (a lease held by someone else is left alone)."""
    sid = validate_session_id(session_id)
    db.execute(sa.delete(claims_t).where(claims_t.c.session_id == sid, claims_t.c.holder == holder))


def current_holder(db: Session, session_id: str) -> str | None:
    """Who holds an unexpired lease on the session, or None."""
    sid = validate_session_id(session_id)
    return db.execute(
        sa.select(claims_t.c.holder).where(
            claims_t.c.session_id == sid, claims_t.c.expires_at > utcnow()
        )
    ).scalar()
