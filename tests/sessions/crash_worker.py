"""A worker process for the crash tests: runs one resume turn through the session service.

Usage: python crash_worker.py SESSION_ID PROMPT KEY [--die-before-record]

``--die-before-record`` kills the process (os._exit) right after the model answered and the
answer reached the store, before the turn is recorded: the narrowest crash window.
"""

from __future__ import annotations

import json
import os
import sys

from prefect_claude_sessions.storage import turns
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.session_tasks import get_service


def main() -> None:
    session_id, prompt, key = sys.argv[1:4]
    if "--die-before-record" in sys.argv:

        def die(*args, **kwargs):
            os._exit(9)

        turns.complete_turn = die
    service = get_service()
    turn = service.resume(
        session_id, prompt, ctx=RunContext(flow_run_id=None, task_run_id=None), idempotency_key=key
    )
    print(json.dumps(turn.model_dump(mode="json")))


if __name__ == "__main__":
    main()
