"""New sessions made from existing ones: forks, handoffs, compactions and store-made rewinds.

Every branch starts from a stored conversation point of its source: the source's head (its last
completed turn) or a checkpoint, never the source transcript's tail, so a turn of the source
that failed or is still running does not leak into the branch.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect_claude_sessions.storage import SQLModelSessionStore

from . import placement, transcript
from .errors import InvalidInput
from .profile import AgentProfile
from .results import Operation
from .turn_protocol import TurnPlan

logger = logging.getLogger("claude_sessions")


def require_point(session_id: str, point: str | None, what: str) -> str:
    """The conversation point to branch from; a session with none cannot be continued."""
    if point is None:
        raise InvalidInput(
            f"session {session_id} has no completed turn to {what} from: its first turn never "
            "completed (retry the operation that created it)"
        )
    return point


def fork_plan(
    *,
    operation: Operation,
    key: str,
    target: str,
    source_id: str,
    prompt: str,
    profile: AgentProfile,
    point: str,
    prepare: Any,
) -> TurnPlan:
    """A fork (or a rewind with a prompt): the CLI branches the source at ``point``."""
    return TurnPlan(
        operation,
        key,
        target,
        prompt,
        profile,
        {
            "resume": source_id,
            "fork_session": True,
            "session_id": target,
            "resume_session_at": point,
        },
        parent_id=source_id,
        fork_point=point,
        new_session=True,
        prepare=prepare,
    )


def handoff_plan(
    store: SQLModelSessionStore,
    *,
    key: str,
    target: str,
    source_id: str,
    prompt: str,
    to: AgentProfile,
    point: str,
) -> TurnPlan:
    """A handoff: the specialist's session has the conversation up to ``point`` and its own
    system prompt.

    The CLI freezes a session's system prompt on resume, so the specialist's session is a copy
    of the transcript with its frozen prompt (``prompt_snapshot``) replaced. When the transcript
    has no prompt snapshot (a CLI that changed its format), the specialist starts fresh with a
    brief of the conversation in its first prompt instead.
    """
    entries = placement.stored_entries(store, source_id)
    if transcript.find_index(entries, point) is None:
        raise InvalidInput(
            f"session {source_id}'s head {point} is not in its stored transcript; "
            "cannot hand it off"
        )
    if transcript.has_prompt_snapshot(entries):
        copied = transcript.copy_for_session(
            entries, target, up_to_uuid=point, system_prompt=to.system_prompt
        )

        def copy_transcript() -> None:
            # Entry uuids make this append idempotent: a retry re-appends nothing.
            store.append_sync(placement.project_key_of(to), target, copied)

        return TurnPlan(
            "handoff",
            key,
            target,
            prompt,
            to,
            {"resume": target},
            parent_id=source_id,
            fork_point=point,
            new_session=True,
            prepare=copy_transcript,
        )
    logger.warning(
        "session %s has no prompt snapshot; handing off with a conversation brief", source_id
    )
    upto = transcript.find_index(entries, point)
    brief = transcript.conversation_brief(entries[: (upto or 0) + 1])
    return TurnPlan(
        "handoff",
        key,
        target,
        f"You are taking over this conversation.\n\n{brief}\n\n---\n\n{prompt}",
        to,
        {"session_id": target},
        parent_id=source_id,
        fork_point=point,
        new_session=True,
    )


def brief_up_to(store: SQLModelSessionStore, session_id: str, point: str | None) -> str:
    """A plain-text account of a session's completed conversation (no model call)."""
    entries = placement.stored_entries(store, session_id)
    if point is not None:
        index = transcript.find_index(entries, point)
        if index is not None:
            entries = entries[: index + 1]
    return transcript.conversation_brief(entries)


def copy_up_to(
    store: SQLModelSessionStore, source_id: str, point: str, target: str
) -> list[dict[str, Any]]:
    """The source's transcript up to ``point``, under the target's id (a store-made rewind)."""
    entries = store.entries(source_id)
    if transcript.find_index(entries, point) is None:
        raise InvalidInput(
            f"conversation point {point} is not in the stored transcript of session {source_id}"
        )
    return transcript.copy_for_session(entries, target, up_to_uuid=point)
