"""The README's configuration table and `ClaudeSessionsSettings` cannot drift apart: every field
is documented with its variable and default, and every documented ``CLAUDE_SESSIONS_*``
variable is a field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prefect_claude_sessions.storage.settings import ClaudeSessionsSettings, env_name
from prefect_claude_sessions.tasks.credentials import BLOCK_ENV_VAR

README = Path(__file__).resolve().parents[2] / "README.md"
OURS = re.compile(r"`(CLAUDE_SESSIONS_[A-Z0-9_]+)`")


def configuration_table(text: str) -> list[tuple[str, str, str]]:
    """The rows (variable, meaning, default) of the table under "## Configuration"."""
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0].replace(" ", "") == "|variable|meaning|default|", lines[0]
    rows = []
    for line in lines[2:]:  # after the header and the |---| line
        # split on the column bars, not on an escaped "\|" inside a cell
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 3, f"a configuration row needs 3 cells: {line!r}"
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def documented() -> dict[str, tuple[str, str]]:
    """Our variables in the table: name -> (meaning, default cell)."""
    found: dict[str, tuple[str, str]] = {}
    for variable, meaning, default in configuration_table(README.read_text(encoding="utf-8")):
        for name in OURS.findall(variable):
            assert name not in found, f"{name} is documented twice"
            found[name] = (meaning, default)
    return found


def shown_default(field: str) -> str:
    """How the README must show a field's default: its ``doc_default`` when the raw value says
    little (None, a path), else the value itself (``120`` for 120.0)."""
    info = ClaudeSessionsSettings.model_fields[field]
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "doc_default" in extra:
        return str(extra["doc_default"])
    value = info.default
    assert value is not None, f"{field}: a None default needs a doc_default"
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_table_is_found_and_lists_our_variables() -> None:
    rows = documented()
    assert len(rows) >= 10  # the parser found the table, not an empty section


@pytest.mark.parametrize("field", sorted(ClaudeSessionsSettings.model_fields))
def test_every_field_is_documented_with_its_variable_and_default(field: str) -> None:
    rows = documented()
    name = env_name(field)
    assert name in rows, f"{name} (ClaudeSessionsSettings.{field}) is missing from the README table"
    meaning, default = rows[name]
    assert meaning, f"{name} has no meaning in the README table"
    expected = shown_default(field)
    # the cell is the default, optionally followed by an explanation: "8388608 (8 MiB)"
    assert default == expected or default.startswith(expected + " "), (
        f"README shows {name} default {default!r}, the model has {expected!r}"
    )


def test_every_documented_variable_is_a_field() -> None:
    fields = {env_name(f) for f in ClaudeSessionsSettings.model_fields}
    unknown = sorted(set(documented()) - fields)
    assert not unknown, f"documented in the README but not in ClaudeSessionsSettings: {unknown}"


def test_every_variable_named_anywhere_in_the_docs_exists() -> None:
    """Prose mentions too (README and docs/): a renamed variable leaves no stale reference."""
    root = README.parent
    fields = {env_name(f) for f in ClaudeSessionsSettings.model_fields}
    test_only = {"CLAUDE_SESSIONS_TEST_POSTGRES"}  # the test suite's own PostgreSQL DSN
    stale = {}
    for path in [README, *sorted((root / "docs").glob("*.md"))]:
        names = set(re.findall(r"CLAUDE_SESSIONS_[A-Z0-9_]*[A-Z0-9]", path.read_text("utf-8")))
        missing = names - fields - test_only
        if missing:
            stale[path.name] = sorted(missing)
    assert not stale, f"variables named in the docs that the settings do not have: {stale}"


def test_the_credentials_block_constant_is_the_fields_variable() -> None:
    # tasks.credentials keeps the name as a literal (it must not import the store at startup)
    assert env_name("credentials_block") == BLOCK_ENV_VAR
