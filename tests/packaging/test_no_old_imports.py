"""Guard: nothing in the repository refers to our modules by their old top-level names.

The folders ``tasks/``, ``flows/`` and ``storage/`` install as ``prefect_claude_sessions.tasks``,
``.flows`` and ``.storage``; an ``import tasks`` (or a ``"tasks.service"`` module path, a
``python -m tasks.standin``, a ``flows/triage.py:email_triage`` entrypoint) only works from a
checkout, and in a user's project it would pick up the user's own ``tasks.py``. The editable
install used by the tests hides such mistakes, so this test reads the git-tracked sources:
Python with the AST (imports, and string constants that are whole module paths) and
everything else (YAML, Makefile, CI script, TOML, Markdown) with regular expressions.
"""

from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OLD = ("tasks", "flows", "storage")
_OLD = "|".join(OLD)

#: Files allowed to mention the old names, and why.
ALLOWED = {
    # imports the *user's* own tasks.py and flows/ in a scratch project, on purpose
    "tests/packaging/test_wheel.py",
    # the fake sources that prove this guard fails
    "tests/packaging/test_no_old_imports.py",
}

#: A string that is a whole dotted module path (optionally ``:attribute``), e.g.
#: "tasks.service" or "flows.triage:email_triage"; file names like "tasks.py" are not.
MODULE_PATH = re.compile(
    rf"^(?:{_OLD})(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_][\w.]*)?$",
)
FILE_SUFFIXES = {"py", "json", "jsonl", "yaml", "yml", "toml", "md", "txt", "db", "log", "ini"}

#: Patterns in any text (also inside Python strings, e.g. a command line).
TEXT_PATTERNS = [
    (re.compile(rf"-m\s+(?:{_OLD})(?:\.|\b)"), "`python -m` of an old top-level module"),
    (re.compile(rf"^\s*(?:from\s+(?:{_OLD})(?:\.|\s)|import\s+(?:{_OLD})\b)", re.M), "old import"),
    (
        # inline code in prose or a `python -c "..."` one-liner
        re.compile(rf"[`\"';]\s*(?:from\s+(?:{_OLD})(?:\.\w+)*\s+import\b|import\s+(?:{_OLD})\b)"),
        "old import in inline code",
    ),
    (
        re.compile(rf"(?<![\w./-])(?:{_OLD})/[\w/]+\.py:\w+"),
        "path-style entrypoint into an old folder",
    ),
    (
        re.compile(rf"(?<![\w.])(?:{_OLD})(?:\.\w+)+:[A-Za-z_]\w*"),
        "module:attribute reference to an old module",
    ),
]


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}: {self.text}"


def is_old(module: str | None) -> bool:
    return module is not None and module.split(".", 1)[0] in OLD


def is_module_path(value: str) -> bool:
    if not MODULE_PATH.match(value):
        return False
    last = value.split(":", 1)[0].rsplit(".", 1)[-1]
    return last not in FILE_SUFFIXES


