"""The Prefect tasks: init, resume, fork, handoff, checkpoint, rewind and record decision.

Each is a thin task over `SessionService`: the service gives the durable semantics (idempotency
keys, one writer per session, crash recovery), the task gives Prefect's retries (transient errors
only, with exponential backoff), persisted JSON results, readable run names and tags, and the
per-flow-run lineage artifact.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from prefect import Task, tags
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run as runtime_task_run
from prefect.tasks import exponential_backoff
from prefect_claude_sessions.storage import SQLModelSessionStore, database_url

from . import events
from .artifacts import report_publisher
from .context import current_run
from .credentials import resolve_credentials
from .errors import agent_settings, should_retry
from .profile import AgentProfile
from .results import Checkpoint, Decision, SessionTurn
from .service import SessionService

SessionRef = SessionTurn | Checkpoint | str

_services: dict[str, SessionService] = {}
_services_lock = threading.Lock()


def get_service(url: str | None = None) -> SessionService:
    """The process-wide `SessionService` for a database URL (default: `storage.database_url()`)."""
    # agent_settings: a bad CLAUDE_SESSIONS_* variable fails the task as InvalidInput
    url = url or database_url(agent_settings())
    with _services_lock:
        service = _services.get(url)
        if service is None:
            service = _services[url] = SessionService(
                SQLModelSessionStore(url), credentials=resolve_credentials, emit=events.emit
            )
        return service


def _session_id(ref: SessionRef) -> str:
    if isinstance(ref, (SessionTurn, Checkpoint)):
        return ref.session_id
    if isinstance(ref, str):
        return ref
    raise TypeError(
        f"session must be a SessionTurn, a Checkpoint or a session id string, got {type(ref).__name__}"
    )


def _anchor(ref: SessionRef) -> str | None:
    """What the caller saw last: chaining results makes each step a distinct, retry-safe turn."""
    if isinstance(ref, SessionTurn):
        return ref.turn_key
    if isinstance(ref, Checkpoint):
        return f"checkpoint:{ref.id}"
    return None


def _retry_on_transient(task: Task[..., Any], task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry transient model/CLI failures, never permanent ones."""
    try:
        state.result()
    except Exception as exc:
        return should_retry(exc)
    return False


def _run_name(operation: str) -> Any:
    def name() -> str:
        params = runtime_task_run.parameters
        ref = params.get("session") or params.get("checkpoint")
        agent = _agent_of(params.get("to")) or _agent_of(params.get("agent")) or _agent_of(ref)
        suffix = f" [{agent}]" if agent else ""
        if ref is not None:
            try:
                return f"{operation} {_session_id(ref)[:8]}{suffix}"
            except TypeError:
                return operation
        return f"{operation}{suffix}"

    return name


def _agent_of(value: Any) -> str | None:
    if isinstance(value, AgentProfile):
        return value.name
    if isinstance(value, SessionTurn):
        return value.agent
    inner = getattr(value, "value", None)  # prefect.unmapped(...) / quote(...)
    if inner is not None and inner is not value:
        return _agent_of(inner)
    return None


class SessionTask(Task[Any, Any]):
    """A Prefect task that tags its runs with the agent profile it works for (``agent:<name>``),
    taken from the ``agent``/``to`` profile or the input `SessionTurn`, so runs can be filtered
    by agent in the dashboard."""

    def _agent_tags(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        try:
            bound = inspect.signature(self.fn).bind_partial(*args, **kwargs)
        except TypeError:
            return []  # Prefect reports the bad call itself
        for name in ("to", "agent", "session"):
            agent = _agent_of(bound.arguments.get(name))
            if agent:
                return [f"agent:{agent}"]
        return []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with tags(*self._agent_tags(args, kwargs)):
            return super().__call__(*args, **kwargs)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        with tags(*self._agent_tags(args, kwargs)):
            return super().submit(*args, **kwargs)

    def map(self, *args: Any, **kwargs: Any) -> Any:
        with tags(*self._agent_tags(args, kwargs)):
            return super().map(*args, **kwargs)


def session_task(operation: str) -> Any:
    """Decorator: a `SessionTask` with the shared retry, result and naming settings."""

    def wrap(fn: Any) -> Any:
        return SessionTask(
            fn=fn, task_run_name=_run_name(operation), tags=["claude-session"], **_TASK_DEFAULTS
        )

    return wrap


_TASK_DEFAULTS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": _retry_on_transient,
    "persist_result": True,
    "result_serializer": "json",
    # The store is the source of truth for what was sent; Prefect's input cache would hide
    # retries from it, so it is off.
    "cache_policy": NO_CACHE,
}


