"""`claude-sessions demo`: the whole product on one machine, with nothing to set up.

It starts the embedded defaults:

- the SQLite store (`storage.database_url()`, or ``--database``);
- a local Prefect server for the dashboard (``prefect server start`` on port 4200 if free, else
  another free port; its database lives in ``$CLAUDE_SESSIONS_HOME/prefect-server``), unless
  ``PREFECT_API_URL`` points at a server already;
- the local stand-in model, only when no Claude credentials are configured (no
  ``ANTHROPIC_API_KEY``/``ANTHROPIC_AUTH_TOKEN``/credentials block/other CLI auth).

Then it runs the e-mail triage flow on the bundled sample inbox (billing and technical cases are
handed to specialists), runs it again to show that a re-run sends nothing twice, explores three
approaches to a new problem in parallel forks, prints a summary, and stops everything it started.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect_claude_sessions.flows.lineage_view import lineage, lineage_tree_view
from prefect_claude_sessions.flows.prefect_server import (
    LEAN_SERVICES,
    PortInUse,
    PrefectServerProcess,
    ServerError,
)
from prefect_claude_sessions.storage import (
    database_url,
    decisions,
    get_engine,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.storage.config import DATABASE_URL_ENV, masked_url, sessions_home
from prefect_claude_sessions.storage.settings import ClaudeSessionsSettings, get_settings
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

DEMO_TEAM = "demo"
DEMO_PROBLEM = (
    "Our nightly sales report job now takes 40 minutes and has started to miss its 06:00 "
    "deadline. How should we make it fast again?"
)
DEMO_APPROACHES = [
    "add indexes for the report's slowest queries",
    "cache the daily aggregates incrementally",
    "move the report to a read replica and run its queries in parallel",
]

STANDIN_ENV = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
)


class DemoError(Exception):
    """The demo could not run; the message says why in one line."""


@dataclass
class DemoSettings:
    database_url: str | None = None
    port: int | None = None
    keep_open: bool = False
    verbose: bool = False


@dataclass
class FlowRunReport:
    title: str
    flow_run_id: str
    url: str | None
    seconds: float
    turns_sent: int
    cost_usd: float
    session_ids: set[str]


@dataclass
class DemoReport:
    store_url: str
    model: str
    dashboard_url: str | None
    runs: list[FlowRunReport] = field(default_factory=list)
    triage_session_id: str | None = None
    exploration_session_id: str | None = None
    chosen_approach: str | None = None
    sessions_created: list[dict[str, Any]] = field(default_factory=list)
    decisions_by_key: dict[str, int] = field(default_factory=dict)
    turns_sent: int = 0
    cost_usd: float = 0.0
    replayed: int = 0
    artifact_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0
    server_home: Path | None = None


# --------------------------------------------------------------------------- credentials


def credentials_configured(environ: dict[str, str] | None = None) -> bool:
    """True if the CLI can reach Claude without the stand-in (the same sources `tasks.credentials`
    reads: API key or auth token, a credentials block name, or another CLI auth method)."""
    from prefect_claude_sessions.tasks.credentials import PASSTHROUGH_AUTH

    env = os.environ if environ is None else environ
    ours = get_settings() if environ is None else ClaudeSessionsSettings.from_environ(environ)
    names = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", *PASSTHROUGH_AUTH)
    return bool(ours.credentials_block) or any((env.get(n) or "").strip() for n in names)


# --------------------------------------------------------------------------- environment


@dataclass
class DemoServices:
    store_url: str
    api_url: str
    ui_url: str | None
    model: str
    standin_url: str | None
    server_home: Path | None = None
    started: list[str] = field(default_factory=list)


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def demo_services(settings: DemoSettings, console: Console) -> Iterator[DemoServices]:
    """Start what the demo needs (store, Prefect server, stand-in model) and stop it after."""
    home = sessions_home()
    url = settings.database_url or database_url()
    external_api = os.environ.get("PREFECT_API_URL", "").strip() or None
    use_standin = not credentials_configured()

    with contextlib.ExitStack() as stack:
        server: PrefectServerProcess | None = None
        if external_api is None:
            server = demo_server(home / "prefect-server", settings.port)
            stack.callback(server.stop)
            server.start()  # boots while the store and the model start
            console.print(f"[dim]starting a Prefect server on {server.ui_url} ...[/]")

        try:
            get_engine(url)  # the store's schema (Alembic head) on first use
        except Exception as exc:
            raise DemoError(f"the session store is not usable: {exc}") from exc
        console.print(f"[green]store[/]   {masked_url(url)}")

        env: dict[str, str] = {DATABASE_URL_ENV: url}
        standin_url = None
        if use_standin:
            from prefect_claude_sessions.tasks.standin import StandinModel

            model = StandinModel(log_path=home / "demo" / "standin-requests.jsonl")
            model.start()
            stack.callback(model.stop)
            standin_url = model.base_url
            env.update(model.env())
            # keep demo transcripts out of the user's own ~/.claude
            if not os.environ.get("CLAUDE_CONFIG_DIR"):
                env["CLAUDE_CONFIG_DIR"] = str(home / "demo" / "claude-config")
            model_label = f"local stand-in model at {standin_url}"
            console.print(
                f"[yellow]model[/]   no ANTHROPIC_API_KEY or other Claude credentials found: "
                f"using the {model_label} (deterministic answers; the costs shown are the CLI's "
                "estimate from its token counts, nothing is billed). "
                "Set ANTHROPIC_API_KEY to run the same demo against Claude."
            )
        else:
            model_label = "Claude (credentials from the environment)"
            console.print(f"[green]model[/]   {model_label}")

        ui_url: str | None
        if server is not None:
            ready_server(server)
            api_url, ui_url = server.api_url, server.ui_url
            console.print(f"[green]prefect[/] dashboard at [link={ui_url}]{ui_url}[/link]")
        else:
            assert external_api is not None
            api_url = external_api
            ui_url = prefect_ui_url()
            console.print(f"[green]prefect[/] using the server at {api_url} (PREFECT_API_URL)")
        env["PREFECT_API_URL"] = api_url

        stack.enter_context(patched_environ(env))
        stack.enter_context(working_directory(home / "demo" / "workspace"))
        stack.enter_context(prefect_settings(api_url))
        stack.callback(drain_prefect_workers)  # runs before the server stops
        stack.callback(close_warm_clients)
        started = []
        if server is not None:
            started.append(f"the Prefect server (pid {server.pid})")
        if standin_url:
            started.append(f"the stand-in model ({standin_url})")
        yield DemoServices(
            store_url=url,
            api_url=api_url,
            ui_url=ui_url,
            model=model_label,
            standin_url=standin_url,
            server_home=server.home if server is not None else None,
            started=started,
        )


def demo_server(home: Path, port: int | None) -> PrefectServerProcess:
    """The dashboard's server: SQLite in ``home``, no background services beyond recording
    the runs' states and events (faster start, less CPU beside the flows), on ``port`` or the
    first free one from 4200 on."""
    try:
        # die_with_parent: a demo killed outright (SIGKILL, a closed terminal) takes its
        # server with it instead of leaving port 4200 taken
        return PrefectServerProcess(
            home,
            port=port,
            settings={**LEAN_SERVICES, "PREFECT_LOGGING_COLORS": "false"},
            die_with_parent=True,
        )
    except PortInUse as exc:
        raise DemoError(f"{exc}; pick another with --port") from None


def ready_server(server: PrefectServerProcess) -> None:
    """Wait for the server; if another process took a port it chose meanwhile, it starts
    again on another (a port the user chose is kept)."""
    try:
        server.ready()
    except PortInUse as exc:
        raise DemoError(f"{exc}; pick one with --port") from None
    except ServerError as exc:
        raise DemoError(str(exc)) from None


def prefect_ui_url() -> str | None:
    from prefect.settings import PREFECT_UI_URL

    return PREFECT_UI_URL.value() or None


@contextlib.contextmanager
def prefect_settings(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client at the demo's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def drain_prefect_workers() -> None:
    """Send the runs' buffered logs and events to the server now, while it is still up (they
    would otherwise be retried against a stopped server when the process exits)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # never started
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        drained = EventsWorker.drain_all()
        if inspect.isawaitable(drained):
            await drained

    from prefect_claude_sessions.tasks.artifacts import report_publisher

    report_publisher.flush()  # the runs' last lineage reports, while the server is up
    try:
        run_coro_as_sync(drain())
    except Exception as exc:  # a view of the runs; the runs themselves are done
        print(f"warning: could not flush Prefect logs and events: {exc}", file=sys.stderr)


