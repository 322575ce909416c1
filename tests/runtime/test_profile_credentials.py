"""AgentProfile validation and options; credentials resolution and secrecy."""

from __future__ import annotations

import logging

import pytest
from claude_agent_sdk import ClaudeAgentOptions
from prefect_claude_sessions.tasks import credentials as creds_mod
from prefect_claude_sessions.tasks.credentials import (
    ClaudeCredentials,
    SecretEnv,
    resolve_credentials,
)
from prefect_claude_sessions.tasks.errors import MissingCredentials, PermanentAgentError
from prefect_claude_sessions.tasks.profile import PERMISSION_MODES, AgentProfile
from pydantic import SecretStr, ValidationError

MARKER = "sk-ant-api03-LEAKMARKER0123456789"


def test_profile_to_options() -> None:
    p = AgentProfile(
        name="billing-bot",
        system_prompt="You are the billing specialist.",
        model="claude-sonnet-5",
        allowed_tools=["Read"],
        max_turns=3,
        max_budget_usd=0.5,
        cwd="/srv/x",
    )
    o = p.to_options(resume="abc", env={"A": "1"})
    assert isinstance(o, ClaudeAgentOptions)
    assert (o.system_prompt, o.model, o.allowed_tools, o.permission_mode) == (
        "You are the billing specialist.",
        "claude-sonnet-5",
        ["Read"],
        "acceptEdits",
    )
    assert (o.max_turns, o.max_budget_usd, o.cwd, o.resume, o.env) == (
        3,
        0.5,
        "/srv/x",
        "abc",
        {"A": "1"},
    )
    assert o.enable_file_checkpointing is False and o.extra_args == {}
    fc = AgentProfile(name="x", system_prompt="s", file_checkpointing=True).to_options()
    assert fc.enable_file_checkpointing and fc.extra_args == {"replay-user-messages": None}
    assert AgentProfile.model_validate_json(p.model_dump_json()) == p
    with pytest.raises(TypeError, match="unknown ClaudeAgentOptions"):
        p.to_options(not_an_option=1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "slug"),
        ("name", "Has Spaces", "slug"),
        ("name", "-leading", "slug"),
        ("system_prompt", "   ", "system_prompt must not be empty"),
        ("permission_mode", "yolo", "permission_mode must be one of"),
        ("max_turns", 0, "greater than or equal to 1"),
        ("max_budget_usd", 0, "greater than 0"),
        ("unknown_field", 1, "Extra inputs are not permitted"),
    ],
)
def test_profile_validation_is_clear(field, value, message) -> None:
    data = {"name": "ok", "system_prompt": "fine", field: value}
    with pytest.raises(ValidationError, match=message):
        AgentProfile(**data)


def test_every_sdk_permission_mode_is_accepted() -> None:
    assert "acceptEdits" in PERMISSION_MODES and "bypassPermissions" in PERMISSION_MODES
    for mode in PERMISSION_MODES:
        assert (
            AgentProfile(name="m", system_prompt="s", permission_mode=mode)
            .to_options()
            .permission_mode
            == mode
        )


def test_credentials_from_the_environment() -> None:
    env = resolve_credentials(
        environ={"ANTHROPIC_API_KEY": MARKER, "ANTHROPIC_BASE_URL": "http://gw"}
    )
    assert dict(env) == {"ANTHROPIC_API_KEY": MARKER, "ANTHROPIC_BASE_URL": "http://gw"}
    token = resolve_credentials(environ={"ANTHROPIC_AUTH_TOKEN": "tok-123456"})
    assert dict(token) == {"ANTHROPIC_AUTH_TOKEN": "tok-123456"}
    assert dict(resolve_credentials(environ={"CLAUDE_CODE_USE_BEDROCK": "1"})) == {
        "CLAUDE_CODE_USE_BEDROCK": "1"
    }


def test_missing_credentials_name_the_env_vars_and_the_block() -> None:
    with pytest.raises(MissingCredentials) as info:
        resolve_credentials(environ={"ANTHROPIC_BASE_URL": "http://only-url"})
    msg = str(info.value)
    assert (
        "ANTHROPIC_API_KEY" in msg and "ANTHROPIC_AUTH_TOKEN" in msg and "Claude Credentials" in msg
    )
    assert isinstance(info.value, PermanentAgentError) and info.value.kind == "missing_credentials"


def test_block_supplies_credentials(monkeypatch) -> None:
    block = ClaudeCredentials(api_key=SecretStr(MARKER), base_url="http://gateway")
    assert ClaudeCredentials._block_type_name == "Claude Credentials"
    monkeypatch.setattr(ClaudeCredentials, "load", classmethod(lambda cls, name, **kw: block))
    env = resolve_credentials("claude")
    assert dict(env) == {"ANTHROPIC_API_KEY": MARKER, "ANTHROPIC_BASE_URL": "http://gateway"}
    by_env = resolve_credentials(environ={creds_mod.BLOCK_ENV_VAR: "claude"})
    assert by_env["ANTHROPIC_API_KEY"] == MARKER
    assert MARKER not in repr(block) and MARKER not in str(block)


def test_unknown_block_is_missing_credentials(monkeypatch) -> None:
    def fail(cls, name, **kw):
        raise ValueError(f"Unable to find block document named {name}")

    monkeypatch.setattr(ClaudeCredentials, "load", classmethod(fail))
    with pytest.raises(MissingCredentials, match="no Claude Credentials block named 'nope'"):
        resolve_credentials("nope")


def test_the_key_never_shows_in_options_errors_or_logs(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    env = resolve_credentials(environ={"ANTHROPIC_API_KEY": MARKER})
    assert isinstance(env, SecretEnv) and env["ANTHROPIC_API_KEY"] == MARKER
    options = AgentProfile(name="a", system_prompt="s").to_options(env=env)
    logging.getLogger("test").info("options: %s / %r / %s", options, options, env)
    err = PermanentAgentError(f"CLI said: bad key {MARKER}")
    for text in (
        repr(options),
        str(options),
        repr(env),
        str(env),
        str(err),
        repr(err),
        caplog.text,
    ):
        assert MARKER not in text
    assert "***" in repr(env)
