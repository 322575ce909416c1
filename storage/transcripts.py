"""Synchronous database work behind :class:`SQLModelSessionStore`: the SDK transcript tables.

Each function runs one transaction on a Core connection (no ORM objects per row: a 10,000-entry
load is one SELECT of text plus one ``json.loads``). Appends hold the transcript key's write lock
(PostgreSQL: ``SELECT ... FOR UPDATE`` on its index row; SQLite: ``BEGIN IMMEDIATE``) for the whole
read-dedup-insert-fold-write, so concurrent appends to one session never lose a summary fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from claude_agent_sdk import fold_session_summary
from claude_agent_sdk.types import SessionStoreListEntry, SessionSummaryEntry

from .claims import Fence, check_fence
from .codec import EncodedEntry, EntryCodec, UndecodableEntry
from .column_types import utcnow
from .dialect import insert_ignoring_conflicts
from .engine import READ_ONLY
from .errors import CorruptEntry, StorageError
from .models import SessionRecord, TranscriptEntry, TranscriptKey, table_of

keys_t = table_of(TranscriptKey)
entries_t = table_of(TranscriptEntry)
sessions_t = table_of(SessionRecord)

_IN_CHUNK = 500  # bound parameters per IN (...) lookup


@dataclass(frozen=True)
class StoreKey:
    """A validated SDK session key; ``subpath`` is '' for the main transcript."""

    project_key: str
    session_id: str
    subpath: str = ""

    @property
    def is_main(self) -> bool:
        return self.subpath == ""

    def as_sdk_key(self) -> dict[str, str]:
        key = {"project_key": self.project_key, "session_id": self.session_id}
        if self.subpath:
            key["subpath"] = self.subpath
        return key


def _now_ms() -> int:
    return int(time.time() * 1000)


def _key_filter(key: StoreKey) -> sa.ColumnElement[bool]:
    return sa.and_(
        keys_t.c.project_key == key.project_key,
        keys_t.c.session_id == key.session_id,
        keys_t.c.subpath == key.subpath,
    )


def _insert_entries(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert entry rows, skipping uuids already stored (a safety net: the caller pre-filters).

    One executemany: psycopg 3 pipelines it (measured faster than multi-row VALUES, whose
    statements SQLAlchemy must compile afresh for every batch); SQLite runs it in-process.
    """
    conn.execute(insert_ignoring_conflicts(entries_t, conn.dialect.name), rows)


_PG_STORED_UUIDS = sa.text(
    "SELECT v.u FROM unnest(CAST(:uuids AS text[])) AS v(u) WHERE EXISTS ("
    f" SELECT 1 FROM {entries_t.name} e WHERE e.key_id = :key_id AND e.uuid = v.u)"
)


def _stored_uuids(conn: sa.Connection, key_id: int, uuids: list[str]) -> set[str]:
    """Which of ``uuids`` the key already holds.

    On PostgreSQL, one probe of the unique (key_id, uuid) index per uuid: a plain
    ``uuid IN (...)`` let the planner scan every row of the key (via the (key_id, seq) index)
    whenever its statistics were stale, making each append O(session size).
    """
    wanted = list(dict.fromkeys(uuids))
    if not wanted:
        return set()
    if conn.dialect.name == "postgresql":
        return set(conn.execute(_PG_STORED_UUIDS, {"uuids": wanted, "key_id": key_id}).scalars())
    seen: set[str] = set()
    for i in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[i : i + _IN_CHUNK]
        seen.update(
            conn.execute(
                sa.select(entries_t.c.uuid).where(
                    entries_t.c.key_id == key_id, entries_t.c.uuid.in_(chunk)
                )
            ).scalars()
        )
    return seen


