"""Tools that need a person's approval: the PreToolUse hooks that stop a turn before such a tool
runs, and the hook that carries a person's decision when the session continues.

A profile's ``approval_tools`` become one PreToolUse hook (`defer_hooks`) that answers
``permissionDecision: "defer"`` for those tools: the CLI ends the turn cleanly, nothing runs,
and the result carries the call (``ResultMessage.deferred_tool_use``), recorded on the turn as
``pending_tool``. The hook object is shared by every profile with the same tools, so a pooled
CLI keeps its options fingerprint from turn to turn.

`review_hooks` decides one deferred call: the CLI re-runs PreToolUse for it when the session is
resumed, and the hook answers ``allow`` (the tool runs) or ``deny`` with the reviewer's comment
as ``permissionDecisionReason`` (the model receives it as the tool's error). Every other call of
an approval tool in the same continuation is deferred again.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from claude_agent_sdk import HookMatcher
from claude_agent_sdk.types import HookCallback

__all__ = ["defer_hooks", "denial_reason", "review_hooks"]


def _output(decision: str, reason: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"hookEventName": "PreToolUse", "permissionDecision": decision}
    if reason is not None:
        out["permissionDecisionReason"] = reason
    return {"hookSpecificOutput": out}


@functools.lru_cache(maxsize=256)
def _defer_hook(tools: tuple[str, ...]) -> Any:
    """One hook object per set of tools (cached): the same profile gives the same options."""
    names = frozenset(tools)

    async def defer_for_approval(
        input_data: dict[str, Any], tool_use_id: str | None, context: Any
    ) -> dict[str, Any]:
        # Checked here, not with the matcher's pattern, so an MCP tool name is taken literally.
        if input_data.get("tool_name") in names:
            return _output("defer")
        return {}

    return defer_for_approval


def defer_hooks(tools: list[str]) -> dict[str, list[HookMatcher]]:
    """The ``hooks`` option that stops a turn before any of ``tools`` runs."""
    return {"PreToolUse": [HookMatcher(matcher=None, hooks=[_defer_hook(tuple(sorted(tools)))])]}


def denial_reason(tool_name: str, comment: str) -> str:
    """What the model is told when a person denies a tool call."""
    reason = f"A person reviewed this {tool_name} call and denied it; the tool did not run."
    return f"{reason} Their comment: {comment}" if comment.strip() else reason


def review_hooks(
    tools: list[str], tool_use_id: str, *, approved: bool, reason: str
) -> dict[str, list[HookMatcher]]:
    """The ``hooks`` option of the continuation that carries a person's decision on the call
    ``tool_use_id``; other approval-tool calls are deferred again."""
    defer = _defer_hook(tuple(sorted(tools)))

    async def decide(
        input_data: dict[str, Any], use_id: str | None, context: Any
    ) -> dict[str, Any]:
        if (use_id or input_data.get("tool_use_id")) == tool_use_id:
            return _output("allow") if approved else _output("deny", reason)
        return await defer(input_data, use_id, context)

    return {"PreToolUse": [HookMatcher(matcher=None, hooks=[cast(HookCallback, decide)])]}
