"""Counting the Claude Code CLI processes this test process runs, from /proc (no psutil here)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


def cli_children() -> set[int]:
    """Pids of live (not zombie) bundled-CLI processes whose parent is this process."""
    me = os.getpid()
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != me or fields[0] == "Z":
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if b"_bundled/claude" in cmdline:
            found.add(int(name))
    return found


def settle(expected: Callable[[], set[int]], timeout_s: float = 10.0) -> set[int]:
    """The live CLI children once they equal ``expected()`` (or after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        live = cli_children()
        if live == expected() or time.monotonic() > deadline:
            return live
        time.sleep(0.1)


class Sampler:
    """Samples, every ``interval_s`` in a thread: live CLI children, and ``probe()`` values."""

    def __init__(self, probe: Callable[[], dict[str, int]], interval_s: float = 0.05) -> None:
        self.probe = probe
        self.interval_s = interval_s
        self.max: dict[str, int] = {"children": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            values = {"children": len(cli_children()), **self.probe()}
            for key, value in values.items():
                self.max[key] = max(self.max.get(key, 0), value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def no_cli_children_left() -> None:
    """Close this process's default pool (earlier tests leave warm CLIs in it, by design) and
    wait for its CLIs to exit, so a count of CLI children starts from zero."""
    from prefect_claude_sessions.tasks.client_pool import default_pool

    default_pool().close()
    left = settle(set, timeout_s=15.0)
    assert left == set(), f"CLI processes of earlier tests still running: {sorted(left)}"
