"""Short ids: find the one session or checkpoint whose id starts with a prefix of 8+ characters.

The dashboard, the reports and the task-run names show the first 8 characters of an id; an
operator who copies one into the CLI or a run form means the one record it names.
"""

from __future__ import annotations

import re
from typing import Literal

from sqlmodel import Session, col, select

from .errors import CheckpointNotFound, SessionNotFound, StorageError
from .models import CheckpointRecord, SessionRecord

MIN_PREFIX = 8
_PREFIX = re.compile(r"[0-9a-fA-F-]{1,36}")
Kind = Literal["session", "checkpoint"]


class AmbiguousId(StorageError, LookupError):
    """A short id matched more than one record; lists the candidates."""

    def __init__(self, kind: Kind, prefix: str, candidates: list[str]) -> None:
        self.prefix = prefix
        self.candidates = candidates
        listed = ", ".join(candidates)
        super().__init__(
            f"{kind} id prefix {prefix!r} is ambiguous: it matches {listed}; give more characters"
        )


class InvalidShortId(StorageError, ValueError):
    """A value that is neither an id nor a usable prefix of one."""


def resolve_id(db: Session, kind: Kind, value: object) -> str:
    """The full id of the one ``kind`` record ``value`` names: the id itself, or a unique prefix
    of at least 8 hex characters. Unknown -> the store's not-found error; several -> `AmbiguousId`.
    """
    if not isinstance(value, str) or not _PREFIX.fullmatch(value.strip()):
        raise InvalidShortId(
            f"{value!r} is not a {kind} id (expected a UUID or its first {MIN_PREFIX}+ characters)"
        )
    prefix = value.strip().lower()
    model = SessionRecord if kind == "session" else CheckpointRecord
    missing = SessionNotFound if kind == "session" else CheckpointNotFound
    if len(prefix) == 36:
        if db.get(model, prefix) is None:
            raise missing(prefix)
        return prefix
    if len(prefix) < MIN_PREFIX:
        raise InvalidShortId(
            f"{value.strip()!r} is not a {kind} id: a prefix needs at least {MIN_PREFIX} characters"
        )
    # ids are stored lower-case; LIKE with a hex/dash prefix has no wildcard to escape
    found = list(
        db.exec(
            select(model.id).where(col(model.id).like(f"{prefix}%")).order_by(model.id).limit(6)
        ).all()
    )
    if not found:
        raise missing(prefix)
    if len(found) > 1:
        raise AmbiguousId(kind, prefix, [str(f) for f in found])
    return str(found[0])
