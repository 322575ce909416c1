"""Shared plumbing of the benchmarks: machine and version facts, the stand-in model wired like a
worker, a real Prefect server, throw-away PostgreSQL databases, a process-tree RSS sampler and
the JSON result files that ``benchmarks/report.py`` turns into ``RESULTS.md``.

Results go to ``benchmarks/results/<name>.json`` (full runs) or
``benchmarks/results/quick/<name>.json`` (``--quick``); ``--out PATH`` overrides both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS_DIR = ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------ machine and versions


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def versions() -> dict[str, str]:
    from claude_agent_sdk import __version__ as sdk_version
    from prefect_claude_sessions.tasks.sdk_private import bundled_cli_version

    out = {
        "claude_agent_sdk": sdk_version,
        "claude_cli": bundled_cli_version(),
        "python": platform.python_version(),
    }
    for name in ("prefect", "sqlalchemy", "psycopg"):
        with contextlib.suppress(Exception):
            out[name] = __import__(name).__version__
    return out


def machine() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _mem_total_gib(),
        "kernel": platform.release(),
    }


# ------------------------------------------------------------------ statistics


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    """Summary of durations given in seconds, reported in milliseconds."""
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "mean_ms": round(statistics.mean(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: str,
    baseline_value: float,
    target: str | None = None,
    met: bool | None = None,
    ratio_value: float | None = None,
) -> dict[str, Any]:
    """One headline figure: a value, its baseline measured in the same run and their ratio."""
    return {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round(baseline_value, 3),
        "ratio": ratio_value if ratio_value is not None else ratio(value, baseline_value),
        "target": target,
        "met": met,
    }


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


# ------------------------------------------------------------------ result files


def result_path(name: str, quick: bool, out: str | None = None) -> Path:
    if out:
        return Path(out)
    return (RESULTS_DIR / "quick" if quick else RESULTS_DIR) / f"{name}.json"


def write_result(
    name: str,
    *,
    quick: bool,
    params: dict[str, Any],
    figures: list[dict[str, Any]],
    details: dict[str, Any],
    notes: list[str] | None = None,
    load_before: list[float] | None = None,
    started: float | None = None,
    out: str | None = None,
) -> Path:
    """Write one benchmark's machine-readable result; returns the path."""
    doc = {
        "benchmark": name,
        "schema": 1,
        "quick": quick,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1) if started else None,
        "machine": machine(),
        "versions": versions(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "params": params,
        "figures": figures,
        "details": details,
        "notes": notes or [],
    }
    path = result_path(name, quick, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    for f in figures:
        verdict = "" if f.get("met") is None else (" MET" if f["met"] else " MISSED")
        print(
            f"  {f['name']}: {f['value']:g} {f['unit']} vs {f['baseline']} "
            f"{f['baseline_value']:g} -> ratio {f['ratio']:g}"
            f"{' (target ' + f['target'] + ')' if f.get('target') else ''}{verdict}",
            file=sys.stderr,
        )
    print(f"wrote {path}", file=sys.stderr)
    return path


def base_parser(description: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a fast check")
    parser.add_argument(
        "--out", default=None, help="result JSON path (default: benchmarks/results/)"
    )
    return parser


# ------------------------------------------------------------------ PostgreSQL


#: The PostgreSQL server's admin database (the same variable and default as the tests).
POSTGRES_ADMIN_DSN = os.environ.get(
    "CLAUDE_SESSIONS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[tuple[str, str]]:
    """An empty PostgreSQL database, dropped afterwards (even while connections are open);
    yields its name and its URL without a driver (``postgresql://...``)."""
    import uuid

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"the benchmark needs PostgreSQL at {POSTGRES_ADMIN_DSN} "
            f"(CLAUDE_SESSIONS_TEST_POSTGRES): {exc}"
        ) from None
    try:
        yield name, f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_database(prefix: str = "cs_bench") -> Iterator[str]:
    """A throw-away PostgreSQL database (SQLAlchemy psycopg URL), dropped afterwards."""
    with scratch_postgres(prefix) as (_, url):
        try:
            yield url.replace("postgresql://", "postgresql+psycopg://", 1)
        finally:
            from prefect_claude_sessions.storage import dispose_engines

            dispose_engines()


@contextlib.contextmanager
def store_database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'sessions.db'}"
        from prefect_claude_sessions.storage import dispose_engines

        dispose_engines()
    elif kind == "postgres":
        with postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown store kind {kind!r}")


# ------------------------------------------------------------------ a worker's world


@contextlib.contextmanager
def worker_env(tmp: Path, database_url: str | None = None) -> Iterator[Any]:
    """Start the stand-in model and point this process at it like a worker: credentials,
    an empty ``CLAUDE_CONFIG_DIR``, a working directory (chdir) and the store URL.

    Yields the `StandinModel`; restores the environment and cwd afterwards.
    """
    from prefect_claude_sessions.tasks.standin import StandinModel

    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    config = tmp / "claude-config"
    work = tmp / "work"
    config.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    with StandinModel(log_path=tmp / "standin.jsonl") as model:
        try:
            os.environ.update(model.env())
            os.environ["CLAUDE_CONFIG_DIR"] = str(config)
            if database_url:
                os.environ["CLAUDE_SESSIONS_DATABASE_URL"] = database_url
            os.chdir(work)
            yield model
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


@contextlib.contextmanager
def prefect_server(tmp: Path) -> Iterator[str]:
    """A real ``prefect server start`` on a fresh PostgreSQL database (SQLite-backed servers
    lock under concurrent task runs), with this process's Prefect client pointed at it.
    Yields the API URL. Uses the package's launcher, as the demo and the e2e tests do."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    from prefect_claude_sessions.flows.prefect_server import PrefectServerProcess

    home = tmp / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    with (
        scratch_postgres("cs_bench_prefect") as (_, server_db),
        PrefectServerProcess(
            tmp / "prefect-server",
            settings={
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": server_db.replace(
                    "postgresql://", "postgresql+asyncpg://", 1
                ),
                "PREFECT_SERVER_UI_ENABLED": "false",
                # no cron schedule may start runs in the middle of a measurement
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1.0",
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1.0",
                "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
                "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
            },
            die_with_parent=True,
        ) as server,
        temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_HOME: home}),
    ):
        # Plain threads (no copied contextvars) read the environment, not temporary_settings:
        # without these they would start an ephemeral server of their own (~14 s seen).
        saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
        os.environ.update({"PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(home)})
        try:
            yield server.api_url
        finally:
            _flush_prefect_clients()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _flush_prefect_clients() -> None:
    """Send buffered logs and events before the server goes away."""
    with contextlib.suppress(Exception):
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)


def close_default_pool() -> None:
    """Disconnect the warm clients the tasks kept (the CLI children), if any."""
    from prefect_claude_sessions.tasks.client_pool import default_pool

    with contextlib.suppress(Exception):
        default_pool().close()


# ------------------------------------------------------------------ process-tree memory


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def classify(cmdline: str) -> str:
    if "prefect" in cmdline and "server" in cmdline:
        return "prefect_server"
    if "claude" in cmdline and ("_bundled" in cmdline or "--output-format" in cmdline):
        return "cli"
    return "other"


class RssSampler:
    """Samples the RSS of this process and its descendants every ``interval_s`` from /proc.

    ``worker`` = this Python process + its CLI children (what a Prefect worker running the flow
    needs); the Prefect server (started by the benchmark, a child too) is reported apart.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peak: dict[str, int] = {"python": 0, "cli": 0, "worker": 0, "prefect_server": 0}
        self.peak_cli_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        me = os.getpid()
        parts = {"python": _rss_kib(me), "cli": 0, "prefect_server": 0, "other": 0}
        clis = 0
        from prefect_claude_sessions.flows.prefect_server import descendants

        for pid in descendants(me):
            kind = classify(_cmdline(pid))
            parts[kind] += _rss_kib(pid)
            clis += kind == "cli"
        parts["worker"] = parts["python"] + parts["cli"]
        for k in self.peak:
            self.peak[k] = max(self.peak[k], parts[k])
        self.peak_cli_processes = max(self.peak_cli_processes, clis)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def result_mb(self) -> dict[str, float]:
        out = {f"peak_{k}_mb": round(v / 1024, 1) for k, v in self.peak.items()}
        out["peak_cli_processes"] = self.peak_cli_processes
        return out


def tempdir(prefix: str) -> Any:
    return tempfile.TemporaryDirectory(prefix=prefix)
