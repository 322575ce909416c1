"""Validation of session ids and store key parts, before they reach a query.

Our own sessions are UUIDs (the CLI only resumes UUIDs). The SDK's ``SessionStore`` protocol
treats key parts as opaque strings (its conformance kit uses ids like ``"sess"``), so store keys
are checked for safety (no path traversal, no control characters, bounded length) rather than
for UUID shape.
"""

from __future__ import annotations

import re
import uuid

from .errors import InvalidSessionId

MAX_KEY_PART_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_session_id(value: object) -> str:
    """Return ``value`` as a canonical lowercase UUID string, or raise InvalidSessionId."""
    if not isinstance(value, str):
        raise InvalidSessionId(value, f"expected a UUID string, got {type(value).__name__}")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise InvalidSessionId(value, "not a UUID") from None
    canonical = str(parsed)
    if value.lower() != canonical:  # rejects '{...}', 'urn:uuid:...' and hex without dashes
        raise InvalidSessionId(value, f"not in canonical form (expected {canonical!r})")
    return canonical


def validate_key_part(value: object, what: str) -> str:
    """Check a ``project_key`` or ``session_id`` of a store key: a safe single path segment."""
    if not isinstance(value, str):
        raise InvalidSessionId(value, f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidSessionId(value, f"{what} is empty")
    if len(value) > MAX_KEY_PART_LENGTH:
        raise InvalidSessionId(value[:40] + "...", f"{what} longer than {MAX_KEY_PART_LENGTH}")
    if _CONTROL.search(value):
        raise InvalidSessionId(value, f"{what} contains control characters")
    if "/" in value or "\\" in value or value in (".", ".."):
        raise InvalidSessionId(value, f"{what} must be a single path segment")
    return value


def validate_subpath(value: object) -> str:
    """Check a store key's ``subpath`` ('' for the main transcript): relative, no '..' segments."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidSessionId(value, f"subpath must be a string, got {type(value).__name__}")
    if len(value) > MAX_KEY_PART_LENGTH:
        raise InvalidSessionId(value[:40] + "...", f"subpath longer than {MAX_KEY_PART_LENGTH}")
    if _CONTROL.search(value) or "\\" in value:
        raise InvalidSessionId(value, "subpath contains control characters or backslashes")
    segments = value.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidSessionId(
            value, "subpath must be relative without empty, '.' or '..' segments"
        )
    return value
