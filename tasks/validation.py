"""Checks of what callers pass to the session operations, made once at the edge.

Each check either returns the value in its canonical form or raises `InvalidInput` naming the
input and what was expected, before anything is stored or sent to the model.
"""

from __future__ import annotations

from prefect_claude_sessions.storage.ids import validate_session_id

from .errors import InvalidInput

#: Default bound of a prompt, characters (``CLAUDE_SESSIONS_MAX_PROMPT_CHARS``).
DEFAULT_MAX_PROMPT_CHARS = 200_000
MAX_LABEL_CHARS = 200


def check_text(value: object, what: str, *, max_chars: int, limit_hint: str = "") -> str:
    """Non-empty text of at most ``max_chars`` characters that can be stored and sent as UTF-8.

    A NUL byte (PostgreSQL cannot store it; the CLI would cut the prompt there) and a lone
    surrogate (not encodable as UTF-8) are refused here, with their position, rather than
    failing later as a storage or encoding error that looks transient.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > max_chars:
        hint = f" ({limit_hint})" if limit_hint else ""
        raise InvalidInput(f"{what} is {len(value)} characters; the limit is {max_chars}{hint}")
    nul = value.find("\x00")
    if nul >= 0:
        raise InvalidInput(f"{what} contains a NUL character at position {nul}; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{what} contains a lone surrogate {value[exc.start]!r} at position {exc.start}, "
            "which is not valid Unicode text"
        ) from None
    return value


def validate_prompt(prompt: object, *, max_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> str:
    """A prompt: non-empty, bounded, valid UTF-8 text without NUL."""
    return check_text(
        prompt, "prompt", max_chars=max_chars, limit_hint="CLAUDE_SESSIONS_MAX_PROMPT_CHARS"
    )


def validate_label(label: object, what: str = "label") -> str:
    """A checkpoint label or decision key: non-empty text of at most 200 characters."""
    return check_text(label, what, max_chars=MAX_LABEL_CHARS)


def validate_idempotency_key(key: object) -> str | None:
    """An explicit idempotency key, if given: non-empty text."""
    if key is None:
        return None
    return check_text(key, "idempotency_key", max_chars=MAX_LABEL_CHARS)


def normalize_session_id(value: object) -> str:
    """A session id in its canonical (lower-case UUID) form.

    Ids are normalised once, here: every later step (the store, the CLI's ``--resume``, the
    pool's keys) then sees the same spelling, so ``ABC…`` and ``abc…`` are one session.
    Raises `InvalidSessionId` (a storage error, never retried) for anything else.
    """
    if isinstance(value, str):
        value = value.strip().lower()
    return validate_session_id(value)
