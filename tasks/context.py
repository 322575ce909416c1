"""Where a session operation runs: the Prefect flow run and task run around it, if any."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RunContext:
    """Identity of the current Prefect run, used to scope idempotency keys and name claim holders."""

    flow_run_id: str | None
    task_run_id: str | None
    flow_run_name: str | None = None

    @property
    def scope(self) -> str:
        """What makes a retry "the same" run: the flow run, else the task run, else nothing.

        Outside Prefect there is no run to retry, so each call gets a fresh scope and is sent.
        """
        if self.flow_run_id:
            return f"flow-run:{self.flow_run_id}"
        if self.task_run_id:
            return f"task-run:{self.task_run_id}"
        return f"call:{uuid.uuid4()}"

    def holder(self) -> str:
        """A claim holder name that tells an operator which worker holds a session."""
        run = self.task_run_id or self.flow_run_id or "no-run"
        return f"{socket.gethostname()}:{os.getpid()}:{run}:{uuid.uuid4().hex[:8]}"


def current_run() -> RunContext:
    """The Prefect run context of the caller (empty outside flows and tasks)."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_ctx = FlowRunContext.get()
    task_ctx = TaskRunContext.get()
    flow_run = flow_ctx.flow_run if flow_ctx else None
    task_run = task_ctx.task_run if task_ctx else None
    flow_run_id = str(flow_run.id) if flow_run else None
    if flow_run_id is None and task_run is not None and task_run.flow_run_id:
        flow_run_id = str(task_run.flow_run_id)
    return RunContext(
        flow_run_id=flow_run_id,
        task_run_id=str(task_run.id) if task_run else None,
        flow_run_name=flow_run.name if flow_run else None,
    )
