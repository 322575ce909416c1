"""Prefect events for the session life cycle, with the session as the resource.

Automations can react to them (e.g. "a session was handed off to billing"). Event names:
``claude-sessions.<action>`` with action in created, resumed, forked, handed-off, checkpointed,
rewound, compacted, decision-recorded, and the dotted ones ``turn.failed``, ``budget.warning``,
``budget.exceeded`` and ``human.requested``. One family prefix, so one automation trigger
(``claude-sessions.*``) sees them all; the dashboard's event feed titles them from the name:
"Claude sessions handed off", "Claude sessions decision recorded", "Claude sessions turn failed".

Payloads carry ids, rounded costs and short labels (the e-mail id a turn was for, a decision's
key and choice), never prompt text or credentials.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("claude_sessions")

EVENT_PREFIX = "claude-sessions"
#: Decimal places of costs in payloads: rounded for reading, fine enough for sums of tiny turns.
COST_DIGITS = 6

_details: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "claude_session_event_details", default=None
)


def session_resource_id(session_id: str) -> str:
    """The Prefect resource id of a session, shared by events and artifacts."""
    return f"claude-sessions.session.{session_id}"


def event_name(action: str) -> str:
    """``decision-recorded`` -> ``claude-sessions.decision-recorded``."""
    return f"{EVENT_PREFIX}.{action}"


@contextlib.contextmanager
def details(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (short labels: an e-mail id, a decision's choice) to the payload of every
    event emitted inside the block, in this thread; None values are left out."""
    merged = {**(_details.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _details.set(merged)
    try:
        yield
    finally:
        _details.reset(token)


def readable_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Costs rounded (``0.011848000000000001`` -> ``0.011848``); everything else as given."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, float) and "cost" in key:
            value = round(value, COST_DIGITS)
        out[key] = value
    return out


def emit(
    action: str,
    session_id: str,
    *,
    parent_id: str | None = None,
    agent: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Emit ``claude-sessions.<action>`` about a session; never fails the caller."""
    from prefect.events import emit_event

    resource = {
        "prefect.resource.id": session_resource_id(session_id),
        "prefect.resource.name": f"session {session_id[:8]}",
    }
    if agent:
        resource["claude-sessions.agent"] = agent
    related = []
    if parent_id:
        related.append(
            {
                "prefect.resource.id": session_resource_id(parent_id),
                "prefect.resource.role": "parent-session",
                "prefect.resource.name": f"session {parent_id[:8]}",
            }
        )
    body: dict[str, Any] = {"session_id": session_id}
    if parent_id:
        body["parent_session_id"] = parent_id
    if agent:
        body["agent"] = agent
    body.update(_details.get() or {})
    body.update(payload or {})
    try:
        emit_event(
            event=event_name(action),
            resource=resource,
            related=related,
            payload=readable_payload(body),
        )
    except Exception as exc:  # events are telemetry: a failed emit must not fail a turn
        logger.debug("could not emit %s for session %s: %s", action, session_id, exc)
