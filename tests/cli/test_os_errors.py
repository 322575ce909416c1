"""File-system errors through the real `claude-sessions` console script (a subprocess, as a
user runs it): an output path that cannot be written, a home or database path that cannot be
created. Each must end with one line on stderr naming the path, exit code 2 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FilledStore

pytestmark = [pytest.mark.cli]

CLAUDE_SESSIONS = Path(sys.executable).parent / "claude-sessions"


def claude_sessions(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLAUDE_SESSIONS), *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file, so ``a_file/anything`` can never be created (even by root)."""
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


def test_export_to_a_missing_directory(filled: FilledStore, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "dir" / "x.jsonl"
    done = claude_sessions("export", filled.root, "--database", filled.url, "--output", str(target))
    assert_one_line_error(done, f"cannot write the export to {target}", "No such file")
    assert not target.parent.exists()


@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "proc"])
def test_export_to_an_unwritable_path(
    filled: FilledStore, tmp_path: Path, a_file: Path, where: str
) -> None:
    target = {
        "under-a-file": a_file / "x.jsonl",
        "a-directory": tmp_path,
        "proc": Path("/proc/claude-sessions-export.jsonl"),  # not creatable, whoever we are
    }[where]
    done = claude_sessions("export", filled.root, "--database", filled.url, "-o", str(target))
    assert_one_line_error(done, f"cannot write the export to {target}")
    assert a_file.read_text() == "not a directory"


def test_export_to_a_writable_path_still_works(filled: FilledStore, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    done = claude_sessions("export", filled.root, "--database", filled.url, "-o", str(target))
    assert done.returncode == 0, done.stderr
    assert "PELICAN" in target.read_text()
    assert f"to {target}" in done.stderr


@pytest.mark.parametrize("command", [["ls"], ["decisions"], ["purge", "--older-than", "1", "-y"]])
def test_an_unusable_home_is_one_line(command: list[str], a_file: Path) -> None:
    home = a_file / "home"
    env = {"CLAUDE_SESSIONS_HOME": str(home), "CLAUDE_SESSIONS_DATABASE_URL": ""}
    done = claude_sessions(*command, **env)
    assert_one_line_error(done, str(home))


def test_the_demo_with_an_unusable_home_is_one_line(a_file: Path) -> None:
    home = a_file / "home"
    done = claude_sessions("demo", CLAUDE_SESSIONS_HOME=str(home), CLAUDE_SESSIONS_DATABASE_URL="")
    assert_one_line_error(done, str(home))


def test_a_sqlite_database_under_a_file_is_one_line(a_file: Path) -> None:
    url = f"sqlite:///{a_file / 'sessions.db'}"
    done = claude_sessions("ls", "--database", url)
    assert_one_line_error(done, str(a_file))
