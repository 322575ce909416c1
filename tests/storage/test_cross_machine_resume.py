"""Real proof of portability: the real SDK + bundled CLI write through SQLModelSessionStore, and a
second "machine" (an empty CLAUDE_CONFIG_DIR) resumes the session with the full earlier turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, project_key_for_directory, query
from prefect_claude_sessions.storage import SQLModelSessionStore

from tests.storage.messages_server import MessagesServer

pytestmark = pytest.mark.cli

SECRET = "PELICAN-4242"


def cli_env(server: MessagesServer, config_dir: Path) -> dict[str, str]:
    config_dir.mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": server.base_url,
        "ANTHROPIC_API_KEY": "test-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CONFIG_DIR": str(config_dir),
    }


async def run_turn(prompt: str, options: ClaudeAgentOptions) -> ResultMessage:
    result = None
    async for message in query(prompt=prompt, options=options):
        if isinstance(message, ResultMessage):
            result = message
    assert result is not None, "the CLI produced no result"
    assert not result.is_error, result.result
    return result


async def test_a_second_machine_resumes_from_the_store(database_url, tmp_path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    with MessagesServer() as server:
        first = await run_turn(
            f"Remember the code word {SECRET}.",
            ClaudeAgentOptions(
                cwd=str(workdir),
                env=cli_env(server, machine_a),
                session_store=SQLModelSessionStore(database_url),
                max_turns=1,
                permission_mode="acceptEdits",
            ),
        )
        sid = first.session_id
        store = SQLModelSessionStore(database_url)
        project_key = project_key_for_directory(str(workdir))
        assert store.project_key_of(sid) == project_key
        stored = store.entries(sid)
        assert any(SECRET in json.dumps(e) for e in stored if e.get("type") == "user")
        assert any(e.get("type") == "assistant" for e in stored)
        count_after_first, bytes_after_first = store.transcript_stats(sid)
        assert count_after_first == len(stored) and bytes_after_first > 1000

        assert not list(machine_b.glob("**/*.jsonl"))  # the second machine has nothing local
        second = await run_turn(
            "What was the code word?",
            ClaudeAgentOptions(
                cwd=str(workdir),
                resume=sid,
                env=cli_env(server, machine_b),
                session_store=SQLModelSessionStore(database_url),
                max_turns=1,
                permission_mode="acceptEdits",
            ),
        )
        assert second.session_id == sid

        resumed_requests = server.requests_containing("What was the code word?")
        assert resumed_requests, "the resumed turn never reached the model"
        sent = json.dumps(resumed_requests[-1]["messages"])
        assert SECRET in sent  # the model received the earlier turn...
        assert "reply-" in sent  # ...including its own earlier answer

    after = store.entries(sid)
    assert after[: len(stored)] == stored  # the resume appended, nothing was rewritten
    texts = json.dumps(after)
    assert SECRET in texts and "What was the code word?" in texts
    assert store.transcript_stats(sid)[0] == len(after) > count_after_first
