"""Redaction of decision payloads before they are stored.

Decisions are a long-lived record; personal data in them (a customer's e-mail address or phone
number) should not be. Redactors are plain functions from text to text applied to every string
in a payload. Turn the built-in contact redactor on with ``CLAUDE_SESSIONS_REDACT=contacts`` or
register your own with `register_redactor`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from prefect_claude_sessions.storage.errors import InvalidSetting
from prefect_claude_sessions.storage.settings import ClaudeSessionsSettings, env_name, get_settings

Redactor = Callable[[str], str]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d ()./-]{7,}\d(?![\w])")

_registered: list[Redactor] = []


def redact_contacts(text: str) -> str:
    """Replace e-mail addresses and phone numbers with placeholders."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


BUILTIN: dict[str, Redactor] = {"contacts": redact_contacts}


def register_redactor(redactor: Redactor) -> None:
    """Apply ``redactor`` to every string of every decision payload stored from now on."""
    _registered.append(redactor)


def active_redactors(settings: ClaudeSessionsSettings | None = None) -> list[Redactor]:
    """The registered redactors plus those named in ``CLAUDE_SESSIONS_REDACT`` (comma-separated).

    The settings only split the names; which names exist is known here, so this checks them.
    """
    named = (settings or get_settings()).redact
    unknown = [n for n in named if n not in BUILTIN]
    if unknown:
        raise InvalidSetting(
            [
                (
                    env_name("redact"),
                    f"comma-separated names of known redactors {sorted(BUILTIN)}",
                    f"unknown {unknown}",
                )
            ]
        )
    return [BUILTIN[n] for n in named] + list(_registered)


def redact_payload(payload: Any, redactors: list[Redactor] | None = None) -> Any:
    """A copy of ``payload`` with every string passed through the active redactors."""
    chain = active_redactors() if redactors is None else redactors
    if not chain:
        return payload

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            for redactor in chain:
                value = redactor(value)
            return value
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(payload)
