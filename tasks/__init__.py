"""Durable Claude Agent SDK sessions as Prefect tasks.

```python
from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session, fork_session, handoff_session
turn = init_session("Customer: database down!", agent=AgentProfile(name="triage", system_prompt="..."))
```

Names are imported on first use, so light submodules (the stand-in model, the runtime) do not
pay for importing Prefect and the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AgentProfile": ".profile",
    "BudgetExceeded": ".budget",
    "ApprovalForm": ".guardrails",
    "HumanAnswer": ".guardrails",
    "HumanTimeout": ".guardrails",
    "ask_human": ".guardrails",
    "PendingTool": ".results",
    "ToolReviewForm": ".guardrails",
    "review_pending_tool": ".guardrails",
    "ClaudeSessionsSettings": "prefect_claude_sessions.storage.settings",
    "InvalidSetting": "prefect_claude_sessions.storage.errors",
    "Checkpoint": ".results",
    "Decision": ".results",
    "SessionTurn": ".results",
    "SessionPurged": "prefect_claude_sessions.storage.errors",
    "checkpoint_session": ".session_tasks",
    "fork_session": ".session_tasks",
    "get_service": ".session_tasks",
    "get_settings": "prefect_claude_sessions.storage.settings",
    "handoff_session": ".session_tasks",
    "init_session": ".session_tasks",
    "record_decision": ".session_tasks",
    "resume_session": ".session_tasks",
    "rewind_session": ".session_tasks",
}

__all__ = [
    "AgentProfile",
    "ApprovalForm",
    "BudgetExceeded",
    "Checkpoint",
    "ClaudeSessionsSettings",
    "Decision",
    "HumanAnswer",
    "HumanTimeout",
    "InvalidSetting",
    "PendingTool",
    "SessionPurged",
    "SessionTurn",
    "ToolReviewForm",
    "ask_human",
    "checkpoint_session",
    "fork_session",
    "get_service",
    "get_settings",
    "handoff_session",
    "init_session",
    "record_decision",
    "resume_session",
    "review_pending_tool",
    "rewind_session",
]

if TYPE_CHECKING:
    from prefect_claude_sessions.storage.errors import InvalidSetting, SessionPurged
    from prefect_claude_sessions.storage.settings import ClaudeSessionsSettings, get_settings

    from .budget import BudgetExceeded
    from .guardrails import (
        ApprovalForm,
        HumanAnswer,
        HumanTimeout,
        ToolReviewForm,
        ask_human,
        review_pending_tool,
    )
    from .profile import AgentProfile
    from .results import Checkpoint, Decision, PendingTool, SessionTurn
    from .session_tasks import (
        checkpoint_session,
        fork_session,
        get_service,
        handoff_session,
        init_session,
        record_decision,
        resume_session,
        rewind_session,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tasks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