def close_warm_clients() -> None:
    """Disconnect the warm Claude Code CLIs the session tasks kept (no process is left behind)."""
    from prefect_claude_sessions.tasks.client_pool import default_pool

    default_pool().close()


def quiet_prefect_console() -> None:
    """Prefect's per-task console lines would bury the demo's output; the runs' logs still go to
    the server (see them in the dashboard). Must run before Prefect is imported."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


# --------------------------------------------------------------------------- the demo


def demo_inbox(tag: str) -> list[Any]:
    """The bundled sample inbox, its message ids made unique to this demo run, so each run adds
    new e-mails to the team's long-lived triage session."""
    from prefect_claude_sessions.flows.triage import load_inbox

    return [e.model_copy(update={"id": f"{e.id}-{tag}"}) for e in load_inbox()]


def run_flow(
    title: str, doing: str, fn: Any, ui_url: str | None, console: Console, **params: Any
) -> tuple[Any, FlowRunReport]:
    """Run one flow in this process against the demo's Prefect server; report what it sent."""
    started = time.monotonic()
    with console.status(f"{doing} ..."):
        state = fn(**params, return_state=True)
    seconds = time.monotonic() - started
    flow_run_id = str(state.state_details.flow_run_id)
    if not state.is_completed():
        raise DemoError(f"{title} ended {state.name}: {state.message or 'see the flow run logs'}")
    result = state.result()
    with open_db() as db:
        sent = [t for t in turns.list_turns_for_flow_run(db, flow_run_id)]
    report = FlowRunReport(
        title=title,
        flow_run_id=flow_run_id,
        url=f"{ui_url}/runs/flow-run/{flow_run_id}" if ui_url else None,
        seconds=seconds,
        turns_sent=len(sent),
        cost_usd=sum(t.cost_usd or 0.0 for t in sent),
        session_ids={t.session_id for t in sent},
    )
    console.print(
        f"[green]done[/]    {doing}: {report.turns_sent} prompts sent, "
        f"${report.cost_usd:.4f}, {seconds:.1f} s"
    )
    return result, report


