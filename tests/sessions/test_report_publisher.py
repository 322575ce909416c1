"""The lineage report is published at most once per interval per flow run, plus a trailing
version after the last turn: a flow of n turns does not pay n full re-renders."""

from __future__ import annotations

import time

from prefect_claude_sessions.tasks import artifacts
from prefect_claude_sessions.tasks.artifacts import ReportPublisher


def test_bursts_publish_once_then_once_more_after_the_interval(monkeypatch) -> None:
    published: list[tuple[str, float]] = []
    monkeypatch.setattr(
        artifacts,
        "publish_flow_run_report",
        lambda engine, run, *args, **kwargs: published.append((run, time.monotonic())),
    )
    publisher = ReportPublisher(interval_s=0.5)

    for _ in range(10):
        publisher.request(object(), "run-a")
    publisher.request(object(), "run-b")
    assert [run for run, _ in published] == ["run-a", "run-b"]  # leading edge, per run

    time.sleep(0.8)
    assert [run for run, _ in published] == ["run-a", "run-b", "run-a"]  # one trailing version
    assert published[2][1] - published[0][1] >= 0.45


def test_flush_publishes_what_is_pending_now(monkeypatch) -> None:
    published: list[str] = []
    monkeypatch.setattr(
        artifacts,
        "publish_flow_run_report",
        lambda engine, run, *args, **kwargs: published.append(run),
    )
    publisher = ReportPublisher(interval_s=60)

    publisher.request(object(), "run-a")
    publisher.request(object(), "run-a")
    publisher.flush()
    publisher.flush()  # nothing left

    assert published == ["run-a", "run-a"]
