"""`AgentProfile`: who the agent is (name, system prompt, model, tools, limits), turned into
the SDK's ``ClaudeAgentOptions``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, get_args

from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk.types import PermissionMode
from pydantic import BaseModel, ConfigDict, Field, field_validator

PERMISSION_MODES: tuple[str, ...] = get_args(PermissionMode)
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
_OPTION_FIELDS = {f.name for f in dataclasses.fields(ClaudeAgentOptions)}

#: Claude Code's built-in tools (documented, plus those the bundled CLI 2.1.x lists to the model).
#: A rule may narrow one (``Bash(git:*)``); MCP tools are ``mcp__<server>__<tool>``.
KNOWN_TOOLS = frozenset(
    {
        "Agent", "AskUserQuestion", "Bash", "BashOutput", "DeferredToolPlaceholder", "Edit",
        "EnterPlanMode", "ExitPlanMode", "Glob", "Grep", "KillBash", "KillShell", "LS",
        "ListAgents", "ListMcpResourcesTool", "MultiEdit", "NotebookEdit", "NotebookRead",
        "Read", "ReadMcpResourceTool", "ReportFindings", "ScheduleWakeup", "Skill",
        "SlashCommand", "Task", "TodoRead", "TodoWrite", "ToolSearch", "WebFetch", "WebSearch",
        "Workflow", "Write",
    }
)  # fmt: skip
_TOOL_RULE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*)(?:\((?P<rule>.*)\))?$", re.S)
#: The CLI receives the system prompt as one command-line argument; Linux caps one at 128 KiB.
MAX_SYSTEM_PROMPT_BYTES = 100_000


def check_tool(value: object, field: str) -> str:
    """A tool name Claude Code knows, optionally with a rule, or an MCP tool."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} entries must be tool names, got {value!r}")
    if value.startswith("mcp__") and len(value) > 5:
        return value
    match = _TOOL_RULE.match(value)
    if match is None or match["name"] not in KNOWN_TOOLS:
        raise ValueError(
            f"{field}: unknown tool {value!r}; expected one of {sorted(KNOWN_TOOLS)}, "
            "a rule such as 'Bash(git:*)', or an MCP tool 'mcp__<server>__<tool>'"
        )
    return value


class AgentProfile(BaseModel):
    """An agent's identity and limits. JSON-serialisable; stored with each session.

    >>> AgentProfile(name="triage", system_prompt="You triage support e-mail.").to_options(
    ...     cwd="/srv/work", env={"ANTHROPIC_API_KEY": "..."})
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="a slug: lower-case letters, digits, '-' and '_'")
    system_prompt: str
    model: str | None = None
    allowed_tools: list[str] = Field(default_factory=list)
    disallowed_tools: list[str] = Field(default_factory=list)
    approval_tools: list[str] = Field(
        default_factory=list,
        description="tools that need a person's approval: a turn that calls one stops before "
        "it runs (SessionTurn.pending_tool); continue with review_pending_tool",
    )
    permission_mode: str = "acceptEdits"
    max_turns: int | None = Field(default=None, ge=1)
    max_budget_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    session_budget_usd: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="the most this session and all its descendants may spend (tasks.budget)",
    )
    cwd: str | None = None
    file_checkpointing: bool = False

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not isinstance(v, str) or not _SLUG.match(v):
            raise ValueError(
                f"name must be a non-empty slug (lower-case letters, digits, '-' or '_', "
                f"at most 64 characters, starting and ending with a letter or digit), got {v!r}"
            )
        return v

    @field_validator("system_prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("system_prompt must not be empty")
        if "\x00" in v:
            raise ValueError("system_prompt contains a NUL character")
        try:
            size = len(v.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"system_prompt has a lone surrogate at position {exc.start}"
            ) from None
        if size > MAX_SYSTEM_PROMPT_BYTES:
            raise ValueError(
                f"system_prompt is {size} bytes; the CLI takes at most {MAX_SYSTEM_PROMPT_BYTES} "
                "(put long reference material in the first prompt or a file instead)"
            )
        return v

    @field_validator("allowed_tools", "disallowed_tools")
    @classmethod
    def _tools(cls, v: list[str], info: Any) -> list[str]:
        return [check_tool(tool, info.field_name) for tool in v]

    @field_validator("approval_tools")
    @classmethod
    def _approval_tools(cls, v: list[str]) -> list[str]:
        for tool in v:
            check_tool(tool, "approval_tools")
            if "(" in tool:
                # The hook sees a call's tool name; a rule's pattern would be a second matcher.
                raise ValueError(
                    f"approval_tools: {tool!r} is a rule; name the whole tool (e.g. 'Bash')"
                )
        return list(dict.fromkeys(v))

    @field_validator("cwd")
    @classmethod
    def _cwd_text(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\x00" in v):
            raise ValueError(f"cwd must be a directory path, got {v!r}")
        return v

    @field_validator("permission_mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in PERMISSION_MODES:
            raise ValueError(f"permission_mode must be one of {list(PERMISSION_MODES)}, got {v!r}")
        return v

    @field_validator("cwd", mode="before")
    @classmethod
    def _cwd(cls, v: Any) -> Any:
        return str(v) if isinstance(v, Path) else v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("model must be a model name or None (the CLI's default)")
        return v

    def to_options(self, **overrides: Any) -> ClaudeAgentOptions:
        """``ClaudeAgentOptions`` for this profile; ``overrides`` are set on top (any
        ``ClaudeAgentOptions`` field, e.g. ``env``, ``resume``, ``session_id``, ``session_store``).

        With ``file_checkpointing`` the options enable SDK file checkpointing and replay user
        messages (their uuids are the rewind points). Credentials are not part of a profile:
        pass ``env=resolve_credentials()``.
        """
        unknown = set(overrides) - _OPTION_FIELDS
        if unknown:
            raise TypeError(f"unknown ClaudeAgentOptions field(s): {sorted(unknown)}")
        values: dict[str, Any] = {
            "system_prompt": self.system_prompt,
            "model": self.model,
            "allowed_tools": list(self.allowed_tools),
            "disallowed_tools": list(self.disallowed_tools),
            "permission_mode": self.permission_mode,
            "max_turns": self.max_turns,
            "max_budget_usd": self.max_budget_usd,
            "cwd": self.cwd,
        }
        if self.approval_tools:
            from .tool_approval import defer_hooks

            values["hooks"] = defer_hooks(self.approval_tools)
        if self.file_checkpointing:
            values["enable_file_checkpointing"] = True
            values["extra_args"] = {"replay-user-messages": None}
        values.update(overrides)
        return ClaudeAgentOptions(**values)
