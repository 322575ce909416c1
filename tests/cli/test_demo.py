"""The real `claude-sessions demo` as a user runs it: a subprocess with a fresh home, no
credentials (so the stand-in model), its own Prefect server; afterwards the store holds the
demo's sessions and decisions and nothing it started is still running."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect_claude_sessions.storage import (
    SessionOrigin,
    decisions,
    dispose_engines,
    open_db,
    sessions,
)

pytestmark = [pytest.mark.cli, pytest.mark.e2e, pytest.mark.slow]

CLAUDE_SESSIONS = Path(sys.executable).parent / "claude-sessions"


def free_port() -> int:
    """A free port below the ephemeral range (outgoing connections cannot take it meanwhile)."""
    for port in random.sample(range(20000, 30000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-30000")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_with_env(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (every child the demo started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def user_env(tmp_path: Path, home: Path) -> dict[str, str]:
    """A new user's shell: no Prefect, model or session settings, a fresh home."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "ANTHROPIC_", "CLAUDE_"))
    }
    env.update(
        CLAUDE_SESSIONS_HOME=str(home),
        CLAUDE_CONFIG_DIR=str(tmp_path / "claude-config"),
        PREFECT_HOME=str(tmp_path / "prefect-client"),
        COLUMNS="200",
    )
    return env


def test_demo_runs_the_product_and_leaves_nothing_running(tmp_path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = user_env(tmp_path, home)
    started = time.monotonic()
    done = subprocess.run(
        [str(CLAUDE_SESSIONS), "demo", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert elapsed < 120, f"the demo took {elapsed:.0f} s"

    # what the user reads
    assert "using the local stand-in model" in output
    assert f"dashboard at http://127.0.0.1:{port}" in output
    assert "Sessions created: 10 (3 fork, 5 handoff, 2 init)" in output
    assert re.search(r"Decisions:\s+14 \(1 approach-chosen, 5 handoff, 8 triage\)", output)
    assert re.search(r"email-triage \(re-run\)\s+│\s+0 ", output), output
    assert f"http://127.0.0.1:{port}/runs/flow-run/" in output
    assert "triage-demo (init): 8 turns" in output
    assert "Traceback" not in output

    # what the store holds
    url = f"sqlite:///{home / 'sessions.db'}"
    try:
        with open_db(url) as db:
            everything = sessions.list_sessions(db, limit=None)
            by_origin: dict[SessionOrigin, int] = {}
            for record in everything:
                by_origin[record.origin] = by_origin.get(record.origin, 0) + 1
            assert by_origin == {
                SessionOrigin.init: 2,
                SessionOrigin.fork: 3,
                SessionOrigin.handoff: 5,
            }
            (triage,) = [r for r in everything if r.agent_name == "triage-demo"]
            assert triage.turn_count == 8 and triage.transcript_bytes > 0
            assert {c.agent_name for c in sessions.children(db, triage.id)} == {
                "billing-specialist",
                "technical-specialist",
            }
            logged = decisions.list_decisions(db)
            triaged = [d for d in logged if d.key == "triage"]
            assert len(triaged) == 8 and all(d.session_id == triage.id for d in triaged)
            (chosen,) = [d for d in logged if d.key == "approach-chosen"]
            assert chosen.payload["approach"] in output
    finally:
        dispose_engines()

    # nothing left running: no process of the demo, no server, no stand-in
    standin = re.search(r"stand-in model at http://127\.0\.0\.1:(\d+)", output)
    assert standin, output
    assert not listening(port)
    assert not listening(int(standin.group(1)))
    assert processes_with_env(f"CLAUDE_SESSIONS_HOME={home}") == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_kept_open_demo_that_is_killed_stops_its_server(tmp_path, how: str) -> None:
    """`kill PID` (a supervisor, a closed session) stops the demo as Ctrl-C does, and even
    `kill -9` takes its Prefect server with it instead of leaving the port taken."""
    home = tmp_path / "home"
    port = free_port()
    env = user_env(tmp_path, home)
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [str(CLAUDE_SESSIONS), "demo", "--keep-open", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 240
        while "press Ctrl-C to stop it" not in log.read_text(errors="replace"):
            assert demo.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        assert listening(port)
        if how == "SIGTERM":
            demo.terminate()
            assert demo.wait(timeout=60) == 0
        else:
            demo.kill()
            demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output
    if how == "SIGTERM":
        assert "stopped what it started: the Prefect server" in output, output[-2000:]
    deadline = time.monotonic() + 30
    while processes_with_env(f"CLAUDE_SESSIONS_HOME={home}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_with_env(f"CLAUDE_SESSIONS_HOME={home}") == []
    assert not listening(port)
