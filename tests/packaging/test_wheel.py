"""The built wheel, installed into a fresh virtual environment, used from a user's project that
has its own ``tasks.py`` and ``flows/`` package: everything of ours lives in the
``prefect_claude_sessions`` namespace, so neither side shadows the other.

How the environment is made (about 10 s, no network beyond what ``make install`` needs):
the wheel is built by ``pip wheel --no-deps`` from a copy of the checkout's files (so no
``build/`` or ``*.egg-info`` lands in the repository), a venv without pip is created, the wheel
is installed into it by this venv's pip (``pip --python``, ``--no-deps --no-index``), and a
``.pth`` file adds this venv's site-packages *after* the scratch venv's own, so the
dependencies (Prefect, the SDK, ...) resolve without a download. A ``.pth`` line only adds a
path: the ``.pth`` files in that directory, among them the editable install's finder, are not
run, so the checkout itself is not importable there (asserted below).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip"]


@dataclass
class Installed:
    wheel: Path
    venv: Path
    project: Path
    site_packages: Path
    env: dict[str, str]
    seconds: dict[str, float]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """A command in the user's project directory, with the scratch venv's tools."""
        return subprocess.run(
            list(args),
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python_json(self, code: str) -> dict:
        """Run ``code`` with the scratch venv's python in the project; it prints one JSON
        object as its last line."""
        done = self.run(str(self.python), "-c", textwrap.dedent(code))
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])


def checkout_copy(dest: Path) -> Path:
    """The checkout's tracked and new (not ignored) files, copied to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO / name
        if source.is_file():  # tracked but deleted in the working tree: skip
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Python path or Prefect settings leaking in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    seconds: dict[str, float] = {}

    clock = time.monotonic()
    source = checkout_copy(base / "source")
    dist = base / "dist"
    done = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = dist.glob("prefect_claude_sessions-*.whl")
    seconds["build wheel"] = time.monotonic() - clock

    clock = time.monotonic()
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    done = subprocess.run(
        [
            *PIP,
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the dependencies, from this venv (appended after the scratch venv's own site-packages)
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    seconds["venv + install"] = time.monotonic() - clock

    project = base / "user-project"
    (project / "flows").mkdir(parents=True)
    (project / "tasks.py").write_text('def init_session():\n    return "user"\n')
    (project / "flows" / "__init__.py").write_text('OWNER = "user"\n')
    (project / "flows" / "triage.py").write_text('def email_triage():\n    return "user"\n')
    env = clean_env(
        PREFECT_HOME=str(base / "prefect-home"),
        CLAUDE_SESSIONS_HOME=str(base / "claude-sessions-home"),
        COLUMNS="200",
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("CLAUDE_SESSIONS_DATABASE_URL", None)
    print(f"packaging timings: {seconds}")
    return Installed(wheel, venv, project, site, env, seconds)


def test_the_wheel_holds_only_the_namespace(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    version = installed.wheel.name.split("-")[1]
    assert tops == {"prefect_claude_sessions", f"prefect_claude_sessions-{version}.dist-info"}
    # no top-level tasks/, flows/, storage/, tests/ or benchmarks/ sneaks in
    assert not any(n.startswith(("tests/", "benchmarks/", "tasks/", "flows/")) for n in names)
    assert "prefect_claude_sessions/storage/migrations/env.py" in names
    assert any(n.startswith("prefect_claude_sessions/storage/migrations/versions/") for n in names)
    assert "prefect_claude_sessions/flows/data/sample_inbox.json" in names
    assert "prefect_claude_sessions/tasks/standin/__main__.py" in names


def test_the_users_tasks_and_flows_and_ours_are_different_modules(installed: Installed) -> None:
    got = installed.python_json(
        """
        import json, importlib.metadata
        import prefect
        import tasks, flows, flows.triage
        import prefect_claude_sessions.tasks as our_tasks
        import prefect_claude_sessions.flows.triage as our_triage
        try:
            import storage  # the checkout's top-level folders are not importable here
            leaked = storage.__file__
        except ImportError:
            leaked = None
        print(json.dumps({
            "user_tasks": tasks.__file__,
            "user_result": tasks.init_session(),
            "user_flows": flows.__file__,
            "user_owner": flows.OWNER,
            "user_triage": flows.triage.email_triage(),
            "our_tasks": our_tasks.__file__,
            "our_init_is_task": isinstance(our_tasks.init_session, prefect.Task),
            "our_triage": our_triage.__file__,
            "our_flow_is_flow": isinstance(our_triage.email_triage, prefect.Flow),
            "same": tasks is our_tasks,
            "leaked_storage": leaked,
            "dist": str(importlib.metadata.distribution("prefect-claude-sessions")._path),
        }))
        """
    )
    project, site = str(installed.project), str(installed.site_packages)
    assert got["user_tasks"] == f"{project}/tasks.py" and got["user_result"] == "user"
    assert got["user_flows"] == f"{project}/flows/__init__.py" and got["user_owner"] == "user"
    assert got["user_triage"] == "user"
    assert got["our_tasks"] == f"{site}/prefect_claude_sessions/tasks/__init__.py"
    assert got["our_triage"] == f"{site}/prefect_claude_sessions/flows/triage.py"
    assert got["our_init_is_task"] is True and got["our_flow_is_flow"] is True
    assert got["same"] is False
    assert got["leaked_storage"] is None
    assert got["dist"].startswith(site)


def test_the_console_script_runs(installed: Installed) -> None:
    script = installed.venv / "bin" / "claude-sessions"
    assert script.exists()
    done = installed.run(str(script), "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    for command in ("ls", "show", "export", "purge", "demo"):
        assert command in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_prefect_yaml_entrypoints_resolve_to_flows(installed: Installed) -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    entrypoints = [d["entrypoint"] for d in config["deployments"]]
    assert len(entrypoints) >= 9
    assert all(e.startswith("prefect_claude_sessions.flows.") for e in entrypoints)
    got = installed.python_json(
        f"""
        import json
        from prefect.flows import Flow, load_flow_from_entrypoint
        found = {{}}
        for entrypoint in {entrypoints!r}:
            flow = load_flow_from_entrypoint(entrypoint)
            found[entrypoint] = [isinstance(flow, Flow), flow.name, flow.fn.__module__]
        print(json.dumps(found))
        """
    )
    assert set(got) == set(entrypoints)
    for entrypoint, (is_flow, name, module) in got.items():
        assert is_flow, entrypoint
        assert name
        assert module == entrypoint.split(":", 1)[0]
    assert got["prefect_claude_sessions.flows.triage:email_triage"][1] == "email-triage"


def test_migrations_and_sample_inbox_ship_and_work(installed: Installed) -> None:
    store = installed.project / "store.db"
    got = installed.python_json(
        f"""
        import json, sqlalchemy as sa
        from prefect_claude_sessions.storage import get_engine, open_db, sessions
        from prefect_claude_sessions.storage.schema import MIGRATIONS_DIR, head_revision
        from prefect_claude_sessions.flows.triage import SAMPLE_INBOX, load_inbox
        url = "sqlite:///{store}"
        engine = get_engine(url)
        with engine.connect() as conn:
            revision = conn.execute(sa.text("select version_num from claude_sessions_alembic_version")).scalar()
        tables = sorted(sa.inspect(engine).get_table_names())
        with open_db(url) as db:
            listed = sessions.list_sessions(db, limit=None)
        inbox = load_inbox()
        print(json.dumps({{
            "migrations": str(MIGRATIONS_DIR),
            "revision": revision,
            "head": head_revision(),
            "tables": tables,
            "sessions": len(listed),
            "inbox_file": str(SAMPLE_INBOX),
            "inbox": [e.id for e in inbox],
        }}))
        """
    )
    site = str(installed.site_packages)
    assert got["migrations"] == f"{site}/prefect_claude_sessions/storage/migrations"
    assert got["revision"] == got["head"] and got["head"]
    assert {
        "claude_sessions_alembic_version",
        "claude_sessions_sessions",
        "claude_sessions_turns",
        "claude_sessions_decisions",
    } <= set(got["tables"]), got
    assert not {"alembic_version", "sessions", "turns"} & set(got["tables"]), got
    assert got["sessions"] == 0
    assert store.stat().st_size > 0
    assert got["inbox_file"].startswith(site)
    assert len(got["inbox"]) >= 5 and len(set(got["inbox"])) == len(got["inbox"])

    # and the installed CLI reads that store
    done = installed.run(
        str(installed.venv / "bin" / "claude-sessions"), "ls", "--json", "-d", f"sqlite:///{store}"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_prefect_loads_our_collection_without_a_warning(installed: Installed) -> None:
    code = textwrap.dedent(
        """
        import json, logging, warnings
        logging.basicConfig(level=logging.DEBUG)
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            import prefect
            from prefect.plugins import load_prefect_collections
            loaded = load_prefect_collections(reload=True)
        ours = loaded.get("prefect_claude_sessions")
        print(json.dumps({
            "ours": getattr(ours, "__name__", repr(ours)),
            "file": getattr(ours, "__file__", None),
            "failed": {k: repr(v) for k, v in loaded.items() if isinstance(v, Exception)},
            "warnings": [str(w.message) for w in caught if "collection" in str(w.message).lower()],
        }))
        """
    )
    done = installed.run(str(installed.python), "-c", code)
    assert done.returncode == 0, done.stdout + done.stderr
    everything = done.stdout + done.stderr
    assert "Failed to load collection" not in everything, everything
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["ours"] == "prefect_claude_sessions.tasks.credentials", got
    assert got["file"].startswith(str(installed.site_packages))
    assert "prefect_claude_sessions" not in got["failed"]
    assert got["warnings"] == []
