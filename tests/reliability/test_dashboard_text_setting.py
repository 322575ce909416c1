"""CLAUDE_SESSIONS_DASHBOARD_TEXT: answer excerpts in Prefect's logs and artifacts are a choice.

They help operators (issue 14) but live in Prefect's database, which a purge cannot reach
(issue 12). With the setting on (the default) an answer shows in the task log and the run
report; with it off, neither holds any of the answer's text."""

from __future__ import annotations

import uuid

import pytest
from prefect import flow
from prefect_claude_sessions.tasks import AgentProfile, init_session
from prefect_claude_sessions.tasks.artifacts import HIDDEN_TEXT, answer_excerpt

from .conftest import enter_worker_world
from .leak_search import files_containing, prefect_dirs

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")


def test_answer_excerpt_follows_the_setting(monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_DASHBOARD_TEXT", "true")
    assert answer_excerpt("the | answer", 80, markdown=True) == "the \\| answer"
    monkeypatch.setenv("CLAUDE_SESSIONS_DASHBOARD_TEXT", "false")
    assert answer_excerpt("the answer") == HIDDEN_TEXT


@pytest.mark.parametrize("shown", [True, False], ids=["on", "off"])
def test_answers_reach_prefect_only_when_the_setting_is_on(
    tmp_path, standin, sqlite_url, monkeypatch, prefect_harness, shown
) -> None:
    enter_worker_world(tmp_path, standin, sqlite_url, monkeypatch)
    monkeypatch.setenv("CLAUDE_SESSIONS_DASHBOARD_TEXT", "true" if shown else "false")
    marker = f"CUSTOMER-{uuid.uuid4().hex[:10]}"

    @flow(persist_result=False)
    def one_turn():
        return init_session(f"Customer record {marker}.", agent=ECHO)

    turn = one_turn()
    assert marker in turn.text  # the stand-in echoes it: the answer holds the marker
    found = files_containing(marker, *prefect_dirs())
    if shown:
        assert found, "with excerpts on, the task log and the report show the answer"
    else:
        assert found == [], found
