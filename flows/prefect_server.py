"""Run ``prefect server start`` as a child process: on a free port, waited for until healthy,
stopped with its whole process tree.

The one launcher of the project: ``claude-sessions demo`` starts a lean SQLite-backed server
for its dashboard with it, and the end-to-end tests and benchmarks start PostgreSQL-backed
servers with it (they pass the database URL and other settings in ``settings``).

Two things every caller got wrong at some point and this module does once:

- ``--port`` alone is not enough: the UI and the server's own API settings keep pointing at
  4200 unless ``PREFECT_SERVER_API_PORT`` says the same port;
- the server's children (and their children, which may live in other sessions) must die with
  it, so stopping sends SIGTERM to the process group, then SIGKILLs the group and every
  descendant found in ``/proc``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

#: The first port tried when none is requested (Prefect's default).
DEFAULT_PORT = 4200
#: How many ports from ``DEFAULT_PORT`` on are tried; they stay below the kernel's ephemeral
#: range, where any outgoing connection could take a port before the server binds it.
PORT_RANGE = 800
START_TIMEOUT_S = 120.0

#: Background services a server only showing the runs of one process does not need (faster
#: start, less CPU beside the flows); pass as ``settings`` (the demo does).
LEAN_SERVICES: dict[str, str] = {
    f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
    for name in (
        "SCHEDULER",
        "LATE_RUNS",
        "FOREMAN",
        "CANCELLATION_CLEANUP",
        "PAUSE_EXPIRATIONS",
        "REPOSSESSOR",
        "CLEANUP_RECONCILER",
        "TRIGGERS",
        "DB_VACUUM",
    )
}


class ServerError(RuntimeError):
    """The server could not be started; the message says why in one line (and names its log)."""


class PortInUse(ServerError):
    """The requested port is taken, or no port in the range is free."""


class PortTaken(ServerError):
    """The server lost the race for its port to another process between choice and bind."""


# --------------------------------------------------------------------------- ports


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``port`` can be bound on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def choose_port(
    requested: int | None = None, *, skip: Iterable[int] = (), host: str = "127.0.0.1"
) -> int:
    """The requested port (it must be free), else the first free one from 4200 on (not in
    ``skip``). Raises :class:`PortInUse` naming the port."""
    if requested is not None:
        if not 0 < requested < 65536:
            raise PortInUse(f"port {requested} is not a TCP port (expected 1-65535)")
        if not port_is_free(requested, host):
            raise PortInUse(f"port {requested} is in use")
        return requested
    skipped = set(skip)
    for port in range(DEFAULT_PORT, DEFAULT_PORT + PORT_RANGE):
        if port not in skipped and port_is_free(port, host):
            return port
    raise PortInUse(f"no free port in {DEFAULT_PORT}-{DEFAULT_PORT + PORT_RANGE - 1}")


# --------------------------------------------------------------------------- process trees


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        children[int(fields[1])].append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (Linux ``/proc``), whatever session they are in."""
    children = _children_map()
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def send_signal(pid: int, sig: int, *, group: bool = False) -> None:
    """``kill``/``killpg`` that ignores processes already gone (or no longer ours)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def kill_tree(pid: int, known: Iterable[int] = ()) -> None:
    """SIGKILL ``pid``'s process group, ``pid``, the ``known`` pids and every descendant of
    any of them (late children included)."""
    tree = [*known, *descendants(pid)]
    for child in list(tree):
        tree.extend(descendants(child))
    send_signal(pid, signal.SIGKILL, group=True)
    send_signal(pid, signal.SIGKILL)
    for child in tree:
        send_signal(child, signal.SIGKILL)


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """PR_SET_PDEATHSIG: the child is SIGKILLed when its parent dies (even by SIGKILL).

    SIGKILL, not SIGTERM: a process whose server is gone can hang on SIGTERM, retrying the API.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def prefect_executable() -> list[str]:
    """The ``prefect`` command of this interpreter's environment."""
    beside = Path(sys.executable).parent / "prefect"
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-m", "prefect"]


# --------------------------------------------------------------------------- the server


