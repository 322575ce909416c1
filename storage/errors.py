"""Exceptions raised by the store: each names the thing that went wrong.

Every storage failure is a :class:`StorageError`, so callers (tasks, flows) can catch the
family; the subclasses say which input or which condition was at fault.
"""

from __future__ import annotations


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

    def __init__(self, session_id: str, holder: str | None = None) -> None:
        self.session_id = session_id
        self.holder = holder
        by = f" by {holder!r}" if holder else ""
        super().__init__(f"session {session_id!r} is busy: claimed{by}")


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
