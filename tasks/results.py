"""The results the session tasks return: small, JSON-serialisable records that carry session ids.

Each task takes the previous task's result as input, so the Prefect run graph draws the lineage
and a result persisted by Prefect (JSON serializer) is enough to continue a flow after a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Operation = Literal["init", "resume", "fork", "handoff", "rewind", "compaction"]


class PendingTool(BaseModel):
    """A tool call that waits for a person's approval: the turn stopped before it ran."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="The tool_use id the model gave the call.")
    name: str = Field(description="The tool's name, e.g. Write or Bash.")
    input: dict[str, Any] = Field(default_factory=dict, description="The call's arguments.")


class SessionTurn(BaseModel):
    """One prompt sent to a session and the model's answer."""

    model_config = ConfigDict(frozen=True)

    session_id: str = Field(
        description="The session this turn belongs to (new for init/fork/handoff)."
    )
    parent_id: str | None = Field(None, description="The session this one was born from, if any.")
    operation: Operation
    agent: str = Field(description="Name of the agent profile that answered.")
    text: str = Field(description="The model's final answer.")
    cost_usd: float = 0.0
    usage: dict[str, Any] = Field(default_factory=dict)
    duration_ms: int = 0
    num_turns: int = 0
    turn_key: str = Field(
        description="Idempotency key of this turn: the same key is never sent twice."
    )
    prompt_uuid: str | None = Field(None, description="Transcript uuid of this turn's prompt.")
    assistant_uuid: str | None = Field(
        None, description="Transcript uuid of the answer: the conversation point after this turn."
    )
    replayed: bool = Field(
        False, description="True when the answer came from the store, not from the model."
    )
    pending_tool: PendingTool | None = Field(
        None,
        description="A call of an approval tool this turn stopped before; continue the session "
        "with review_pending_tool.",
    )


class Checkpoint(BaseModel):
    """A named point in a session's conversation to branch or roll back to."""

    model_config = ConfigDict(frozen=True)

    id: str
    session_id: str
    label: str
    transcript_uuid: str
    user_message_uuid: str | None = None
    created_at: datetime


class Decision(BaseModel):
    """A decision recorded beside a session (the tutorial's decisions log, made durable)."""

    model_config = ConfigDict(frozen=True)

    id: str
    session_id: str
    key: str
    payload: dict[str, Any]
    flow_run_id: str | None = None
    created_at: datetime
    created: bool = Field(
        True, description="False when an identical earlier record was returned instead."
    )
