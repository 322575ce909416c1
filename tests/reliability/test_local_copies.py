"""`tasks.local_copies` without the CLI: which files a purge deletes, in-place scrubbing of known
secrets, and which sessions the encryption cleanup deletes (and when)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prefect_claude_sessions.storage import generate_key
from prefect_claude_sessions.tasks import AgentProfile, local_copies

ECHO = AgentProfile(name="echo", system_prompt="x")


class FakePool:
    """Stands in for a ClientPool's membership test only (beside the real-CLI tests)."""

    def __init__(self, *sessions: str) -> None:
        self.sessions = set(sessions)

    def __contains__(self, sid: object) -> bool:
        return sid in self.sessions


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", raising=False)
    return tmp_path / "cfg"


def _transcript(config: Path, sid: str, text: str = "hello") -> Path:
    path = config / "projects" / "-work" / f"{sid}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"text": "{text}"}}\n')
    return path


def test_forget_deletes_transcripts_subagents_file_history_and_todos(config):
    sid, other = str(uuid.uuid4()), str(uuid.uuid4())
    _transcript(config, sid)
    keep = _transcript(config, other)
    (config / "projects" / "-work" / sid / "subagents").mkdir(parents=True)
    (config / "projects" / "-work" / sid / "subagents" / "agent-1.jsonl").write_text("{}\n")
    (config / "file-history" / sid).mkdir(parents=True)
    (config / "file-history" / sid / "backup@v1").write_text("secret file")
    (config / "todos").mkdir()
    (config / "todos" / f"{sid}-agent-{sid}.json").write_text("[]")
    assert local_copies.forget_local_copies(sid) == 4
    left = sorted(str(p.relative_to(config)) for p in config.rglob("*") if p.is_file())
    assert left == [str(keep.relative_to(config))]


def test_scrub_replaces_known_secrets_in_place(config, monkeypatch):
    key = f"sk-ant-api03-{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    sid = str(uuid.uuid4())
    path = _transcript(config, sid, f"API Error: 401 invalid key {key}")
    inode = path.stat().st_ino
    assert local_copies.scrub_local_copies(sid) == 1
    assert path.read_text() == '{"text": "API Error: 401 invalid key ***"}\n'
    assert path.stat().st_ino == inode  # a CLI appending to the file keeps its file
    assert local_copies.scrub_local_copies(sid) == 0  # clean files are only read


def test_cleanup_deletes_only_when_encrypted_and_no_warm_cli(config, monkeypatch):
    cold, warm = str(uuid.uuid4()), str(uuid.uuid4())
    local_copies.after_turn(None, cold, ECHO, None)
    assert local_copies.forget_local_copies(cold) == 0  # nothing was there
    path = _transcript(config, cold)
    local_copies.after_turn(None, cold, ECHO, None)
    assert path.exists(), "encryption off: the local transcript is the CLI's business"

    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", generate_key())
    local_copies.after_turn(None, cold, ECHO, None)
    assert not path.exists()

    held = _transcript(config, warm)
    local_copies.after_turn(None, warm, ECHO, FakePool(warm))
    assert held.exists() and warm in local_copies.waiting()
    local_copies.client_closed(warm)
    assert not held.exists() and warm not in local_copies.waiting()

    checkpointing = AgentProfile(name="files", system_prompt="x", file_checkpointing=True)
    kept = _transcript(config, cold)
    local_copies.after_turn(None, cold, checkpointing, None)
    assert kept.exists(), "file-checkpointing sessions resume from their local transcript"
