"""The notification templates of `claude-sessions notify`, rendered by Prefect's own template
renderer (the one its automation service uses) on the payloads the package emits: every
notice renders, says what happened, and leaves the run link out when there is no flow run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prefect.server.events.jinja_filters import all_filters
from prefect.server.utilities.user_templates import (
    register_user_template_filters,
    render_user_template_sync,
    validate_user_template,
)
from prefect_claude_sessions.flows.notifications import NOTICES, check_events

PAYLOADS = {
    "human.requested": {
        "question": "Send it?\n\nThe draft.",
        "headline": "Send it?",
        "form": "ApprovalForm",
        "fields": ["approved", "comment"],
        "timeout_s": 600,
    },
    "budget.warning": {"budget_usd": 1.0, "spent_usd": 0.8123, "share": 0.8123},
    "budget.exceeded": {"budget_usd": 0.5, "spent_usd": 0.5012, "share": 1.0024},
    "turn.failed": {"turn_key": "k1", "operation": "fork", "error_kind": "rate_limit",
                    "retryable": True},
}  # fmt: skip
EXPECTED = {
    "human.requested": ("waits for a person: Send it?", "Send it?\n\nThe draft."),
    "budget.warning": ("has spent 81 % of its budget", "spent $0.8123 of the $1.0 budget"),
    "budget.exceeded": ("budget is spent", "Their turns now fail with BudgetExceeded"),
    "turn.failed": ("turn failed: rate_limit", "A transient error: Prefect retries the task."),
}


def render(template: str, action: str, flow_run: object | None) -> str:
    register_user_template_filters(all_filters)
    event = SimpleNamespace(payload={"session_id": "s-1", "agent": "writer", **PAYLOADS[action]})
    return render_user_template_sync(template, {"event": event, "flow_run": flow_run})


@pytest.mark.parametrize("action", sorted(NOTICES))
def test_each_notice_renders_what_happened(action: str) -> None:
    notice = NOTICES[action]
    validate_user_template(notice.subject)
    validate_user_template(notice.body)
    subject_part, body_part = EXPECTED[action]
    assert subject_part in render(notice.subject, action, None)
    body = render(notice.body, action, None)
    assert body_part in body and "writer" in body and "s-1" in body
    assert "flow run" not in body.lower().replace("flow runs", "")  # no run: no link
    assert "None" not in body


def test_unknown_events_are_refused_by_name() -> None:
    assert [n.action for n in check_events(["turn.failed", "claude-sessions.turn.failed"])] == [
        "turn.failed"
    ]
    with pytest.raises(ValueError, match=r"not one of human\.requested, budget\.warning"):
        check_events(["budget.exceed"])
