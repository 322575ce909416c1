"""Manual operations, one flow each, with typed parameters for the dashboard's "Run" form.

Operators use these to steer a session by hand: send a prompt, fork, hand off, checkpoint,
rewind, or look at a session. Every run is keyed by its flow run, so "Retry" in the dashboard
does not send the prompt again.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect_claude_sessions.storage.settings import get_settings
from prefect_claude_sessions.tasks import (
    Checkpoint,
    SessionTurn,
    checkpoint_session,
    fork_session,
    handoff_session,
    resume_session,
    rewind_session,
)
from prefect_claude_sessions.tasks.artifacts import (
    HIDDEN_TEXT,
    answer_excerpt,
    money,
    render_lineage,
)
from prefect_claude_sessions.tasks.run_report import session_report
from prefect_claude_sessions.tasks.session_tasks import get_service
from pydantic import BaseModel

from .forms import ProfileName, resolve_checkpoint_id, resolve_session_id
from .profiles import get_profile


def _outcome(operation: str, result: SessionTurn | Checkpoint, source: str) -> None:
    """A small markdown artifact with what the operation produced (the answer, the new session
    or checkpoint id an operator needs for the next form) and the same as a log line."""
    lines = [f"# {operation.capitalize()} of session `{source}`", ""]
    if isinstance(result, Checkpoint):
        lines += [
            f"- **checkpoint id:** `{result.id}` (for the fork and rewind forms)",
            f"- label: {result.label}",
            f"- at transcript point `{result.transcript_uuid}`",
        ]
        get_run_logger().info(
            "checkpoint id %s (%s) on session %s", result.id, result.label, source
        )
    else:
        if result.session_id != source:
            lines.append(f"- **new session:** `{result.session_id}` ({result.agent})")
        else:
            lines.append(f"- session: `{result.session_id}` ({result.agent})")
        lines.append(
            f"- cost {money(result.cost_usd)}, {result.duration_ms} ms"
            + (", replayed from the store (no prompt sent)" if result.replayed else "")
        )
        answer = result.text.strip() or "_(no prompt, no answer)_"
        if result.text.strip() and not get_settings().dashboard_text:
            answer = HIDDEN_TEXT
        lines += ["", "## Answer", "", answer]
        if result.session_id != source:
            get_run_logger().info("new session %s (%s)", result.session_id, result.agent)
    create_markdown_artifact(
        key=f"session-{operation}-outcome",
        markdown="\n".join(lines),
        description=f"What the {operation} produced",
    )


@flow(name="session-resume", flow_run_name="resume {session_id}")
def resume(session_id: str, prompt: str) -> SessionTurn:
    """Send ``prompt`` to session ``session_id``.

    Args:
        session_id: The session: its id, or a unique prefix of 8+ characters (as the dashboard
            shows it).
        prompt: What to send; the agent sees the whole conversation so far.
    """
    with session_report():
        sid = resolve_session_id(session_id)
        result = resume_session(sid, prompt, label="manual")
        _outcome("resume", result, sid)
    return result


@flow(name="session-fork", flow_run_name="fork {session_id}")
def fork(session_id: str, prompt: str, checkpoint_id: str | None = None) -> SessionTurn:
    """Fork session ``session_id`` (at ``checkpoint_id`` if given) and send ``prompt`` to the fork.

    Args:
        session_id: The session to branch: its id, or a unique prefix of 8+ characters.
        prompt: The fork's first prompt.
        checkpoint_id: Branch at this checkpoint (its id or a unique 8+ character prefix; a
            checkpoint run shows it) instead of the latest turn.
    """
    with session_report():
        sid = resolve_session_id(session_id)
        at = (
            get_service().get_checkpoint(resolve_checkpoint_id(checkpoint_id))
            if checkpoint_id
            else None
        )
        result = fork_session(sid, prompt, at=at, label="manual")
        _outcome("fork", result, sid)
    return result


@flow(name="session-handoff", flow_run_name="handoff {session_id} to {to_agent}")
def handoff(
    session_id: str, prompt: str, to_agent: ProfileName = "billing-specialist"
) -> SessionTurn:
    """Hand session ``session_id`` to the specialist profile ``to_agent`` with ``prompt``.

    Args:
        session_id: The session to hand over: its id, or a unique prefix of 8+ characters.
        prompt: What the specialist is asked to do; it gets the whole conversation too.
        to_agent: The specialist's agent profile.
    """
    with session_report():
        sid = resolve_session_id(session_id)
        result = handoff_session(sid, prompt, to=get_profile(to_agent), label="manual")
        _outcome("handoff", result, sid)
    return result


@flow(name="session-checkpoint", flow_run_name="checkpoint {session_id} {label}")
def checkpoint(session_id: str, label: str) -> Checkpoint:
    """Name the current point of session ``session_id`` as ``label``.

    Args:
        session_id: The session: its id, or a unique prefix of 8+ characters.
        label: A name for this point (letters, digits, dashes), to fork from or roll back to.
    """
    with session_report():
        sid = resolve_session_id(session_id)
        result = checkpoint_session(sid, label)
        _outcome("checkpoint", result, sid)
    return result


@flow(name="session-rewind", flow_run_name="rewind to {checkpoint_id}")
def rewind(
    checkpoint_id: str, prompt: str | None = None, restore_files: bool = True
) -> SessionTurn:
    """Roll back to checkpoint ``checkpoint_id``: a new branch from that point (answering
    ``prompt`` if given) and, for file-checkpointing sessions, the files restored.

    Args:
        checkpoint_id: The checkpoint: its id, or a unique prefix of 8+ characters (a
            checkpoint run shows it).
        prompt: The new branch's first prompt; empty: branch without asking the model.
        restore_files: Restore the files of a file-checkpointing session to that point.
    """
    with session_report():
        ck = get_service().get_checkpoint(resolve_checkpoint_id(checkpoint_id))
        result = rewind_session(ck.id, prompt=prompt, restore_files=restore_files, label="manual")
        _outcome("rewind", result, ck.session_id)
    return result


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


@flow(name="session-show", flow_run_name="show {session_id}")
def show(session_id: str) -> SessionView:
    """Describe session ``session_id``: totals, lineage, turns, checkpoints and decisions (also as
    a markdown artifact).

    Args:
        session_id: The session: its id, or a unique prefix of 8+ characters.
    """
    reads = get_service().reads
    session_id = resolve_session_id(session_id)
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
        f"| {i} | {t.operation} | {t.status.value} | "
        f"{answer_excerpt(t.result_text, 80, markdown=True)} |"
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
