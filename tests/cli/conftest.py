"""A store filled by real task runs (the real CLI against the stand-in model, inside Prefect
flows) for the `claude-sessions` command tests. Few turns: the commands only read what exists."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect import flow
from prefect_claude_sessions.storage import dispose_engines
from prefect_claude_sessions.tasks import (
    AgentProfile,
    checkpoint_session,
    fork_session,
    handoff_session,
    init_session,
    record_decision,
)
from prefect_claude_sessions.tasks.standin import StandinModel
from typer.testing import CliRunner

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
BILLING = AgentProfile(
    name="billing", system_prompt="You are the billing specialist. You settle invoices."
)


@dataclass
class FilledStore:
    url: str
    root: str
    fork: str
    handoff: str
    checkpoint: str


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory, standin: StandinModel, prefect_harness) -> Iterator[Path]:
    """The session-wide stand-in model and Prefect test harness (one per test session: several
    harnesses in one process confuse Prefect's event workers), an empty CLAUDE_CONFIG_DIR and a
    working directory."""
    base = tmp_path_factory.mktemp("cli-world")
    (base / "config").mkdir()
    (base / "work").mkdir()
    model = standin
    with pytest.MonkeyPatch.context() as mp:
        for name, value in model.env().items():
            mp.setenv(name, value)
        mp.setenv("CLAUDE_CONFIG_DIR", str(base / "config"))
        mp.chdir(base / "work")
        yield base
    dispose_engines()


def fill_store(url: str) -> FilledStore:
    """Three real turns: an init, a fork and a handoff; plus a checkpoint and a decision."""

    @flow
    def build():
        first = init_session("Remember the code word PELICAN.", agent=ECHO, database=url)
        mark = checkpoint_session(first, "after-pelican", database=url)
        branch = fork_session(first, "Try approach B.", database=url)
        spec = handoff_session(first, "Please settle invoice INV-7.", to=BILLING, database=url)
        record_decision(first, "route", {"to": "billing", "invoice": "INV-7"}, database=url)
        return first, mark, branch, spec

    first, mark, branch, spec = build()
    return FilledStore(
        url=url,
        root=first.session_id,
        fork=branch.session_id,
        handoff=spec.session_id,
        checkpoint=mark.id,
    )


@pytest.fixture(scope="module")
def filled(cli_world: Path) -> FilledStore:
    """A store the read-only command tests share (nothing in them changes it)."""
    return fill_store(f"sqlite:///{cli_world / 'read.db'}")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "200"})
