"""A flow's process is killed (SIGKILL) in the middle of a turn and the flow is run again:
the session continues, each completed turn is recorded once and no answered prompt reaches the
model twice. (The service-level crash windows, including "killed after the answer was stored",
are in tests/sessions/test_durability.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from .conftest import (
    answered,
    main_requests,
    requests_for,
    store_state,
    stored_conversation,
    wait_for,
)

pytestmark = [pytest.mark.cli]

WORKER = Path(__file__).with_name("flow_worker.py")
PROMPTS = [
    "Start the incident log.",
    "Log: disk full on db-2.",
    "Log: failover to db-3.",
    "Summarise the log.",
]


def run_flow(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "incident-7", *PROMPTS],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes its CLIs with it
    )


def test_a_flow_killed_mid_turn_continues_when_run_again(workspace, standin):
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "CLAUDE_SESSIONS_CLAIM_TTL": "3",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    # The first two conversation calls pass; the third (the second resume) hangs.
    standin.inject(latency_s=0.001, count=2)
    standin.inject(latency_s=60, count=1)
    first = run_flow(env)
    try:
        wait_for(lambda: requests_for(standin, PROMPTS[2]), timeout=120, what="the third prompt")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    standin.clear_faults()
    assert answered(standin, PROMPTS[0]) == answered(standin, PROMPTS[1]) == 1

    rerun = run_flow(env)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err[-3000:]
    last = json.loads(out.strip().splitlines()[-1])

    # Turns completed before the kill were not asked again; the one cut off was asked once more.
    # (the killed call never got its answer back: it is the one prompt sent twice)
    assert [len(requests_for(standin, p)) for p in PROMPTS] == [1, 1, 2, 1]
    count, rows, _ = store_state(last["session_id"])
    assert count == 4
    assert len({key for key, _ in rows}) == 4
    assert [status for _, status in rows] == ["completed"] * 4
    assert stored_conversation(last["session_id"]) == PROMPTS
    assert main_requests(standin)[-1]["user_turns"] == PROMPTS
