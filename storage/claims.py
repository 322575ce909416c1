"""Session claims: a lease so only one worker drives a session at a time, with fencing tokens.

Each claim of a session gets a token one larger than the claim before it (the claim row is
kept after a release, so tokens only grow). A holder hands its `Fence` to the writes it makes
under the claim; `check_fence` refuses them once another worker has claimed the session since,
which is what keeps a holder that stalled past its time to live from interleaving its writes
with the new holder's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session

from .column_types import utcnow
from .dialect import insert_ignoring_conflicts
from .errors import ClaimLost
from .ids import validate_session_id
from .models import SessionClaim, table_of

claims_t: sa.Table = table_of(SessionClaim)


@dataclass(frozen=True)
class Fence:
    """Proof of one claim: the session, who took it, and the claim's fencing token."""

    session_id: str
    holder: str
    token: int


def claim_session(db: Session, session_id: str, *, holder: str, ttl_seconds: float) -> int | None:
    """Take the lease on a session for ``ttl_seconds``; its fencing token, or None if another
    holder has an unexpired claim.

    Succeeds when the session was never claimed, its claim was released or has expired, or
    ``holder`` holds it already (a fresh claim: the token still grows). Each step is one atomic
    statement, so two workers racing for the same session cannot both win. An expired claim is
    always takeable, whoever left it.
    """
    sid = validate_session_id(session_id)
    _check_ttl(ttl_seconds)
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    dialect = db.get_bind().dialect.name
    inserted = db.execute(
        insert_ignoring_conflicts(claims_t, dialect)
        .values(session_id=sid, holder=holder, claimed_at=now, expires_at=expires, fence_token=1)
        .returning(claims_t.c.fence_token)
    ).first()
    if inserted is not None:  # a row comes back only if it was inserted
        return int(inserted[0])
    taken = db.execute(
        sa.update(claims_t)
        .where(
            claims_t.c.session_id == sid,
            sa.or_(claims_t.c.holder == holder, claims_t.c.expires_at <= now),
        )
        .values(
            holder=holder,
            claimed_at=now,
            expires_at=expires,
            fence_token=claims_t.c.fence_token + 1,
        )
        .returning(claims_t.c.fence_token)
    ).first()
    return int(taken[0]) if taken is not None else None


def renew_claim(db: Session, fence: Fence, *, ttl_seconds: float) -> bool:
    """Extend ``fence``'s claim by ``ttl_seconds`` from now; False if the session was claimed by
    someone else since (then nothing changes: a lost claim is never taken back by a renewal)."""
    _check_ttl(ttl_seconds)
    renewed = db.execute(  # an UPDATE: a CursorResult, whose rowcount says if it matched
        sa.update(claims_t)
        .where(
            claims_t.c.session_id == fence.session_id,
            claims_t.c.holder == fence.holder,
            claims_t.c.fence_token == fence.token,
        )
        .values(expires_at=utcnow() + timedelta(seconds=ttl_seconds))
    )
    return bool(cast("sa.CursorResult[Any]", renewed).rowcount)


def release_session(db: Session, session_id: str, *, holder: str, token: int | None = None) -> None:
    """End ``holder``'s claim at once (a claim held by someone else, or a newer claim of the same
    holder when ``token`` is given, is left alone).

    The row stays, expired (``expires_at`` set back to when it was claimed, which no worker's
    clock can see as the future), so the next claim's token continues from this one.
    """
    sid = validate_session_id(session_id)
    where = [claims_t.c.session_id == sid, claims_t.c.holder == holder]
    if token is not None:
        where.append(claims_t.c.fence_token == token)
    db.execute(sa.update(claims_t).where(*where).values(expires_at=claims_t.c.claimed_at))


def check_fence(conn: Session | sa.Connection, fence: Fence, *, action: str = "write") -> None:
    """Raise `ClaimLost` unless ``fence`` is still the session's current claim.

    Call it inside the transaction of the write it guards. The claim row is read with a share
    lock (PostgreSQL ``FOR SHARE``), so a takeover waits until this transaction ends; on SQLite
    a write transaction holds the database's write lock from its ``BEGIN IMMEDIATE``. Either
    way no takeover can slip between the check and the commit. An expired claim that nobody
    took over still passes: its holder is still the only writer.
    """
    row = conn.execute(
        sa.select(claims_t.c.holder, claims_t.c.fence_token)
        .where(claims_t.c.session_id == fence.session_id)
        .with_for_update(read=True)
    ).first()
    current = int(row.fence_token) if row is not None else None
    if current != fence.token:
        raise ClaimLost(
            fence.session_id,
            fence.token,
            current,
            current_holder=row.holder if row is not None else None,
            action=action,
        )


def current_holder(db: Session, session_id: str) -> str | None:
    """Who holds an unexpired lease on the session, or None."""
    claim = current_claim(db, session_id)
    return claim.holder if claim is not None else None


def current_claim(db: Session, session_id: str) -> SessionClaim | None:
    """The session's unexpired claim (holder, expiry, token), or None if it is free."""
    sid = validate_session_id(session_id)
    row: Any = db.execute(
        sa.select(claims_t).where(claims_t.c.session_id == sid, claims_t.c.expires_at > utcnow())
    ).first()
    return SessionClaim(**row._mapping) if row is not None else None


def _check_ttl(ttl_seconds: float) -> None:
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
