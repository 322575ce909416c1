"""The Prefect tasks: init, resume, fork, handoff, checkpoint, rewind and record decision.

Each is a thin task over `SessionService`: the service gives the durable semantics (idempotency
keys, one writer per session, crash recovery), the task gives Prefect's retries (transient errors
only, with exponential backoff), persisted JSON results, readable run names and tags, and the
per-flow-run lineage artifact.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from typing import Any

from prefect import Task, tags
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.runtime import task_run as runtime_task_run
from prefect.tasks import exponential_backoff
from prefect_claude_sessions.storage import SQLModelSessionStore, database_url

from . import events
from .artifacts import answer_excerpt, excerpt, log_in_run, money, report_publisher
from .context import current_run
from .credentials import resolve_credentials
from .errors import agent_settings, should_retry
from .profile import AgentProfile
from .redaction import redact_payload
from .results import Checkpoint, Decision, SessionTurn
from .service import SessionService

SessionRef = SessionTurn | Checkpoint | str

logger = logging.getLogger("claude_sessions")

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
    """The task-run name Prefect gives the run before it starts (see `planned_name`)."""

    def name() -> str:
        return planned_name(operation, dict(runtime_task_run.parameters))

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


def _source_of(ref: Any) -> str | None:
    inner = getattr(ref, "value", None)  # prefect.unmapped(...) / quote(...)
    if inner is not None and inner is not ref:
        return _source_of(inner)
    if isinstance(ref, (SessionTurn, Checkpoint)):
        return ref.session_id
    if isinstance(ref, str):
        return ref.strip() or None
    return None


def _stored_agent(session_id: str | None, database: str | None) -> str | None:
    """The agent a stored session works for (the name of a resume given a bare id); None if the
    session cannot be read now (the task itself reports why)."""
    if not session_id:
        return None
    try:
        return get_service(database).reads.session(session_id).agent_name
    except Exception:
        return None


def decision_label(payload: Any) -> str | None:
    """What a decision is about, from its payload: the e-mail, approach or item it names."""
    if not isinstance(payload, dict):
        return None
    for field in ("email_id", "approach", "item", "id", "name", "label"):
        value = payload.get(field)
        if isinstance(value, (str, int)) and str(value).strip():
            return str(value).strip()
    return None


def decision_choice(payload: Any) -> dict[str, Any] | None:
    """The short fields of a decision (its choice: a category, a priority, an approach) for the
    decision event, after the store's redactors; long text stays in the store."""
    if not isinstance(payload, dict):
        return None
    clean = redact_payload(payload)
    short = {
        str(k): v
        for k, v in clean.items()
        if isinstance(v, (str, int, float, bool)) and len(str(v)) <= 60
    }
    return dict(list(short.items())[:8]) or None


def describe(
    operation: str,
    *,
    source: str | None = None,
    target: str | None = None,
    agent: str | None = None,
    label: str | None = None,
) -> str:
    """A task-run name that says what happened: ``handoff 492a414f → ea53c018 [billing-specialist]
    msg-0002`` (the session it started from, the new session, the agent, what it was for)."""
    parts = [operation]
    if source:
        parts.append(source[:8])
    if target and target != source:
        parts.append(f"→ {target[:8]}")
    if agent:
        parts.append(f"[{agent}]")
    if label:
        parts.append(excerpt(label, 48))
    return " ".join(parts)


def planned_name(operation: str, params: dict[str, Any]) -> str:
    """The name of a session task's run from its parameters alone (before it has run)."""
    if operation == "decision":
        label = params.get("label") or decision_label(params.get("payload"))
        return describe(f"decision {params.get('key') or ''}".strip(), label=label)
    ref = params.get("session") or params.get("checkpoint")
    source = _source_of(ref)
    if isinstance(ref, str) and operation == "rewind":
        source = None  # a checkpoint id, not a session id
    agent = _agent_of(params.get("to")) or _agent_of(params.get("agent")) or _agent_of(ref)
    if agent is None and operation != "rewind":
        agent = _stored_agent(source, params.get("database"))
    return describe(operation, source=source, agent=agent, label=params.get("label"))


def _rename(name: str) -> None:
    """Give the running task run its final name (known only after the turn, e.g. a new session's
    id). The state events that follow carry it, so the dashboard shows it without another call."""
    ctx = TaskRunContext.get()
    if ctx is None or ctx.task_run.name == name:
        return
    ctx.task_run.name = name


def _tokens(usage: dict[str, Any]) -> tuple[int, int]:
    """(tokens in, tokens out) of a turn's usage; cached input counts as input."""

    def n(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) else 0

    sent = n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens")
    return sent, n("output_tokens")


def outcome_line(result: SessionTurn, source: str | None = None) -> str:
    """One log line with what a turn did: sessions, cost, tokens, time and an answer excerpt."""
    sessions_part = f"session {result.session_id}"
    if source and source != result.session_id:
        sessions_part = f"session {source} → new session {result.session_id}"
    if result.replayed:
        return (
            f"{sessions_part} [{result.agent}]: replayed from the store, no prompt sent; "
            f"answer: “{answer_excerpt(result.text, 160)}”"
        )
    tokens_in, tokens_out = _tokens(result.usage or {})
    return (
        f"{sessions_part} [{result.agent}]: {money(result.cost_usd)}, "
        f"{tokens_in} tokens in, {tokens_out} out, {result.duration_ms} ms; "
        f"answer: “{answer_excerpt(result.text, 160)}”"
    )


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


