"""The lineage report is published at most once per interval per flow run while turns arrive,
in the caller's thread (never a timer thread); `finalize` and `flush` publish what is stale."""

from __future__ import annotations

import threading
import time

from prefect_claude_sessions.tasks import artifacts
from prefect_claude_sessions.tasks.artifacts import ReportPublisher, report_key


def _recording(monkeypatch) -> list[tuple[str, str, str | None]]:
    published: list[tuple[str, str, str | None]] = []

    def publish(run, flow_run_id, *, at_exit=False):
        published.append((flow_run_id, threading.current_thread().name, run.key))
        run.dirty = False

    monkeypatch.setattr(artifacts, "_publish", publish)
    return published


def test_bursts_publish_once_and_the_flow_end_publishes_the_rest(monkeypatch) -> None:
    published = _recording(monkeypatch)
    publisher = ReportPublisher(interval_s=0.3)

    for i in range(10):
        publisher.request(object(), "run-a", turn_key=f"k{i}", label=f"msg-{i}", flow_name="x")
    publisher.request(object(), "run-b", flow_name="Email Triage")
    assert [run for run, _, _ in published] == ["run-a", "run-b"]  # leading edge, per run
    assert {key for _, _, key in published} == {"claude-sessions-x", "claude-sessions-email-triage"}

    time.sleep(0.5)
    assert len(published) == 2, "nothing is published behind the caller's back"
    publisher.request(object(), "run-a", flow_name="x")  # due again: published at once
    publisher.finalize(object(), "run-a")
    assert [run for run, _, _ in published] == ["run-a", "run-b", "run-a", "run-a"]
    assert {thread for _, thread, _ in published} == {threading.current_thread().name}
    assert publisher.notes(object(), "run-b").labels == {}


def test_flush_publishes_only_stale_reports(monkeypatch) -> None:
    published = _recording(monkeypatch)
    publisher = ReportPublisher(interval_s=60)

    publisher.request(object(), "run-a", flow_name="f")
    publisher.request(object(), "run-a", flow_name="f")
    publisher.request(object(), "run-b", flow_name="f")
    publisher.flush()
    publisher.flush()  # nothing left

    assert [run for run, _, _ in published] == ["run-a", "run-b", "run-a"]


def test_report_keys_are_valid_prefect_keys() -> None:
    assert report_key("email-triage") == "claude-sessions-email-triage"
    assert report_key("My Flow_v2!") == "claude-sessions-my-flow-v2"
    assert report_key(None) == "claude-sessions-flow"


def test_a_long_lived_process_forgets_published_runs(monkeypatch) -> None:
    _recording(monkeypatch)
    monkeypatch.setattr(artifacts, "MAX_RUNS", 10)
    publisher = ReportPublisher(interval_s=60)
    publisher.request(object(), "run-0", flow_name="f")
    publisher.request(object(), "run-0", flow_name="f")  # stale: kept until published
    for i in range(1, 30):
        publisher.request(object(), f"run-{i}", flow_name="f")
    assert len(publisher._runs) <= 10
    assert "run-0" in publisher._runs and publisher._runs["run-0"].dirty
