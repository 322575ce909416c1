"""Read-only views of the store for flows and tools: sessions, lineage, turns, checkpoints,
decisions. Records come back detached, so callers never hold a database session."""

from __future__ import annotations

from typing import Any, TypeVar

from prefect_claude_sessions.storage import (
    CheckpointRecord,
    DecisionRecord,
    SessionRecord,
    SessionStatus,
    SQLModelSessionStore,
    TurnRecord,
    checkpoints,
    decisions,
    open_db,
    sessions,
    turns,
)

T = TypeVar("T")


def _detached(db: Any, rows: list[T]) -> list[T]:
    for row in rows:
        db.expunge(row)
    return rows


class SessionReads:
    """Queries over one store (see `SessionService.reads`)."""

    def __init__(self, store: SQLModelSessionStore) -> None:
        self.store = store

    def session(self, session_id: str) -> SessionRecord:
        with open_db(self.store.engine) as db:
            return _detached(db, [sessions.get_session(db, session_id)])[0]

    def sessions(
        self,
        *,
        agent_name: str | None = None,
        status: SessionStatus | None = None,
        limit: int | None = 50,
    ) -> list[SessionRecord]:
        """Sessions, newest first."""
        with open_db(self.store.engine) as db:
            found = sessions.list_sessions(db, agent_name=agent_name, status=status, limit=limit)
            return _detached(db, list(found))

    def ancestors(self, session_id: str) -> list[SessionRecord]:
        """Parent first, root last."""
        with open_db(self.store.engine) as db:
            return _detached(db, sessions.ancestors(db, session_id))

    def lineage_tree(self, root_id: str) -> list[tuple[int, SessionRecord]]:
        with open_db(self.store.engine) as db:
            tree = sessions.lineage_tree(db, root_id)
            _detached(db, [record for _, record in tree])
            return tree

    def turns(self, session_id: str) -> list[TurnRecord]:
        with open_db(self.store.engine) as db:
            return _detached(db, turns.list_turns(db, session_id))

    def checkpoints(self, session_id: str) -> list[CheckpointRecord]:
        with open_db(self.store.engine) as db:
            return _detached(db, list(checkpoints.list_checkpoints(db, session_id)))

    def decisions(self, session_id: str) -> list[DecisionRecord]:
        with open_db(self.store.engine) as db:
            return _detached(db, list(decisions.list_decisions(db, session_id=session_id)))

    def by_transcript_size(self, *, agent_name: str | None = None) -> list[SessionRecord]:
        """Every session that still has a transcript (not purged), largest transcript first."""
        import sqlalchemy as sa
        from sqlmodel import col, select

        with open_db(self.store.engine) as db:
            query = select(SessionRecord).where(SessionRecord.status != SessionStatus.purged)
            if agent_name:
                query = query.where(SessionRecord.agent_name == agent_name)
            query = query.order_by(
                sa.desc(col(SessionRecord.transcript_bytes)), col(SessionRecord.id)
            )
            return _detached(db, list(db.exec(query).all()))
