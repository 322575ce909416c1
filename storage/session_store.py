"""``SQLModelSessionStore``: the Claude Agent SDK ``SessionStore`` protocol over SQLite or PostgreSQL.

Pass it as ``ClaudeAgentOptions(session_store=SQLModelSessionStore(url))`` and every transcript
line the CLI writes is mirrored to the database, so a worker on another machine (empty
``CLAUDE_CONFIG_DIR``) can resume the session. The async methods run their database work in a
worker thread, so the event loop never waits on I/O.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import anyio.to_thread
import sqlalchemy as sa
from claude_agent_sdk.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)

from . import secrets, spool, transcripts
from .claims import Fence
from .codec import EntryCodec, codec_from_environment
from .config import database_url, masked_url, max_entry_bytes
from .db_errors import translated_errors
from .engine import engine_url, get_engine
from .errors import (
    ClaimLost,
    DatabaseUnavailable,
    InvalidSessionId,
    SessionNotFound,
    SessionPurged,
)
from .ids import validate_key_part, validate_session_id, validate_subpath
from .models import SessionRecord, SessionStatus, table_of
from .transcripts import StoreKey

T = TypeVar("T")
logger = logging.getLogger("claude_sessions.storage")


def _store_key(key: Any) -> StoreKey:
    if not isinstance(key, dict):
        raise InvalidSessionId(key, f"a session key must be a dict, got {type(key).__name__}")
    return StoreKey(
        project_key=validate_key_part(key.get("project_key"), "project_key"),
        session_id=validate_key_part(key.get("session_id"), "session_id"),
        subpath=validate_subpath(key.get("subpath")),
    )


class SQLModelSessionStore(SessionStore):
    """Transcripts in SQL: idempotent on entry uuid, ordered, with summary sidecars.

    ``url`` defaults to :func:`storage.database_url`; pass ``engine`` to share one. The engine
    (and the schema upgrade of an empty database) is set up on first use, in a worker thread.
    ``max_entry_bytes`` caps one entry's serialised size (default 8 MiB,
    ``CLAUDE_SESSIONS_MAX_ENTRY_BYTES``). Entries are sealed at rest when
    ``CLAUDE_SESSIONS_ENCRYPTION_KEY`` (or ``..._KEY_BLOCK``) is set; an entry that cannot be
    read back raises ``CorruptEntry`` naming the session and the row.

    Two guarantees hold for every caller, the SDK included (not only the service):

    - a purged session's transcript is never read or written again: `load`, `append` and the
      sync helpers raise `SessionPurged`;
    - known secret values (`storage.secrets`: the API key, auth tokens, database passwords,
      encryption keys) are replaced by ``***`` in every entry before it is stored.

    Fencing: while a worker holds a session's claim it registers the claim's `Fence` here
    (`hold_fence`, done by ``tasks.lease.hold_session``). Every write of that session's
    transcript through this store (the SDK's mirror appends, cuts, moves, deletes) then checks
    the fence in its own transaction and is refused with `ClaimLost` once another worker has
    claimed the session; `lost_claim` tells the holder afterwards, because the SDK's mirror
    swallows append errors. The fences are per store object, keyed by session id: in one process
    one holder at a time drives a session.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: sa.Engine | None = None,
        max_entry_bytes: int | None = None,
        codec: EntryCodec | None = None,
    ) -> None:
        self._engine = engine
        self.url: str = engine_url(engine) if engine is not None else (url or database_url())
        self.max_entry_bytes = max_entry_bytes or _default_max_entry_bytes()
        self._codec = codec
        self._fences: dict[str, Fence] = {}
        self._lost: dict[str, ClaimLost] = {}
        self._purged: set[str] = set()  # purged is final: no need to ask the database again
        self._scrubbed: set[str] = set()  # sessions whose appends had a secret replaced
        self._guard = threading.Lock()
        secrets.register_url_password(self.url)

    def __repr__(self) -> str:
        return f"SQLModelSessionStore({masked_url(self.url)!r})"

    @property
    def codec(self) -> EntryCodec:
        """How entries are stored: the ``codec`` given, else JSON text, sealed when an encryption
        key is configured (read on each use, so turning encryption on needs no new store)."""
        return self._codec or codec_from_environment()

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (created, and the schema brought to head, on first access)."""
        if self._engine is None:
            self._engine = get_engine(self.url)
        return self._engine

    # -- fencing ---------------------------------------------------------------------------

    def hold_fence(self, fence: Fence) -> None:
        """Guard every write to ``fence.session_id``'s transcript with this claim (see class doc)."""
        self._lost.pop(fence.session_id, None)
        self._fences[fence.session_id] = fence

    def drop_fence(self, fence: Fence) -> None:
        """Stop guarding with ``fence`` (a newer fence of the same session is left in place)."""
        if self._fences.get(fence.session_id) == fence:
            del self._fences[fence.session_id]

    def fence_of(self, session_id: str) -> Fence | None:
        """The claim this store guards the session's writes with, if any."""
        return self._fences.get(session_id)

    def lost_claim(self, session_id: str) -> ClaimLost | None:
        """The refusal of a write to the session under its current fence, if one happened."""
        fence = self._fences.get(session_id)
        lost = self._lost.get(session_id)
        return (
            lost
            if lost is not None and fence is not None and lost.held_token == fence.token
            else None
        )

    def _fenced(self, session_id: str, fn: Callable[..., T], *args: Any) -> T:
        fence = self._fences.get(session_id)
        try:
            return self._db(fn, *args, fence)
        except ClaimLost as lost:
            self._lost[session_id] = lost
            raise

    # -- plumbing --------------------------------------------------------------------------

    def _db(self, fn: Callable[..., T], *args: Any) -> T:
        with translated_errors(self.url):
            return fn(self.engine, *args)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        # abandon_on_cancel: an SDK timeout (anyio.fail_after) returns at once; the thread's
        # transaction still commits or rolls back as a whole, and uuids make a retry harmless.
        return await anyio.to_thread.run_sync(
            functools.partial(self._db, fn, *args), abandon_on_cancel=True
        )

    def _encode(self, entries: list[Any], session_id: str | None = None) -> list[Any]:
        codec = self.codec
        known = secrets.known_secrets()
        clean = [secrets.scrub_value(e, known) for e in entries]
        if session_id is not None and any(c is not e for c, e in zip(clean, entries, strict=True)):
            with self._guard:
                self._scrubbed.add(session_id)
        return [codec.encode(e, i, self.max_entry_bytes) for i, e in enumerate(clean)]

    def take_scrubbed(self, session_id: str) -> bool:
        """True (once) if entries of ``session_id`` appended through this store had a secret
        replaced: whatever holds the raw conversation (a warm CLI) still has it."""
        with self._guard:
            if session_id in self._scrubbed:
                self._scrubbed.discard(session_id)
                return True
        return False

    def refuse_purged(self, session_id: str) -> None:
        """Raise `SessionPurged` if ``session_id`` is recorded as purged (one indexed read; a
        session the store has no record of, e.g. one written by the bare SDK, passes)."""
        if session_id in self._purged:
            raise SessionPurged(session_id)
        if self._db(_is_purged, session_id):
            self._purged.add(session_id)
            raise SessionPurged(session_id)

    # -- SessionStore protocol -------------------------------------------------------------

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Store a batch in order, skipping entries whose uuid is already stored; all or nothing."""
        skey = _store_key(key)
        if not isinstance(entries, list):
            raise TypeError(f"entries must be a list, got {type(entries).__name__}")
        if not entries:
            return
        batch: list[Any] = list(entries)
        await anyio.to_thread.run_sync(
            functools.partial(self._append_mirrored, skey, batch), abandon_on_cancel=True
        )

    def _append_mirrored(self, key: StoreKey, batch: list[Any]) -> int:
        """An append from the CLI's mirror: a batch the database refuses because it is down goes
        to this machine's spool (see `storage.spool`), and so does every later batch of the
        session until the spool is replayed, so the stored order stays the CLI's order."""
        encoded = self._encode(batch, key.session_id)  # validates and scrubs before any write
        try:
            # With the database down the purged check cannot run either: the batch is spooled,
            # and the replay refuses (and drops) it if the session was purged meanwhile.
            self.refuse_purged(key.session_id)
            if spool.has_pending(key.session_id):
                self.flush_spool(key.session_id)
            return self._fenced(key.session_id, transcripts.append_entries, key, encoded, batch)
        except DatabaseUnavailable:
            spooled = spool.add(
                spool.SpooledBatch(
                    project_key=key.project_key,
                    session_id=key.session_id,
                    subpath=key.subpath,
                    bodies=[e.text for e in encoded],
                    digest=spool.batch_digest(batch),
                )
            )
            if spooled:
                logger.warning(
                    "the database is down: kept %d transcript entries of session %s in the "
                    "local spool until it is back",
                    len(batch),
                    key.session_id,
                )
            raise  # the turn is not complete until the store holds it

    def _append_sync(self, key: StoreKey, batch: list[Any]) -> int:
        encoded = self._encode(batch, key.session_id)  # validates and scrubs before any write
        self.refuse_purged(key.session_id)
        return self._fenced(key.session_id, transcripts.append_entries, key, encoded, batch)

    def _load_sync(self, key: StoreKey) -> list[dict[str, Any]] | None:
        self.refuse_purged(key.session_id)
        return self._db(transcripts.load_entries, key, self.codec)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """All entries of ``key`` in append order, or None if it was never written."""
        skey = _store_key(key)
        loaded = await anyio.to_thread.run_sync(
            functools.partial(self._load_sync, skey), abandon_on_cancel=True
        )
        return cast("list[SessionStoreEntry] | None", loaded)  # the JSON dicts the SDK appended

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """Main transcripts of ``project_key`` with their storage mtime (epoch ms)."""
        pk = validate_key_part(project_key, "project_key")
        return await self._in_thread(transcripts.list_main_keys, pk)

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """The incrementally folded summaries of ``project_key``'s main transcripts."""
        pk = validate_key_part(project_key, "project_key")
        return await self._in_thread(transcripts.list_summaries, pk)

    async def delete(self, key: SessionKey) -> None:
        """Delete a transcript; a main key cascades to its subagent subkeys."""
        skey = _store_key(key)
        await anyio.to_thread.run_sync(
            functools.partial(self._fenced, skey.session_id, transcripts.delete_key, skey),
            abandon_on_cancel=True,
        )

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """Subpaths (e.g. ``subagents/agent-1``) stored under a session.

        The SDK turns them into file paths when it materialises a session, so a subpath that
        is not safe (written to the database by something other than this store) is left out.
        """
        pk = validate_key_part(key.get("project_key"), "project_key")
        sid = validate_key_part(key.get("session_id"), "session_id")
        subpaths = await self._in_thread(transcripts.list_subpaths, pk, sid)
        return [p for p in subpaths if _safe_subpath(p)]

    # -- sync helpers for tasks and flows --------------------------------------------------

    def project_key_of(self, session_id: str) -> str | None:
        """The project key a session's transcript is stored under (None if unknown)."""
        sid = validate_session_id(session_id)
        return self._db(transcripts.find_project_key, sid)

    def _main_key(self, session_id: str, project_key: str | None) -> StoreKey:
        sid = validate_session_id(session_id)
        pk = project_key if project_key is not None else self.project_key_of(sid)
        if pk is None:
            raise SessionNotFound(sid)
        return StoreKey(validate_key_part(pk, "project_key"), sid)

    def entries(self, session_id: str, project_key: str | None = None) -> list[dict[str, Any]]:
        """The main transcript of a session, whatever the caller's cwd; SessionNotFound if none."""
        key = self._main_key(session_id, project_key)
        loaded = self._load_sync(key)
        if loaded is None:
            raise SessionNotFound(key.session_id)
        return loaded

    def append_sync(
        self,
        project_key: str,
        session_id: str,
        entries: list[dict[str, Any]],
        subpath: str | None = None,
    ) -> int:
        """Append from synchronous code (same rules as :meth:`append`); returns how many were new."""
        key = _store_key({"project_key": project_key, "session_id": session_id, "subpath": subpath})
        if not entries:
            return 0
        return self._append_sync(key, list(entries))

    def flush_spool(self, session_id: str) -> int:
        """Replay this machine's spooled batches of a session into the store, oldest first, and
        forget them; returns how many entries were new. Raises DatabaseUnavailable (and keeps
        the spool) while the database is still down.

        The spool is dropped unread when it no longer continues the stored conversation (another
        worker moved the session on): replaying it would interleave two histories.
        """
        sid = validate_session_id(session_id)
        batches = spool.pending(sid)
        if not batches:
            return 0
        try:
            self.refuse_purged(sid)
        except SessionPurged:
            spool.discard(sid)  # purged is final, for what waited on this machine too
            raise
        decoded = [(b, self.codec.decode_many(b.bodies)) for b in batches]
        main = batches[0].project_key
        stored = self._db(transcripts.load_entries, StoreKey(main, sid), self.codec) or []
        main_spooled = [e for b, entries in decoded if not b.subpath for e in entries]
        if not _continues(stored, main_spooled):
            logger.warning(
                "dropping the local spool of session %s: the stored conversation moved on "
                "without it (another worker continued the session)",
                sid,
            )
            spool.discard(sid)
            return 0
        added = 0
        for batch, entries in decoded:
            key = StoreKey(batch.project_key, sid, batch.subpath)
            added += self._fenced(
                sid, transcripts.append_entries, key, self._encode(entries, sid), entries
            )
        spool.discard(sid)
        logger.info("replayed %d spooled transcript entries of session %s", added, sid)
        return added

    def discard_spool(self, session_id: str) -> None:
        """Forget this machine's spooled batches of a session (its uncompleted turn is being
        rolled back, or the session is purged)."""
        spool.discard(validate_session_id(session_id))

    def truncate(self, session_id: str, *, keep: int) -> int:
        """Keep the first ``keep`` entries of a session's main transcript, delete the rest (one
        transaction); returns how many were deleted. Rolls back an uncompleted turn."""
        key = self._main_key(session_id, None)
        return self._fenced(key.session_id, transcripts.truncate_key, key, keep)

    def delete_sync(self, session_id: str) -> None:
        """Delete a session's stored transcripts (main and subagents), from synchronous code."""
        try:
            key = self._main_key(session_id, None)
        except SessionNotFound:
            return
        self._fenced(key.session_id, transcripts.delete_key, key)

    def relocate(self, session_id: str, *, to_project_key: str) -> bool:
        """Move a session's transcripts under another project key (a worker with another cwd).

        The SDK finds a transcript by (project key of the cwd, session id); after this, a resume
        from ``to_project_key``'s directory finds the full history. True if anything moved.
        """
        sid = validate_session_id(session_id)
        pk = validate_key_part(to_project_key, "project_key")
        self.refuse_purged(sid)
        return self._fenced(sid, transcripts.relocate_session, sid, pk)

    def import_local_session(self, session_id: str, *, directory: str | None = None) -> None:
        """Copy a session's local transcript (``CLAUDE_CONFIG_DIR``) into the store, idempotently.

        For sessions that cannot mirror live (file checkpointing excludes ``session_store``).
        Wraps the SDK's ``import_session_to_store``; safe to call from sync code inside a running
        event loop (it runs on its own thread and loop).
        """
        sid = validate_session_id(session_id)
        self.refuse_purged(sid)
        from claude_agent_sdk import import_session_to_store

        def run() -> None:
            asyncio.run(import_session_to_store(sid, self, directory=directory))

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(run).result()

    def transcript_stats(self, session_id: str) -> tuple[int, int]:
        """``(entry_count, bytes)`` of a session's main transcript (bytes as JSONL on disk)."""
        key = self._main_key(session_id, None)
        stats = self._db(transcripts.key_stats, key)
        if stats is None:
            raise SessionNotFound(key.session_id)
        return stats


