"""`claude-sessions notify`: the automation that tells a person a session waits for them, set
up with the real command against a real Prefect server, fired by a real event, delivered by the
server's own automation services to a webhook the test listens on."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from prefect_claude_sessions.flows.notifications import AUTOMATION_NAME, HUMAN_REQUESTED

from tests.e2e.harness import VENV_BIN, PrefectServer, WebhookReceiver, isolated_env

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.cli, pytest.mark.slow]

CLAUDE_SESSIONS = str(VENV_BIN / "claude-sessions")


def notify(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLAUDE_SESSIONS, "notify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def automations_named(server: PrefectServer, name: str) -> list[dict]:
    return [a for a in server.post("/automations/filter", {}) if a["name"] == name]


EMIT = textwrap.dedent(
    """
    import json, sys
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    for event, payload in json.loads(sys.argv[1]):
        emit_event(
            event=event,
            resource={"prefect.resource.id": "claude-sessions.session.s-1",
                      "prefect.resource.name": "session s-1"},
            payload={"session_id": "s-1", "agent": "writer", **payload},
        )
    EventsWorker.drain_all()
    """
)


def emit(env: dict[str, str], *events: tuple[str, dict]) -> None:
    """Emit events into the server from a process of its own, as a worker's flow run does."""
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", EMIT, json.dumps(events)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


QUESTION = "Send the refund to ACME?\n\nThey were charged twice."
REQUESTED = {
    "question": QUESTION,
    "headline": "Send the refund to ACME?",
    "form": "ApprovalForm",
    "fields": ["approved", "comment"],
    "timeout_s": 600,
}


def test_notify_creates_one_automation_that_delivers_the_question(
    prefect_server: PrefectServer, tmp_path: Path
):
    env = prefect_server.env()
    with WebhookReceiver() as hook:
        first = notify(env, "--webhook-url", hook.url, "--allow-private-url", "--json")
        assert first.returncode == 0, first.stderr
        (made,) = json.loads(first.stdout)
        assert made["created"] is True and made["name"] == AUTOMATION_NAME
        assert made["event"] == HUMAN_REQUESTED
        assert made["block"] == "custom-webhook/claude-sessions-human-requested"
        assert hook.url not in first.stdout + first.stderr  # the URL is a credential

        again = notify(env, "--webhook-url", hook.url, "--allow-private-url", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == [{**made, "created": False}]
        (automation,) = automations_named(prefect_server, AUTOMATION_NAME)
        assert automation["trigger"]["expect"] == [HUMAN_REQUESTED]
        assert automation["actions"][0]["type"] == "send-notification"

        # an event of another family does not notify; the request does, with its question
        emit(env, ("claude-sessions.created", {"question": "not a question"}))
        emit(env, (HUMAN_REQUESTED, REQUESTED))
        (sent,) = hook.wait_for(1, timeout=90)
        text = sent["json"]["text"]
        assert text.startswith(f"A Claude session waits for a person.\n\n{QUESTION}\n\n"), text
        assert "Session s-1 (agent writer) waits for an answer" in text
        assert "ApprovalForm (approved, comment)" in text
        assert "not a question" not in json.dumps(hook.received)


def test_notify_on_budgets_and_failures_with_a_label_of_their_own(
    prefect_server: PrefectServer, tmp_path: Path
):
    env = prefect_server.env()
    with WebhookReceiver() as hook:
        args = ["--event", "budget.exceeded", "--event", "claude-sessions.turn.failed"]
        done = notify(
            env, "--webhook-url", hook.url, "--allow-private-url", "--label", "ops", *args, "--json"
        )
        assert done.returncode == 0, done.stderr
        made = {m["event"]: m for m in json.loads(done.stdout)}
        assert set(made) == {"claude-sessions.budget.exceeded", "claude-sessions.turn.failed"}
        assert made["claude-sessions.turn.failed"]["name"] == "claude-sessions: a turn failed (ops)"
        assert made["claude-sessions.budget.exceeded"]["block"] == (
            "custom-webhook/claude-sessions-budget-exceeded-ops"
        )
        assert not automations_named(prefect_server, "claude-sessions: a budget is running low")

        emit(env, ("claude-sessions.budget.warning", {"budget_usd": 1.0, "spent_usd": 0.8}))
        emit(
            env,
            ("claude-sessions.budget.exceeded", {"budget_usd": 0.5, "spent_usd": 0.5012}),
            (
                "claude-sessions.turn.failed",
                {
                    "turn_key": "t-9",
                    "operation": "resume",
                    "error_kind": "auth",
                    "retryable": False,
                },
            ),
        )
        texts = sorted(m["json"]["text"] for m in hook.wait_for(2, timeout=90))
        assert texts[0].startswith(
            "Session s-1 (agent writer) and its descendants have spent $0.5012 of the $0.5 budget"
        ), texts
        assert "fail with BudgetExceeded before anything is sent" in texts[0]
        assert texts[1].startswith(
            "The resume turn t-9 of session s-1 (agent writer) failed: auth."
        ), texts
        assert texts[1].endswith("A permanent error: the task is not retried.")
        assert len(hook.received) == 2  # the warning was not asked for


def test_notify_refuses_bad_input_with_one_line_and_changes_nothing(
    prefect_server: PrefectServer, tmp_path: Path
):
    env = prefect_server.env()
    before = prefect_server.post("/automations/filter", {})
    secret = "https://hooks.example/T000/SECRET-TOKEN"
    cases = [
        ([], "give either --block TYPE/NAME or --webhook-url URL"),
        (["--block", "a/b", "--webhook-url", secret], "give either --block"),
        (["--webhook-url", "ftp://hooks.example/SECRET-TOKEN"], "must be an http:// or https://"),
        (["--block", "no-slash"], "must be a block slug TYPE/NAME"),
        (["--block", "slack-webhook/nobody"], "no such block on the server"),
        (["--webhook-url", secret, "--event", "turn.done"], "--event 'turn.done' is not one of"),
        (["--webhook-url", secret, "--label", "Ops Team"], "--label must be 1-40 lower-case"),
    ]
    for args, expected in cases:
        done = notify(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and "SECRET-TOKEN" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr

    # a block that is not a notification block
    saved = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "from prefect.blocks.system import Secret; Secret(value='x').save('not-a-notifier')",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stderr
    done = notify(env, "--block", "secret/not-a-notifier")
    assert done.returncode == 2 and "is a Secret, not a notification block" in done.stderr

    # no server configured: refused before anything is created on a temporary one
    unset = isolated_env(tmp_path / "home-unset", None)
    done = notify(unset, "--webhook-url", secret)
    assert done.returncode == 2 and "PREFECT_API_URL is not set" in done.stderr, done.stderr

    # an unreachable server: one line naming the API, the webhook's token nowhere
    down = isolated_env(tmp_path / "home-down", "http://127.0.0.1:9/api")
    done = notify(down, "--webhook-url", secret)
    assert done.returncode == 2, done.stderr
    assert "cannot set up the automation on the Prefect API at http://127.0.0.1:9/api" in (
        done.stderr
    )
    assert "SECRET-TOKEN" not in done.stderr

    assert prefect_server.post("/automations/filter", {}) == before
