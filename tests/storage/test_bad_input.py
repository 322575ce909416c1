"""Bad input and broken databases: each gives a clear error, and stored data stays intact."""

from __future__ import annotations

import math
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from prefect_claude_sessions.storage import (
    DatabaseReadOnly,
    DatabaseUnavailable,
    InvalidEntry,
    InvalidSessionId,
    SessionNotFound,
    SQLModelSessionStore,
    StorageError,
    dispose_engines,
    get_engine,
    open_db,
    sessions,
)
from prefect_claude_sessions.storage import transcripts as transcripts_module

from tests.conftest import POSTGRES_ADMIN_DSN

K = {"project_key": "-proj", "session_id": "6f1c9b8e-0000-4000-8000-000000000001"}
GOOD = [{"type": "user", "uuid": "a", "text": "kept"}]


async def _seeded(url: str) -> SQLModelSessionStore:
    store = SQLModelSessionStore(url, max_entry_bytes=1024)
    await store.append(K, GOOD)
    return store


@pytest.mark.parametrize(
    "bad_key",
    [
        {"project_key": "..", "session_id": "s"},
        {"project_key": "-proj", "session_id": "../x"},
        {"project_key": "-proj", "session_id": ""},
        {"project_key": "a/b", "session_id": "s"},
        {"project_key": "-proj", "session_id": "s\x00"},
        {"project_key": "-proj", "session_id": "s", "subpath": "../../etc/passwd"},
        {"project_key": "-proj", "session_id": "s", "subpath": "/abs"},
        {"project_key": "-proj", "session_id": 7},
    ],
)
async def test_unsafe_store_keys_are_rejected_before_any_query(sqlite_url, bad_key) -> None:
    store = await _seeded(sqlite_url)
    with pytest.raises(InvalidSessionId, match="invalid session id"):
        await store.append(bad_key, GOOD)
    with pytest.raises(InvalidSessionId):
        await store.load(bad_key)
    assert await store.load(K) == GOOD


@pytest.mark.parametrize(
    "bad_id",
    [
        "../x",
        "not-a-uuid",
        "",
        "6f1c9b8e00004000800000000000000",
        "{6f1c9b8e-0000-4000-8000-000000000001}",
    ],
)
def test_domain_functions_require_uuid_session_ids(sqlite_url, bad_id) -> None:
    store = SQLModelSessionStore(sqlite_url)
    with pytest.raises(InvalidSessionId) as err:
        store.entries(bad_id)
    assert repr(bad_id) in str(err.value)
    with open_db(sqlite_url) as db, pytest.raises(InvalidSessionId):
        sessions.get_session(db, bad_id)


async def test_unknown_sessions_raise_session_not_found_naming_the_id(database_url) -> None:
    store = await _seeded(database_url)
    missing = str(uuid.uuid4())
    for call in (store.entries, store.transcript_stats):
        with pytest.raises(SessionNotFound, match=missing):
            call(missing)
    assert store.project_key_of(missing) is None
    with open_db(database_url) as db, pytest.raises(SessionNotFound, match=missing):
        sessions.get_session(db, missing)
    assert await store.load({**K, "session_id": missing}) is None  # the SDK protocol says None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"type": "user", "blob": "x" * 2000},
            r"#1 rejected: entry is \d+ bytes, larger than the 1024-byte limit",
        ),
        (
            {"type": "user", "when": {1, 2}},
            r"#1 rejected: not JSON-serialisable \(TypeError: Object of type set",
        ),
        ({"type": "user", "v": math.nan}, r"#1 rejected: not JSON-serialisable \(ValueError"),
        ({"uuid": "b", "no": "type"}, r"#1 rejected: missing the required string field 'type'"),
        ("just a string", r"#1 rejected: expected a JSON object \(dict\), got str"),
        ({"type": "user", "uuid": 5}, r"#1 rejected: field 'uuid' must be a string, got int"),
    ],
)
async def test_bad_entries_reject_the_whole_batch(database_url, bad, message) -> None:
    store = await _seeded(database_url)
    before = store.transcript_stats(K["session_id"])
    (summary_before,) = await store.list_session_summaries(K["project_key"])
    with pytest.raises(InvalidEntry, match=message) as err:
        await store.append(K, [{"type": "user", "uuid": "new"}, bad, {"type": "user"}])
    assert err.value.index == 1
    assert await store.load(K) == GOOD
    assert store.transcript_stats(K["session_id"]) == before
    assert await store.list_session_summaries(K["project_key"]) == [summary_before]


