"""The whole review loop as the people involved see it, in Debian's headless chromium driven by
Playwright: a scheduled triage run drafts a reply to a P1 e-mail and suspends; the automation of
`claude-sessions notify` sends the question and a link to a webhook; the link opens the run
page, whose Resume form shows the question with the draft pre-filled; a person edits the reply
and submits; the run re-runs on another worker, the edited reply counts as sent and the team's
session is told what the person did.

Everything is real: the Prefect server (with its UI and automation services), the workers, the
CLI talking to the stand-in model, the session store on PostgreSQL. With
``CLAUDE_SESSIONS_SCREENSHOTS=DIR`` the screenshots are also saved to DIR (``make screenshots``
refreshes the README's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prefect_claude_sessions.storage import decisions, dispose_engines, get_engine, open_db

from tests.conftest import drop_postgres_database, make_postgres_database
from tests.e2e.harness import (
    VENV_BIN,
    PrefectServer,
    StandinProcess,
    WebhookReceiver,
    Worker,
    create_process_pool,
    deploy_all,
    free_port,
    machine_env,
    read_flow_run,
    read_logs,
    record_timing,
    run_deployment,
    wait_for_flow_run,
    wait_for_suspension,
    wait_until,
    write_project,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.cli, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
CLAUDE_SESSIONS = str(VENV_BIN / "claude-sessions")
URGENT = {
    "id": "rev-1",
    "sender": "ops@acme.test",
    "subject": "Production database down",
    "body": "Our production database is down since 9:00 and nothing works. Urgent!",
}
ROUTINE = {
    "id": "rev-2",
    "sender": "buyer@acme.test",
    "subject": "Enterprise pricing",
    "body": "What does the enterprise plan cost per seat?",
}
EDITED = "We are on it: follow status.acme.test for updates every 30 minutes."
COMMENT = "Always link the status page."


def shoot(page, tmp_path: Path, name: str) -> Path:
    """A screenshot of the page, kept with the test's files (and in the screenshot folder)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if folder := os.environ.get("CLAUDE_SESSIONS_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(folder) / path.name)
    return path


@pytest.fixture
def dashboard_server(tmp_path: Path):
    """A real server with the dashboard on, and links in notifications pointing at it."""
    port = free_port()
    ui = {"PREFECT_SERVER_UI_ENABLED": "true", "PREFECT_UI_URL": f"http://127.0.0.1:{port}"}
    with PrefectServer(tmp_path / "server", port=port, extra_env=ui) as server:
        yield server


