"""The markdown artifact a flow run gets when it uses sessions: lineage tree, turns and cost."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any
from uuid import UUID

from prefect_claude_sessions.storage import SessionRecord, open_db, sessions, turns
from prefect_claude_sessions.storage.settings import get_settings

logger = logging.getLogger("claude_sessions")

REPORT_KEY = "claude-sessions-lineage"


def render_lineage(records: list[tuple[int, SessionRecord]], touched: set[str]) -> str:
    """Markdown bullet tree of sessions; sessions this run touched are in bold."""
    lines = []
    for depth, record in records:
        name = f"`{record.id[:8]}`"
        if record.id in touched:
            name = f"**{name}**"
        lines.append(
            f"{'  ' * depth}- {name} {record.agent_name} ({record.origin.value}): "
            f"{record.turn_count} turns, ${record.cost_usd:.4f}"
        )
    return "\n".join(lines)


def flow_run_report(engine: Any, flow_run_id: str) -> str | None:
    """The report's markdown for one flow run, or None if the run used no sessions."""
    with open_db(engine) as db:
        run_turns = turns.list_turns_for_flow_run(db, flow_run_id)
        if not run_turns:
            return None
        touched = {t.session_id for t in run_turns}
        roots: list[str] = []
        for session_id in sorted(touched):
            chain = sessions.ancestors(db, session_id)
            root = chain[-1].id if chain else session_id
            if root not in roots:
                roots.append(root)
        trees = [render_lineage(sessions.lineage_tree(db, root), touched) for root in roots]
        rows = [
            f"| `{t.session_id[:8]}` | {t.operation} | {t.status.value} | "
            f"{t.duration_ms or 0} ms | ${(t.cost_usd or 0):.4f} |"
            for t in run_turns
        ]
        total = sum(t.cost_usd or 0 for t in run_turns)
        budgets = budget_lines(db, sorted(touched))
    return "\n".join(
        [
            "# Claude sessions in this flow run",
            "",
            "## Lineage",
            *trees,
            "",
            f"## Turns ({len(rows)}, ${total:.4f})",
            "",
            "| session | operation | status | duration | cost |",
            "|---|---|---|---|---|",
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


def publish_flow_run_report(
    engine: Any, flow_run_id: str, api_url: str | None = None, *, at_exit: bool = False
) -> None:
    """Create (a new version of) the run's lineage artifact now; never fails the caller.

    ``api_url`` pins the Prefect API (for publishing from a timer thread or at exit, outside the
    run's settings context); retries are off there, so a server that is gone costs one refusal.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    pinned = {PREFECT_API_URL: api_url, PREFECT_CLIENT_MAX_RETRIES: 0} if api_url else {}
    try:
        markdown = flow_run_report(engine, flow_run_id)
        if markdown is None:
            return
        with temporary_settings(updates=pinned), get_client(sync_client=True) as client:
            client.create_artifact(
                artifact=ArtifactCreate(
                    key=REPORT_KEY,
                    type="markdown",
                    data=markdown,
                    description="Sessions this flow run used: lineage, turns and cost",
                    flow_run_id=UUID(flow_run_id),
                )
            )
    except Exception as exc:  # the report is a view; the turn itself is already recorded
        # At exit the server is often gone already and log streams may be closed: say it quietly.
        logger.log(
            logging.DEBUG if at_exit else logging.WARNING,
            "could not publish the session report for flow run %s: %s",
            flow_run_id,
            exc,
        )


class ReportPublisher:
    """Publishes each flow run's report at most once per ``interval_s`` while its turns arrive,
    and once more after the last one (the trailing edge, on a timer thread).

    The report lists every turn of the run, so publishing it after every turn made a flow of n
    turns cost O(n^2) (measured: 28 % of a warm turn, ~37 ms and growing). `flush` publishes
    what is pending now; it runs at interpreter exit too.
    """

    def __init__(self, interval_s: float | None = None) -> None:
        # None: ``CLAUDE_SESSIONS_REPORT_INTERVAL_S`` from the settings, read at each request
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._pending: dict[str, tuple[Any, str | None, threading.Timer]] = {}

    @property
    def interval_s(self) -> float:
        """Least seconds between two publications of one run's report."""
        if self._interval_s is not None:
            return self._interval_s
        return get_settings().report_interval_s

    def request(self, engine: Any, flow_run_id: str) -> None:
        """Ask for the run's report to be (re)published soon."""
        now = time.monotonic()
        with self._lock:
            if flow_run_id in self._pending:
                return  # the trailing publish will include this turn
            due = self._last.get(flow_run_id, float("-inf")) + self.interval_s
            if now < due:
                timer = threading.Timer(due - now, self._fire, args=(flow_run_id,))
                timer.daemon = True
                self._pending[flow_run_id] = (engine, current_api_url(), timer)
                timer.start()
                return
            self._last[flow_run_id] = now
        publish_flow_run_report(engine, flow_run_id)

    def _fire(self, flow_run_id: str) -> None:
        with self._lock:
            pending = self._pending.pop(flow_run_id, None)
            self._last[flow_run_id] = time.monotonic()
        if pending is not None:
            engine, api_url, _ = pending
            if api_url is not None:
                publish_flow_run_report(engine, flow_run_id, api_url)
            else:  # the ephemeral server lives in this process: use it as the run did
                publish_flow_run_report(engine, flow_run_id)

    def flush(self, *, at_exit: bool = False) -> None:
        """Publish every pending report now (before a process or a Prefect server stops).

        At interpreter exit a report meant for an ephemeral in-process server is dropped:
        reaching it would start a new server that outlives the process.
        """
        with self._lock:
            pending = list(self._pending.items())
            self._pending.clear()
        for flow_run_id, (engine, api_url, timer) in pending:
            timer.cancel()
            self._last[flow_run_id] = time.monotonic()
            if api_url is not None:
                publish_flow_run_report(engine, flow_run_id, api_url, at_exit=at_exit)
            elif not at_exit:
                publish_flow_run_report(engine, flow_run_id)
            else:
                logger.debug("dropped the last report of flow run %s at exit", flow_run_id)


report_publisher = ReportPublisher()
atexit.register(report_publisher.flush, at_exit=True)
