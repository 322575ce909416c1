"""Input checks made at the edge, before anything is stored or sent (no CLI needed)."""

from __future__ import annotations

import pytest
from prefect_claude_sessions.storage import InvalidSessionId
from prefect_claude_sessions.tasks import AgentProfile
from prefect_claude_sessions.tasks.errors import InvalidInput, classify_known, should_retry
from prefect_claude_sessions.tasks.validation import normalize_session_id, validate_prompt
from pydantic import ValidationError


@pytest.mark.parametrize(
    ("tools", "ok"),
    [
        (["Write", "Read", "Bash(git:*)", "mcp__github__create_issue"], True),
        (["NoSuchTool"], False),
        (["write"], False),
        ([""], False),
    ],
)
def test_tool_names_are_checked(tools, ok) -> None:
    if ok:
        assert AgentProfile(name="a", system_prompt="s", allowed_tools=tools).allowed_tools == tools
        return
    with pytest.raises(ValidationError, match="allowed_tools"):
        AgentProfile(name="a", system_prompt="s", allowed_tools=tools)
    with pytest.raises(ValidationError, match="disallowed_tools"):
        AgentProfile(name="a", system_prompt="s", disallowed_tools=tools)


def test_an_oversized_or_binary_system_prompt_is_refused() -> None:
    with pytest.raises(ValidationError, match="system_prompt is 1000000 bytes"):
        AgentProfile(name="a", system_prompt="x" * 1_000_000)
    with pytest.raises(ValidationError, match="NUL"):
        AgentProfile(name="a", system_prompt="a\x00b")


def test_prompts_name_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match="NUL character at position 1"):
        validate_prompt("a\x00")
    with pytest.raises(InvalidInput, match="lone surrogate"):
        validate_prompt("a\ud800b")
    with pytest.raises(InvalidInput, match="limit is 10"):
        validate_prompt("x" * 11, max_chars=10)
    assert validate_prompt("héllo ✓") == "héllo ✓"


def test_session_ids_are_normalised() -> None:
    sid = "0b6f8f5e-3c1d-4c1e-9c55-2a9f0f3f7a10"
    assert normalize_session_id(sid.upper()) == sid
    assert normalize_session_id(f"  {sid} ") == sid
    with pytest.raises(InvalidSessionId):
        normalize_session_id("../../etc/passwd")


def test_a_bug_in_our_code_is_not_classified_as_bad_input() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        assert classify_known(exc) is None
        assert not should_retry(exc)
    try:
        int("not a number")
    except ValueError as exc:
        assert classify_known(exc) is None  # raised here, not by the SDK
    assert classify_known(ConnectionRefusedError("refused")).transient


def test_profiles_keep_their_idempotency_fingerprint_across_upgrades() -> None:
    """Fields added after 0.1 stay out of the fingerprint while they hold their default, so a
    re-run after an upgrade finds the turns it stored before (same keys, same session ids)."""
    from prefect_claude_sessions.tasks.service import agent_fingerprint

    profile = AgentProfile(name="triage", system_prompt="You triage.")
    assert sorted(agent_fingerprint(profile)) == [  # the 0.1 profile, without cwd
        "allowed_tools",
        "disallowed_tools",
        "file_checkpointing",
        "max_budget_usd",
        "max_turns",
        "model",
        "name",
        "permission_mode",
        "system_prompt",
    ]
    guarded = AgentProfile(
        name="triage", system_prompt="You triage.", session_budget_usd=2.0, approval_tools=["Write"]
    )
    assert agent_fingerprint(guarded)["session_budget_usd"] == 2.0
    assert agent_fingerprint(guarded)["approval_tools"] == ["Write"]
