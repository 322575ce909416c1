"""The runtime reads `ClaudeSessionsSettings` at use time: a variable changed after import (or
after the long-lived pool was created) applies to the next turn, and a bad one fails the turn
with `InvalidInput` naming the variable, before any CLI starts."""

from __future__ import annotations

import pytest
from prefect_claude_sessions.storage import InvalidSetting
from prefect_claude_sessions.storage.settings import env_name
from prefect_claude_sessions.tasks import ClaudeSessionsSettings, get_settings
from prefect_claude_sessions.tasks.client_pool import ClientPool
from prefect_claude_sessions.tasks.credentials import resolve_credentials
from prefect_claude_sessions.tasks.errors import (
    InvalidInput,
    MissingCredentials,
    TransientAgentError,
    agent_settings,
    classify_error,
    should_retry,
)
from prefect_claude_sessions.tasks.redaction import active_redactors, redact_payload
from prefect_claude_sessions.tasks.runtime import first_message_timeout_s, run_turn


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for field in ClaudeSessionsSettings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)


def test_the_tasks_package_reexports_the_one_settings_object() -> None:
    from prefect_claude_sessions.storage import settings as storage_settings

    assert ClaudeSessionsSettings is storage_settings.ClaudeSessionsSettings
    assert get_settings is storage_settings.get_settings


def test_agent_settings_turns_a_bad_variable_into_invalid_input(monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "soon")
    with pytest.raises(InvalidInput) as caught:
        agent_settings()
    assert str(caught.value).startswith(
        "CLAUDE_SESSIONS_TURN_TIMEOUT_S must be a number of seconds >= 0"
    )
    assert caught.value.kind == "bad_input"
    assert not should_retry(caught.value)
    # the store's own error, where it surfaces in a task, classifies the same way
    with pytest.raises(InvalidSetting) as raw:
        get_settings()
    agent = classify_error(raw.value)
    assert isinstance(agent, InvalidInput) and not agent.transient
    assert "CLAUDE_SESSIONS_TURN_TIMEOUT_S" in str(agent)


async def test_a_bad_turn_timeout_fails_the_turn_before_the_cli_starts(
    monkeypatch, make_options, standin
) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "-3")
    before = len(standin.requests())
    with pytest.raises(InvalidInput, match=r"CLAUDE_SESSIONS_TURN_TIMEOUT_S must be .*'-3'"):
        await run_turn("hello", make_options())
    assert len(standin.requests()) == before  # nothing reached the model


@pytest.mark.cli
async def test_a_turn_timeout_set_after_import_applies_to_the_next_turn(
    monkeypatch, make_options
) -> None:
    """The stand-in answers in well under a second; a 0.001 s bound set now must cut the turn."""
    ok = await run_turn("quick one", make_options())
    assert ok.text
    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "0.001")
    with pytest.raises(TransientAgentError) as caught:
        await run_turn("quick two", make_options())
    assert caught.value.kind == "timeout"
    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", "0")  # 0 = no limit
    assert (await run_turn("quick three", make_options())).text


def test_first_message_timeout_follows_the_variable(monkeypatch) -> None:
    assert first_message_timeout_s() == 60.0
    monkeypatch.setenv("CLAUDE_SESSIONS_FIRST_MESSAGE_TIMEOUT_S", "4.5")
    assert first_message_timeout_s() == 4.5


def test_a_pool_reads_its_size_and_idle_timeout_at_use(monkeypatch) -> None:
    pool = ClientPool(name="settings-pool")
    try:
        assert (pool.max_size, pool.idle_timeout_s) == (4, 300.0)
        monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "2")
        monkeypatch.setenv("CLAUDE_SESSIONS_POOL_IDLE_S", "0.5")
        assert (pool.max_size, pool.idle_timeout_s) == (2, 0.5)
        monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "none")
        with pytest.raises(InvalidInput, match="CLAUDE_SESSIONS_POOL_SIZE must be an integer"):
            _ = pool.max_size
        explicit = ClientPool(max_size=3, idle_timeout_s=9, name="explicit")
        try:  # constructor values win over the settings (the bad variable is not read)
            assert (explicit.max_size, explicit.idle_timeout_s) == (3, 9.0)
        finally:
            explicit.close()
        with pytest.raises(InvalidInput, match="pool max_size must be >= 1"):
            ClientPool(max_size=0)
    finally:
        pool.close()


@pytest.mark.cli
async def test_a_smaller_pool_size_set_later_evicts_on_the_next_turn(
    monkeypatch, make_options
) -> None:
    """The long-lived pool was created with 4 slots; CLAUDE_SESSIONS_POOL_SIZE=1 set afterwards
    makes the next new session evict the idle one."""
    pool = ClientPool(name="shrinking-pool")
    try:
        first = await run_turn("session one", make_options(), pool=pool)
        assert first.session_id in pool
        monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "1")
        second = await run_turn("session two", make_options(), pool=pool)
        assert second.session_id in pool
        assert first.session_id not in pool
        assert pool.stats()["evictions"] == 1
    finally:
        pool.close()


def test_redactors_follow_the_variable_and_unknown_names_are_named(monkeypatch) -> None:
    payload = {"note": "write to ann@example.com"}
    assert redact_payload(payload) == payload
    monkeypatch.setenv("CLAUDE_SESSIONS_REDACT", "contacts")
    assert redact_payload(payload) == {"note": "write to [email]"}
    monkeypatch.setenv("CLAUDE_SESSIONS_REDACT", "contacts,gdpr")
    with pytest.raises(InvalidSetting) as caught:
        active_redactors()
    message = str(caught.value)
    assert message.startswith("CLAUDE_SESSIONS_REDACT must be comma-separated names of known")
    assert "'gdpr'" in message and "contacts" in message
    assert isinstance(caught.value, ValueError)  # as before: a ValueError


def test_the_credentials_block_variable_goes_through_the_settings(monkeypatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingCredentials):
        resolve_credentials(environ={})
    # a blank block name is "not set", as every other blank variable
    with pytest.raises(MissingCredentials):
        resolve_credentials(environ={"CLAUDE_SESSIONS_CREDENTIALS_BLOCK": "  "})
    # a bad unrelated setting is reported, not hidden behind "no credentials"
    with pytest.raises(InvalidSetting, match="CLAUDE_SESSIONS_POOL_SIZE"):
        resolve_credentials(environ={"CLAUDE_SESSIONS_POOL_SIZE": "x"})
    # ANTHROPIC_* are not ours: passed through untouched, no settings involved
    env = resolve_credentials(
        environ={"ANTHROPIC_API_KEY": "sk-ant-test-123456", "ANTHROPIC_BASE_URL": "http://h:1"}
    )
    assert dict(env) == {
        "ANTHROPIC_API_KEY": "sk-ant-test-123456",
        "ANTHROPIC_BASE_URL": "http://h:1",
    }