def _continues(stored: list[dict[str, Any]], spooled: list[dict[str, Any]]) -> bool:
    """True if the spooled main-transcript entries still follow the stored ones: the first new
    entry's parent is stored, and nothing stored after that parent branches from it."""
    known = {e.get("uuid") for e in stored if e.get("uuid")}
    own = {e.get("uuid") for e in spooled if e.get("uuid")}
    fresh = [e for e in spooled if e.get("uuid") and e.get("uuid") not in known]
    first = next((e for e in fresh if e.get("parentUuid") and e["parentUuid"] not in own), None)
    if first is None:
        return True  # nothing new, or a chain that starts in the spool itself
    parent = first["parentUuid"]
    if parent not in known:
        return False  # it hangs from an entry this store never held
    at = next(i for i, e in enumerate(stored) if e.get("uuid") == parent)
    return not any(e.get("parentUuid") == parent for e in stored[at + 1 :])


def _is_purged(engine: sa.Engine, session_id: str) -> bool:
    sessions_t = table_of(SessionRecord)
    with engine.connect() as conn:
        status = conn.execute(
            sa.select(sessions_t.c.status).where(sessions_t.c.id == session_id)
        ).scalar()
    return status == SessionStatus.purged.value


def _safe_subpath(value: str) -> bool:
    try:
        return validate_subpath(value) != ""
    except InvalidSessionId:
        logger.warning("skipping an unsafe transcript subpath stored in the database: %r", value)
        return False


def _default_max_entry_bytes() -> int:
    return max_entry_bytes()