class PrefectServerProcess:
    """``prefect server start`` in the background, in its own process group, stopped for sure.

    ``home`` becomes its ``PREFECT_HOME`` (the SQLite database lives there unless ``settings``
    set ``PREFECT_SERVER_DATABASE_CONNECTION_URL``). ``port=None`` picks a free port from 4200
    on and, if another process takes it before the server binds it, :meth:`ready` retries on
    another; a requested port is used as is or refused. ``settings`` are extra environment
    variables for the server (``PREFECT_*`` settings); ``base_env`` is the environment they are
    added to (default: this process's), without any inherited ``PREFECT_*`` variable so a
    developer's profile cannot leak in. ``die_with_parent`` kills the server when the
    starting process dies (tests), instead of leaving it to :meth:`stop`.

    Typical use::

        with PrefectServerProcess(home, settings=LEAN_SERVICES) as server:
            ...  # server.api_url answers
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        settings: Mapping[str, str] | None = None,
        base_env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.home = Path(home)
        self.host = host
        self.port_requested = port is not None
        self.port = choose_port(port, host=host)
        self.settings = dict(settings or {})
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.cwd = cwd
        self.log_path = log_path or self.home / "server.log"
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self._tried: set[int] = {self.port}
        self._log_offset = 0

    # -- addresses ---------------------------------------------------------------------

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def env(self) -> dict[str, str]:
        """The server's environment: ``base_env`` without ``PREFECT_*``, this server's home,
        host and port (also ``PREFECT_SERVER_API_PORT``, see the module doc), then
        ``settings``."""
        env = {k: v for k, v in self.base_env.items() if not k.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_PROFILES_PATH": str(self.home / "profiles.toml"),
                "PREFECT_SERVER_API_HOST": self.host,
                "PREFECT_SERVER_API_PORT": str(self.port),
                "PREFECT_UI_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_COLORS": "false",
                "COLUMNS": "200",  # its log lines unwrapped, so errors quote whole lines
            }
        )
        env.update({k: str(v) for k, v in self.settings.items()})
        return env

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> PrefectServerProcess:
        """Start the server and return at once (it boots while the caller does other work);
        :meth:`ready` waits for it."""
        if self.alive():
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.cwd is not None:
            self.cwd.mkdir(parents=True, exist_ok=True)
        command = [
            *prefect_executable(),
            "server",
            "start",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                command,
                env=self.env(),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
                preexec_fn=die_with_parent if self.die_with_parent else None,
            )
        return self

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Return when ``/api/health`` answers; raise :class:`PortTaken` if the port was lost,
        :class:`ServerError` if the server exits or does not answer within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        log_size = self._log_offset  # the log is appended to across restarts
        while time.monotonic() < deadline:
            if not self.alive():
                log = self.log_text()[log_size:]
                # Prefect's own check ("Port N is already in use") or uvicorn's bind error
                # ("address already in use"), when another process was quicker
                if "already in use" in log.lower():
                    raise PortTaken(f"port {self.port} was taken before the server could bind it")
                raise ServerError(
                    f"the Prefect server exited during start-up; see {self.log_path}: "
                    f"{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.25)
        raise ServerError(
            f"the Prefect server did not answer within {timeout_s:.0f} s; see {self.log_path}"
        )

    def ready(self, timeout_s: float = START_TIMEOUT_S, attempts: int = 3) -> PrefectServerProcess:
        """Start (if not started) and wait until healthy. If another process took a port this
        object chose, start again on another free port (up to ``attempts`` times); a requested
        port is never changed. Stops the server before raising."""
        try:
            self.start()
            for attempt in range(attempts):
                try:
                    self.wait_healthy(timeout_s)
                    return self
                except PortTaken:
                    if self.port_requested or attempt == attempts - 1:
                        raise
                    self.stop()
                    self.port = choose_port(None, skip=self._tried, host=self.host)
                    self._tried.add(self.port)
                    self.start()
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def healthy(self) -> bool:
        """True if the server answers ``GET /api/health`` with ``true``."""
        try:
            response = httpx.get(f"{self.api_url}/health", timeout=2)
            return response.status_code == 200 and response.json() is True
        except (httpx.HTTPError, ValueError):
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group, wait up to ``timeout_s``, then SIGKILL the group and
        every descendant (also those in other sessions). Idempotent."""
        proc, self.process = self.process, None
        if proc is None:
            return
        tree = descendants(proc.pid)
        if proc.poll() is None:
            send_signal(proc.pid, signal.SIGTERM, group=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)
        kill_tree(proc.pid, tree)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the server and its whole tree at once, without a graceful stop."""
        proc, self.process = self.process, None
        if proc is not None:
            kill_tree(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def __enter__(self) -> PrefectServerProcess:
        return self.ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- logs --------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 1) -> str:
        """The last ``lines`` lines of the server's log."""
        return "\n".join(self.log_text().strip().splitlines()[-lines:])

    def describe(self, lines: int = 60) -> str:
        """State and log tail, for failure messages."""
        state = "running" if self.alive() else "stopped"
        return f"--- prefect-server ({state}, log {self.log_path}) ---\n{self.log_tail(lines)}"