def test_a_person_reviews_a_p1_reply_from_the_notification_to_the_continued_session(
    dashboard_server: PrefectServer, tmp_path: Path
):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "chromium is not installed (apt-get install chromium; .ci/run does)"
    server = dashboard_server
    create_process_pool(server, "review-pool")
    project = write_project(
        tmp_path / "project",
        name="review-loop",
        pool="review-pool",
        flows={},
        deployments={"support-triage": "prefect_claude_sessions.flows.triage:email_triage"},
    )
    db_name, store_url = make_postgres_database("cs_review_store")
    with StandinProcess(tmp_path) as standin, WebhookReceiver() as hook:
        try:
            deploy_all(server, project)
            notified = subprocess.run(
                [CLAUDE_SESSIONS, "notify", "--webhook-url", hook.url, "--allow-private-url"],
                env=server.env(),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert notified.returncode == 0, notified.stderr

            first = Worker(
                server,
                "review-pool",
                name="machine-a",
                workdir=tmp_path / "a",
                env=machine_env(standin.url, store_url, tmp_path / "a"),
            ).start()
            run_id = run_deployment(
                server,
                "email-triage/support-triage",
                {"team": "support", "emails": [URGENT, ROUTINE], "hand_off": False},
            )
            wait_for_suspension(server, run_id, first)
            suspended_at = time.monotonic()
            first.stop()  # no worker is left: the run waits in the server alone
            model = standin.model()
            draft_prompts = [r["user_turns"][-1] for r in model.requests(kind="main")]
            assert len(draft_prompts) == 1 and "Production database down" in draft_prompts[0]

            # the notification: the question, the draft, and the link to the waiting run
            (message,) = hook.wait_for(1, timeout=90)
            record_timing("notification after the suspension (s)", time.monotonic() - suspended_at)
            text = message["json"]["text"]
            (tmp_path / "notification.txt").write_text(text)
            assert text.startswith(
                "A Claude session waits for a person.\n\n"
                "Send this reply to e-mail rev-1 (P1: Production database down)?"
            ), text
            assert "(agent triage-support) waits in flow run triage support (2 e-mails)" in text
            link = f"{server.url}/runs/flow-run/{run_id}"
            assert f"Answer it on the run's page: {link}" in text, text

            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=BROWSER_ARGS,
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1250})
                # Seen here: a fresh server's first deep link can get the API's 404 JSON; one
                # HTML request first avoids it (as in tests/cli/test_dashboard_browser.py).
                warm = httpx.get(link, headers={"accept": "text/html"}, timeout=30)
                assert warm.status_code == 200
                page.goto(link)
                page.get_by_text("Suspended").first.wait_for(timeout=60_000)
                page.get_by_text("waiting for a person").first.wait_for(timeout=60_000)
                shoot(page, tmp_path, "review-1-suspended-run")

                page.get_by_role("button", name="Resume").click()
                dialog = page.get_by_role("dialog")
                dialog.get_by_text("Send this reply to e-mail rev-1").wait_for(timeout=30_000)
                field = {
                    name: dialog.locator(".schema-form-property", has_text=name)
                    for name in ("Approved", "Comment", "Reply")
                }
                draft = field["Reply"].locator("textarea").input_value()
                assert draft and draft in text  # the draft, pre-filled, as notified
                field["Approved"].get_by_role("switch").click()
                field["Comment"].locator("textarea").fill(COMMENT)
                field["Reply"].locator("textarea").fill(EDITED)
                shoot(page, tmp_path, "review-2-form")
                dialog.get_by_role("button", name="Submit").click()
                wait_until(
                    lambda: read_flow_run(server, run_id)["state_type"] != "PAUSED",
                    timeout=60,
                    message=lambda: server.diagnostics(run_id),
                )

                with Worker(
                    server,
                    "review-pool",
                    name="machine-b",
                    workdir=tmp_path / "b",
                    env=machine_env(standin.url, store_url, tmp_path / "b"),
                ) as second:
                    done = wait_for_flow_run(server, run_id, timeout=240, expect="COMPLETED")
                    # the flow-run process sends its last logs as it exits: let it
                    wait_until(lambda: not second.flow_run_pids(), timeout=60, message=second.tail)
                assert done["labels"].get("prefect.worker.name") == "machine-b"

                page.goto(link)
                page.get_by_text("Completed").first.wait_for(timeout=60_000)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(2000)  # the run graph is drawn on a canvas: no text to await
                shoot(page, tmp_path, "review-3-continued-run")

                (report,) = [
                    a
                    for a in server.post(
                        "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
                    )
                    if a["key"] == "claude-sessions-email-triage"
                ]
                page.goto(f"{server.url}/artifacts/artifact/{report['id']}")
                page.get_by_text("rev-1 review").first.wait_for(timeout=60_000)
                shoot(page, tmp_path, "review-4-session-report")
                browser.close()

            # one notification: the re-run after the answer asked (and notified) nobody again
            assert len(hook.received) == 1, hook.received

            # the run's logs (its page loads them as one scrolls): one wait, then the answer
            def answered_lines() -> list[str]:
                return [
                    m["message"]
                    for m in read_logs(server, run_id)
                    if "a person answered" in m["message"]
                ]

            (answered_line,) = wait_until(
                answered_lines,
                timeout=30,
                message=lambda: (
                    "no answer logged; the run's logs:\n"
                    + "\n".join(
                        f"{m['timestamp']} {m['message'][:150]}" for m in read_logs(server, run_id)
                    )
                ),
            )
            logs = [log["message"] for log in read_logs(server, run_id)]
            assert sum("waiting for a person" in m for m in logs) == 1, logs
            assert f"comment={COMMENT}" in answered_line and "approved=True" in answered_line

            # the model: the draft prompt once, then the person's edit and comment, in the
            # session's history, before the next e-mail
            turns = [r["user_turns"] for r in model.requests(kind="main")]
            assert [t[-1] for t in turns].count(draft_prompts[0]) == 1
            told = [t for t in turns if t[-1].startswith("Review of your reply to e-mail rev-1")]
            assert len(told) == 1
            assert (
                f"edited your draft reply before sending it. The reply sent: {EDITED}"
                in (told[0][-1])
            )
            assert COMMENT in told[0][-1]
            assert "Enterprise pricing" in turns[-1][-1] and told[0][-1] in turns[-1]

            with open_db(get_engine(store_url)) as db:
                humans = decisions.list_decisions(db, key="human")
                triaged = {
                    d.payload["email_id"]: d.payload
                    for d in decisions.list_decisions(db, key="triage")
                }
            answered = next(h.payload for h in humans if h.payload["status"] == "answered")
            assert answered["answer"] == {"approved": True, "comment": COMMENT, "reply": EDITED}
            assert triaged["rev-1"]["reply_status"] == "edited"
            assert json.dumps(triaged).count(EDITED) >= 1
        finally:
            dispose_engines()
            drop_postgres_database(db_name)
