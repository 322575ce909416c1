"""`claude-sessions` at 80 columns keeps turns and cost on each row; `show` and `tree` take the
8-character ids the dashboard shows, and refuse an unknown or ambiguous prefix in one line."""

from __future__ import annotations

import pytest
from prefect_claude_sessions.flows.cli import app
from prefect_claude_sessions.storage import SessionOrigin, open_db, sessions
from typer.testing import CliRunner

pytestmark = [pytest.mark.cli]


def test_ls_at_80_columns_keeps_turns_and_cost(filled) -> None:
    narrow = CliRunner(env={"COLUMNS": "80"})
    result = narrow.invoke(app, ["ls", "--database", filled.url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    for sid in (filled.root, filled.fork, filled.handoff):
        (row,) = [line for line in lines if line.split()[:1] == [sid[:8]]]
        cells = row.split()
        assert "1" in cells, row  # the turns column
        assert any(c.startswith("$0.") for c in cells), row  # the cost column, on the same row

    wide = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["ls", "--database", filled.url])
    assert filled.root in wide.stdout and "transcript" in wide.stdout


def test_show_and_tree_take_short_ids(filled) -> None:
    runner = CliRunner(env={"COLUMNS": "80"})
    tree = runner.invoke(app, ["tree", filled.fork[:8], "--database", filled.url])
    assert tree.exit_code == 0, tree.output
    assert filled.root in tree.stdout and filled.handoff in tree.stdout
    show = runner.invoke(app, ["show", filled.root[:10], "--database", filled.url])
    assert show.exit_code == 0, show.output
    assert f"Session {filled.root}" in show.stdout
    turns = show.stdout.split("Turns (1)")[1]
    assert "$0." in turns and " ms" in turns  # cost and duration survive 80 columns


def test_unknown_short_and_ambiguous_prefixes_fail_in_one_line(cli_world) -> None:
    url = f"sqlite:///{cli_world / 'twins.db'}"
    twins = ["0badcafe-0000-4000-8000-000000000001", "0badcafe-0000-4000-8000-000000000002"]
    with open_db(url) as db:
        for sid in twins:
            sessions.create_session(
                db, id=sid, project_key="p", agent_name="a", origin=SessionOrigin.init
            )
        db.commit()
    runner = CliRunner(env={"COLUMNS": "200"})
    for args, expected in [
        (["tree", "0badcafe"], "is ambiguous: it matches " + ", ".join(twins)),
        (["show", "0badcafe"], "ambiguous"),
        (["tree", "0badc"], "is not a session id: a prefix needs at least 8 characters"),
        (["show", "feedfeed"], "session 'feedfeed' not found"),
    ]:
        result = runner.invoke(app, [*args, "--database", url])
        assert result.exit_code == 2, (args, result.output)
        assert expected in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.output
    assert runner.invoke(app, ["tree", twins[1].upper(), "--database", url]).exit_code == 0
