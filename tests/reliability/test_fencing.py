"""Fencing for real: a worker frozen (SIGSTOP) mid-turn past its claim's time to live, another
worker taking the session over and completing a turn, then the first woken up (SIGCONT).

What must hold: the stored transcript holds no entry of the stale holder (one linear parent
chain), the woken worker's turn fails with `ClaimLost` (recorded failed, never completed), and
the next request to the model carries each completed turn exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect_claude_sessions.storage import TurnStatus, claims, open_db, sessions, turns
from prefect_claude_sessions.tasks import AgentProfile
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.idempotency import digest
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import main_requests, requests_for, stored_conversation, wait_for

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
WORKER = Path(__file__).with_name("fence_worker.py")
TTL_S = 2.0


def start_worker(session_id: str, prompt: str, key: str) -> subprocess.Popen:
    env = {**os.environ, "CLAUDE_SESSIONS_CLAIM_TTL": str(TTL_S)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), session_id, prompt, key],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def assert_linear(session_id: str) -> None:
    """Every stored conversation entry lies on the one parent chain from the newest entry."""
    entries = [e for e in get_service().store.entries(session_id) if not e.get("isSidechain")]
    by_uuid = {e["uuid"]: e for e in entries if e.get("uuid")}
    leaf = next(e for e in reversed(entries) if e.get("uuid"))
    chain: set[str] = set()
    while leaf is not None:
        chain.add(leaf["uuid"])
        leaf = by_uuid.get(leaf.get("parentUuid") or "")
    stray = [
        (e["type"], e["uuid"])
        for e in entries
        if e.get("type") in ("user", "assistant") and e.get("uuid") not in chain
    ]
    assert stray == [], f"entries off the chain (interleaved writers): {stray}"
    parents = [e.get("parentUuid") for e in entries if e.get("type") in ("user", "assistant")]
    assert len(parents) == len(set(parents)), "two entries share a parent: the chain forks"


@pytest.mark.parametrize("world", ["workspace", "pg_workspace"])
def test_a_frozen_holder_taken_over_cannot_write_when_it_wakes(world, request, standin):
    request.getfixturevalue(world)
    service = get_service()
    first = service.init("Open the incident log.", ECHO, ctx=RunContext(None, None))
    sid = first.session_id
    stale_prompt, new_prompt = "Stale: restart db-1.", "Fresh: fail over to db-2."

    standin.inject(latency_s=8, count=1)  # the stale holder's turn hangs at the model
    stale = start_worker(sid, stale_prompt, "fence-stale")
    try:
        wait_for(lambda: requests_for(standin, stale_prompt), what="the stale prompt at the model")
        with open_db(service.store.engine) as db:
            stale_token = claims.current_claim(db, sid).fence_token
        os.kill(stale.pid, signal.SIGSTOP)  # the Python worker freezes; its CLI runs on
        time.sleep(TTL_S + 1.5)  # past the TTL: no renewal happened

        fresh = start_worker(sid, new_prompt, "fence-fresh")
        out, err = fresh.communicate(timeout=180)
        assert fresh.returncode == 0, err[-3000:]
        assert last_json(out)["text"].startswith(f"echo: {new_prompt}")
        with open_db(service.store.engine) as db:
            fresh_token = db.get(claims.SessionClaim, sid).fence_token
        assert fresh_token > stale_token

        time.sleep(max(0.0, 8.5 - TTL_S - 1.5))  # the stale turn's answer is back at its CLI
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    out, err = stale.communicate(timeout=180)

    # The woken worker failed cleanly, with ClaimLost naming the session and both tokens.
    assert stale.returncode == 3, (out[-2000:], err[-3000:])
    ended = last_json(out)
    assert ended["error"] == "ClaimLost", ended
    assert sid in ended["message"] and ended["tokens"] == [stale_token, fresh_token]
    assert f"token {stale_token}" in ended["message"]
    assert f"token {fresh_token}" in ended["message"]

    # Nothing of the stale turn is stored; the transcript is one linear chain.
    stored = json.dumps(service.store.entries(sid))
    assert stale_prompt not in stored
    assert_linear(sid)
    assert stored_conversation(sid) == ["Open the incident log.", new_prompt]
    with open_db(service.store.engine) as db:
        rows = {r.prompt_digest: r for r in turns.list_turns(db, sid)}
        assert rows[digest(new_prompt)].status == TurnStatus.completed
        stale_row = rows[digest(stale_prompt)]
        assert stale_row.status == TurnStatus.failed  # its own attempt, never completed
        assert stale_row.error_kind == "claim_lost" and stale_row.claim_token == stale_token
        assert sessions.get_session(db, sid).turn_count == 2

    # The next request carries each completed turn once and nothing of the stale one.
    service.resume(sid, "Summarise the log.", ctx=RunContext(None, None))
    seen = main_requests(standin)[-1]["user_turns"]
    assert seen == ["Open the incident log.", new_prompt, "Summarise the log."]
