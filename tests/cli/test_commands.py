"""`claude-sessions` read commands against a store filled by real task runs: tables, --json,
filters, export, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prefect_claude_sessions.flows.cli import app

from .conftest import FilledStore

pytestmark = [pytest.mark.cli]


def run(runner, *args: str):
    return runner.invoke(app, list(args))


def run_json(runner, filled: FilledStore, *args: str):
    result = run(runner, *args, "--database", filled.url, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ls_lists_sessions_with_filters(runner, filled) -> None:
    rows = run_json(runner, filled, "ls")
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {filled.root, filled.fork, filled.handoff}
    assert by_id[filled.root]["origin"] == "init" and by_id[filled.root]["parent_id"] is None
    assert by_id[filled.fork]["origin"] == "fork"
    assert by_id[filled.fork]["parent_id"] == filled.root
    assert by_id[filled.handoff]["agent"] == "billing"
    assert all(r["turns"] == 1 and r["transcript_bytes"] > 0 for r in rows)
    assert all(r["cost_usd"] > 0 and r["status"] == "active" for r in rows)

    assert [r["id"] for r in run_json(runner, filled, "ls", "--agent", "billing")] == [
        filled.handoff
    ]
    assert run_json(runner, filled, "ls", "--status", "purged") == []
    assert len(run_json(runner, filled, "ls", "--limit", "2")) == 2

    table = run(runner, "ls", "--database", filled.url)
    assert table.exit_code == 0
    assert filled.root in table.stdout and "billing" in table.stdout and "handoff" in table.stdout


def test_ls_reads_the_database_from_the_environment(runner, filled, monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_DATABASE_URL", filled.url)
    result = run(runner, "ls", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3


def test_show_reports_totals_lineage_turns_checkpoints_and_decisions(runner, filled) -> None:
    info = run_json(runner, filled, "show", filled.root)
    assert info["session"]["id"] == filled.root and info["session"]["turns"] == 1
    assert {c["id"] for c in info["lineage"]["children"]} == {filled.fork, filled.handoff}
    assert info["lineage"]["root_id"] == filled.root
    assert [t["operation"] for t in info["turns"]] == ["init"]
    assert "PELICAN" in info["turns"][0]["answer"]
    assert [c["label"] for c in info["checkpoints"]] == ["after-pelican"]
    assert [(d["key"], d["payload"]["invoice"]) for d in info["decisions"]] == [("route", "INV-7")]

    child = run_json(runner, filled, "show", filled.handoff)
    assert child["lineage"]["ancestors"] == [filled.root]
    assert child["turns"][0]["operation"] == "handoff"

    table = run(runner, "show", filled.root, "--database", filled.url)
    assert table.exit_code == 0
    for text in ("Lineage", "Turns (1)", "after-pelican", "route"):
        assert text in table.stdout


def test_tree_starts_at_the_root_whichever_session_is_named(runner, filled) -> None:
    tree = run_json(runner, filled, "tree", filled.fork)
    assert tree["id"] == filled.root
    assert {(c["id"], c["origin"]) for c in tree["children"]} == {
        (filled.fork, "fork"),
        (filled.handoff, "handoff"),
    }
    assert all(c["children"] == [] for c in tree["children"])

    text = run(runner, "tree", filled.handoff, "--database", filled.url)
    assert text.exit_code == 0
    assert filled.root in text.stdout and filled.handoff in text.stdout
    assert "billing" in text.stdout and "(handoff)" in text.stdout


def test_decisions_filters(runner, filled) -> None:
    everything = run_json(runner, filled, "decisions")
    keys = [d["key"] for d in everything]
    assert "route" in keys
    assert all(d["key"] == "route" for d in run_json(runner, filled, "decisions", "--key", "route"))
    assert run_json(runner, filled, "decisions", "--key", "no-such-key") == []
    mine = run_json(runner, filled, "decisions", "--session", filled.root)
    assert mine and all(d["session_id"] == filled.root for d in mine)
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert run_json(runner, filled, "decisions", "--since", future) == []
    assert len(run_json(runner, filled, "decisions", "--since", past)) == len(everything)
    assert run_json(runner, filled, "decisions", "--until", past) == []


def test_checkpoints(runner, filled) -> None:
    rows = run_json(runner, filled, "checkpoints", filled.root)
    assert [(r["id"], r["label"]) for r in rows] == [(filled.checkpoint, "after-pelican")]
    assert rows[0]["transcript_uuid"]
    assert run_json(runner, filled, "checkpoints", filled.fork) == []


def test_export_writes_the_stored_transcript_as_json_lines(runner, filled, tmp_path) -> None:
    result = run(runner, "export", filled.root, "--database", filled.url)
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert entries and all(isinstance(e.get("type"), str) for e in entries)
    assert "PELICAN" in result.stdout
    assert {e["sessionId"] for e in entries if "sessionId" in e} == {filled.root}

    target = tmp_path / "out.jsonl"
    saved = run(runner, "export", filled.root, "--database", filled.url, "--output", str(target))
    assert saved.exit_code == 0, saved.output
    assert target.read_text().splitlines() == result.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "not-a-uuid"], "is not a session id"),
        (["tree", "1234"], "is not a session id"),
        (["export", "xyz"], "is not a session id"),
        (["checkpoints", "nope"], "is not a session id"),
        (["decisions", "--session", "nope"], "is not a session id"),
    ],
)
def test_malformed_ids_fail_in_one_line_with_exit_2(runner, filled, args, message) -> None:
    result = run(runner, *args, "--database", filled.url)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["show", "tree", "export", "checkpoints", "purge"])
def test_unknown_ids_fail_with_exit_2(runner, filled, command) -> None:
    missing = str(uuid.uuid4())
    result = run(runner, command, missing, "--database", filled.url, "--yes")
    if command != "purge":
        result = run(runner, command, missing, "--database", filled.url)
    assert result.exit_code == 2, result.output
    assert missing in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://nobody@127.0.0.1:1/none", "unavailable"),
        ("not a url", "invalid database URL"),
        ("nosuchdialect://x/y", "invalid database URL"),
    ],
)
def test_unusable_databases_fail_with_exit_2(runner, url, message) -> None:
    result = run(runner, "ls", "--database", url)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
