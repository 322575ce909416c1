"""Manual operations, one flow each, with typed parameters for the dashboard's "Run" form.

Operators use these to steer a session by hand: send a prompt, fork, hand off, checkpoint,
rewind, or look at a session. Every run is keyed by its flow run, so "Retry" in the dashboard
does not send the prompt again.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect_claude_sessions.tasks import (
    Checkpoint,
    SessionTurn,
    checkpoint_session,
    fork_session,
    handoff_session,
    resume_session,
    rewind_session,
)
from prefect_claude_sessions.tasks.artifacts import render_lineage
from prefect_claude_sessions.tasks.session_tasks import get_service
from pydantic import BaseModel

from .profiles import get_profile


@flow(name="session-resume")
def resume(session_id: str, prompt: str) -> SessionTurn:
    """Send ``prompt`` to session ``session_id``."""
    return resume_session(session_id, prompt)


@flow(name="session-fork")
def fork(session_id: str, prompt: str, checkpoint_id: str | None = None) -> SessionTurn:
    """Fork session ``session_id`` (at ``checkpoint_id`` if given) and send ``prompt`` to the fork."""
    at = get_service().get_checkpoint(checkpoint_id) if checkpoint_id else None
    return fork_session(session_id, prompt, at=at)


@flow(name="session-handoff")
def handoff(session_id: str, prompt: str, to_agent: str = "billing-specialist") -> SessionTurn:
    """Hand session ``session_id`` to the specialist profile ``to_agent`` with ``prompt``."""
    return handoff_session(session_id, prompt, to=get_profile(to_agent))


@flow(name="session-checkpoint")
def checkpoint(session_id: str, label: str) -> Checkpoint:
    """Name the current point of session ``session_id`` as ``label``."""
    return checkpoint_session(session_id, label)


@flow(name="session-rewind")
def rewind(
    checkpoint_id: str, prompt: str | None = None, restore_files: bool = True
) -> SessionTurn:
    """Roll back to checkpoint ``checkpoint_id``: a new branch from that point (answering
    ``prompt`` if given) and, for file-checkpointing sessions, the files restored."""
    return rewind_session(checkpoint_id, prompt=prompt, restore_files=restore_files)


class SessionView(BaseModel):
    """What `show` reports about a session."""

    id: str
    agent: str
    origin: str
    status: str
    parent_id: str | None
    turns: int
    cost_usd: float
    transcript_bytes: int
    checkpoints: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


@flow(name="session-show")
def show(session_id: str) -> SessionView:
    """Describe session ``session_id``: totals, lineage, turns, checkpoints and decisions (also as
    a markdown artifact)."""
    reads = get_service().reads
    record = reads.session(session_id)
    chain = reads.ancestors(session_id)
    root = chain[-1].id if chain else session_id
    tree = render_lineage(reads.lineage_tree(root), {session_id})
    rows = reads.turns(session_id)
    marks = reads.checkpoints(session_id)
    logged = reads.decisions(session_id)
    view = SessionView(
        id=record.id,
        agent=record.agent_name,
        origin=record.origin.value,
        status=record.status.value,
        parent_id=record.parent_id,
        turns=record.turn_count,
        cost_usd=record.cost_usd,
        transcript_bytes=record.transcript_bytes,
        checkpoints=[{"id": c.id, "label": c.label, "at": c.transcript_uuid} for c in marks],
        decisions=[{"key": d.key, "payload": d.payload} for d in logged],
    )
    turn_lines = [
        f"| {i} | {t.operation} | {t.status.value} | {(t.result_text or '')[:80]!r} |"
        for i, t in enumerate(rows, start=1)
    ]
    create_markdown_artifact(
        key="session-show",
        markdown="\n".join(
            [
                f"# Session `{view.id}`",
                f"agent **{view.agent}**, {view.origin}, {view.status}: {view.turns} turns, "
                f"${view.cost_usd:.4f}, transcript {view.transcript_bytes} bytes",
                "",
                "## Lineage",
                tree,
                "",
                "## Turns",
                "| # | operation | status | answer |",
                "|---|---|---|---|",
                *turn_lines,
            ]
        ),
    )
    return view
