"""One writer per session: a claim with a time to live, renewed by a heartbeat thread while a
turn runs.

A second writer waits up to ``busy_timeout_s`` and then fails with `SessionBusy`; a claim left
by a killed worker expires after ``ttl_s`` and is taken over. Releasing the claim never masks
the outcome of the work done under it: a failed release is logged, and the claim then simply
expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect_claude_sessions.storage import SessionBusy, SQLModelSessionStore, claims, open_db

logger = logging.getLogger("claude_sessions")


@dataclass(frozen=True)
class LeaseTerms:
    """How long a claim lives without renewal, and how long a second writer waits for it."""

    ttl_s: float = 120.0
    busy_timeout_s: float = 60.0


@contextmanager
def hold_session(
    store: SQLModelSessionStore, session_id: str, holder: str, terms: LeaseTerms
) -> Iterator[None]:
    """Hold ``session_id``'s claim for the duration of the ``with`` block, renewing it."""
    _acquire(store, session_id, holder, terms)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(terms.ttl_s / 3):
            try:
                with open_db(store.engine) as db:
                    claims.claim_session(db, session_id, holder=holder, ttl_seconds=terms.ttl_s)
            except Exception:  # a missed renewal only shortens the lease
                logger.warning("could not renew the claim on session %s", session_id)

    renewer = threading.Thread(target=renew, name=f"claim-{session_id[:8]}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=5)
        release_quietly(store, session_id, holder)


def _acquire(store: SQLModelSessionStore, session_id: str, holder: str, terms: LeaseTerms) -> None:
    deadline = time.monotonic() + terms.busy_timeout_s
    delay = 0.1
    while True:
        with open_db(store.engine) as db:
            if claims.claim_session(db, session_id, holder=holder, ttl_seconds=terms.ttl_s):
                return
        if time.monotonic() >= deadline:
            raise SessionBusy(
                f"session {session_id} is busy: another run holds it "
                f"(waited {terms.busy_timeout_s:.0f} s; a crashed holder's claim expires "
                f"after {terms.ttl_s:.0f} s)"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def release_quietly(store: SQLModelSessionStore, session_id: str, holder: str) -> None:
    """Give the claim back; if the database refuses (down, disk full), log it and let the claim
    expire on its own: the caller's result or error is what matters."""
    try:
        with open_db(store.engine) as db:
            claims.release_session(db, session_id, holder=holder)
    except Exception as exc:
        logger.warning(
            "could not release the claim on session %s (it expires by itself): %s",
            session_id,
            exc,
        )
