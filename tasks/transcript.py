"""Pure functions over Claude Code transcript entries (the JSON lines the CLI writes).

The transcript format is the CLI's, not ours, so everything that leans on it lives here, in one
place, guarded by tests that run the real CLI: when Claude Code changes its format, these tests
are the ones that fail.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

Entry = dict[str, Any]

_CONVERSATION_TYPES = frozenset({"user", "assistant"})
_FINAL_STOP_REASONS = frozenset({"end_turn", "stop_sequence", "max_tokens", "refusal"})


def message_text(entry: Entry) -> str:
    """The plain text of a user or assistant entry (text blocks joined; tool blocks skipped)."""
    content = (entry.get("message") or {}).get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block.get("text", "")
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and not block.get("text", "").lstrip().startswith("<system-reminder>")
        )
    return ""


def is_prompt(entry: Entry) -> bool:
    """True for a user entry that carries a prompt (not a tool result, not a meta reminder)."""
    if entry.get("type") != "user" or entry.get("isMeta") or entry.get("isSidechain"):
        return False
    content = (entry.get("message") or {}).get("content")
    if isinstance(content, list):
        return not any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        )
    return isinstance(content, str)


def find_index(entries: Sequence[Entry], uuid: str) -> int | None:
    """Position of the entry with this uuid, or None."""
    for index, entry in enumerate(entries):
        if entry.get("uuid") == uuid:
            return index
    return None


def last_assistant_uuid(entries: Sequence[Entry]) -> str | None:
    """The uuid of the newest main-chain assistant entry: the conversation's current point."""
    for entry in reversed(entries):
        if entry.get("type") == "assistant" and not entry.get("isSidechain") and entry.get("uuid"):
            return str(entry["uuid"])
    return None


def is_api_error(entry: Entry) -> bool:
    """True for the assistant entry the CLI writes when the API failed (``API Error: 529 ...``,
    model ``<synthetic>``): it stands in for an answer that never came."""
    message = entry.get("message") or {}
    return bool(entry.get("isApiErrorMessage")) or message.get("model") == "<synthetic>"


def completed_answer(entries: Sequence[Entry], prompt_uuid: str) -> tuple[str, str] | None:
    """The final answer the model gave to the prompt with ``prompt_uuid``, if the turn finished.

    Returns ``(text, assistant_uuid)``, or None when the prompt is absent or its turn was cut off.
    Used after a crash: a turn whose answer is already in the store is recovered from it instead
    of sending the prompt to the model a second time.
    """
    start = find_index(entries, prompt_uuid)
    if start is None:
        return None
    final: Entry | None = None
    for entry in entries[start + 1 :]:
        if entry.get("isSidechain"):
            continue
        if is_prompt(entry):
            break  # the next turn began
        if entry.get("type") == "assistant":
            final = entry
    if final is None or is_api_error(final):
        return None  # an error the CLI wrote in the model's place is not an answer
    message = final.get("message") or {}
    if message.get("stop_reason") not in _FINAL_STOP_REASONS:
        return None
    message_id = message.get("id")
    parts = [
        message_text(entry)
        for entry in entries[start + 1 :]
        if entry.get("type") == "assistant" and (entry.get("message") or {}).get("id") == message_id
    ]
    return "".join(parts), str(final["uuid"])


def first_prompt_after(entries: Sequence[Entry], uuid: str) -> str | None:
    """The uuid of the first prompt after the entry ``uuid``: the file-rewind point for a checkpoint."""
    start = find_index(entries, uuid)
    if start is None:
        return None
    for entry in entries[start + 1 :]:
        if is_prompt(entry):
            return str(entry["uuid"])
    return None


def copy_for_session(
    entries: Iterable[Entry],
    new_session_id: str,
    *,
    up_to_uuid: str | None = None,
    system_prompt: str | None = None,
) -> list[Entry]:
    """A deep copy of a transcript under another session id, for handoff and rewind branches.

    ``up_to_uuid`` cuts the copy after that entry (a rewind to a checkpoint). ``system_prompt``
    replaces the frozen system prompt the CLI keeps in ``prompt_snapshot`` attachments: on resume
    the CLI sends the snapshot's prompt, not the one in the options, so this is how a specialist's
    prompt reaches the model while the whole conversation is kept (seen with CLI 2.1.332).
    """
    copied: list[Entry] = []
    for original in entries:
        entry = copy.deepcopy(original)
        if "sessionId" in entry:
            entry["sessionId"] = new_session_id
        attachment = entry.get("attachment")
        if (
            system_prompt is not None
            and entry.get("type") == "attachment"
            and isinstance(attachment, dict)
            and attachment.get("type") == "prompt_snapshot"
        ):
            attachment["systemPrompt"] = [system_prompt]
        copied.append(entry)
        if up_to_uuid is not None and entry.get("uuid") == up_to_uuid:
            break
    else:
        if up_to_uuid is not None:
            raise ValueError(f"transcript entry {up_to_uuid} is not in the session's transcript")
    return copied


def has_prompt_snapshot(entries: Iterable[Entry]) -> bool:
    """Whether the transcript carries the ``prompt_snapshot`` the transcript handoff rewrites."""
    return any(
        entry.get("type") == "attachment"
        and isinstance(entry.get("attachment"), dict)
        and entry["attachment"].get("type") == "prompt_snapshot"
        for entry in entries
    )


def conversation_brief(entries: Iterable[Entry], *, max_chars: int = 12_000) -> str:
    """A plain-text account of the conversation so far: the handoff fallback when the transcript
    cannot be carried over natively (e.g. a CLI that no longer keeps a ``prompt_snapshot``)."""
    lines: list[str] = []
    for entry in entries:
        if entry.get("isSidechain") or entry.get("type") not in _CONVERSATION_TYPES:
            continue
        if entry.get("type") == "user" and not is_prompt(entry):
            continue
        text = message_text(entry).strip()
        if text:
            speaker = "User" if entry["type"] == "user" else "Assistant"
            lines.append(f"{speaker}: {text}")
    brief = "\n".join(lines)
    if len(brief) > max_chars:
        brief = "[... earlier conversation omitted ...]\n" + brief[-max_chars:]
    return brief
