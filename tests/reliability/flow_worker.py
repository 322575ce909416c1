"""A worker process for the flow-level crash test: runs the `incident-log` flow once.

Usage: python flow_worker.py KEY PROMPT [PROMPT ...]

The flow starts a session with the first prompt and resumes it with each further prompt; every
turn carries an explicit idempotency key (KEY-<n>), so a re-run of the flow is the same work.
Prints the last turn as JSON.
"""

from __future__ import annotations

import json
import sys

from prefect import flow
from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@flow(name="incident-log")
def incident_log(key: str, prompts: list[str]):
    turn = init_session(prompts[0], agent=ECHO, idempotency_key=f"{key}-0")
    for n, prompt in enumerate(prompts[1:], start=1):
        turn = resume_session(turn, prompt, idempotency_key=f"{key}-{n}")
    return turn


if __name__ == "__main__":
    last = incident_log(sys.argv[1], sys.argv[2:])
    print(json.dumps(last.model_dump(mode="json")))
