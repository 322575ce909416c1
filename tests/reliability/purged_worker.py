"""A fresh worker process (its own CLAUDE_CONFIG_DIR) that tries every operation on a purged
session and prints, as JSON, what each one raised. Run: python purged_worker.py SID CHECKPOINT."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from prefect_claude_sessions.storage import SQLModelSessionStore
from prefect_claude_sessions.tasks import AgentProfile
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.placement import project_key_of
from prefect_claude_sessions.tasks.service import SessionService

BILLING = AgentProfile(name="billing", system_prompt="You are the billing specialist.")


def attempts(service: SessionService, sid: str, checkpoint: str) -> dict[str, Callable[[], Any]]:
    """Every operation a worker can try on a session, by name."""
    ctx = RunContext(None, None)
    store = service.store
    key = {"project_key": project_key_of(BILLING), "session_id": sid}
    return {
        "resume": lambda: service.resume(sid, "Hello again.", ctx=ctx),
        "fork": lambda: service.fork(sid, "Try approach B.", ctx=ctx),
        "handoff": lambda: service.handoff(sid, "Take over.", to=BILLING, ctx=ctx),
        "checkpoint": lambda: service.checkpoint(sid, "after-purge", ctx=ctx),
        "rewind": lambda: service.rewind(checkpoint, prompt="Start over.", ctx=ctx),
        "rewind_no_prompt": lambda: service.rewind(checkpoint, ctx=ctx),
        "compaction": lambda: service.compact(sid, ctx=ctx),
        "export": lambda: store.entries(sid),
        "store_load": lambda: asyncio.run(store.load(key)),  # type: ignore[arg-type]
        "store_append": lambda: store.append_sync(
            key["project_key"], sid, [{"type": "user", "uuid": sid, "message": {"content": "x"}}]
        ),
    }


def try_all(service: SessionService, sid: str, checkpoint: str) -> dict[str, list[str]]:
    """``{operation: [exception class, message]}`` (``["ok", ""]`` if one succeeded)."""
    out: dict[str, list[str]] = {}
    for name, call in attempts(service, sid, checkpoint).items():
        try:
            call()
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)]
        else:
            out[name] = ["ok", ""]
    return out


if __name__ == "__main__":
    service = SessionService(SQLModelSessionStore(), credentials=lambda _block: {})
    print(json.dumps(try_all(service, sys.argv[1], sys.argv[2])))