def run_demo_flows(services: DemoServices, console: Console) -> DemoReport:
    from prefect_claude_sessions.flows.explore import explore_approaches
    from prefect_claude_sessions.flows.triage import email_triage

    started_at = datetime.now(timezone.utc)
    clock = time.monotonic()
    report = DemoReport(
        store_url=services.store_url,
        model=services.model,
        dashboard_url=services.ui_url,
        server_home=services.server_home,
    )
    inbox = demo_inbox(uuid.uuid4().hex[:6])

    results, triage = run_flow(
        "email-triage",
        f"triage of {len(inbox)} e-mails (team {DEMO_TEAM!r}, handoffs to specialists)",
        email_triage,
        services.ui_url,
        console,
        team=DEMO_TEAM,
        emails=inbox,
        review_priorities=[],  # unattended: no person answers (see docs/GUARDRAILS.md)
    )
    report.runs.append(triage)
    report.triage_session_id = results[-1].session_id if results else None

    _, rerun = run_flow(
        "email-triage (re-run)",
        "the same triage again (a retry: nothing may be sent twice)",
        email_triage,
        services.ui_url,
        console,
        team=DEMO_TEAM,
        emails=inbox,
        review_priorities=[],  # unattended: no person answers (see docs/GUARDRAILS.md)
    )
    report.runs.append(rerun)
    report.replayed = len(inbox)
    if rerun.turns_sent:
        raise DemoError(f"the re-run sent {rerun.turns_sent} prompts again; it must send none")

    exploration, explore = run_flow(
        "explore-approaches",
        f"exploration of {len(DEMO_APPROACHES)} approaches in parallel forks",
        explore_approaches,
        services.ui_url,
        console,
        approaches=DEMO_APPROACHES,
        problem=DEMO_PROBLEM,
    )
    report.runs.append(explore)
    report.exploration_session_id = exploration.base_session_id
    report.chosen_approach = exploration.chosen

    touched = set().union(*(r.session_ids for r in report.runs))
    report.turns_sent = sum(r.turns_sent for r in report.runs)
    report.cost_usd = sum(r.cost_usd for r in report.runs)
    with open_db() as db:
        created = [sessions.get_session(db, sid) for sid in touched]
        report.sessions_created = sorted(
            (
                {"id": r.id, "agent": r.agent_name, "origin": r.origin.value}
                for r in created
                if r.created_at >= started_at
            ),
            key=lambda s: (s["origin"], s["agent"]),
        )
        for d in decisions.list_decisions(db, since=started_at, limit=100_000):
            if d.session_id in touched:
                report.decisions_by_key[d.key] = report.decisions_by_key.get(d.key, 0) + 1
    report.artifact_keys = [
        "claude-sessions-email-triage",
        "claude-sessions-explore-approaches",
        f"triage-progress-{DEMO_TEAM}",
        f"triage-results-{DEMO_TEAM}",
        "explore-approaches",
    ]
    report.seconds = time.monotonic() - clock
    return report