def python_findings(source: str, path: str = "<source>") -> list[Finding]:
    """Old-style imports and module-path strings in Python ``source``."""
    found: list[Finding] = []
    tree = ast.parse(source, filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_old(alias.name):
                    found.append(Finding(path, node.lineno, "old import", f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and is_old(node.module):
                found.append(
                    Finding(path, node.lineno, "old import", f"from {node.module} import ...")
                )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if is_module_path(value.strip()):
                found.append(Finding(path, node.lineno, "old module path in a string", value))
                continue
            for pattern, what in TEXT_PATTERNS:
                match = pattern.search(value)
                if match:
                    found.append(Finding(path, node.lineno, what, match.group(0).strip()))
    return found


def text_findings(text: str, path: str = "<text>") -> list[Finding]:
    """Old-style references in a non-Python file (YAML, Makefile, shell, TOML, Markdown)."""
    found = []
    for pattern, what in TEXT_PATTERNS:
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Finding(path, line, what, match.group(0).strip()))
    return found


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return sorted({n.decode() for n in out.split(b"\0") if n})


def is_checked_text(name: str) -> bool:
    return (
        name.endswith((".yaml", ".yml", ".toml", ".md", ".sh", ".cfg", ".ini"))
        or Path(name).name == "Makefile"
        or name.startswith(".ci/")
    )


# --------------------------------------------------------------------------- the guard


def test_no_old_top_level_references_in_the_repository() -> None:
    files = [n for n in tracked_files() if (REPO / n).is_file() and n not in ALLOWED]
    python = [n for n in files if n.endswith(".py")]
    text = [n for n in files if is_checked_text(n)]
    # what the guard covers (a broken listing must not pass as "nothing found")
    assert "flows/cli.py" in python and "tests/conftest.py" in python
    assert any(n.startswith("benchmarks/") for n in python)
    assert {"prefect.yaml", "Makefile", "pyproject.toml"} <= set(text)
    findings: list[Finding] = []
    for name in python:
        findings += python_findings((REPO / name).read_text(encoding="utf-8"), name)
    for name in text:
        findings += text_findings((REPO / name).read_text(encoding="utf-8"), name)
    assert not findings, "old top-level module names:\n" + "\n".join(map(str, findings))


# --------------------------------------------------------------------------- it can fail


@pytest.mark.parametrize(
    "source",
    [
        "from tasks import init_session",
        "from tasks.service import run_turn",
        "import storage",
        "import storage.engine as engine",
        "import os, flows.triage",
        "def f():\n    from flows import cli\n",
        'monkeypatch.setattr("tasks.service.run_turn", fake)',
        'importlib.import_module("storage.models")',
        'ENTRY = "flows.triage:email_triage"',
        'cmd = [sys.executable, "-m", "tasks.standin"]',
        'cmd = "python -m tasks.standin --port 1"',
        'code = "import tasks\\nprint(tasks)"',
        'code = """\nfrom storage import open_db\n"""',
    ],
)
def test_python_findings_catch_old_references(source: str) -> None:
    assert python_findings(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from prefect_claude_sessions.tasks import init_session",
        "import prefect_claude_sessions.storage.engine",
        "from . import tasks",
        "from .conftest import FilledStore",
        "from tests.flows.conftest import x",
        "import tasksx, my_flows",
        'PATH = "tasks.py"',
        'NAME = "storage.db"',
        'ENTRY = "prefect_claude_sessions.flows.triage:email_triage"',
        'cmd = [sys.executable, "-m", "prefect_claude_sessions.tasks.standin"]',
        'doc = "the tasks, flows and storage folders"',
        'doc = "data flows from tasks.\\n"',
        'text = "see flows/data/sample_inbox.json"',
    ],
)
def test_python_findings_pass_new_references(source: str) -> None:
    assert python_findings(source) == []


@pytest.mark.parametrize(
    "text",
    [
        "    entrypoint: flows.triage:email_triage\n",
        "    entrypoint: flows/triage.py:email_triage\n",
        "demo:\n\t$(BIN)/python -m flows.cli demo\n",
        "```python\nfrom tasks import init_session\n```\n",
        'claude-sessions = "flows.cli:app"\n',
        "python -m storage.rotation\n",
        "  `from storage import SQLModelSessionStore; store = SQLModelSessionStore(url)`.\n",
        'python -c "from storage import generate_key; print(generate_key())"\n',
    ],
)
def test_text_findings_catch_old_references(text: str) -> None:
    assert text_findings(text), text


@pytest.mark.parametrize(
    "text",
    [
        "    entrypoint: prefect_claude_sessions.flows.triage:email_triage\n",
        'claude-sessions = "prefect_claude_sessions.flows.cli:app"\n',
        'package-dir = { "prefect_claude_sessions.flows" = "flows" }\n',
        "The repository folders flows/, tasks/ and storage/ install inside the namespace.\n",
        "Runs the tasks from the flows of the storage layer.\n",
        "python -m prefect_claude_sessions.tasks.standin\n",
        "`from prefect_claude_sessions.storage import SQLModelSessionStore`\n",
        "a user's own tasks.py, imported as `tasks`, is left alone\n",
    ],
)
def test_text_findings_pass_new_references(text: str) -> None:
    assert text_findings(text) == []


def test_findings_name_the_file_and_line() -> None:
    (finding,) = python_findings("x = 1\nimport storage\n", "pkg/mod.py")
    assert str(finding) == "pkg/mod.py:2: old import: import storage"
