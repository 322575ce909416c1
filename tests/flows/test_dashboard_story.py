"""The dashboard tells the story of a run (issue 14): one final session report per flow run
under its flow's key, task-run names that say what happened, outcomes in the log lines.

Real flows, the real CLI against the stand-in model, read back through the Prefect API."""

from __future__ import annotations

import re

import pytest
from prefect_claude_sessions.flows.explore import explore_approaches
from prefect_claude_sessions.flows.triage import email_triage, load_inbox

from .conftest import main_requests, run_flow
from .dashboard import (
    flow_run,
    lineage_reports,
    log_lines,
    session_events,
    task_run_names,
    wait_for,
)

pytestmark = [pytest.mark.cli, pytest.mark.slow]

COST = re.compile(r"\$\d+\.\d{4}\b")


def test_a_triage_run_reads_well_in_the_dashboard(workspace, standin):
    inbox = load_inbox()
    results, run_id = run_flow(email_triage, review_priorities=[], team="support")
    team = results[0].session_id
    handed = {r.email_id: r for r in results if r.specialist_session_id}
    assert handed

    run = flow_run(run_id)
    assert run.name == f"triage support ({len(inbox)} e-mails)"

    # One report, under the flow's key, linked to this run, final before the run ended.
    (report,) = lineage_reports(run_id)
    assert report.key == "claude-sessions-email-triage"
    assert report.flow_run_id is not None and str(report.flow_run_id) == run_id
    assert report.updated <= run.end_time, "the report changed after the run ended"
    data = report.data
    assert f"0 of {len(inbox)} e-mails already triaged, {len(inbox)} prompts sent" in data
    for email in inbox:
        assert f"{email.id}: {email.subject}" in data  # each turn says what it was for
    assert f"## Turns ({len(inbox) + len(handed)} sent, 0 replayed" in data
    assert "| handoff | completed |" in data
    # Answer excerpts: the specialists' answers begin with their system prompt's first words.
    assert data.count("[You are the") >= len(handed)

    # Task-run names that say what happened.
    names = wait_for(
        lambda: task_run_names(run_id),
        lambda ns: sum(n.startswith("handoff") and "→" in n for n in ns) == len(handed),
    )
    for email in inbox:
        assert f"decision triage {email.id}" in names
    for email_id, result in handed.items():
        specialist = (
            "billing-specialist" if result.category == "billing" else "technical-specialist"
        )
        assert (
            f"handoff {team[:8]} → {result.specialist_session_id[:8]} [{specialist}] {email_id}"
            in names
        ), names
        assert f"decision handoff {email_id}" in names
    assert f"init → {team[:8]} [triage-support] {inbox[0].id}" in names
    resumes = [n for n in names if n.startswith("resume")]
    assert len(resumes) == len(inbox) - 1
    assert all(n.startswith(f"resume {team[:8]} [triage-support] msg-") for n in resumes), resumes

    # Outcomes in the log lines: sessions, rounded cost, tokens, answer.
    lines = wait_for(
        lambda: log_lines(run_id),
        lambda ls: sum("tokens in" in m for m in ls) >= len(inbox) + len(handed),
    )
    turn_lines = [m for m in lines if "tokens in" in m]
    assert len(turn_lines) == len(inbox) + len(handed), lines
    assert all(COST.search(m) and "answer:" in m for m in turn_lines)
    for result in handed.values():
        assert any(
            f"session {team} → new session {result.specialist_session_id}" in m for m in turn_lines
        )
    assert any("decision 'triage' recorded" in m for m in lines)

    # Events that read well: "Claude sessions decision recorded", with key, e-mail and choice;
    # a handoff names the new session and its parent; costs are rounded.
    resources = [
        f"claude-sessions.session.{sid}"
        for sid in {team, *(r.specialist_session_id for r in handed.values())}
    ]
    events = wait_for(
        lambda: session_events("claude-sessions.", resources, run.start_time),
        lambda es: (
            sum(e["event"] == "claude-sessions.handed-off" for e in es) == len(handed)
            and sum(e["event"] == "claude-sessions.decision-recorded" for e in es)
            == len(inbox) + len(handed)
        ),
    )
    decided = [e for e in events if e["event"] == "claude-sessions.decision-recorded"]
    triaged = {
        e["payload"]["label"]: e["payload"] for e in decided if e["payload"]["key"] == "triage"
    }
    assert set(triaged) == {e.id for e in inbox}
    assert triaged["msg-0002"]["choice"]["category"] == "billing"
    assert triaged["msg-0002"]["choice"]["email_id"] == "msg-0002"
    for event in (e for e in events if e["event"] == "claude-sessions.handed-off"):
        payload = event["payload"]
        result = handed[payload["label"]]
        assert payload["session_id"] == result.specialist_session_id
        assert payload["parent_session_id"] == team
        assert payload["cost_usd"] == round(payload["cost_usd"], 6) > 0
    resumed = [e for e in events if e["event"] == "claude-sessions.resumed"]
    assert {e["payload"]["label"] for e in resumed} == {e.id for e in inbox[1:]}

    # A re-run replays every e-mail from the store: it says so, in its log and its report.
    standin.clear_requests()
    _, again = run_flow(email_triage, review_priorities=[], team="support")
    assert main_requests(standin) == []
    (second,) = lineage_reports(again)
    assert second.key == "claude-sessions-email-triage"
    summary = f"{len(inbox)} of {len(inbox)} e-mails already triaged, 0 prompts sent"
    assert summary in second.data
    assert "No turns in this run: nothing was sent to the model." in second.data
    assert any(summary in m for m in wait_for(lambda: log_lines(again), lambda ls: len(ls) > 0))


def test_an_exploration_report_names_its_approaches_and_the_chosen_fork(workspace, standin):
    approaches = ["an index on the orders table", "a read-through cache"]
    exploration, run_id = run_flow(
        explore_approaches, approaches=approaches, problem="The orders page is slow."
    )
    chosen = next(o for o in exploration.outcomes if o.approach == exploration.chosen)

    assert flow_run(run_id).name == "explore 2 approaches"
    (report,) = lineage_reports(run_id)
    assert report.key == "claude-sessions-explore-approaches"
    assert str(report.flow_run_id) == run_id
    for approach in approaches:
        assert approach in report.data
    assert f"`{chosen.session_id[:8]}`** explorer (fork) · {chosen.approach} ✅ **chosen**" in (
        report.data
    )
    assert f"**Chosen:** {chosen.approach}" in report.data

    base = exploration.base_session_id[:8]
    names = wait_for(
        lambda: task_run_names(run_id),
        lambda ns: sum(n.startswith("fork") and "→" in n for n in ns) == len(approaches),
    )
    for outcome in exploration.outcomes:
        assert f"fork {base} → {outcome.session_id[:8]} [explorer] {outcome.approach}" in names
    assert f"decision approach-chosen {chosen.approach}" in names
