"""The transcript helpers on hand-made entries shaped like the CLI's (fast, no CLI)."""

from __future__ import annotations

import pytest
from prefect_claude_sessions.tasks import transcript


def user(uuid: str, text: str, **extra) -> dict:
    return {
        "type": "user",
        "uuid": uuid,
        "sessionId": "s",
        "message": {"role": "user", "content": text},
        **extra,
    }


def assistant(uuid: str, text: str, *, stop: str = "end_turn", msg_id: str = "m1", **extra) -> dict:
    content = (
        [{"type": "text", "text": text}]
        if text
        else [{"type": "tool_use", "id": "t", "name": "Write", "input": {}}]
    )
    return {
        "type": "assistant",
        "uuid": uuid,
        "sessionId": "s",
        "message": {"id": msg_id, "role": "assistant", "content": content, "stop_reason": stop},
        **extra,
    }


def tool_result(uuid: str) -> dict:
    return {
        "type": "user",
        "uuid": uuid,
        "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
    }


SNAPSHOT = {
    "type": "attachment",
    "uuid": "snap",
    "sessionId": "s",
    "attachment": {"type": "prompt_snapshot", "systemPrompt": ["old"]},
}


def test_completed_answer_follows_tool_round_trips_and_ignores_unfinished_or_error_turns():
    entries = [
        user("p1", "write it"),
        assistant("a1", "", stop="tool_use", msg_id="m1"),
        tool_result("r1"),
        assistant("a2", "Wrote it.", msg_id="m2"),
        user("p2", "and now?"),
        assistant("a3", "", stop="tool_use", msg_id="m3"),
    ]
    assert transcript.completed_answer(entries, "p1") == ("Wrote it.", "a2")
    assert transcript.completed_answer(entries, "p2") is None  # cut off mid-turn
    assert transcript.completed_answer(entries, "absent") is None
    failed = [
        user("p3", "hi"),
        assistant("a4", "API Error: 529 Overloaded", isApiErrorMessage=True),
    ]
    assert transcript.completed_answer(failed, "p3") is None


def test_copy_for_session_rewrites_ids_and_the_frozen_system_prompt_and_can_cut():
    entries = [
        SNAPSHOT,
        user("p1", "one"),
        assistant("a1", "first"),
        user("p2", "two"),
        assistant("a2", "second", msg_id="m2"),
    ]
    copied = transcript.copy_for_session(entries, "new", system_prompt="You are billing.")
    assert {e["sessionId"] for e in copied} == {"new"}
    assert copied[0]["attachment"]["systemPrompt"] == ["You are billing."]
    assert entries[0]["attachment"]["systemPrompt"] == ["old"]  # the source is untouched
    cut = transcript.copy_for_session(entries, "branch", up_to_uuid="a1")
    assert [e["uuid"] for e in cut] == ["snap", "p1", "a1"]
    with pytest.raises(ValueError, match="not in the session's transcript"):
        transcript.copy_for_session(entries, "x", up_to_uuid="missing")


def test_brief_and_rewind_point_skip_reminders_and_tool_results():
    reminder = {"type": "text", "text": "<system-reminder>ignore</system-reminder>"}
    first = user("p1", "")
    first["message"]["content"] = [reminder, {"type": "text", "text": "Refund invoice 7"}]
    entries = [first, assistant("a1", "Done."), tool_result("r1"), user("p2", "Thanks")]
    assert (
        transcript.conversation_brief(entries)
        == "User: Refund invoice 7\nAssistant: Done.\nUser: Thanks"
    )
    assert transcript.first_prompt_after(entries, "a1") == "p2"
    assert transcript.first_prompt_after(entries, "p2") is None
    assert transcript.last_assistant_uuid(entries) == "a1"
    assert transcript.has_prompt_snapshot([SNAPSHOT]) and not transcript.has_prompt_snapshot(
        entries
    )