def append_entries(
    engine: sa.Engine,
    key: StoreKey,
    encoded: list[EncodedEntry],
    raw: list[dict[str, Any]],
    fence: Fence | None = None,
) -> int:
    """Store a batch (all or nothing); returns how many entries were new (not seen uuids).

    With ``fence``, the batch is refused (`ClaimLost`) if the session was claimed by another
    worker since the fence's claim was taken.
    """
    with engine.begin() as conn:
        if fence is not None:
            check_fence(conn, fence, action="transcript append")
        now = utcnow()
        conn.execute(
            insert_ignoring_conflicts(keys_t, conn.dialect.name).values(
                project_key=key.project_key,
                session_id=key.session_id,
                subpath=key.subpath,
                mtime_ms=0,
                entry_count=0,
                total_bytes=0,
                created_at=now,
                updated_at=now,
            )
        )
        row = conn.execute(
            sa.select(keys_t.c.id, keys_t.c.mtime_ms, keys_t.c.summary, keys_t.c.total_bytes)
            .where(_key_filter(key))
            .with_for_update()
        ).one()

        seen = _stored_uuids(conn, row.id, [e.uuid for e in encoded if e.uuid])
        fresh: list[tuple[EncodedEntry, dict[str, Any]]] = []
        for enc, entry in zip(encoded, raw, strict=True):
            if enc.uuid is not None:
                if enc.uuid in seen:
                    continue
                seen.add(enc.uuid)
            fresh.append((enc, entry))
        if not fresh:
            return 0

        _insert_entries(
            conn, [{"key_id": row.id, "uuid": enc.uuid, "body": enc.text} for enc, _ in fresh]
        )
        mtime = max(_now_ms(), row.mtime_ms + 1)  # strictly increasing per key
        added_bytes = sum(enc.size + 1 for enc, _ in fresh)  # +1: the JSONL newline
        values: dict[str, Any] = {
            "mtime_ms": mtime,
            "entry_count": keys_t.c.entry_count + len(fresh),
            "total_bytes": keys_t.c.total_bytes + added_bytes,
            "updated_at": utcnow(),
        }
        if key.is_main:
            prev = (
                None
                if row.summary is None
                else {"session_id": key.session_id, "mtime": row.mtime_ms, "data": row.summary}
            )
            folded = fold_session_summary(
                prev,  # type: ignore[arg-type]
                key.as_sdk_key(),  # type: ignore[arg-type]
                [entry for _, entry in fresh],  # type: ignore[misc]
            )
            values["summary"] = folded["data"]
        conn.execute(sa.update(keys_t).where(keys_t.c.id == row.id).values(**values))
        if key.is_main:
            conn.execute(
                sa.update(sessions_t)
                .where(
                    sessions_t.c.id == key.session_id,
                    sessions_t.c.project_key == key.project_key,
                )
                .values(transcript_bytes=row.total_bytes + added_bytes)
            )
        return len(fresh)


def load_entries(
    engine: sa.Engine, key: StoreKey, codec: EntryCodec
) -> list[dict[str, Any]] | None:
    """The key's entries in append order, or None if the key was never written."""
    with engine.connect().execution_options(**READ_ONLY) as conn, conn.begin():
        key_id = conn.execute(sa.select(keys_t.c.id).where(_key_filter(key))).scalar()
        if key_id is None:
            return None
        rows = conn.execute(
            sa.select(entries_t.c.seq, entries_t.c.body)
            .where(entries_t.c.key_id == key_id)
            .order_by(entries_t.c.seq)
        ).all()
    try:
        return codec.decode_many([r.body for r in rows])
    except UndecodableEntry as exc:
        raise CorruptEntry(key.session_id, rows[exc.index].seq, exc.reason, key.subpath) from None


def list_main_keys(engine: sa.Engine, project_key: str) -> list[SessionStoreListEntry]:
    """``[{session_id, mtime}]`` of the project's main transcripts."""
    with engine.connect().execution_options(**READ_ONLY) as conn, conn.begin():
        rows = conn.execute(
            sa.select(keys_t.c.session_id, keys_t.c.mtime_ms).where(
                keys_t.c.project_key == project_key, keys_t.c.subpath == ""
            )
        ).all()
    return [{"session_id": r.session_id, "mtime": r.mtime_ms} for r in rows]


def list_summaries(engine: sa.Engine, project_key: str) -> list[SessionSummaryEntry]:
    """The project's summary sidecars: ``[{session_id, mtime, data}]`` (mtime = list_sessions mtime)."""
    with engine.connect().execution_options(**READ_ONLY) as conn, conn.begin():
        rows = conn.execute(
            sa.select(keys_t.c.session_id, keys_t.c.mtime_ms, keys_t.c.summary).where(
                keys_t.c.project_key == project_key,
                keys_t.c.subpath == "",
                keys_t.c.summary.is_not(None),
            )
        ).all()
    return [{"session_id": r.session_id, "mtime": r.mtime_ms, "data": r.summary} for r in rows]


def delete_key(engine: sa.Engine, key: StoreKey, fence: Fence | None = None) -> None:
    """Delete one transcript; deleting a main transcript also deletes its subkeys (refused with
    `ClaimLost` when ``fence`` is stale)."""
    with engine.begin() as conn:
        if fence is not None:
            check_fence(conn, fence, action="transcript delete")
        where = (
            sa.and_(keys_t.c.project_key == key.project_key, keys_t.c.session_id == key.session_id)
            if key.is_main
            else _key_filter(key)
        )
        ids = sa.select(keys_t.c.id).where(where).scalar_subquery()
        conn.execute(sa.delete(entries_t).where(entries_t.c.key_id.in_(ids)))
        conn.execute(sa.delete(keys_t).where(where))
        if key.is_main:
            conn.execute(
                sa.update(sessions_t)
                .where(
                    sessions_t.c.id == key.session_id,
                    sessions_t.c.project_key == key.project_key,
                )
                .values(transcript_bytes=0)
            )


