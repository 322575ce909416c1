"""`session_report()`: wrap a flow's body so its session report is final before the run ends.

The session tasks keep the report current while turns arrive (at most once per interval); the
last turns and the flow's own notes (a summary, the chosen fork) reach the dashboard when the
``with`` block ends, in the flow's thread and run context, before Prefect records the final state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .artifacts import ReportNotes, report_publisher
from .context import current_run
from .session_tasks import get_service


@contextmanager
def session_report(database: str | None = None) -> Iterator[ReportNotes]:
    """Inside a flow: yield the run's `ReportNotes` and publish the final report on exit
    (also when the body raises). Outside a flow run it yields notes that go nowhere."""
    ctx = current_run()
    if not ctx.flow_run_id:
        yield ReportNotes()
        return
    engine = get_service(database).store.engine
    notes = report_publisher.notes(engine, ctx.flow_run_id)
    try:
        yield notes
    finally:
        report_publisher.finalize(engine, ctx.flow_run_id)