def _after(service: SessionService) -> None:
    ctx = current_run()
    if ctx.flow_run_id:
        report_publisher.request(service.store.engine, ctx.flow_run_id)


@session_task("init")
def init_session(
    prompt: str,
    agent: AgentProfile,
    idempotency_key: str | None = None,
    database: str | None = None,
) -> SessionTurn:
    """Start a new session with ``agent`` and send it ``prompt``.

    The session id is derived from the turn's idempotency key (the flow run and the inputs, or
    ``idempotency_key``), so a retried or re-run init returns the same session and sends nothing.
    """
    service = get_service(database)
    result = service.init(prompt, agent, ctx=current_run(), idempotency_key=idempotency_key)
    _after(service)
    return result


@session_task("resume")
def resume_session(
    session: SessionRef,
    prompt: str,
    idempotency_key: str | None = None,
    database: str | None = None,
) -> SessionTurn:
    """Send ``prompt`` to an existing session (a `SessionTurn` or a session id); the model sees
    the whole earlier conversation, on whichever worker this runs."""
    service = get_service(database)
    result = service.resume(
        _session_id(session),
        prompt,
        ctx=current_run(),
        anchor=_anchor(session),
        idempotency_key=idempotency_key,
    )
    _after(service)
    return result


@session_task("fork")
def fork_session(
    session: SessionRef,
    prompt: str,
    at: Checkpoint | None = None,
    idempotency_key: str | None = None,
    database: str | None = None,
) -> SessionTurn:
    """Branch ``session`` into a new session (from checkpoint ``at`` if given) and send ``prompt``
    there; the parent is left untouched. Forks of one parent may run in parallel."""
    service = get_service(database)
    result = service.fork(
        _session_id(session),
        prompt,
        ctx=current_run(),
        at=at,
        anchor=_anchor(session),
        idempotency_key=idempotency_key,
    )
    _after(service)
    return result


@session_task("handoff")
def handoff_session(
    session: SessionRef,
    prompt: str,
    to: AgentProfile,
    idempotency_key: str | None = None,
    database: str | None = None,
) -> SessionTurn:
    """Hand ``session`` to the specialist ``to``: a new session with the whole conversation and
    the specialist's system prompt, answering ``prompt``. Lineage records who handed to whom."""
    service = get_service(database)
    result = service.handoff(
        _session_id(session),
        prompt,
        to=to,
        ctx=current_run(),
        anchor=_anchor(session),
        idempotency_key=idempotency_key,
    )
    _after(service)
    return result


@session_task("checkpoint")
def checkpoint_session(
    session: SessionRef,
    label: str,
    idempotency_key: str | None = None,
    database: str | None = None,
) -> Checkpoint:
    """Name the session's current point (``label``) to fork from or rewind to later."""
    service = get_service(database)
    result = service.checkpoint(
        _session_id(session),
        label,
        ctx=current_run(),
        anchor=_anchor(session),
        idempotency_key=idempotency_key,
    )
    _after(service)
    return result


@session_task("rewind")
def rewind_session(
    checkpoint: Checkpoint | str,
    prompt: str | None = None,
    restore_files: bool = True,
    idempotency_key: str | None = None,
    database: str | None = None,
) -> SessionTurn:
    """Roll back to ``checkpoint``: a new branch continuing from that point (answering ``prompt``
    if given, else no model call at all) and, for file-checkpointing sessions, files restored."""
    service = get_service(database)
    result = service.rewind(
        checkpoint,
        ctx=current_run(),
        prompt=prompt,
        restore_files=restore_files,
        idempotency_key=idempotency_key,
    )
    _after(service)
    return result


@session_task("decision")
def record_decision(
    session: SessionRef,
    key: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
    database: str | None = None,
) -> Decision:
    """Record a decision (``key`` and a JSON ``payload``) beside the session, once per run."""
    service = get_service(database)
    result = service.record_decision(
        _session_id(session),
        key,
        payload,
        ctx=current_run(),
        idempotency_key=idempotency_key,
    )
    _after(service)
    return result
