"""Known secret values never reach the store: when a gateway echoes the API key in a 401 error
body, or the model repeats the key (or the database password) in a 200 answer, the store, the
turn records, the task results, the Prefect home and the CLI config folder hold ``***`` instead,
and the model's next request does not carry the key either."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect import flow
from prefect_claude_sessions.storage import SQLModelSessionStore, open_db, turns
from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session
from prefect_claude_sessions.tasks.session_tasks import get_service

from tests.conftest import enter_worker_world

from .leak_search import nowhere

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


@pytest.fixture
def keyed_world(tmp_path, standin, database_url, monkeypatch, prefect_harness):
    """A worker whose API key and database password are markers to search for."""
    key = f"sk-ant-api03-ECHOKEY{uuid.uuid4().hex}"
    password = f"dbpw{uuid.uuid4().hex}"
    url = database_url
    if url.startswith("postgresql"):  # trust auth: any password connects
        url = sa.make_url(url).set(password=password).render_as_string(hide_password=False)
    enter_worker_world(tmp_path, standin, url, monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")
    monkeypatch.delenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", raising=False)
    yield url, key, password
    standin.clear_faults()


def _places(url: str, *markers: str) -> dict[str, list[str]]:
    config = Path(os.environ["CLAUDE_CONFIG_DIR"])
    found = {m: nowhere(m, url, config) for m in markers}
    return {m: where for m, where in found.items() if where}


def test_an_echoed_key_is_scrubbed_from_answers_and_errors(keyed_world, standin):
    url, key, password = keyed_world
    secrets = [key] + ([password] if url.startswith("postgresql") else [])

    # A 200 answer that repeats the key (and the database password).
    standin.inject(reply_text=f"Sure. Your key is {key}; the database says {password}.")

    @flow(persist_result=False)
    def echoed():
        return init_session("What is my key?", agent=ECHO)

    turn = echoed()
    assert "Your key is ***" in turn.text and key not in turn.text
    store = get_service(url).store
    stored = json.dumps(store.entries(turn.session_id))
    assert "Your key is ***" in stored  # the entry is kept, with the secret replaced
    assert _places(url, *secrets) == {}

    # The next turn: the model receives the scrubbed history, not the key.
    standin.clear_requests()

    @flow(persist_result=False)
    def next_turn(previous):
        return resume_session(previous, "Thanks. Anything else?")

    next_turn(turn)
    (request,) = standin.requests(kind="main")
    sent = json.dumps(request)
    assert key not in sent, sent[max(0, sent.find(key) - 400) : sent.find(key) + 80]
    assert "Your key is ***" in sent

    # A 401 whose error body echoes the key (a misconfigured gateway).
    standin.inject(status=401, message=f"invalid x-api-key: {key}")

    @flow(persist_result=False)
    def rejected(previous) -> bool:
        return resume_session(previous, "One more question.", return_state=True).is_failed()

    assert rejected(turn)
    assert standin.requests(kind="main")[-1]["status"] == 401
    with open_db(store.engine) as db:
        errors = [t.error for t in turns.list_turns(db, turn.session_id) if t.error]
    assert errors and all(key not in e for e in errors), errors
    assert _places(url, *secrets) == {}

    # A 400 whose body echoes the key: the CLI puts the body into the error it reports.
    standin.inject(status=400, message=f"bad request for key {key}", count=None)
    assert rejected(turn)
    standin.clear_faults()
    with open_db(store.engine) as db:
        errors = [t.error for t in turns.list_turns(db, turn.session_id) if t.error]
    assert any("400" in e and "key ***" in e for e in errors), errors
    assert _places(url, *secrets) == {}

    # Control: the same search finds a secret that the store did not know about.
    unknown = f"notasecret{uuid.uuid4().hex}"
    SQLModelSessionStore(url).append_sync(
        "p", str(uuid.uuid4()), [{"type": "user", "uuid": str(uuid.uuid4()), "x": unknown}]
    )
    assert _places(url, unknown)


def test_auth_token_and_registered_secrets_never_reach_the_store(sqlite_url, monkeypatch):
    """Without the CLI: every configured credential is scrubbed from entries of any shape."""
    from prefect_claude_sessions.tasks.errors import register_secret

    token = f"token{uuid.uuid4().hex}"
    block_key = f"blockkey{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", token)
    register_secret(block_key)  # what a ClaudeCredentials block supplies
    store = SQLModelSessionStore(sqlite_url)
    sid = str(uuid.uuid4())
    entry = {
        "type": "assistant",
        "uuid": str(uuid.uuid4()),
        "message": {"content": [{"type": "text", "text": f"t={token} k={block_key}"}]},
        "toolUseResult": {"stdout": [f"Bearer {token}"]},
    }
    store.append_sync("proj", sid, [entry])
    (back,) = store.entries(sid, "proj")
    assert back["message"]["content"][0]["text"] == "t=*** k=***"
    assert back["toolUseResult"]["stdout"] == ["Bearer ***"]
    assert back["uuid"] == entry["uuid"]
    assert entry["message"]["content"][0]["text"] == f"t={token} k={block_key}"  # not mutated
    raw = Path(sa.make_url(sqlite_url).database or "")
    from prefect_claude_sessions.storage import dispose_engines

    dispose_engines()
    data = b"".join(p.read_bytes() for p in raw.parent.glob(raw.name + "*"))
    assert token.encode() not in data and block_key.encode() not in data
