"""A reusable end-to-end harness: a real Prefect server, real work pools, real workers.

Nothing here is mocked. Every piece starts or talks to real processes:

- :class:`PrefectServer` runs ``prefect server start`` on a fresh PostgreSQL database
  (SQLite-backed servers hit ``database is locked`` under concurrent runs).
- :func:`prefect_cli` runs the real ``prefect`` command of this venv.
- :func:`create_process_pool`, :func:`deploy_all` and :func:`run_deployment` do what a user does.
- :class:`Worker` runs ``prefect worker start --type process``; give two workers different
  ``env``/``cwd`` to simulate two machines.
- :func:`wait_for_flow_run` and the ``read_*`` helpers read the REST API, i.e. the data the
  dashboard shows (flow runs, task runs, artifacts, events, logs, the run graph).

Every process gets an isolated ``PREFECT_HOME``, inherits no ``PREFECT_*`` variable from the
test runner, writes its output to a log file, and is stopped with its whole process tree
(flow-run processes live in their own sessions, so a process-group kill alone misses them).
Failures raise ``AssertionError`` with the tails of the relevant logs.

Typical use (see ``tests/e2e/test_harness.py``)::

    with PrefectServer(tmp_path) as server:
        create_process_pool(server, "pool")
        deploy_all(server, project_dir)
        with Worker(server, "pool", workdir=tmp_path / "machine-a"):
            run_id = run_deployment(server, "flow/deployment", {"x": 1})
            run = wait_for_flow_run(server, run_id, expect="COMPLETED")
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import psycopg
import yaml
from prefect_claude_sessions.flows.prefect_server import (
    PrefectServerProcess,
    ServerError,
    choose_port,
    descendants,
    die_with_parent,
    kill_tree,
    send_signal,
)

from tests.conftest import POSTGRES_ADMIN_DSN, drop_postgres_database, make_postgres_database

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PREFECT = str(VENV_BIN / "prefect")

TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})

#: Wall-clock measurements (seconds) keyed by what was measured; printed at the end of a
#: pytest session by ``tests/e2e/conftest.py``.
TIMINGS: dict[str, list[float]] = defaultdict(list)

_counter = itertools.count(1)


def record_timing(what: str, seconds: float) -> None:
    TIMINGS[what].append(seconds)


# --------------------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free a moment ago on 127.0.0.1, below the ephemeral range (see
    `choose_port`)."""
    return choose_port()


def tail(path: Path | None, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (or a note that it is missing)."""
    if path is None or not path.exists():
        return f"<no log at {path}>"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises ``AssertionError`` with ``message`` (a string or a callable producing one, e.g. log
    tails) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.0f}s: {text}")
        time.sleep(interval)


def isolated_env(home: Path, api_url: str | None, extra: Mapping[str, str] | None = None) -> dict:
    """Environment for one Prefect process.

    Starts from this process's environment without any ``PREFECT_*`` variable (so a developer's
    profile or ``PREFECT_API_URL`` cannot leak in), then sets an isolated ``PREFECT_HOME``, the
    API URL, and switches off analytics, telemetry, colours, line wrapping and prompts.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
            "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "PREFECT_LOGGING_COLORS": "false",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "VIRTUAL_ENV": str(VENV_BIN.parent),
            "COLUMNS": "200",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


# --------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------


class _Killable(Protocol):
    def kill(self) -> None: ...


_LIVE: set[_Killable] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort when a test run ends without its fixtures' teardown."""
    for process in list(_LIVE):
        process.kill()


