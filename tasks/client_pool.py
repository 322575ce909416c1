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
- **Bounded.** At most ``max_size`` CLI processes (``CLAUDE_SESSIONS_POOL_SIZE``, default 4)
  belong to the pool: a slot is reserved *before* a CLI starts and freed only after its process
  has exited. A full pool closes its least recently used idle client to make room; when every
  slot holds a busy client, the turn runs on a one-off client that is closed when its turn ends
  (or kept, if a slot has come free by then). A burst of 8 forks at size 4 thus runs 8 CLIs
  at once but leaves at most 4 behind. Clients idle longer than ``idle_timeout_s``
  (``CLAUDE_SESSIONS_POOL_IDLE_S``, default 300) are closed by a reaper. Unless given to the
  constructor, both are read from the settings when used, so a changed variable applies to the
  long-lived default pool from its next turn on.
- **One deadline.** ``timeout_s`` bounds the whole turn: waiting for the session, the endpoint
  check (`tasks.endpoint_check`), the CLI start and the turn.
- **Failures end the CLI.** A turn that raises, times out, is cancelled or ends in an error
  result drops its client and ends its CLI process at once (`sdk_private.end_cli`: SIGTERM,
  then SIGKILL), rather than waiting up to 5 s in the SDK's close while the CLI keeps working.
  A CLI that died mid-turn raises `TransientAgentError`. A CLI found dead between turns is
  replaced silently (the transcript is on disk or in the store). A bug in our code (an
  exception `errors.classify_known` does not know) is re-raised as it is.
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
from prefect_claude_sessions.tasks import local_copies
from prefect_claude_sessions.tasks.endpoint_check import check_endpoint, cli_environment
from prefect_claude_sessions.tasks.errors import AgentError, InvalidInput, agent_settings
from prefect_claude_sessions.tasks.runtime import (
    TurnOutcome,
    as_agent_error,
    drive_turn,
    timeout_error,
)
from prefect_claude_sessions.tasks.sdk_private import cli_alive, cli_pid, close_cli, end_cli

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
    pooled: bool = False  # holds one of the pool's slots (else a one-off client)
    dropped: bool = False
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
        self._slots = 0  # pooled clients: connecting, warm, busy or still exiting
        self._live: set[_Entry] = set()  # every client with a CLI, pooled or one-off
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
        # One deadline for everything this turn waits on: the session's lock, the endpoint
        # check, room in the pool, the CLI start and the turn itself.
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        stage = ["wait for the session"]
        try:
            async with asyncio.timeout_at(deadline):
                return await self._attempt(message, options, head_uuid, deadline, stage)
        except TimeoutError:
            if deadline is None or loop.time() < deadline:  # not our deadline
                raise as_agent_error(TimeoutError("timed out")) from None
            self._counts["timeouts"] += 1
            raise timeout_error(timeout_s, stage[0]) from None

    async def _attempt(
        self,
        message: dict[str, Any],
        options: ClaudeAgentOptions,
        head_uuid: str | None,
        deadline: float | None,
        stage: list[str],
    ) -> TurnOutcome:
        fork = bool(options.fork_session)
        # A fork writes a new session, not its parent: lock the new id, so forks of one parent
        # run in parallel (locking the parent serialised them: 4 forks took 4x one fork).
        target = options.session_id if fork else options.resume or options.session_id
        in_place = not (options.resume_session_at or options.continue_conversation)
        fingerprint = options_fingerprint(options)
        lock = self._lock(target) if target else contextlib.nullcontext()
        async with lock:
            stage[0] = "endpoint check"
            await check_endpoint(cli_environment(options.env))
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
                    await self._drop(entry, reason, kill=reason == "died_idle")
                    entry = None
            else:
                entry = None
            warm = entry is not None
            if entry is None:
                stage[0] = "CLI start"
                entry = await self._open(options, fingerprint)
            else:
                self._counts["reuses"] += 1
            # no await between the checks above and this: an idle entry is never taken twice
            entry.busy = True
            stage[0] = "turn"
            try:
                outcome, cumulative = await drive_turn(
                    entry.client, message, cost_baseline=entry.cost_total
                )
            except BaseException as exc:
                # Whatever went wrong, this CLI is not trusted with another turn and must not
                # keep working on this one: end it (shielded from a second cancellation).
                if isinstance(exc, asyncio.CancelledError):
                    late = deadline is not None and asyncio.get_running_loop().time() >= deadline
                    reason = "timeout" if late else "cancelled"
                else:
                    reason = exc.kind if isinstance(exc, AgentError) else "error"
                await asyncio.shield(self._drop(entry, reason, kill=True))
                if isinstance(exc, Exception) and not isinstance(exc, AgentError):
                    raise as_agent_error(exc) from None
                raise
            finally:
                entry.busy = False
            self._counts["turns"] += 1
            entry.cost_total = cumulative
            entry.turns += 1
            entry.last_used = time.monotonic()
            outcome.warm = warm
            if outcome.is_error:
                await self._drop(entry, "error_result", kill=True)
                return outcome
            if not entry.pooled and not self._adopt(entry):
                # a one-off client: its turn is done, so it closes (gracefully: the CLI
                # flushes its transcript on stdin EOF)
                await self._drop(entry, "one_off")
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

    async def _open(self, options: ClaudeAgentOptions, fingerprint: str) -> _Entry:
        """A connected client: in a pool slot reserved before its CLI starts, or, when every
        slot is busy, a one-off client that closes after its turn."""
        pooled = await self._reserve()
        entry = _Entry(client=ClaudeSDKClient(options), fingerprint=fingerprint, pooled=pooled)
        self._live.add(entry)
        if not pooled:
            self._counts["one_off"] += 1
            logger.info(
                "%s: all %d slots are busy; this turn runs on a one-off CLI",
                self.name,
                self._slots,
            )
        try:
            await entry.client.connect()
        except BaseException as exc:
            await asyncio.shield(self._drop(entry, "connect_failed", kill=True))
            if isinstance(exc, Exception) and not isinstance(exc, AgentError):
                raise as_agent_error(exc) from None
            raise
        self._counts["starts"] += 1
        return entry

    async def _reserve(self) -> bool:
        """Take a slot for a new client, closing the least recently used idle client when the
        pool is full. False when every slot holds a busy client (the caller goes one-off).

        A slot is held from before the CLI starts until after its process has exited, so the
        pool's CLI processes never outnumber ``max_size``.
        """
        while self._slots >= self.max_size:
            idle = [e for e in self._entries.values() if not e.busy]
            if not idle:
                return False
            victim = min(idle, key=lambda e: e.last_used)
            self._counts["evictions"] += 1
            await self._drop(victim, "evicted")  # frees its slot once the CLI has exited
        self._slots += 1
        return True

    def _adopt(self, entry: _Entry) -> bool:
        """Keep a one-off client warm after all if a slot is free now (no eviction for it)."""
        if self._slots >= self.max_size:
            return False
        self._slots += 1
        entry.pooled = True
        self._counts["adopted"] += 1
        return True

    async def _drop(self, entry: _Entry, reason: str, *, kill: bool = False) -> None:
        """Forget the entry and end its CLI process; then free its slot.

        ``kill``: the client failed, timed out or was cancelled, so its CLI is signalled at
        once (`sdk_private.end_cli`); otherwise it is an idle, healthy client and is closed
        the SDK's way (stdin EOF; it exits in ~30 ms). Never raises.
        """
        for sid, e in list(self._entries.items()):
            if e is entry:
                del self._entries[sid]
                lock = self._locks.get(sid)
                if lock is not None and not lock.locked():
                    self._locks.pop(sid, None)
        if entry.dropped:
            return
        entry.dropped = True
        self._drops[reason] += 1
        try:
            await (end_cli(entry.client) if kill else close_cli(entry.client))
        finally:
            self._live.discard(entry)
            if entry.pooled:
                entry.pooled = False
                self._slots -= 1
            local_copies.client_closed(entry.session_id)  # no plaintext left once the CLI is gone

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
        ``turns``, ``evictions``, ``idle_closed``, ``one_off`` (clients started outside a full
        pool), ``adopted`` (of those, kept warm after all), ``timeouts``, ``drops`` by reason,
        ``size`` (warm clients), ``slots`` (pooled CLI processes, including ones starting, busy
        or exiting; never above ``max_size``), ``sessions``."""
        return {
            "starts": self._counts["starts"],
            "one_off": self._counts["one_off"],
            "adopted": self._counts["adopted"],
            "timeouts": self._counts["timeouts"],
            "slots": self._slots,
            "reuses": self._counts["reuses"],
            "turns": self._counts["turns"],
            "evictions": self._counts["evictions"],
            "idle_closed": self._counts["idle_closed"],
            "drops": dict(self._drops),
            "size": len(self._entries),
            "sessions": sorted(list(self._entries)),
        }

    def pid_of(self, session_id: str) -> int | None:
        """Process id of the CLI holding ``session_id`` (None if none is warm)."""
        entry = self._entries.get(session_id)
        return entry.pid if entry else None

    def warm_pids(self) -> set[int]:
        """Process ids of the warm (pooled, idle or busy) clients' CLIs."""
        return {pid for e in list(self._entries.values()) if (pid := e.pid) is not None}

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # --- closing -----------------------------------------------------------------------------
    async def _close_all(self) -> None:
        # idle clients close the SDK's way; one still in a turn (warm or one-off) is ended
        for entry in list(self._live):
            await self._drop(entry, "closed", kill=entry.busy)

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
