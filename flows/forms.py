"""What the dashboard's run forms accept: agent profiles as a choice, ids as short prefixes.

Prefect turns a ``Literal`` parameter into a drop-down of its values, and takes each parameter's
description from the flow's docstring (its ``Args:`` section).
"""

from __future__ import annotations

from typing import Literal

from prefect_claude_sessions.storage import open_db
from prefect_claude_sessions.storage.short_ids import resolve_id
from prefect_claude_sessions.tasks.session_tasks import get_service

#: The names in `profiles.PROFILES` (a test keeps the two equal).
ProfileName = Literal["triage", "technical-specialist", "billing-specialist", "explorer"]


def resolve_session_id(value: str, database: str | None = None) -> str:
    """The full id of the session ``value`` names (an id or a unique prefix of 8+ characters)."""
    with open_db(get_service(database).store.engine) as db:
        return resolve_id(db, "session", value)


def resolve_checkpoint_id(value: str, database: str | None = None) -> str:
    """The full id of the checkpoint ``value`` names (an id or a unique prefix of 8+ characters)."""
    with open_db(get_service(database).store.engine) as db:
        return resolve_id(db, "checkpoint", value)
