"""Idempotency keys and the deterministic ids derived from them.

A turn's key is a digest of what makes it "the same turn": the operation, its scope (an explicit
key, else the Prefect flow run, else the task run), the session it starts from, the prompt, the
agent and the fork point. A retried task or re-run flow run computes the same key, finds the turn
in the store and does not send the prompt again. Session ids and prompt uuids for new sessions are
uuid5 of the key, so even a crash between "sent" and "recorded" cannot create a second session.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

NAMESPACE = uuid.UUID("6c1f3c1e-6f0a-5b8e-9a57-1c2d0c5e7a11")


def digest(text: str) -> str:
    """sha256 hex digest of ``text``: prompts are identified in the store by digest, not content."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def turn_key(
    operation: str,
    *,
    scope: str,
    source: str | None,
    prompt: str,
    agent: dict[str, Any] | None = None,
    extra: str | None = None,
) -> str:
    """The idempotency key of one turn (see the module docstring for what goes in)."""
    material = json.dumps(
        {
            "op": operation,
            "scope": scope,
            "source": source,
            "prompt": digest(prompt),
            "agent": agent,
            "extra": extra,
        },
        sort_keys=True,
        default=str,
    )
    return f"{operation}:{digest(material)[:40]}"


def session_id_for(key: str) -> str:
    """Deterministic id of the session a keyed init/fork/handoff/rewind creates."""
    return str(uuid.uuid5(NAMESPACE, f"session:{key}"))


def prompt_uuid_for(key: str, attempt: int = 0) -> str:
    """Deterministic transcript uuid for attempt ``attempt`` of a keyed turn's prompt (the CLI
    keeps it verbatim), so a crashed turn's prompt and answer can be found in the stored transcript."""
    suffix = "" if attempt == 0 else f":{attempt}"
    return str(uuid.uuid5(NAMESPACE, f"prompt:{key}{suffix}"))
