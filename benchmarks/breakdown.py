"""Where a task turn's time goes: wall-clock timers wrapped around the steps of
`prefect_claude_sessions.tasks.service.SessionService` and `prefect_claude_sessions.tasks.session_tasks` for the duration of a ``with`` block.

The wrappers are installed on module attributes at run time (nothing in ``tasks/`` or
``storage/`` is changed) and removed afterwards. Components may nest (the SDK's session-store
mirror appends run *inside* the runtime turn), so shares of nested components are reported
apart from the top-level ones.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

# (label, module path, attribute path, nested inside another component?). Each is looked up
# at the moment it is called (a module attribute or a class attribute), so wrapping it counts
# every call; tests/benchmarks/test_breakdown_targets.py fails when one of them is renamed.
SERVICE = "prefect_claude_sessions.tasks.service"
PROTOCOL = "prefect_claude_sessions.tasks.turn_protocol"
TARGETS: list[tuple[str, str, str, bool]] = [
    ("runtime turn (CLI + model)", PROTOCOL, "run_turn_sync", False),
    (
        "lineage artifact",
        "prefect_claude_sessions.tasks.artifacts",
        "_publish",
        False,
    ),
    ("event emit", "prefect_claude_sessions.tasks.events", "emit", False),
    ("relocate (localise)", "prefect_claude_sessions.tasks.placement", "localise", False),
    ("claim + release", "prefect_claude_sessions.storage.claims", "claim_session", False),
    ("claim + release", "prefect_claude_sessions.storage.claims", "release_session", False),
    ("turn lookup (idempotency)", PROTOCOL, "TurnProtocol.completed", False),
    ("session + profile read", SERVICE, "SessionService._session", False),
    ("head lookup", PROTOCOL, "TurnProtocol.head", False),
    (
        "head bookkeeping (cut to head)",
        "prefect_claude_sessions.tasks.placement",
        "cut_to_head",
        False,
    ),
    ("recover an interrupted attempt", PROTOCOL, "TurnProtocol._recover", False),
    ("turn rows (begin/complete)", "prefect_claude_sessions.storage.turns", "begin_turn", False),
    ("turn rows (begin/complete)", "prefect_claude_sessions.storage.turns", "complete_turn", False),
    ("turn rows (begin/complete)", "prefect_claude_sessions.storage.turns", "find_turn", False),
    ("session row create", "prefect_claude_sessions.storage.sessions", "create_session", False),
    (
        "store mirror appends (inside the turn)",
        "prefect_claude_sessions.storage.session_store",
        "SQLModelSessionStore.append",
        True,
    ),
]


def resolve(module_name: str, attr_path: str) -> tuple[Any, str, Any]:
    """``(owner, attribute name, current value)`` of a target; AttributeError if it is gone."""
    import importlib

    owner: Any = importlib.import_module(module_name)
    *parents, attr = attr_path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    return owner, attr, original


class Breakdown:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def _add(self, label: str, seconds: float) -> None:
        with self._lock:
            self.seconds[label] += seconds
            self.calls[label] += 1

    def _wrap(self, label: str, fn: Any) -> Any:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self._add(label, time.perf_counter() - started)

            return awrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(label, time.perf_counter() - started)

        return wrapper

    @contextlib.contextmanager
    def installed(self) -> Iterator[Breakdown]:
        """Wrap every target for the ``with`` block. A target that no longer exists is skipped
        and listed in ``missing`` (the code moved on; the test of the targets says which)."""
        undo: list[tuple[Any, str, Any]] = []
        self.missing: list[str] = []
        try:
            for label, module_name, attr_path, _ in TARGETS:
                try:
                    owner, attr, original = resolve(module_name, attr_path)
                except (AttributeError, KeyError, ImportError):
                    self.missing.append(f"{module_name}.{attr_path}")
                    continue
                setattr(owner, attr, self._wrap(label, original))
                undo.append((owner, attr, original))
            yield self
        finally:
            for owner, attr, original in reversed(undo):
                setattr(owner, attr, original)

    def shares(self, total_s: float) -> list[dict[str, Any]]:
        nested = {label for label, _, _, n in TARGETS if n}
        rows = []
        for label, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            rows.append(
                {
                    "component": label,
                    "total_ms": round(seconds * 1000, 1),
                    "calls": self.calls[label],
                    "share": round(seconds / total_s, 3) if total_s else None,
                    "nested": label in nested,
                }
            )
        top = sum(s for label, s in self.seconds.items() if label not in nested)
        rows.append(
            {
                "component": "other (service glue, result models, task wrapper)",
                "total_ms": round((total_s - top) * 1000, 1),
                "calls": None,
                "share": round((total_s - top) / total_s, 3) if total_s else None,
                "nested": False,
            }
        )
        return rows