class ManagedProcess:
    """A long-running child in its own session, its output appended to ``log_path``.

    :meth:`stop` sends SIGTERM to the process group, waits, then SIGKILLs the group and every
    descendant found before the signal (Prefect starts flow runs with ``start_new_session``).
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def describe(self, lines: int = 60) -> str:
        state = "running" if self.alive() else f"exited rc={self.popen and self.popen.returncode}"
        return f"--- {self.name} ({state}, log {self.log_path}) ---\n{self.tail(lines)}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the whole tree. Idempotent."""
        if self.popen is None:
            return
        tree = descendants(self.popen.pid)
        if self.popen.poll() is None:
            send_signal(self.popen.pid, signal.SIGTERM, group=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self._kill_all(tree)

    def kill(self) -> None:
        """SIGKILL the process and its whole tree at once (a machine that dies)."""
        if self.popen is None:
            return
        self._kill_all(descendants(self.popen.pid))

    def _kill_all(self, tree: Iterable[int]) -> None:
        assert self.popen is not None
        kill_tree(self.popen.pid, tree)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        _LIVE.discard(self)


class CommandError(AssertionError):
    """A ``prefect`` command failed or timed out; the message carries its output."""


def prefect_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 120.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``.venv/bin/prefect *args``; raise :class:`CommandError` (with output) on failure."""
    cmd = [PREFECT, *args]
    try:
        proc = subprocess.run(
            cmd,
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise CommandError(
            f"`prefect {' '.join(args)}` timed out after {timeout}s\n"
            f"--- stdout ---\n{_last(out)}\n--- stderr ---\n{_last(err)}"
        ) from None
    if check and proc.returncode != 0:
        raise CommandError(
            f"`prefect {' '.join(args)}` exited {proc.returncode} (cwd={cwd})\n"
            f"--- stdout ---\n{_last(proc.stdout)}\n--- stderr ---\n{_last(proc.stderr)}"
        )
    return proc


def _last(text: str | None, lines: int = 60) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


# --------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------


_DB_PREFIX = "cs_e2e_prefect_p"


def drop_orphaned_server_databases() -> list[str]:
    """Drop server databases left by test processes that died (names carry the owner's pid);
    databases of live processes, e.g. another engineer's test run, are kept."""
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{_DB_PREFIX}%",)
            )
        ]
    dropped = []
    for name in names:
        owner = name[len(_DB_PREFIX) :].split("_", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            drop_postgres_database(name)
            dropped.append(name)
    return dropped


class PrefectServer:
    """``prefect server start`` on a fresh PostgreSQL database; a context manager.

    ``workdir`` receives the server's home, its log and one home per client process.
    ``scheduler=False`` (the default) turns the scheduler service off so cron schedules in a
    deployed ``prefect.yaml`` cannot start runs in the middle of a test; pass ``True`` to test
    schedules. Events and task runs are flushed every ``flush_seconds`` (Prefect's default is
    5 s) so tests see them sooner.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        scheduler: bool = False,
        flush_seconds: float = 1.0,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.requested_port = port
        self.scheduler = scheduler
        self.flush_seconds = flush_seconds
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.db_name: str | None = None
        self.process: PrefectServerProcess | None = None
        self.workers: list[Worker] = []  # registered by Worker, for diagnostics
        self._http: httpx.Client | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def database_url(self) -> str:
        """The server's database, in the asyncpg form Prefect wants."""
        assert self.db_name, "server not started"
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
        return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{self.db_name}"

    def env(self, home: Path | None = None, **extra: str) -> dict[str, str]:
        """Environment for a client process (CLI, worker, script) talking to this server.

        Each call gets a fresh ``PREFECT_HOME`` under ``workdir/homes`` unless ``home`` is given.
        """
        if home is None:
            homes = self.workdir / "homes"
            homes.mkdir(parents=True, exist_ok=True)
            home = Path(tempfile.mkdtemp(prefix="home-", dir=homes))
        return isolated_env(home, self.api_url, extra)

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> PrefectServer:
        """A fresh database, then the package's launcher (free port, health wait, retry on
        another port if the chosen one was taken meanwhile)."""
        started = time.monotonic()
        drop_orphaned_server_databases()
        self.db_name, _ = make_postgres_database(prefix=f"{_DB_PREFIX}{os.getpid()}")
        home = self.workdir / "server-home"
        base = isolated_env(home, None, None)
        self.process = PrefectServerProcess(
            home,
            port=self.requested_port,
            base_env=base,
            settings={
                **{k: v for k, v in base.items() if k.startswith("PREFECT_")},
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database_url,
                "PREFECT_SERVER_UI_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": str(self.scheduler).lower(),
                "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": str(self.flush_seconds),
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": str(self.flush_seconds),
                **self.extra_env,
            },
            cwd=self.workdir,
            log_path=self.workdir / "server.log",
            die_with_parent=True,
        )
        _LIVE.add(self.process)
        try:
            self.process.ready(timeout_s=self.startup_timeout)
        except ServerError as exc:
            description = self.process.describe()
            self.stop()
            raise AssertionError(f"{exc}\n{description}") from None
        except BaseException:
            self.stop()
            raise
        record_timing("server start (s)", time.monotonic() - started)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> None:
        """Stop registered workers, then the server, then drop its database. Idempotent."""
        for worker in list(self.workers):
            worker.stop()
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.process is not None:
            self.process.stop(timeout_s=10.0)
            _LIVE.discard(self.process)
        if self.db_name is not None:
            drop_postgres_database(self.db_name)
            self.db_name = None

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST API ----------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.api_url, timeout=30)
        return self._http

    def get(self, path: str, **params: Any) -> Any:
        """``GET /api{path}``; raises ``AssertionError`` with the body on an HTTP error."""
        return self._checked(self.http.get(path, params=params or None))

    def post(self, path: str, body: Any = None) -> Any:
        """``POST /api{path}`` with a JSON body; raises ``AssertionError`` on an HTTP error."""
        return self._checked(self.http.post(path, json=body if body is not None else {}))

    def delete(self, path: str) -> None:
        response = self.http.delete(path)
        if response.status_code not in (200, 204, 404):
            self._checked(response)

    def _checked(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise AssertionError(
                f"{response.request.method} {response.request.url} -> {response.status_code}: "
                f"{response.text[:2000]}"
            )
        return response.json() if response.content else None

    # -- diagnostics -------------------------------------------------------------------

    def diagnostics(self, flow_run_id: str | None = None, lines: int = 40) -> str:
        """Log tails of the server and its workers, and a flow run's state and logs."""
        parts = []
        if flow_run_id:
            with contextlib.suppress(Exception):
                run = self.get(f"/flow_runs/{flow_run_id}")
                state = run.get("state") or {}
                parts.append(
                    f"--- flow run {flow_run_id}: {run.get('state_type')} "
                    f"{state.get('message') or ''} labels={run.get('labels')} ---"
                )
                logs = read_logs(self, flow_run_id)
                parts.append("\n".join(f"{lg['level']} {lg['message']}" for lg in logs[-lines:]))
        for worker in self.workers:
            if worker.process is not None:
                parts.append(worker.process.describe(lines))
        if self.process is not None:
            parts.append(self.process.describe(lines))
        return "\n".join(parts)


# --------------------------------------------------------------------------------------
# pools, deployments, workers
# --------------------------------------------------------------------------------------


def create_process_pool(
    server: PrefectServer, name: str, *, env: Mapping[str, str] | None = None
) -> dict:
    """``prefect work-pool create NAME --type process``; returns the pool as the API sees it."""
    prefect_cli(
        ["work-pool", "create", name, "--type", "process"], env=env or server.env(), timeout=90
    )
    return server.get(f"/work_pools/{name}")


def delete_pool(server: PrefectServer, name: str) -> None:
    server.delete(f"/work_pools/{name}")


def deploy_all(
    server: PrefectServer,
    project_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 240.0,
) -> dict[str, dict]:
    """``prefect --no-prompt deploy --all`` in ``project_dir`` (which holds ``prefect.yaml``).

    Returns ``{"flow-name/deployment-name": deployment}`` (the API's view) for every deployment
    declared in ``prefect.yaml``; fails if one of them did not reach the server.
    """
    started = time.monotonic()
    proc = prefect_cli(
        ["--no-prompt", "deploy", "--all"],
        env=env or server.env(),
        cwd=project_dir,
        timeout=timeout,
    )
    record_timing("deploy --all (s)", time.monotonic() - started)
    spec = yaml.safe_load((project_dir / "prefect.yaml").read_text()) or {}
    wanted = [d["name"] for d in spec.get("deployments") or []]
    deployments = server.post("/deployments/filter", {"deployments": {"name": {"any_": wanted}}})
    flows = {f["id"]: f["name"] for f in server.post("/flows/filter", {})}
    found = {f"{flows[d['flow_id']]}/{d['name']}": d for d in deployments}
    missing = set(wanted) - {d["name"] for d in deployments}
    if missing:
        raise AssertionError(
            f"deployments {sorted(missing)} not on the server after deploy --all\n"
            f"--- stdout ---\n{_last(proc.stdout)}\n--- stderr ---\n{_last(proc.stderr)}"
        )
    return found


class Worker:
    """``prefect worker start --pool POOL --type process`` as a context manager.

    Everything that makes a "machine" is per worker: ``workdir`` holds its ``PREFECT_HOME``,
    its log and (by default) its ``cwd``; ``env`` adds variables (e.g. ``CLAUDE_CONFIG_DIR``,
    ``ANTHROPIC_BASE_URL``). Flow-run processes inherit the worker's environment. With
    ``machine_tmp=True`` the worker's ``TMPDIR`` is ``workdir/tmp``: a deployment without pull
    steps runs each flow in a fresh temp dir, which then lies under this machine's folder.
    ``query_seconds`` is how often the worker polls (Prefect's default is 10 s).
    """

    def __init__(
        self,
        server: PrefectServer,
        pool: str,
        *,
        workdir: Path,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        limit: int | None = None,
        query_seconds: float = 1.0,
        machine_tmp: bool = True,
    ) -> None:
        self.server = server
        self.pool = pool
        self.workdir = Path(workdir)
        self.name = name or f"{pool}-worker-{next(_counter)}"
        self.cwd = Path(cwd) if cwd else self.workdir / "cwd"
        self.limit = limit
        extra = {"PREFECT_WORKER_QUERY_SECONDS": str(query_seconds)}
        if machine_tmp:
            (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
            extra["TMPDIR"] = str(self.workdir / "tmp")
        extra.update(env or {})
        self.env = server.env(home=self.workdir / "prefect-home", **extra)
        self.process: ManagedProcess | None = None

    def start(self, *, wait: bool = True, timeout: float = 90.0) -> Worker:
        """Start the worker; with ``wait`` return once the server lists it on the pool."""
        args = [PREFECT, "worker", "start", "--pool", self.pool, "--type", "process"]
        args += ["--name", self.name, "--no-create-pool-if-not-found"]
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        self.process = ManagedProcess(
            f"worker {self.name}",
            args,
            env=self.env,
            cwd=self.cwd,
            log_path=self.workdir / "worker.log",
        )
        started = time.monotonic()
        self.process.start()
        self.server.workers.append(self)
        if wait:
            try:
                wait_until(
                    self._registered,
                    timeout=timeout,
                    message=lambda: f"worker {self.name} never polled\n{self.process.describe()}",
                )
            except BaseException:
                self.stop()
                raise
            record_timing("worker ready (s)", time.monotonic() - started)
        return self

    def _registered(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise AssertionError(f"worker {self.name} exited\n{self.process.describe()}")
        workers = self.server.post(f"/work_pools/{self.pool}/workers/filter", {})
        return any(w["name"] == self.name for w in workers)

    def flow_run_pids(self) -> list[int]:
        """PIDs of the processes this worker started (flow runs and their children)."""
        return descendants(self.process.pid) if self.process and self.process.alive() else []

    def tail(self, lines: int = 60) -> str:
        return self.process.tail(lines) if self.process else "<worker not started>"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the worker, then SIGKILL it and every flow run it started. Idempotent."""
        if self.process is not None:
            self.process.stop(timeout)
        if self in self.server.workers:
            self.server.workers.remove(self)

    def kill(self) -> None:
        """SIGKILL the worker and its flow runs at once, like a machine losing power."""
        if self.process is not None:
            self.process.kill()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# flow runs
# --------------------------------------------------------------------------------------

_UUID_RE = re.compile(r"UUID:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def run_deployment(
    server: PrefectServer,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    tags: Sequence[str] = (),
    job_variables: Mapping[str, Any] | None = None,
    flow_run_name: str | None = None,
    timeout: float = 90.0,
) -> str:
    """``prefect deployment run FLOW/DEPLOYMENT --params JSON``; returns the flow run id."""
    args = ["deployment", "run", name]
    if params:
        args += ["--params", json.dumps(dict(params))]
    for tag in tags:
        args += ["--tag", tag]
    for key, value in (job_variables or {}).items():
        args += ["--job-variable", f"{key}={json.dumps(value)}"]
    if flow_run_name:
        args += ["--flow-run-name", flow_run_name]
    proc = prefect_cli(args, env=env or server.env(), timeout=timeout)
    match = _UUID_RE.search(proc.stdout)
    if not match:
        raise AssertionError(
            f"no flow run id in `prefect deployment run` output:\n{proc.stdout}\n{proc.stderr}"
        )
    return match.group(1)


def create_flow_run(
    server: PrefectServer,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    tags: Sequence[str] = (),
) -> str:
    """Create a run of ``FLOW/DEPLOYMENT`` through the REST API (what the UI's Run button
    does); ~2 s cheaper than the CLI per run. Returns the flow run id."""
    flow_name, deployment_name = name.split("/", 1)
    deployment = server.get(f"/deployments/name/{flow_name}/{deployment_name}")
    run = server.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": dict(params or {}), "tags": list(tags)},
    )
    return run["id"]


def read_flow_run(server: PrefectServer, flow_run_id: str) -> dict:
    return server.get(f"/flow_runs/{flow_run_id}")


def wait_for_flow_run(
    server: PrefectServer,
    flow_run_id: str,
    timeout: float = 180.0,
    *,
    expect: str | None = None,
    poll: float = 0.5,
) -> dict:
    """Poll until the flow run reaches a terminal state; return the flow run (API JSON).

    ``run["state_type"]`` is e.g. ``"COMPLETED"``; ``run["labels"]["prefect.worker.name"]``
    names the worker that ran it. With ``expect`` (e.g. ``"COMPLETED"``) another final state
    raises ``AssertionError`` carrying the run's logs and the server's and workers' log tails.
    """
    started = time.monotonic()
    run = wait_until(
        lambda: _terminal(server, flow_run_id),
        timeout=timeout,
        interval=poll,
        message=lambda: f"flow run {flow_run_id} not finished\n{server.diagnostics(flow_run_id)}",
    )
    record_timing("wait for flow run (s)", time.monotonic() - started)
    if expect is not None and run["state_type"] != expect.upper():
        raise AssertionError(
            f"flow run {flow_run_id} ended {run['state_type']}, expected {expect.upper()}\n"
            f"{server.diagnostics(flow_run_id)}"
        )
    return run


def _terminal(server: PrefectServer, flow_run_id: str) -> dict | None:
    run = read_flow_run(server, flow_run_id)
    return run if run.get("state_type") in TERMINAL_STATES else None


def wait_for_suspension(
    server: PrefectServer, flow_run_id: str, worker: Worker, *, timeout: float = 180.0
) -> dict:
    """Wait until the run is Suspended (waiting for input) and ``worker`` holds none of its
    processes any more: a suspended run needs no worker. Returns the run."""
    run = wait_until(
        lambda: (r := read_flow_run(server, flow_run_id))["state_name"] == "Suspended" and r,
        timeout=timeout,
        message=lambda: server.diagnostics(flow_run_id),
    )
    wait_until(lambda: not worker.flow_run_pids(), timeout=60, message=worker.tail)
    return run


def wait_for_flow_runs(
    server: PrefectServer,
    flow_run_ids: Iterable[str],
    timeout: float = 300.0,
    *,
    expect: str | None = None,
) -> list[dict]:
    """:func:`wait_for_flow_run` for several runs sharing one deadline; returns them in order."""
    deadline = time.monotonic() + timeout
    return [
        wait_for_flow_run(
            server, run_id, max(1.0, deadline - time.monotonic()), expect=expect, poll=0.5
        )
        for run_id in flow_run_ids
    ]


# --------------------------------------------------------------------------------------
# dashboard data
# --------------------------------------------------------------------------------------


def read_artifacts(
    server: PrefectServer,
    flow_run_id: str | None = None,
    *,
    key: str | None = None,
    type: str | None = None,
) -> list[dict]:
    """Artifacts (``/api/artifacts/filter``) of a flow run and/or with a key, oldest first."""
    flt: dict[str, Any] = {}
    if flow_run_id:
        flt["flow_run_id"] = {"any_": [flow_run_id]}
    if key:
        flt["key"] = {"any_": [key]}
    if type:
        flt["type"] = {"any_": [type]}
    newest_first = server.post("/artifacts/filter", {"artifacts": flt, "sort": "CREATED_DESC"})
    return newest_first[::-1]


def read_task_runs(server: PrefectServer, flow_run_id: str) -> list[dict]:
    """Task runs of a flow run, by expected start time. Prefect records task runs from
    events, so they appear up to the server's flush interval after the flow finished."""
    return server.post(
        "/task_runs/filter",
        {"flow_runs": {"id": {"any_": [flow_run_id]}}, "sort": "EXPECTED_START_TIME_ASC"},
    )


def read_logs(server: PrefectServer, flow_run_id: str, limit: int = 200) -> list[dict]:
    """Logs the flow run sent to the API, oldest first (pages through all of them)."""
    logs: list[dict] = []
    while True:
        page = server.post(
            "/logs/filter",
            {
                "logs": {"flow_run_id": {"any_": [flow_run_id]}},
                "sort": "TIMESTAMP_ASC",
                "limit": limit,
                "offset": len(logs),
            },
        )
        logs.extend(page)
        if len(page) < limit:
            return logs


def read_events(
    server: PrefectServer,
    *,
    flow_run_id: str | None = None,
    resource_id: str | None = None,
    prefix: str | Sequence[str] | None = None,
    max_events: int = 1000,
) -> list[dict]:
    """Events (``/api/events/filter``) about a flow run or any resource, oldest first.

    ``flow_run_id`` matches events whose primary *or related* resource is the run, so it
    includes the run's task-run and artifact events. ``prefix`` filters event names, e.g.
    ``"prefect.flow-run."``. Events are persisted in batches (see ``flush_seconds``).
    """
    flt: dict[str, Any] = {"order": "ASC"}
    ids = [i for i in (resource_id, flow_run_id and f"prefect.flow-run.{flow_run_id}") if i]
    if ids:
        flt["any_resource"] = {"id": ids}
    if prefix:
        flt["event"] = {"prefix": [prefix] if isinstance(prefix, str) else list(prefix)}
    page = server.post("/events/filter", {"filter": flt, "limit": 50})  # the API maximum
    events = list(page["events"])
    while page.get("next_page") and len(events) < max_events:
        page = server._checked(server.http.get(page["next_page"]))
        events.extend(page["events"])
    return events


def read_flow_run_graph(server: PrefectServer, flow_run_id: str) -> dict:
    """The run graph the dashboard draws (``/api/flow_runs/{id}/graph-v2``): nodes, artifacts."""
    return server.get(f"/flow_runs/{flow_run_id}/graph-v2")


def unique_name(prefix: str) -> str:
    """``prefix-xxxxxxxx``: pool and deployment names that cannot collide across tests."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------
# the model and a user's project
# --------------------------------------------------------------------------------------


class StandinProcess(ManagedProcess):
    """The project's stand-in Messages-API model in its own process on a free port, so flow
    runs of other processes (workers, scripts) reach it; :meth:`start` waits until it answers.
    ``request_log`` makes it append every request it served to that JSONL file."""

    def __init__(self, workdir: Path, *, request_log: Path | None = None) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "prefect_claude_sessions.tasks.standin"]
        args += ["--port", str(self.port)]
        if request_log is not None:
            args += ["--log", str(request_log)]
        super().__init__(
            "stand-in model", args, env={**os.environ}, cwd=workdir, log_path=workdir / "model.log"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def model(self):  # -> StandinModel (imported late: the harness stays light to import)
        from prefect_claude_sessions.tasks.standin import StandinModel

        return StandinModel.attach(self.url)

    def healthy(self) -> bool:
        try:
            return bool(self.model().health().get("ok"))
        except Exception:
            return False

    def start(self) -> StandinProcess:
        super().start()
        wait_until(self.healthy, timeout=30, message=lambda: f"no answer\n{self.describe()}")
        return self

    def __enter__(self) -> StandinProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def machine_env(standin_url: str, store_url: str, machine: Path, **extra: str) -> dict[str, str]:
    """What one machine's worker (and so its flow-run processes) gets: the model's credentials,
    the shared session store, and its own folder of local transcripts under ``machine``."""
    from prefect_claude_sessions.tasks.standin import StandinModel

    (machine / "claude").mkdir(parents=True, exist_ok=True)
    return {
        **StandinModel.attach(standin_url).env(),
        "CLAUDE_SESSIONS_DATABASE_URL": store_url,
        "CLAUDE_CONFIG_DIR": str(machine / "claude"),
        **extra,
    }


def write_project(
    project: Path, *, name: str, pool: str, flows: Mapping[str, str], deployments: Mapping[str, str]
) -> Path:
    """A user's scratch project: ``flows`` (module name -> source) beside a ``prefect.yaml``
    whose ``deployments`` (deployment name -> entrypoint) run on the process pool ``pool``."""
    project.mkdir(parents=True, exist_ok=True)
    for module, source in flows.items():
        (project / f"{module}.py").write_text(source)
    spec = {
        "name": name,
        "prefect-version": "3.9.1",
        "pull": [],
        "deployments": [
            {
                "name": deployment,
                "entrypoint": entrypoint,
                "work_pool": {"name": pool, "job_variables": {"working_dir": "."}},
            }
            for deployment, entrypoint in deployments.items()
        ],
    }
    (project / "prefect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return project


class WebhookReceiver:
    """An HTTP endpoint on a free local port that keeps every JSON body POSTed to it: where a
    Prefect notification block sends, so a test reads what a person would have been sent."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: list[dict] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    received.append({"path": self.path, "json": json.loads(raw)})
                except ValueError:
                    received.append({"path": self.path, "body": raw.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, count: int = 1, timeout: float = 60.0) -> list[dict]:
        """The first ``count`` bodies, once that many arrived (automations run in seconds)."""
        wait_until(
            lambda: len(self.received) >= count,
            timeout=timeout,
            message=lambda: f"{len(self.received)} of {count} notifications: {self.received}",
        )
        return self.received[:count]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
