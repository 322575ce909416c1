"""Closing this process's warm CLI of a session from synchronous code (a purge, or a worker that
finds a session purged): the CLI's memory holds the conversation, so it must not outlive it.

Its own module so that `tasks.client_pool` (which calls `tasks.local_copies` when it closes a
client) is only imported here, when needed, and no import cycle forms.
"""

from __future__ import annotations

from .local_copies import discard_client


def close_warm_client(session_id: str) -> bool:
    """Close the CLI holding ``session_id`` in this process's default pool, if one is warm.
    True if one was closed."""
    from .client_pool import default_pool

    pool = default_pool()
    if session_id not in pool:
        return False
    discard_client(pool, session_id)
    return True