def render_report(report: DemoReport, console: Console) -> None:
    console.rule("[bold]claude-sessions demo: summary")
    origins: dict[str, int] = {}
    for s in report.sessions_created:
        origins[s["origin"]] = origins.get(s["origin"], 0) + 1
    made = ", ".join(f"{n} {o}" for o, n in sorted(origins.items())) or "none"
    decided = ", ".join(f"{n} {k}" for k, n in sorted(report.decisions_by_key.items())) or "none"
    console.print(f"Sessions created: {len(report.sessions_created)} ({made})")
    console.print(
        f"Turns sent:       {report.turns_sent} (and {report.replayed} replayed from the store on the re-run)"
    )
    console.print(f"Decisions:        {sum(report.decisions_by_key.values())} ({decided})")
    console.print(f"Cost:             ${report.cost_usd:.4f}")
    console.print(f"Model:            {report.model}")
    console.print(f"Store:            {masked_url(report.store_url)}")
    if report.chosen_approach:
        console.print(f"Chosen approach:  {report.chosen_approach}")

    runs = Table(title="Flow runs", title_justify="left")
    runs.add_column("flow", no_wrap=True)
    for name in ("prompts sent", "cost", "time", "run"):
        runs.add_column(name, justify="right", no_wrap=True)
    for r in report.runs:
        runs.add_row(
            r.title,
            str(r.turns_sent),
            f"${r.cost_usd:.4f}",
            f"{r.seconds:.1f} s",
            r.flow_run_id[:8],
        )
    console.print(runs)
    # One URL a line, never wrapped (soft_wrap): a terminal or a log file gets it whole, so it
    # can be clicked or copied.
    console.print("Flow runs in the dashboard:")
    for r in report.runs:
        console.print(f"  {r.flow_run_id[:8]} {r.title}: {r.url or r.flow_run_id}", soft_wrap=True)

    if report.triage_session_id:
        with open_db() as db:
            root = lineage(db, report.triage_session_id)
        console.print("Lineage of the triage session (handoffs to specialists):")
        console.print(lineage_tree_view(root, {s["id"] for s in report.sessions_created}))

    where = [
        f"Dashboard: {report.dashboard_url or 'your Prefect server'}",
        "  Runs: the flow runs above (email-triage, explore-approaches) and their task runs",
        "  (init/resume/handoff/fork <session>), with a run graph per flow run",
        "  Artifacts: " + ", ".join(report.artifact_keys),
        "Command line:",
        "  claude-sessions ls",
    ]
    if report.triage_session_id:
        where += [
            f"  claude-sessions tree {report.triage_session_id[:8]}",
            f"  claude-sessions show {report.triage_session_id[:8]}",
        ]
    where.append("  claude-sessions decisions --key triage")
    if report.server_home:
        where += [
            "The demo's Prefect server runs without its scheduler and automation triggers:",
            "deployment schedules and automations do not fire there (use your own server).",
            "The demo's Prefect server stops when the demo ends (--keep-open keeps it up);",
            "browse these runs again later with:",
            f"  PREFECT_HOME={report.server_home} prefect server start",
        ]
    console.print(Panel("\n".join(where), title="Where to look", title_align="left"))


def run_demo(settings: DemoSettings, console: Console) -> DemoReport:
    """Start the embedded defaults, run the demo flows, print the summary, stop everything."""
    if not settings.verbose:
        quiet_prefect_console()
    if settings.database_url:
        os.environ[DATABASE_URL_ENV] = settings.database_url
    started = time.monotonic()
    with demo_services(settings, console) as services:
        report = run_demo_flows(services, console)
        render_report(report, console)
        if settings.keep_open and services.ui_url:
            console.print(f"The dashboard stays up at {services.ui_url}; press Ctrl-C to stop it.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    stopped = " and ".join(services.started) or "nothing"
    console.print(
        f"[dim]demo finished in {time.monotonic() - started:.1f} s; stopped what it started: "
        f"{stopped}.[/]"
    )
    return report
