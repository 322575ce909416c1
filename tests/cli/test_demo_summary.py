"""The demo's summary when output is not a terminal (a CI log, a pipe): at 80 columns every
run URL stays whole on one line, and the table keeps its cost column."""

from __future__ import annotations

import io

from prefect_claude_sessions.flows.demo import DemoReport, FlowRunReport, render_report
from rich.console import Console


def test_summary_urls_do_not_wrap_when_output_is_not_a_terminal(tmp_path) -> None:
    runs = [
        FlowRunReport(
            title=title,
            flow_run_id=f"{i:08d}-1111-4222-8333-444455556666",
            url=f"http://127.0.0.1:4321/runs/flow-run/{i:08d}-1111-4222-8333-444455556666",
            seconds=1.5,
            turns_sent=8,
            cost_usd=0.011848000000000001,
            session_ids=set(),
        )
        for i, title in enumerate(["email-triage", "email-triage (re-run)", "explore-approaches"])
    ]
    report = DemoReport(
        store_url="sqlite:///x.db",
        model="stand-in",
        dashboard_url="http://127.0.0.1:4321",
        runs=runs,
        server_home=tmp_path,
    )
    out = io.StringIO()
    render_report(report, Console(file=out, width=80, force_terminal=False))
    text = out.getvalue()
    lines = text.splitlines()
    for run in runs:
        assert any(run.url in line for line in lines), text  # whole, on one line
        (row,) = [line for line in lines if run.flow_run_id[:8] in line and "│" in line]
        assert "$0.0118" in row and run.title in row
    assert "schedules and automations do not fire there" in " ".join(text.split())
