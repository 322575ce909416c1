"""The markdown artifact a flow run gets when it uses sessions: lineage tree, turns and cost."""

from __future__ import annotations

import logging
from typing import Any

from storage import SessionRecord, open_db, sessions, turns

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
        ]
    )


def publish_flow_run_report(engine: Any, flow_run_id: str) -> None:
    """Create (a new version of) the run's lineage artifact; never fails the caller."""
    from prefect.artifacts import create_markdown_artifact

    try:
        markdown = flow_run_report(engine, flow_run_id)
        if markdown is not None:
            create_markdown_artifact(
                key=REPORT_KEY,
                markdown=markdown,
                description="Sessions this flow run used: lineage, turns and cost",
            )
    except Exception as exc:  # the report is a view; the turn itself is already recorded
        logger.warning("could not publish the session report for flow run %s: %s", flow_run_id, exc)
