"""One writer per session: a claim with a time to live and a fencing token, renewed by a
heartbeat thread while a turn runs.

A second writer waits up to ``busy_timeout_s`` and then fails with `SessionBusy` (naming the
holder and when its claim expires); a claim left by a killed worker expires after ``ttl_s`` and
is taken over, always. Each claim carries a fencing token that only grows; while the block
runs, the token is registered on the store, which refuses the transcript writes of a holder
that stalled past its time to live and was taken over (`ClaimLost`), and the turn protocol
hands it to the turn records. Releasing the claim never masks the outcome of the work done
under it: a failed release is logged, and the claim then simply expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect_claude_sessions.storage import SessionBusy, SQLModelSessionStore, claims, open_db
from prefect_claude_sessions.storage.claims import Fence

logger = logging.getLogger("claude_sessions")


@dataclass(frozen=True)
class LeaseTerms:
    """How long a claim lives without renewal, and how long a second writer waits for it."""

    ttl_s: float = 120.0
    busy_timeout_s: float = 60.0


@contextmanager
def hold_session(
    store: SQLModelSessionStore, session_id: str, holder: str, terms: LeaseTerms
) -> Iterator[Fence]:
    """Hold ``session_id``'s claim for the duration of the ``with`` block, renewing it; yields
    the claim's `Fence` (also registered on ``store`` for the block)."""
    fence = _acquire(store, session_id, holder, terms)
    store.hold_fence(fence)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(terms.ttl_s / 3):
            try:
                with open_db(store.engine) as db:
                    kept = claims.renew_claim(db, fence, ttl_seconds=terms.ttl_s)
            except Exception:  # a missed renewal only shortens the lease
                logger.warning("could not renew the claim on session %s", session_id)
                continue
            if not kept:
                logger.error(
                    "lost the claim on session %s (fencing token %d): it expired and another "
                    "worker took the session over; this worker's writes to it will be refused",
                    session_id,
                    fence.token,
                )
                return

    renewer = threading.Thread(target=renew, name=f"claim-{session_id[:8]}", daemon=True)
    renewer.start()
    try:
        yield fence
    finally:
        stop.set()
        renewer.join(timeout=5)
        store.drop_fence(fence)
        release_quietly(store, session_id, holder, token=fence.token)


def _acquire(store: SQLModelSessionStore, session_id: str, holder: str, terms: LeaseTerms) -> Fence:
    started = time.monotonic()
    deadline = started + terms.busy_timeout_s
    delay = 0.1
    while True:
        with open_db(store.engine) as db:
            token = claims.claim_session(db, session_id, holder=holder, ttl_seconds=terms.ttl_s)
            if token is not None:
                return Fence(session_id=session_id, holder=holder, token=token)
            if time.monotonic() >= deadline:
                claim = claims.current_claim(db, session_id)
                if claim is None:
                    continue  # freed (released or expired) since the attempt: take it now
                raise SessionBusy(
                    session_id,
                    claim.holder,
                    claim.expires_at,
                    waited_s=time.monotonic() - started,
                )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def release_quietly(
    store: SQLModelSessionStore, session_id: str, holder: str, *, token: int | None = None
) -> bool:
    """Give the claim back; if the database refuses (down, disk full), log it and let the claim
    expire on its own: the caller's result or error is what matters. True if released."""
    try:
        with open_db(store.engine) as db:
            claims.release_session(db, session_id, holder=holder, token=token)
    except Exception as exc:
        logger.warning(
            "could not release the claim on session %s (it expires by itself): %s",
            session_id,
            exc,
        )
        return False
    return True
