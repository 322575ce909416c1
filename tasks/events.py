"""Prefect events for the session life cycle, with the session as the resource.

Automations can react to them (e.g. "a session was handed off to billing"). Event names:
``claude-sessions.session.<action>`` with action in created, resumed, forked, handed-off,
checkpointed, rewound, compacted, decision-recorded. Payloads carry ids, costs and labels, never
prompt text or credentials.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("claude_sessions")

EVENT_PREFIX = "claude-sessions.session"


def session_resource_id(session_id: str) -> str:
    """The Prefect resource id of a session, shared by events and artifacts."""
    return f"claude-sessions.session.{session_id}"


def emit(
    action: str,
    session_id: str,
    *,
    parent_id: str | None = None,
    agent: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Emit ``claude-sessions.session.<action>`` about a session; never fails the caller."""
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
            }
        )
    # "turn.failed" -> claude-sessions.turn.failed; "resumed" -> claude-sessions.session.resumed
    name = f"claude-sessions.{action}" if "." in action else f"{EVENT_PREFIX}.{action}"
    try:
        emit_event(
            event=name,
            resource=resource,
            related=related,
            payload=payload or {},
        )
    except Exception as exc:  # events are telemetry: a failed emit must not fail a turn
        logger.debug("could not emit %s for session %s: %s", action, session_id, exc)
