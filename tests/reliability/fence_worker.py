"""A worker process for the fencing test: runs one resume turn through the session service.

Usage: python fence_worker.py SESSION_ID PROMPT KEY

Prints one JSON line: the turn (exit 0), or ``{"error": <class>, "message": ..., "tokens":
[held, current]}`` for a storage error (exit 3), so the test can read how the turn ended.
"""

from __future__ import annotations

import json
import sys

from prefect_claude_sessions.storage import ClaimLost, StorageError
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.session_tasks import get_service


def main() -> None:
    session_id, prompt, key = sys.argv[1:4]
    service = get_service()
    try:
        turn = service.resume(
            session_id,
            prompt,
            ctx=RunContext(flow_run_id=None, task_run_id=None),
            idempotency_key=key,
        )
    except StorageError as exc:
        tokens = [exc.held_token, exc.current_token] if isinstance(exc, ClaimLost) else None
        print(json.dumps({"error": type(exc).__name__, "message": str(exc), "tokens": tokens}))
        sys.exit(3)
    print(json.dumps(turn.model_dump(mode="json")))


if __name__ == "__main__":
    main()