def list_subpaths(engine: sa.Engine, project_key: str, session_id: str) -> list[str]:
    """The subpaths (subagent transcripts) stored under a session, sorted."""
    with engine.connect().execution_options(**READ_ONLY) as conn, conn.begin():
        rows = conn.execute(
            sa.select(keys_t.c.subpath)
            .where(
                keys_t.c.project_key == project_key,
                keys_t.c.session_id == session_id,
                keys_t.c.subpath != "",
            )
            .order_by(keys_t.c.subpath)
        ).scalars()
        return list(rows)


def find_project_key(engine: sa.Engine, session_id: str) -> str | None:
    """The project key of a session: from its SessionRecord, else its newest main transcript."""
    with engine.connect().execution_options(**READ_ONLY) as conn, conn.begin():
        recorded = conn.execute(
            sa.select(sessions_t.c.project_key).where(sessions_t.c.id == session_id)
        ).scalar()
        if recorded is not None:
            return recorded
        return conn.execute(
            sa.select(keys_t.c.project_key)
            .where(keys_t.c.session_id == session_id, keys_t.c.subpath == "")
            .order_by(keys_t.c.mtime_ms.desc())
            .limit(1)
        ).scalar()


def key_stats(engine: sa.Engine, key: StoreKey) -> tuple[int, int] | None:
    """``(entry_count, bytes)`` of one transcript, or None if it was never written."""
    with engine.connect().execution_options(**READ_ONLY) as conn, conn.begin():
        row = conn.execute(
            sa.select(keys_t.c.entry_count, keys_t.c.total_bytes).where(_key_filter(key))
        ).first()
    return None if row is None else (int(row.entry_count), int(row.total_bytes))


def relocate_session(
    engine: sa.Engine, session_id: str, to_project_key: str, fence: Fence | None = None
) -> bool:
    """Move a session's transcripts (main and subkeys) under ``to_project_key``, in one transaction.

    Returns False when there is nothing to move (no transcript, or already there). Refuses (and
    changes nothing) when the target already holds a transcript of this session, or when copies
    live under several other project keys: merging two histories has no right answer. A stale
    ``fence`` is refused (`ClaimLost`).
    """
    with engine.begin() as conn:
        if fence is not None:
            check_fence(conn, fence, action="transcript move")
        rows = conn.execute(
            sa.select(keys_t.c.id, keys_t.c.project_key, keys_t.c.subpath)
            .where(keys_t.c.session_id == session_id)
            .with_for_update()
        ).all()
        sources = {r.project_key for r in rows if r.project_key != to_project_key}
        if not sources:
            return False
        if len(sources) > 1 or any(r.project_key == to_project_key for r in rows):
            homes = sorted({r.project_key for r in rows})
            raise StorageError(
                f"session {session_id!r} has transcripts under several project keys {homes}; "
                f"refusing to merge them into {to_project_key!r}"
            )
        conn.execute(
            sa.update(keys_t)
            .where(keys_t.c.session_id == session_id)
            .values(project_key=to_project_key, mtime_ms=_now_ms(), updated_at=utcnow())
        )
        conn.execute(
            sa.update(sessions_t)
            .where(sessions_t.c.id == session_id)
            .values(project_key=to_project_key, updated_at=utcnow())
        )
        return True


def truncate_key(engine: sa.Engine, key: StoreKey, keep: int, fence: Fence | None = None) -> int:
    """Keep the first ``keep`` entries of one transcript and delete the rest, in one transaction
    (under the key's write lock, like appends). Returns how many entries were deleted.

    Used to roll a session back to its last completed turn; the sizes are recounted from what
    is left (as stored, so an encrypted transcript counts its sealed size). A stale ``fence``
    is refused (`ClaimLost`): a woken stale holder must not cut the new holder's turns.
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    with engine.begin() as conn:
        if fence is not None:
            check_fence(conn, fence, action="transcript cut")
        row = conn.execute(sa.select(keys_t.c.id).where(_key_filter(key)).with_for_update()).first()
        if row is None:
            return 0
        cut = conn.execute(
            sa.select(entries_t.c.seq)
            .where(entries_t.c.key_id == row.id)
            .order_by(entries_t.c.seq)
            .offset(keep)
            .limit(1)
        ).scalar()
        if cut is None:
            return 0
        deleted = conn.execute(
            sa.delete(entries_t).where(entries_t.c.key_id == row.id, entries_t.c.seq >= cut)
        ).rowcount
        count, size = conn.execute(
            sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.length(entries_t.c.body)), 0)
            ).where(entries_t.c.key_id == row.id)
        ).one()
        total = int(size) + int(count)  # +1 per entry: the JSONL newline
        conn.execute(
            sa.update(keys_t)
            .where(keys_t.c.id == row.id)
            .values(
                entry_count=int(count),
                total_bytes=total,
                mtime_ms=sa.func.coalesce(keys_t.c.mtime_ms, 0) + 1,
                updated_at=utcnow(),
            )
        )
        if key.is_main:
            conn.execute(
                sa.update(sessions_t)
                .where(
                    sessions_t.c.id == key.session_id,
                    sessions_t.c.project_key == key.project_key,
                )
                .values(transcript_bytes=total)
            )
        return int(deleted or 0)