async def test_a_failure_mid_transaction_rolls_back_the_whole_batch(
    database_url, monkeypatch
) -> None:
    store = await _seeded(database_url)

    def broken_fold(*args, **kwargs):
        raise RuntimeError("fold exploded after the entries were inserted")

    monkeypatch.setattr(transcripts_module, "fold_session_summary", broken_fold)
    with pytest.raises(RuntimeError, match="fold exploded"):
        await store.append(K, [{"type": "user", "uuid": "n1"}, {"type": "user", "uuid": "n2"}])
    assert await store.load(K) == GOOD
    assert store.transcript_stats(K["session_id"])[0] == 1


async def test_postgres_down_names_the_url_with_the_password_masked() -> None:
    url = "postgresql+psycopg://agent:s3cret-pw@127.0.0.1:1/nowhere"
    store = SQLModelSessionStore(url)
    with pytest.raises(DatabaseUnavailable) as err:
        await store.append(K, GOOD)
    text = str(err.value)
    assert "127.0.0.1:1/nowhere" in text and "agent:***@" in text
    assert "s3cret-pw" not in text
    assert isinstance(err.value, StorageError)


def test_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseUnavailable, match="a-file"):
        get_engine(f"sqlite:///{blocker / 'sessions.db'}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(DatabaseUnavailable, match="file is not a database"):
        get_engine(f"sqlite:///{garbage}")


async def test_postgres_going_down_mid_use_is_reported_and_recovers(postgres_url) -> None:
    store = await _seeded(postgres_url)
    dbname = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,)
        )
    try:
        with pytest.raises(DatabaseUnavailable, match=dbname):
            await store.append(K, [{"type": "user", "uuid": "lost"}])
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    # The refused batch waited in this machine's spool and goes in first once it is back.
    await store.append(K, [{"type": "user", "uuid": "after"}])
    assert await store.load(K) == [
        *GOOD,
        {"type": "user", "uuid": "lost"},
        {"type": "user", "uuid": "after"},
    ]


async def test_read_only_sqlite_refuses_writes_clearly_and_keeps_data(tmp_path) -> None:
    path = tmp_path / "ro.db"
    await _seeded(f"sqlite:///{path}")
    dispose_engines()
    store = SQLModelSessionStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert await store.load(K) == GOOD  # reads work
    with pytest.raises(DatabaseReadOnly, match="read-only"):
        await store.append(K, [{"type": "user", "uuid": "nope"}])
    assert await store.load(K) == GOOD


async def test_read_only_postgres_refuses_writes_clearly_and_keeps_data(postgres_url) -> None:
    store = await _seeded(postgres_url)
    dispose_engines()
    dbname = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
    store = SQLModelSessionStore(postgres_url)
    assert await store.load(K) == GOOD
    with pytest.raises(DatabaseReadOnly, match="read-only"):
        await store.append(K, [{"type": "user", "uuid": "nope"}])
    assert await store.load(K) == GOOD


def test_a_database_from_a_newer_version_is_refused_clearly(sqlite_url) -> None:
    engine = get_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE claude_sessions_alembic_version SET version_num = '9999_future'")
        )
    dispose_engines()
    with pytest.raises(StorageError, match=r"revision '9999_future'.*does not know"):
        get_engine(sqlite_url)


def test_bad_max_entry_bytes_setting_is_explained(monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_MAX_ENTRY_BYTES", "lots")
    with pytest.raises(ValueError, match="CLAUDE_SESSIONS_MAX_ENTRY_BYTES must be an integer"):
        SQLModelSessionStore("sqlite://")
