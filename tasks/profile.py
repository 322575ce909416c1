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
    permission_mode: str = "acceptEdits"
    max_turns: int | None = Field(default=None, ge=1)
    max_budget_usd: float | None = Field(default=None, gt=0)
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
        if self.file_checkpointing:
            values["enable_file_checkpointing"] = True
            values["extra_args"] = {"replay-user-messages": None}
        values.update(overrides)
        return ClaudeAgentOptions(**values)