def _after(
    service: SessionService,
    result: SessionTurn | Checkpoint | Decision,
    operation: str,
    *,
    source: str | None = None,
    label: str | None = None,
) -> None:
    """What every session task does after its operation: the final run name, one log line with
    the outcome, and the flow run's report."""
    if isinstance(result, SessionTurn):
        _rename(
            describe(
                operation, source=source, target=result.session_id, agent=result.agent, label=label
            )
        )
        log_in_run(outcome_line(result, source))
        key, replayed = result.turn_key, result.replayed
    elif isinstance(result, Checkpoint):
        log_in_run(
            f"session {result.session_id}: checkpoint {result.id} {result.label!r} "
            f"at {result.transcript_uuid}"
        )
        key, replayed = None, False
    else:
        state = "recorded" if result.created else "already recorded, not again"
        log_in_run(
            f"session {result.session_id}: decision {result.key!r} {state} ({result.id}): "
            f"{answer_excerpt(json.dumps(result.payload, default=str), 200)}"
        )
        key, replayed = None, False
    ctx = current_run()
    if ctx.flow_run_id:
        report_publisher.request(
            service.store.engine, ctx.flow_run_id, turn_key=key, label=label, replayed=replayed
        )


@session_task("init")
def init_session(
    prompt: str,
    agent: AgentProfile,
    idempotency_key: str | None = None,
    database: str | None = None,
    label: str | None = None,
) -> SessionTurn:
    """Start a new session with ``agent`` and send it ``prompt``.

    The session id is derived from the turn's idempotency key (the flow run and the inputs, or
    ``idempotency_key``), so a retried or re-run init returns the same session and sends nothing.
    ``label`` says what the turn is for (an e-mail id, an approach) in run names and the report.
    """
    service = get_service(database)
    with events.details(label=label):
        result = service.init(prompt, agent, ctx=current_run(), idempotency_key=idempotency_key)
    _after(service, result, "init", label=label)
    return result


@session_task("resume")
def resume_session(
    session: SessionRef,
    prompt: str,
    idempotency_key: str | None = None,
    database: str | None = None,
    label: str | None = None,
) -> SessionTurn:
    """Send ``prompt`` to an existing session (a `SessionTurn` or a session id); the model sees
    the whole earlier conversation, on whichever worker this runs."""
    service = get_service(database)
    source = _session_id(session)
    with events.details(label=label):
        result = service.resume(
            source,
            prompt,
            ctx=current_run(),
            anchor=_anchor(session),
            idempotency_key=idempotency_key,
        )
    _after(service, result, "resume", source=source, label=label)
    return result


@session_task("fork")
def fork_session(
    session: SessionRef,
    prompt: str,
    at: Checkpoint | None = None,
    idempotency_key: str | None = None,
    database: str | None = None,
    label: str | None = None,
) -> SessionTurn:
    """Branch ``session`` into a new session (from checkpoint ``at`` if given) and send ``prompt``
    there; the parent is left untouched. Forks of one parent may run in parallel."""
    service = get_service(database)
    source = _session_id(session)
    with events.details(label=label):
        result = service.fork(
            source,
            prompt,
            ctx=current_run(),
            at=at,
            anchor=_anchor(session),
            idempotency_key=idempotency_key,
        )
    _after(service, result, "fork", source=source, label=label)
    return result


@session_task("handoff")
def handoff_session(
    session: SessionRef,
    prompt: str,
    to: AgentProfile,
    idempotency_key: str | None = None,
    database: str | None = None,
    label: str | None = None,
) -> SessionTurn:
    """Hand ``session`` to the specialist ``to``: a new session with the whole conversation and
    the specialist's system prompt, answering ``prompt``. Lineage records who handed to whom."""
    service = get_service(database)
    source = _session_id(session)
    with events.details(label=label):
        result = service.handoff(
            source,
            prompt,
            to=to,
            ctx=current_run(),
            anchor=_anchor(session),
            idempotency_key=idempotency_key,
        )
    _after(service, result, "handoff", source=source, label=label)
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
    with events.details(label=label):
        result = service.checkpoint(
            _session_id(session),
            label,
            ctx=current_run(),
            anchor=_anchor(session),
            idempotency_key=idempotency_key,
        )
    _after(service, result, "checkpoint")
    return result


@session_task("rewind")
def rewind_session(
    checkpoint: Checkpoint | str,
    prompt: str | None = None,
    restore_files: bool = True,
    idempotency_key: str | None = None,
    database: str | None = None,
    label: str | None = None,
) -> SessionTurn:
    """Roll back to ``checkpoint``: a new branch continuing from that point (answering ``prompt``
    if given, else no model call at all) and, for file-checkpointing sessions, files restored."""
    service = get_service(database)
    with events.details(label=label):
        result = service.rewind(
            checkpoint,
            ctx=current_run(),
            prompt=prompt,
            restore_files=restore_files,
            idempotency_key=idempotency_key,
        )
    _after(service, result, "rewind", source=result.parent_id, label=label)
    return result


@session_task("decision")
def record_decision(
    session: SessionRef,
    key: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
    database: str | None = None,
    label: str | None = None,
) -> Decision:
    """Record a decision (``key`` and a JSON ``payload``) beside the session, once per run.
    The run is named by the key and what the decision is about (``label``, else the payload's
    ``email_id``/``approach``/... field): ``decision triage msg-0003``."""
    service = get_service(database)
    with events.details(label=label or decision_label(payload), choice=decision_choice(payload)):
        result = service.record_decision(
            _session_id(session),
            key,
            payload,
            ctx=current_run(),
            idempotency_key=idempotency_key,
        )
    _after(service, result, "decision")
    return result
