"""Compaction: carry a long session's conversation, as a summary, into a fresh session.

A session's transcript grows with every turn (tool listings and request blobs make even one
turn ~120 KB), and every resume sends the whole history again. Compaction starts a new session
with the same agent whose first prompt is a summary of the old conversation; lineage records it
(origin ``compaction``, parent = the old session) and the old session is archived.

`compact` is idempotent per (session, conversation point): the turn is keyed by the old session
and its latest answer, so a retried or re-run maintenance flow that finds the same session in
the same state gets the same child session back without asking the model again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from prefect_claude_sessions.storage import TurnStatus, open_db, turns

from . import transcript
from .idempotency import digest

if TYPE_CHECKING:
    from prefect_claude_sessions.storage import SQLModelSessionStore

    from .context import RunContext
    from .results import SessionTurn


class SessionService(Protocol):
    """What these helpers need of `tasks.service.SessionService` (named structurally, so this
    module does not import the service, which imports it)."""

    store: SQLModelSessionStore

    def head(self, session_id: str) -> str | None: ...

    def compact(
        self,
        session_id: str,
        summary: str | None = None,
        *,
        ctx: RunContext,
        idempotency_key: str | None = None,
        archive: bool = True,
    ) -> SessionTurn: ...


SUMMARY_REQUEST = (
    "Summarise our conversation so far for a colleague who will continue it without seeing it: "
    "the facts, the decisions taken, the open questions and anything you promised. Be concise."
)


def compaction_prompt(summary: str, parent_id: str) -> str:
    """The first prompt of the compacted session: the summary, framed as the earlier history."""
    return (
        f"This conversation continues an earlier session ({parent_id}) that was compacted to "
        "save space. Here is a summary of everything that happened in it; treat it as the "
        "history of this conversation and continue from there.\n\n"
        f"{summary.strip()}\n\n---\n\nAcknowledge briefly that you have the context."
    )


def stored_brief(service: SessionService, session_id: str, *, max_chars: int = 12_000) -> str:
    """A plain-text account of a session's completed conversation, up to its head (no model
    call): a failed turn's prompt past the head is not part of it."""
    entries = service.store.entries(session_id)
    head = service.head(session_id)
    if head is not None:
        index = transcript.find_index(entries, head)
        if index is not None:
            entries = entries[: index + 1]
    return transcript.conversation_brief(entries, max_chars=max_chars)


def conversation_point(service: SessionService, session_id: str) -> str | None:
    """The session's latest answer, not counting trailing answers to `SUMMARY_REQUEST`: asking
    the agent for a summary does not move the point being compacted (so a retry after the
    summary turn computes the same compaction key)."""
    summary_digest = digest(SUMMARY_REQUEST)
    with open_db(service.store.engine) as db:
        for row in reversed(turns.list_turns(db, session_id)):
            if row.status != TurnStatus.completed:
                continue
            if row.operation == "resume" and row.prompt_digest == summary_digest:
                continue
            if row.assistant_uuid:
                return row.assistant_uuid
    return service.head(session_id)


def compaction_key(service: SessionService, session_id: str) -> str:
    """The idempotency key of compacting ``session_id`` at its current conversation point."""
    return f"compaction:{session_id}@{conversation_point(service, session_id) or ''}"


def compact(
    service: SessionService,
    session_id: str,
    summary: str | None = None,
    *,
    ctx: RunContext,
    idempotency_key: str | None = None,
    archive: bool = True,
) -> SessionTurn:
    """Start a fresh session carrying a summary of ``session_id``; archive the old one.

    See `SessionService.compact`.
    """
    return service.compact(
        session_id, summary, ctx=ctx, idempotency_key=idempotency_key, archive=archive
    )
