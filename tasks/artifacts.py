"""The markdown report a flow run gets when it uses sessions: lineage tree, turns, answers, cost.

One artifact per flow run, under a key per flow (``claude-sessions-<flow name>``): the first
publication creates it, later ones update it in place, so the run's Artifacts tab shows one card.
Publications happen in the caller's thread (the task or the flow, with its run context), never
on a timer thread, and the flows call `ReportPublisher.finalize` at the end of their body, so
the report is final before the run reports its final state.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect_claude_sessions.storage import SessionRecord, TurnRecord, open_db, sessions, turns
from prefect_claude_sessions.storage.settings import get_settings

logger = logging.getLogger("claude_sessions")

REPORT_KEY_PREFIX = "claude-sessions-"
#: Flow runs a publisher keeps in memory (see `ReportPublisher._forget_published`).
MAX_RUNS = 512
#: Operations whose turn starts a new session: the turn's label names that session too.
_NEW_SESSION_OPERATIONS = frozenset({"fork", "handoff", "rewind"})


def report_key(flow_name: str | None) -> str:
    """The artifact key of a flow's session report: ``claude-sessions-<flow name as a slug>``
    (Prefect keys are lower-case letters, digits and dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", (flow_name or "flow").lower()).strip("-") or "flow"
    return f"{REPORT_KEY_PREFIX}{slug}"[:100]


def excerpt(text: str | None, limit: int = 80, *, markdown: bool = False) -> str:
    """One line of at most ``limit`` characters (``markdown``: safe inside a table cell)."""
    flat = " ".join((text or "").split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|") if markdown else flat


HIDDEN_TEXT = "(text not shown: CLAUDE_SESSIONS_DASHBOARD_TEXT is off)"


def answer_excerpt(text: str | None, limit: int = 80, *, markdown: bool = False) -> str:
    """`excerpt` of a model's answer (or a decision payload) for the dashboard, unless
    ``CLAUDE_SESSIONS_DASHBOARD_TEXT`` is off: Prefect keeps logs and artifacts in its own
    database, out of reach of a purge, so teams with sensitive text turn this off."""
    from prefect_claude_sessions.storage.settings import get_settings

    if not get_settings().dashboard_text:
        return HIDDEN_TEXT
    return excerpt(text, limit, markdown=markdown)


def log_in_run(message: str) -> None:
    """An INFO line in the current Prefect run's logs (its page in the dashboard), or in the
    package's log outside a run."""
    try:
        from prefect import get_run_logger

        get_run_logger().info(message)
    except Exception:  # outside a run there is no run logger
        logger.debug(message)


def money(cost: float | None) -> str:
    """A cost as operators read it: ``$0.0118``."""
    return f"${(cost or 0.0):.4f}"


def render_lineage(
    records: list[tuple[int, SessionRecord]],
    touched: set[str],
    labels: dict[str, str] | None = None,
    chosen: str | None = None,
) -> str:
    """Markdown bullet tree of sessions; sessions this run touched are in bold, ``labels`` say
    what a session was for, the ``chosen`` session (e.g. the chosen fork) is marked."""
    labels = labels or {}
    lines = []
    for depth, record in records:
        name = f"`{record.id[:8]}`"
        if record.id in touched:
            name = f"**{name}**"
        purpose = (
            f" · {excerpt(labels[record.id], 60, markdown=True)}" if record.id in labels else ""
        )
        mark = " ✅ **chosen**" if chosen and record.id == chosen else ""
        lines.append(
            f"{'  ' * depth}- {name} {record.agent_name} ({record.origin.value}){purpose}{mark}: "
            f"{record.turn_count} turns, {money(record.cost_usd)}"
        )
    return "\n".join(lines)


@dataclass
class ReportNotes:
    """What a flow adds to its report beside the turns: a summary line, labels per turn key,
    the chosen session, turns replayed from the store (sent by an earlier run)."""

    summary: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    replayed: list[str] = field(default_factory=list)
    chosen: str | None = None


def flow_run_report(engine: Any, flow_run_id: str, notes: ReportNotes | None = None) -> str | None:
    """The report's markdown for one flow run, or None if the run used no sessions and the
    flow said nothing about it."""
    notes = notes or ReportNotes()
    with open_db(engine) as db:
        run_turns: list[tuple[TurnRecord, bool]] = [
            (t, False) for t in turns.list_turns_for_flow_run(db, flow_run_id)
        ]
        seen = {t.idempotency_key for t, _ in run_turns}
        for key in notes.replayed:
            if key not in seen and (row := turns.find_turn(db, key)) is not None:
                run_turns.append((row, True))
                seen.add(key)
        if not run_turns and not notes.summary:
            return None
        touched = {t.session_id for t, _ in run_turns}
        session_labels = {
            t.session_id: notes.labels[t.idempotency_key]
            for t, _ in run_turns
            if t.operation in _NEW_SESSION_OPERATIONS and t.idempotency_key in notes.labels
        }
        roots: list[str] = []
        for session_id in sorted(touched):
            chain = sessions.ancestors(db, session_id)
            root = chain[-1].id if chain else session_id
            if root not in roots:
                roots.append(root)
        trees = [
            render_lineage(sessions.lineage_tree(db, root), touched, session_labels, notes.chosen)
            for root in roots
        ]
        rows = [
            f"| {i} | {excerpt(notes.labels.get(t.idempotency_key, ''), 40, markdown=True)} | "
            f"`{t.session_id[:8]}` | {t.operation} | "
            f"{'replayed' if replayed else t.status.value} | {t.duration_ms or 0} ms | "
            f"{money(0.0 if replayed else t.cost_usd)} | {answer_excerpt(t.result_text, 60, markdown=True)} |"
            for i, (t, replayed) in enumerate(run_turns, start=1)
        ]
        sent = [t for t, replayed in run_turns if not replayed]
        total = sum(t.cost_usd or 0 for t in sent)
        budgets = budget_lines(db, sorted(touched))
    lines = ["# Claude sessions in this flow run", ""]
    if notes.summary:
        lines += [*notes.summary, ""]
    if trees:
        lines += ["## Lineage", *trees, ""]
    lines.append(
        f"## Turns ({len(sent)} sent, {len(run_turns) - len(sent)} replayed, {money(total)})"
    )
    if not rows:
        return "\n".join([*lines, "", "No turns in this run: nothing was sent to the model."])
    return "\n".join(
        [
            *lines,
            "",
            "| # | for | session | operation | status | duration | cost | answer |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            *(["", "## Budgets", "", *budgets] if budgets else []),
        ]
    )


def budget_lines(db: Any, session_ids: list[str]) -> list[str]:
    """One line per budget governing any of ``session_ids`` (each budget once)."""
    from .budget import budget_statuses

    seen: dict[str, Any] = {}
    for session_id in session_ids:
        for status in budget_statuses(db, session_id):
            seen.setdefault(status.owner_id, status)
    return [
        f"- `{s.owner_id[:8]}` and its descendants: ${s.spent_usd:.4f} of ${s.budget_usd:.4f} "
        f"spent ({s.share:.0%}), ${s.remaining_usd:.4f} left"
        for s in seen.values()
    ]


def current_api_url() -> str | None:
    """The Prefect API this process talks to (None: an ephemeral in-process server)."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def current_flow_name() -> str | None:
    """The name of the flow whose run the caller is in (None outside a flow run)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow is not None:
        return ctx.flow.name
    try:
        from prefect.runtime import flow_run

        return flow_run.flow_name or None
    except Exception:  # no run at all
        return None


@dataclass
class _RunReport:
    """One flow run's report as this process knows it."""

    engine: Any
    key: str
    api_url: str | None
    notes: ReportNotes = field(default_factory=ReportNotes)
    artifact_id: UUID | None = None
    last: float = float("-inf")
    dirty: bool = False


def _write(client: Any, run: _RunReport, flow_run_id: str, markdown: str, description: str) -> None:
    """Create the run's report artifact, or update the one it has (found by key and run)."""
    from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    if run.artifact_id is None:
        # Another process may have published it already (a retried flow run): reuse it.
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[run.key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
            ),
            limit=1,
        )
        if found:
            run.artifact_id = found[0].id
    if run.artifact_id is None:
        created = client.create_artifact(
            artifact=ArtifactCreate(
                key=run.key,
                type="markdown",
                data=markdown,
                description=description,
                flow_run_id=UUID(flow_run_id),
            )
        )
        run.artifact_id = created.id
    else:
        client.update_artifact(
            run.artifact_id, ArtifactUpdate(data=markdown, description=description)
        )


def _publish(run: _RunReport, flow_run_id: str, *, at_exit: bool = False) -> None:
    """Create the run's report artifact, or update the one it has, with the current markdown;
    never fails the caller (the report is a view, the turns are recorded already).

    At exit (outside the run's settings context) the API is pinned to the one the run used and
    retries are off, so a server that is gone costs one refusal.
    """
    from prefect.client.orchestration import get_client
    from prefect.context import SyncClientContext
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    pinned = (
        {PREFECT_API_URL: run.api_url, PREFECT_CLIENT_MAX_RETRIES: 0}
        if at_exit and run.api_url
        else {}
    )
    try:
        markdown = flow_run_report(run.engine, flow_run_id, run.notes)
        if markdown is None:
            return
        description = "Sessions this flow run used: lineage, turns, answers and cost"
        running = None if at_exit else SyncClientContext.get()
        if running is not None:  # the run's own open client: no new connection (~40 ms)
            _write(running.client, run, flow_run_id, markdown, description)
        else:
            with temporary_settings(updates=pinned), get_client(sync_client=True) as client:
                _write(client, run, flow_run_id, markdown, description)
        run.dirty = False
    except Exception as exc:
        # At exit the server is often gone already and log streams may be closed: say it quietly.
        logger.log(
            logging.DEBUG if at_exit else logging.WARNING,
            "could not publish the session report for flow run %s: %s",
            flow_run_id,
            exc,
        )


class ReportPublisher:
    """Keeps each flow run's report current: after a turn it publishes at once if the last
    publication is ``interval_s`` old, else marks the report stale; `finalize` (the flow's end)
    and `flush` (process exit) publish what is stale.

    The report lists every turn of the run, so publishing it after every turn made a flow of n
    turns cost O(n^2) (measured: 28 % of a warm turn, ~37 ms and growing); the interval bounds it.
    """

    def __init__(self, interval_s: float | None = None) -> None:
        # None: ``CLAUDE_SESSIONS_REPORT_INTERVAL_S`` from the settings, read at each request
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._runs: dict[str, _RunReport] = {}

    @property
    def interval_s(self) -> float:
        """Least seconds between two publications of one run's report while its turns arrive."""
        if self._interval_s is not None:
            return self._interval_s
        return get_settings().report_interval_s

    def _run(self, engine: Any, flow_run_id: str, flow_name: str | None) -> _RunReport:
        run = self._runs.get(flow_run_id)
        if run is None:
            self._forget_published()
            name = flow_name if flow_name is not None else current_flow_name()
            run = self._runs[flow_run_id] = _RunReport(
                engine=engine, key=report_key(name), api_url=current_api_url()
            )
        return run

    def _forget_published(self) -> None:
        """Bound the memory of a long-lived process whose flows never call `finalize`: past
        `MAX_RUNS` runs, forget the oldest whose report is published (a later turn of one
        finds its artifact again by key and flow run)."""
        if len(self._runs) < MAX_RUNS:
            return
        published = [rid for rid, run in self._runs.items() if not run.dirty]
        for flow_run_id in published[: len(self._runs) - MAX_RUNS // 2]:
            del self._runs[flow_run_id]

    def notes(self, engine: Any, flow_run_id: str, flow_name: str | None = None) -> ReportNotes:
        """The run's notes, for a flow to add its summary, labels or chosen session."""
        with self._lock:
            return self._run(engine, flow_run_id, flow_name).notes

    def key_of(self, flow_run_id: str) -> str | None:
        """The artifact key this process publishes the run's report under, if it has one."""
        run = self._runs.get(flow_run_id)
        return run.key if run else None

    def request(
        self,
        engine: Any,
        flow_run_id: str,
        *,
        turn_key: str | None = None,
        label: str | None = None,
        replayed: bool = False,
        flow_name: str | None = None,
    ) -> None:
        """A turn of the run was done (``label``: what it was for): publish soon."""
        with self._lock:
            run = self._run(engine, flow_run_id, flow_name)
            now = time.monotonic()  # after `_run`: its first call may import Prefect settings
            if turn_key and label:
                run.notes.labels[turn_key] = label
            if turn_key and replayed and turn_key not in run.notes.replayed:
                run.notes.replayed.append(turn_key)
            run.dirty = True
            if now < run.last + self.interval_s:
                return  # the next due request, `finalize` or `flush` publishes it
            run.last = now
        _publish(run, flow_run_id)

    def finalize(self, engine: Any, flow_run_id: str, flow_name: str | None = None) -> None:
        """Publish the run's final report now (the flow's body has ended) and forget the run."""
        with self._lock:
            run = self._run(engine, flow_run_id, flow_name)
            self._runs.pop(flow_run_id, None)
        _publish(run, flow_run_id)

    def flush(self, *, at_exit: bool = False) -> None:
        """Publish every stale report now (before a process or a Prefect server stops).

        At interpreter exit a report meant for an ephemeral in-process server is dropped:
        reaching it would start a new server that outlives the process.
        """
        with self._lock:
            stale = [(rid, run) for rid, run in self._runs.items() if run.dirty]
        for flow_run_id, run in stale:
            run.last = time.monotonic()
            if not at_exit or run.api_url is not None:
                _publish(run, flow_run_id, at_exit=at_exit)
            else:
                logger.debug("dropped the last report of flow run %s at exit", flow_run_id)


report_publisher = ReportPublisher()
atexit.register(report_publisher.flush, at_exit=True)
