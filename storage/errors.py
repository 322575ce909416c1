"""Exceptions raised by the store: each names the thing that went wrong.

Every storage failure is a :class:`StorageError`, so callers (tasks, flows) can catch the
family; the subclasses say which input or which condition was at fault.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class StorageError(Exception):
    """Base class of every error raised by ``storage``."""


class InvalidSessionId(StorageError, ValueError):
    """A session id (or another store key part) is malformed, e.g. not a UUID or ``../x``."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        super().__init__(f"invalid session id {value!r}: {reason}")


class SessionNotFound(StorageError, LookupError):
    """No session with this id is recorded."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"session {session_id!r} not found")


class CheckpointNotFound(StorageError, LookupError):
    """No checkpoint with this id is recorded."""

    def __init__(self, checkpoint_id: str) -> None:
        self.checkpoint_id = checkpoint_id
        super().__init__(f"checkpoint {checkpoint_id!r} not found")


class InvalidEntry(StorageError, ValueError):
    """A transcript entry (or decision payload) cannot be stored; nothing of its batch was written."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(
            f"transcript entry #{index} rejected: {reason}; nothing of this batch was stored"
        )


class CorruptEntry(StorageError, ValueError):
    """A stored transcript entry cannot be read back (damaged text, or encrypted with a key this
    worker does not have); names the session and the entry's row so an operator can find it."""

    def __init__(self, session_id: str, seq: int, reason: str, subpath: str = "") -> None:
        self.session_id = session_id
        self.seq = seq
        self.subpath = subpath
        self.reason = reason
        where = f" ({subpath})" if subpath else ""
        super().__init__(
            f"session {session_id!r}{where}: stored transcript entry seq={seq} "
            f"(table claude_sessions_transcript_entries) cannot be read: {reason}"
        )


class DatabaseUnavailable(StorageError, ConnectionError):
    """The database cannot be reached or opened; the URL is shown with its password masked."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(f"database {url} is unavailable: {detail}")


class DatabaseReadOnly(StorageError, PermissionError):
    """The database refused a write because it (or the connection) is read-only."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(f"database {url} is read-only, the write was refused: {detail}")


class SessionPurged(StorageError):
    """The session was purged: its conversation is gone and no operation may use it again."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(
            f"session {session_id!r} was purged: its conversation is deleted and it can no "
            "longer be resumed, forked, handed off, checkpointed, rewound, compacted or exported"
        )


class SessionBusy(StorageError):
    """Another worker holds the session's claim; try again after it is released or expires."""

    def __init__(
        self,
        session_id: str,
        holder: str | None = None,
        expires_at: datetime | None = None,
        waited_s: float | None = None,
    ) -> None:
        self.session_id = session_id
        self.holder = holder
        self.expires_at = expires_at
        self.waited_s = waited_s
        by = f"{holder!r}" if holder else "another run"
        until = f" until {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
        waited = f" (waited {waited_s:.0f} s for it)" if waited_s is not None else ""
        super().__init__(f"session {session_id!r} is busy: {by} holds its claim{until}{waited}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles task exceptions; rebuild from the fields, not from the message.
        return (type(self), (self.session_id, self.holder, self.expires_at, self.waited_s))


class ClaimLost(StorageError):
    """A write came from a worker whose claim on the session expired and was taken over.

    Fencing: every claim of a session gets a larger token than the one before. A holder that
    stalled (paused, swapped out, cut off) past its claim's time to live may wake up after
    another worker took the session over; the store then refuses its transcript appends and
    turn records, so the conversation never interleaves two writers.
    """

    def __init__(
        self,
        session_id: str,
        held_token: int,
        current_token: int | None,
        current_holder: str | None = None,
        action: str = "write",
    ) -> None:
        self.session_id = session_id
        self.held_token = held_token
        self.current_token = current_token
        self.current_holder = current_holder
        self.action = action
        if current_token is None:
            now = "its claim record is gone (purged)"
        else:
            who = f" by {current_holder!r}" if current_holder else ""
            now = f"it was taken over{who} with token {current_token}"
        super().__init__(
            f"session {session_id!r}: refused the {action} of a worker whose claim (fencing "
            f"token {held_token}) expired; {now}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (
                self.session_id,
                self.held_token,
                self.current_token,
                self.current_holder,
                self.action,
            ),
        )


class InvalidSetting(StorageError, ValueError):
    """A ``CLAUDE_SESSIONS_*`` environment variable holds an unusable value.

    ``problems`` lists ``(variable, expected, got)`` for each bad variable; ``got`` is the raw
    value's repr, or None where the value is secret (keys, URLs with passwords) and not shown.
    """

    def __init__(self, problems: list[tuple[str, str, str | None]]) -> None:
        self.problems = problems
        self.variables = [variable for variable, _, _ in problems]
        parts = [
            f"{variable} must be {expected}" + (f", got {got}" if got is not None else "")
            for variable, expected, got in problems
        ]
        super().__init__("; ".join(parts))

    def __reduce__(self) -> tuple[type[InvalidSetting], tuple[list[tuple[str, str, str | None]]]]:
        return (type(self), (self.problems,))
