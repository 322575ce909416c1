"""The dashboard in a real browser (Debian's headless chromium) after a triage run against a
real Prefect server: the run page names the run and its task runs say what happened, and the
run's one session report renders with its summary and turns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from prefect_claude_sessions.flows.prefect_server import LEAN_SERVICES, PrefectServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.cli]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EMAILS = [
    {"id": "b-1", "sender": "a@x.example", "subject": "Charged twice", "body": "Invoice 7 twice."},
    {"id": "b-2", "sender": "b@x.example", "subject": "Thanks", "body": "All good now, thanks!"},
]


def rendered(url: str) -> str:
    """The page's DOM after its scripts ran (the dashboard is a single-page app)."""
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--window-size=1400,1000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_triage_run_page_and_its_report_in_a_browser(tmp_path: Path, standin) -> None:
    with PrefectServerProcess(
        tmp_path / "server", settings=LEAN_SERVICES, die_with_parent=True
    ) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
        env.update(standin.env())
        env.update(
            PREFECT_API_URL=server.api_url,
            PREFECT_HOME=str(tmp_path / "client"),
            CLAUDE_CONFIG_DIR=str(tmp_path / "claude-config"),
            CLAUDE_SESSIONS_DATABASE_URL=f"sqlite:///{tmp_path / 'sessions.db'}",
        )
        (tmp_path / "claude-config").mkdir()
        script = (
            "import json, sys\n"
            "from prefect_claude_sessions.flows.triage import Email, email_triage\n"
            "state = email_triage(team='browser', emails=[Email(**e) for e in json.loads("
            "sys.argv[1])], review_priorities=[], return_state=True)\n"
            "print(state.state_details.flow_run_id)\n"
            "sys.exit(0 if state.is_completed() else 1)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(EMAILS)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        run_id = done.stdout.strip().splitlines()[-1]

        artifacts = httpx.post(
            f"{server.api_url}/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        ).json()
        (report,) = [a for a in artifacts if a["key"].startswith("claude-sessions-")]

        # Seen here: the first browser navigation to a deep link of a fresh server after a run
        # got the API's 404 JSON (2 runs of 3); one HTML request before it avoids that.
        warm = httpx.get(f"{server.ui_url}/runs/flow-run/{run_id}", headers={"accept": "text/html"})
        assert warm.status_code == 200
        page = rendered(f"{server.ui_url}/runs/flow-run/{run_id}?tab=Task%20Runs")
        assert "triage browser (2 e-mails)" in page
        for name in ("decision triage b-1", "decision triage b-2", "decision handoff b-1"):
            assert name in page, name
        assert "[billing-specialist] b-1" in page  # the handoff, with its new session

        shown = rendered(f"{server.ui_url}/artifacts/artifact/{report['id']}")
        assert "claude-sessions-email-triage" in shown
        assert "Claude sessions in this flow run" in shown
        assert "0 of 2 e-mails already triaged, 2 prompts sent" in shown
        assert "b-1: Charged twice" in shown and "b-2: Thanks" in shown
