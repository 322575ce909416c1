"""Encryption at rest: with a key configured, transcripts, answers, summaries and decision
payloads are ciphertext in the database (raw SQLite bytes, raw PostgreSQL rows) while the store
still returns plaintext; keys rotate (MultiFernet + reencrypt_all); a Prefect Secret block can
hold the keys."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from prefect import flow
from prefect.blocks.system import Secret
from prefect_claude_sessions.storage import (
    CorruptEntry,
    EncryptionError,
    SQLModelSessionStore,
    decisions,
    dispose_engines,
    generate_key,
    open_db,
    reencrypt_all,
    sessions,
    turns,
)
from prefect_claude_sessions.storage.encryption import reset_key_cache
from prefect_claude_sessions.tasks import (
    AgentProfile,
    checkpoint_session,
    init_session,
    record_decision,
    resume_session,
)
from prefect_claude_sessions.tasks.session_tasks import get_service

KEY_ENV = "CLAUDE_SESSIONS_ENCRYPTION_KEY"
ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@flow
def confidential(marker: str):
    turn = init_session(f"Remember the code {marker}.", agent=ECHO)
    turn = resume_session(turn, f"Repeat {marker} back to me.")
    checkpoint_session(turn, label="after-repeat")
    record_decision(turn, "code", {"value": marker, "note": f"customer code {marker}"})
    return turn


def raw_sqlite_bytes(url: str) -> bytes:
    path = Path(sa.make_url(url).database)
    dispose_engines()  # close connections; the WAL is kept and read too
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def raw_postgres_rows(url: str) -> str:
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        return "\n".join(
            row[0]
            for (table,) in tables
            for row in conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
        )


@pytest.mark.cli
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_flow_leaves_no_plaintext_in_the_database(
    request, workspace, standin, monkeypatch, backend
):
    url = (
        request.getfixturevalue("sqlite_url")
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    monkeypatch.setenv("CLAUDE_SESSIONS_DATABASE_URL", url)
    monkeypatch.setenv(KEY_ENV, generate_key())
    marker = f"MARKER-{uuid.uuid4().hex}"

    turn = confidential(marker)

    # The store gives the plaintext back...
    store = get_service(url).store
    assert marker in json.dumps(store.entries(turn.session_id))
    assert marker in turn.text
    with open_db(store.engine) as db:
        assert [r.result_text for r in turns.list_turns(db, turn.session_id)][-1] == turn.text
        (decision,) = decisions.list_decisions(db, session_id=turn.session_id)
        assert decision.payload["value"] == marker
    # ...while the database holds none of it.
    raw = raw_sqlite_bytes(url) if backend == "sqlite" else raw_postgres_rows(url)
    needle = marker.encode() if isinstance(raw, bytes) else marker
    assert needle not in raw
    assert (b"fernet:" if isinstance(raw, bytes) else "fernet:") in raw

    # Control: without a key the same marker is plainly visible, so the search above can see it.
    monkeypatch.delenv(KEY_ENV)
    store.append_sync(
        "p", str(uuid.uuid4()), [{"type": "user", "uuid": str(uuid.uuid4()), "x": marker}]
    )
    raw = raw_sqlite_bytes(url) if backend == "sqlite" else raw_postgres_rows(url)
    assert needle in raw


def _entry(text: str) -> dict:
    return {"type": "user", "uuid": str(uuid.uuid4()), "message": {"role": "user", "content": text}}


def _write_everything(store: SQLModelSessionStore, sid: str, tag: str) -> None:
    store.append_sync("proj", sid, [_entry(f"prompt {tag}")])
    with open_db(store.engine) as db:
        decisions.record_decision(db, session_id=sid, key=tag, payload={"tag": tag})
        key = f"turn-{tag}-{uuid.uuid4()}"
        turns.begin_turn(
            db, idempotency_key=key, session_id=sid, operation="resume", prompt_digest="0" * 64
        )
        turns.complete_turn(
            db, key, session_id=sid, result_text=f"answer {tag}", cost_usd=0.0, usage={},
            duration_ms=1, num_turns=1,
        )  # fmt: skip


def _read_everything(store: SQLModelSessionStore, sid: str) -> tuple:
    entries = [e["message"]["content"] for e in store.entries(sid)]
    with open_db(store.engine) as db:
        payloads = [d.payload["tag"] for d in decisions.list_decisions(db, session_id=sid)]
        answers = [t.result_text for t in turns.list_turns(db, sid)]
    return entries, payloads, answers


def test_keys_rotate_without_losing_anything(sqlite_url, monkeypatch):
    old, new = generate_key(), generate_key()
    store = SQLModelSessionStore(sqlite_url)
    sid = str(uuid.uuid4())
    monkeypatch.delenv(KEY_ENV, raising=False)
    with open_db(store.engine) as db:
        sessions.create_session(db, id=sid, project_key="proj", agent_name="a", origin="init")
    _write_everything(store, sid, "clear")  # written before encryption was turned on
    monkeypatch.setenv(KEY_ENV, old)
    _write_everything(store, sid, "old")
    monkeypatch.setenv(KEY_ENV, f"{new},{old}")  # step 1: the new key first, the old one kept
    _write_everything(store, sid, "new")
    expected = (
        ["prompt clear", "prompt old", "prompt new"],
        ["clear", "old", "new"],
        ["answer clear", "answer old", "answer new"],
    )
    assert _read_everything(store, sid) == expected

    report = reencrypt_all(store.engine)  # step 2 (claude-sessions rotate-key)
    assert report.sealed["transcript_entries.body"] == 1
    assert report.resealed["transcript_entries.body"] == 1
    assert report.current["transcript_entries.body"] == 1
    assert report.sealed["decisions.payload"] == 1 and report.resealed["decisions.payload"] == 1
    assert report.resealed["turns.result_text"] == 1 and report.sealed["turns.result_text"] == 1
    assert report.current["transcript_keys.summary"] == 1  # refolded by the last append
    assert reencrypt_all(store.engine).changed == 0  # idempotent

    monkeypatch.setenv(KEY_ENV, new)  # step 3: the old key is gone, everything still reads
    assert _read_everything(store, sid) == expected
    raw = raw_sqlite_bytes(sqlite_url)
    assert b"prompt clear" not in raw and b"answer clear" not in raw and b'"clear"' not in raw

    monkeypatch.setenv(KEY_ENV, old)  # a retired key opens nothing
    with pytest.raises(
        CorruptEntry, match=rf"session '{sid}'.*cannot be decrypted with any configured key"
    ):
        store.entries(sid)
    with pytest.raises(EncryptionError, match="cannot be decrypted"), open_db(store.engine) as db:
        decisions.list_decisions(db, session_id=sid)
    monkeypatch.delenv(KEY_ENV)  # and no key at all says so
    with pytest.raises(CorruptEntry, match="encrypted at rest and this store has no key"):
        store.entries(sid)
    with pytest.raises(EncryptionError, match="no key is configured"):
        reencrypt_all(store.engine)


def test_a_bad_key_is_refused_without_showing_it(sqlite_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, f"{generate_key()},not-a-key-SECRETISH")
    store = SQLModelSessionStore(sqlite_url)
    with pytest.raises(EncryptionError, match="key #2 is not a Fernet key") as info:
        store.append_sync("p", str(uuid.uuid4()), [_entry("x")])
    assert "SECRETISH" not in str(info.value)


def test_the_keys_can_come_from_a_prefect_secret_block(sqlite_url, monkeypatch, prefect_harness):
    name = f"cs-encryption-{uuid.uuid4().hex[:8]}"
    Secret(value=generate_key()).save(name)
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY_BLOCK", name)
    reset_key_cache()
    store = SQLModelSessionStore(sqlite_url)
    sid = str(uuid.uuid4())
    store.append_sync("p", sid, [_entry("sealed by the block's key")])
    assert (
        store.entries(sid, project_key="p")[0]["message"]["content"] == "sealed by the block's key"
    )
    assert b"sealed by the block" not in raw_sqlite_bytes(sqlite_url)

    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY_BLOCK", "no-such-block")
    with pytest.raises(EncryptionError, match="Secret block 'no-such-block'"):
        store.append_sync("p", sid, [_entry("y")])
    reset_key_cache()
