"""A pool of warm Claude Code CLI clients, so consecutive turns on a session skip the CLI start.

Design:

- **One event loop per pool, in its own daemon thread.** ``ClaudeSDKClient`` objects are bound
  to the loop they were connected on, while Prefect may run each (sync) task call in a fresh
  loop or thread. Every client operation therefore runs on the pool's loop; callers submit the
  turn (`ClientPool.run` from any async code, `ClientPool.run_sync` from sync code) and wait.
- **One entry per session id.** A turn on session S (``options.resume`` or
  ``options.session_id`` == S) reuses S's client if its options fingerprint matches (all
  options except the session-addressing ones), its CLI is alive, and, when the caller passes
  ``head_uuid``, the client's last assistant uuid equals it (else another worker moved the
  session on and the client is stale). Otherwise the old client is closed and a new one
  connected. A fork (``fork_session=True``) gets a new client and leaves the source's alone;
  ``resume_session_at`` replaces the session's client.
- **Never shared by two concurrent turns.** A per-session lock serialises turns on a session
  (the second waits); different sessions run in parallel.
- **Bounded.** At most ``max_size`` clients (``CLAUDE_SESSIONS_POOL_SIZE``, default 4): the
  least recently used idle client is closed to make room. Clients idle longer than
  ``idle_timeout_s`` (``CLAUDE_SESSIONS_POOL_IDLE_S``, default 300) are closed by a reaper.
  Unless given to the constructor, both are read from the settings when used, so a changed
  variable applies to the long-lived default pool from its next turn on.
- **Failures drop the client.** A turn that raises, times out, is cancelled or ends in an error
  result closes its client; a CLI that died mid-turn raises `TransientAgentError`. A CLI found
  dead between turns is replaced silently (the transcript is on disk or in the store).
- **Clean exit.** `aclose`/`close` disconnect every client; an ``atexit`` hook closes all pools.
  After ``os.fork`` the child starts with an empty pool (it never touches the parent's CLIs).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
from prefect_claude_sessions.tasks.errors import (
    AgentError,
    InvalidInput,
    TransientAgentError,
    agent_settings,
    classify_error,
)
from prefect_claude_sessions.tasks.runtime import TurnOutcome, drive_turn
from prefect_claude_sessions.tasks.sdk_private import cli_alive, cli_pid

__all__ = ["ClientPool", "default_pool", "options_fingerprint"]

logger = logging.getLogger(__name__)


#: Options that address a session rather than configure the agent; not part of the fingerprint.
SESSION_FIELDS = frozenset(
    {
        "resume",
        "session_id",
        "continue_conversation",
        "fork_session",
        "resume_session_at",
        "resume_drops_turn",
        "stderr",
        "debug_stderr",
    }
)

#: Not part of the fingerprint either: a session budget passes what is left as
#: ``max_budget_usd`` on every turn, and the CLI checks that cap against its cumulative cost
#: since it started (measured, CLI 2.1.327). A warm CLI keeps the cap it was started with, which
#: is what was left then minus what this CLI spent since: still the session's own limit, only
#: looser by what parallel branches spent meanwhile, which `tasks.budget` checks before each turn.
#: Reconnecting for each new value cost ~0.45 s per budgeted turn instead of ~0.06 s.
_NOT_FINGERPRINTED = SESSION_FIELDS | {"max_budget_usd"}


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_canonical(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    # callables, stores, servers: the same object means the same configuration
    return f"<{type(value).__qualname__}@{id(value):x}>"


def options_fingerprint(options: ClaudeAgentOptions) -> str:
    """A digest of everything in ``options`` that shapes the CLI process, except the fields
    that only address a session. Secrets in ``env`` enter only as part of the digest."""
    data = {
        f.name: _canonical(getattr(options, f.name))
        for f in dataclasses.fields(options)
        if f.name not in _NOT_FINGERPRINTED
    }
    raw = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclasses.dataclass(eq=False)
class _Entry:
    client: ClaudeSDKClient
    fingerprint: str
    session_id: str | None = None
    head: str | None = None
    cost_total: float = 0.0
    turns: int = 0
    busy: bool = False
    created: float = dataclasses.field(default_factory=time.monotonic)
    last_used: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def pid(self) -> int | None:
        return cli_pid(self.client)

    def alive(self) -> bool:
        return cli_alive(self.client)


_pools: weakref.WeakSet[ClientPool] = weakref.WeakSet()


class ClientPool:
    """Warm ``ClaudeSDKClient`` per session; see the module docstring."""

    def __init__(
        self,
        max_size: int | None = None,
        idle_timeout_s: float | None = None,
        *,
        name: str = "claude-pool",
    ) -> None:
        # None: take CLAUDE_SESSIONS_POOL_SIZE / _POOL_IDLE_S from the settings at each use
        self._max_size = None if max_size is None else int(max_size)
        self._idle_timeout_s = None if idle_timeout_s is None else float(idle_timeout_s)
        if self._max_size is not None and self._max_size < 1:
            raise InvalidInput(f"pool max_size must be >= 1, got {self._max_size}")
        if self._idle_timeout_s is not None and self._idle_timeout_s <= 0:
            raise InvalidInput(f"pool idle_timeout_s must be > 0, got {self._idle_timeout_s}")
        self.name = name
        self._guard = threading.Lock()
        self._reset()
        _pools.add(self)

    @property
    def max_size(self) -> int:
        """Most clients kept: the constructor's value, else ``CLAUDE_SESSIONS_POOL_SIZE``."""
        return self._max_size if self._max_size is not None else agent_settings().pool_size

    @property
    def idle_timeout_s(self) -> float:
        """Seconds an idle client is kept: the constructor's value, else ``CLAUDE_SESSIONS_POOL_IDLE_S``."""
        if self._idle_timeout_s is not None:
            return self._idle_timeout_s
        return agent_settings().pool_idle_s

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._counts: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()
        self._closed = False
        self._reaper_task: asyncio.Task[None] | None = None

    # --- the pool's loop ---------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._pid != os.getpid():  # forked child: the parent's CLIs are not ours
                self._reset()
            if self._closed:
                raise RuntimeError(f"{self.name} is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    self._reaper_task = loop.create_task(self._reaper())
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def _on_pool_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    async def run(
        self,
        message: dict[str, Any],
        options: ClaudeAgentOptions,
        *,
        timeout_s: float | None = None,
        head_uuid: str | None = None,
    ) -> TurnOutcome:
        """Run one turn (a user message from `tasks.runtime.user_message`) from any event loop."""
        loop = self._ensure_loop()
        coro = self._turn(message, options, timeout_s, head_uuid)
        if self._on_pool_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def run_sync(
        self,
        message: dict[str, Any],
        options: ClaudeAgentOptions,
        *,
        timeout_s: float | None = None,
        head_uuid: str | None = None,
    ) -> TurnOutcome:
        """`run` for synchronous callers (any thread except the pool's own)."""
        loop = self._ensure_loop()
        if self._on_pool_loop():
            raise RuntimeError("run_sync called on the pool's own loop thread; use `await run`")
        future = asyncio.run_coroutine_threadsafe(
            self._turn(message, options, timeout_s, head_uuid), loop
        )
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    # --- turns (on the pool's loop) ---------------------------------------------------------
    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    async def _turn(
        self,
        message: dict[str, Any],
        options: ClaudeAgentOptions,
        timeout_s: float | None,
        head_uuid: str | None,
    ) -> TurnOutcome:
        fork = bool(options.fork_session)
        # A fork writes a new session, not its parent: lock the new id, so forks of one parent
        # run in parallel (locking the parent serialised them: 4 forks took 4x one fork).
        target = options.session_id if fork else options.resume or options.session_id
        in_place = not (options.resume_session_at or options.continue_conversation)
        fingerprint = options_fingerprint(options)
        lock = self._lock(target) if target else contextlib.nullcontext()
        async with lock:
            entry = self._entries.get(target) if target else None
            if entry is not None and not fork:
                reason = None
                if not in_place:
                    reason = "branch"
                elif entry.fingerprint != fingerprint:
                    reason = "options_changed"
                elif head_uuid is not None and entry.head != head_uuid:
                    reason = "stale"
                elif not entry.alive():
                    reason = "died_idle"
                if reason:
                    await self._drop(entry, reason)
                    entry = None
            else:
                entry = None
            warm = entry is not None
            if entry is None:
                entry = await self._connect(options, fingerprint, timeout_s)
            else:
                self._counts["reuses"] += 1
            entry.busy = True
            try:
                outcome, cumulative = await asyncio.wait_for(
                    drive_turn(entry.client, message, cost_baseline=entry.cost_total), timeout_s
                )
            except asyncio.CancelledError:
                await self._drop(entry, "cancelled")
                raise
            except asyncio.TimeoutError:
                await self._drop(entry, "timeout")
                raise TransientAgentError(
                    f"the turn did not finish within {timeout_s:g} s", kind="timeout"
                ) from None
            except AgentError as exc:
                await self._drop(entry, exc.kind)
                raise
            except Exception as exc:
                await self._drop(entry, "error")
                raise classify_error(exc) from None
            finally:
                entry.busy = False
            self._counts["turns"] += 1
            entry.cost_total = cumulative
            entry.turns += 1
            entry.last_used = time.monotonic()
            outcome.warm = warm
            if outcome.is_error:
                await self._drop(entry, "error_result")
                return outcome
            entry.head = outcome.assistant_uuid
            sid = outcome.session_id
            previous = self._entries.get(sid)
            if previous is not None and previous is not entry:
                await self._drop(previous, "replaced")
            if (
                entry.session_id
                and entry.session_id != sid
                and self._entries.get(entry.session_id) is entry
            ):
                del self._entries[entry.session_id]
            entry.session_id = sid
            self._entries[sid] = entry
            return outcome

    async def _connect(
        self, options: ClaudeAgentOptions, fingerprint: str, timeout_s: float | None
    ) -> _Entry:
        await self._make_room()
        client = ClaudeSDKClient(options)
        try:
            await asyncio.wait_for(client.connect(), timeout_s)
        except asyncio.TimeoutError:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise TransientAgentError(
                f"the CLI did not start within {timeout_s:g} s", kind="timeout"
            ) from None
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await client.disconnect()
            if isinstance(exc, Exception):
                raise classify_error(exc) from None
            raise
        self._counts["starts"] += 1
        return _Entry(client=client, fingerprint=fingerprint)

    async def _make_room(self) -> None:
        while len(self._entries) >= self.max_size:
            idle = [e for e in self._entries.values() if not e.busy]
            if not idle:
                logger.warning(
                    "%s: all %d clients are busy; starting one more than max_size",
                    self.name,
                    len(self._entries),
                )
                return
            victim = min(idle, key=lambda e: e.last_used)
            self._counts["evictions"] += 1
            await self._drop(victim, "evicted")

    async def _drop(self, entry: _Entry, reason: str) -> None:
        """Forget the entry and disconnect its client (the CLI process ends)."""
        for sid, e in list(self._entries.items()):
            if e is entry:
                del self._entries[sid]
                lock = self._locks.get(sid)
                if lock is not None and not lock.locked():
                    self._locks.pop(sid, None)
        self._drops[reason] += 1
        try:
            await entry.client.disconnect()
        except Exception as exc:  # the CLI may be gone already
            logger.debug("%s: disconnect after %s failed: %r", self.name, reason, exc)

    async def _reaper(self) -> None:
        from prefect_claude_sessions.storage.settings import ClaudeSessionsSettings

        idle_s: float = ClaudeSessionsSettings.model_fields["pool_idle_s"].default
        while True:
            try:
                idle_s = self.idle_timeout_s
            except InvalidInput as exc:
                # The reaper has no caller to tell; keep the last good value and let the next
                # turn (which reads the same settings) report the error to its caller.
                logger.warning("%s: %s; keeping idle timeout %gs", self.name, exc, idle_s)
            await asyncio.sleep(max(0.05, min(idle_s / 2, 30.0)))
            now = time.monotonic()
            for entry in list(self._entries.values()):
                if not entry.busy and now - entry.last_used > idle_s:
                    self._counts["idle_closed"] += 1
                    await self._drop(entry, "idle")

    # --- introspection ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters: ``starts`` (CLI processes connected), ``reuses`` (turns on a warm client),
        ``turns``, ``evictions``, ``idle_closed``, ``drops`` by reason, ``size``, ``sessions``."""
        return {
            "starts": self._counts["starts"],
            "reuses": self._counts["reuses"],
            "turns": self._counts["turns"],
            "evictions": self._counts["evictions"],
            "idle_closed": self._counts["idle_closed"],
            "drops": dict(self._drops),
            "size": len(self._entries),
            "sessions": sorted(self._entries),
        }

    def pid_of(self, session_id: str) -> int | None:
        """Process id of the CLI holding ``session_id`` (None if none is warm)."""
        entry = self._entries.get(session_id)
        return entry.pid if entry else None

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # --- closing -----------------------------------------------------------------------------
    async def _close_all(self) -> None:
        for entry in list(self._entries.values()):
            await self._drop(entry, "closed")

    async def _shutdown(self) -> None:
        await self._close_all()
        reaper, self._reaper_task = self._reaper_task, None
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper

    async def discard(self, session_id: str) -> bool:
        """Close the warm client of ``session_id``, if any (e.g. after the session was rewound
        or archived elsewhere). True if one was closed."""
        loop = self._loop
        if loop is None or session_id not in self._entries:
            return False

        async def go() -> bool:
            entry = self._entries.get(session_id)
            if entry is None:
                return False
            async with self._lock(session_id):
                await self._drop(entry, "discarded")
            return True

        if self._on_pool_loop():
            return await go()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(go(), loop))

    async def aclose(self) -> None:
        """Disconnect every client and stop the pool's loop (from any event loop)."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self, timeout_s: float = 30.0) -> None:
        """Disconnect every client and stop the pool's loop (sync; not on the pool's thread)."""
        with self._guard:
            if self._pid != os.getpid():
                self._reset()
                return
            loop, thread = self._loop, self._thread
            self._closed = True
            self._loop = None
        if loop is None or thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("close() called on the pool's own loop thread; use `await aclose()`")
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=timeout_s)
        except (concurrent.futures.TimeoutError, Exception) as exc:
            logger.warning("%s: closing clients failed or timed out: %r", self.name, exc)

        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    def __repr__(self) -> str:
        return f"ClientPool(name={self.name!r}, size={len(self._entries)}/{self.max_size}, idle_timeout_s={self.idle_timeout_s:g})"


_default: ClientPool | None = None
_default_guard = threading.Lock()


def default_pool() -> ClientPool:
    """The process-wide pool (created on first use; a fresh one after fork or close)."""
    global _default
    with _default_guard:
        if _default is None or _default._closed or _default._pid != os.getpid():
            _default = ClientPool(name="claude-default-pool")
        return _default


@atexit.register
def _close_pools_at_exit() -> None:
    for pool in list(_pools):
        with contextlib.suppress(Exception):
            pool.close(timeout_s=10)
