"""Ask a person, from a flow body, and wait for the answer in the Prefect dashboard.

`ask_human` records a pending request in the session's decisions log (key ``human``), emits
``claude-sessions.human.requested`` (the session as resource, the question in the payload) and
waits on a typed `RunInput` form: `suspend_flow_run` in a deployment run (no worker is held;
the flow re-runs from the start on resume, its completed turns replayed from the store), and
`pause_flow_run` otherwise (the process blocks). The dashboard's form, or
``resume_flow_run(flow_run_id, run_input={...})``, answers it. The answer is recorded beside the
session; asking the same request again (a re-run, a retry, the re-run after a suspension)
returns the stored answer without asking.

A request is the same request when its session, question, form and scope (the flow run, or
``idempotency_key``) are the same; ``idempotency_key`` makes it survive into other flow runs.

`review_pending_tool` asks the same way about a turn that stopped before a tool of
``AgentProfile.approval_tools`` ran (``turn.pending_tool``), on a `ToolReviewForm` whose
description shows the tool and its input, then continues the session with the decision.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from datetime import datetime, timezone
from typing import Any, cast

from prefect.input import RunInput
from prefect_claude_sessions.storage import decisions, open_db
from pydantic import BaseModel, ConfigDict, Field

from .artifacts import answer_excerpt, log_in_run
from .context import current_run
from .errors import InvalidInput, PermanentAgentError, scrub
from .idempotency import digest
from .results import Checkpoint, SessionTurn

logger = logging.getLogger("claude_sessions")

__all__ = [
    "ApprovalForm",
    "HumanAnswer",
    "HumanTimeout",
    "ToolReviewForm",
    "ask_human",
    "review_pending_tool",
]

DECISION_KEY = "human"
#: HumanAnswer's own fields: a form may not use these names.
_RESERVED = frozenset(
    {"session_id", "request_id", "question", "answered_by", "answered_at", "replayed"}
)


class ApprovalForm(RunInput):
    """The default form: approve or not, with an optional comment."""

    approved: bool
    comment: str = ""


#: The longest first line of a question a notification's subject shows.
HEADLINE_CHARS = 120


class ToolReviewForm(RunInput):
    """The form of a tool review: approve the call or not, with a comment the model is told
    when it is denied. Its description (shown above the form) names the tool and its input."""

    approved: bool
    comment: str = ""


#: How much of a tool's input the review form shows (the rest is cut, and said to be).
MAX_SHOWN_INPUT_CHARS = 20_000


class HumanAnswer(BaseModel):
    """A person's answer: the form's fields (as attributes, e.g. ``answer.approved``) plus who
    answered and when, where Prefect knows it (Prefect OSS does not record who resumed a run:
    ``answered_by`` is then None; ``answered_at`` is when the run was resumed)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    session_id: str
    request_id: str
    question: str
    answered_by: str | None = None
    answered_at: datetime | None = None
    replayed: bool = Field(False, description="True when the answer came from the store.")

    @property
    def fields(self) -> dict[str, Any]:
        """The form's fields as a dict."""
        return dict(self.model_extra or {})


class HumanTimeout(PermanentAgentError):
    """Nobody answered within ``timeout_s``; recorded in the decisions log (status timed_out)."""

    default_kind = "human_timeout"


def _session_id(session: SessionTurn | Checkpoint | str) -> tuple[str, str | None]:
    if isinstance(session, SessionTurn):
        return session.session_id, session.turn_key
    if isinstance(session, Checkpoint):
        return session.session_id, f"checkpoint:{session.id}"
    if isinstance(session, str):
        return session, None
    raise InvalidInput(
        "session must be a SessionTurn, a Checkpoint or a session id string, "
        f"got {type(session).__name__}"
    )


def _check_form(form: Any) -> type[RunInput]:
    if form is None:
        return ApprovalForm
    if not (isinstance(form, type) and issubclass(form, RunInput)):
        raise InvalidInput(f"form must be a prefect.input.RunInput subclass, got {form!r}")
    clash = _RESERVED & set(form.model_fields)
    if clash:
        raise InvalidInput(
            f"form {form.__name__} uses field name(s) {sorted(clash)} that HumanAnswer reserves"
        )
    return form


def _check_question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInput(f"question must be a non-empty string, got {question!r}")
    if "\x00" in question:
        raise InvalidInput("question contains a NUL character")
    return question


def _check_timeout(timeout_s: Any) -> int:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise InvalidInput(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return max(1, int(timeout_s))


def stored_requests(service: Any, session_id: str, request_id: str) -> dict[str, dict[str, Any]]:
    """The recorded states of one request by status (pending, answered, timed_out)."""
    with open_db(service.store.engine) as db:
        rows = decisions.list_decisions(db, session_id=session_id, key=DECISION_KEY)
        return {
            str(row.payload.get("status")): row.payload
            for row in rows
            if isinstance(row.payload, dict) and row.payload.get("request_id") == request_id
        }


def ask_human(
    session: SessionTurn | Checkpoint | str,
    question: str,
    *,
    form: type[RunInput] | None = None,
    timeout_s: float = 3600,
    idempotency_key: str | None = None,
    poll_interval_s: float = 5,
    database: str | None = None,
) -> HumanAnswer:
    """Ask a person ``question`` about ``session`` and wait for the answer (see the module
    docstring). Call it in a flow body. ``form`` is any `RunInput` subclass (default
    `ApprovalForm`: ``approved``, ``comment``). Raises `HumanTimeout` when nobody answers
    within ``timeout_s``, `SessionPurged`/`SessionNotFound` for a session that cannot be used,
    `InvalidInput` for bad arguments."""
    from prefect.context import FlowRunContext

    from .session_tasks import get_service

    session_id, anchor = _session_id(session)
    question = _check_question(question)
    form_cls = _check_form(form)
    timeout = _check_timeout(timeout_s)
    flow_ctx = FlowRunContext.get()
    if flow_ctx is None or flow_ctx.flow_run is None:
        raise InvalidInput("ask_human must be called in a flow body (it pauses the flow run)")
    service = get_service(database)
    # unknown or purged: refused before anything is recorded
    agent = service.get_session(session_id).agent_name
    ctx = current_run()
    scope = service._scope(ctx, idempotency_key)
    # letters and hex only: no redactor (phone numbers, e-mail) can rewrite it, Prefect takes it
    # as a pause key
    request_id = (
        "h"
        + uuid.uuid5(
            uuid.NAMESPACE_URL,
            "ask_human:"
            + digest(f"{scope}|{session_id}@{anchor or ''}|{form_cls.__name__}|{question}"),
        ).hex
    )
    stored = stored_requests(service, session_id, request_id)
    if "answered" in stored:
        return _answer(session_id, request_id, question, stored["answered"], replayed=True)

    record = {
        "request_id": request_id,
        "question": question,
        "form": form_cls.__name__,
        "flow_run_id": ctx.flow_run_id,
    }
    service.record_decision(
        session_id,
        DECISION_KEY,
        {**record, "status": "pending"},
        ctx=ctx,
        idempotency_key=f"{request_id}:pending",
    )
    shown_question = scrub(question)
    # already resumed: this is the re-run after the answer; nobody is asked (or notified) again
    resumed_at = _resumed_at(flow_ctx.flow_run.id, request_id)
    if resumed_at is None:
        service.emit(
            "human.requested",
            session_id,
            agent=agent,
            payload={
                "request_id": request_id,
                "question": shown_question,
                "headline": headline(shown_question),
                "form": form_cls.__name__,
                "fields": list(form_cls.model_fields),
                "flow_run_id": ctx.flow_run_id,
                "timeout_s": timeout,
            },
        )
        log_in_run(
            f"waiting for a person: “{answer_excerpt(shown_question, 200)}” (session "
            f"{session_id}, form {form_cls.__name__}: answer with Resume on this run's page "
            f"within {timeout} s)"
        )
    shown = _with_question(form_cls, shown_question, session_id)
    value = _wait(flow_ctx, shown, timeout, poll_interval_s, service, session_id, record, ctx)
    answered_at = resumed_at or _resumed_at(flow_ctx.flow_run.id, request_id)
    fields = value.model_dump(mode="json")
    answer = {
        "answer": fields,
        "answered_by": getattr(value.metadata, "sender", None),
        "answered_at": answered_at.isoformat() if answered_at else None,
    }
    service.record_decision(
        session_id,
        DECISION_KEY,
        {**record, "status": "answered", **answer},
        ctx=ctx,
        idempotency_key=f"{request_id}:answered",
    )
    log_in_run(
        f"a person answered “{answer_excerpt(shown_question, 80)}”: "
        + ", ".join(f"{k}={answer_excerpt(str(v), 80)}" for k, v in fields.items())
    )
    return _answer(session_id, request_id, question, answer, replayed=False)


def headline(question: str, limit: int = HEADLINE_CHARS) -> str:
    """The question's first line, cut to ``limit`` characters: a notification's subject."""
    first = question.strip().splitlines()[0] if question.strip() else ""
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def _with_question(form_cls: type[RunInput], question: str, session_id: str) -> type[RunInput]:
    """The form as the dashboard shows it: with the question above its fields, unless the form
    brings its own description (a tool review shows the tool and its input)."""
    if isinstance(getattr(form_cls, "_description", None), str):
        return form_cls
    text = (
        f"{question}\n\n---\n\nAsked about session `{session_id}`. "
        "Submit your answer to continue the run."
    )
    return form_cls.with_initial_data(description=text)


def _wait(
    flow_ctx: Any,
    form_cls: type[RunInput],
    timeout: int,
    poll_interval_s: float,
    service: Any,
    session_id: str,
    record: dict[str, Any],
    ctx: Any,
) -> RunInput:
    """Suspend (a deployment run) or pause (any other run) until the form is answered."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run, suspend_flow_run

    # Prefect keys the run input by the pause key: a re-run after a suspension finds the answer.
    request_id = key = record["request_id"]
    try:
        if flow_ctx.flow_run.deployment_id is not None:
            return suspend_flow_run(wait_for_input=form_cls, timeout=timeout, key=key)
        # Prefect types poll_interval as int but only sleeps on it: sub-second polls work.
        poll = cast(int, poll_interval_s)
        return pause_flow_run(wait_for_input=form_cls, timeout=timeout, poll_interval=poll, key=key)
    except FlowPauseTimeout:
        service.record_decision(
            session_id,
            DECISION_KEY,
            {**record, "status": "timed_out", "timeout_s": timeout},
            ctx=ctx,
            idempotency_key=f"{request_id}:timed_out:{datetime.now(timezone.utc).isoformat()}",
        )
        raise HumanTimeout(
            f"nobody answered {record['question']!r} (request {request_id}, flow run "
            f"{ctx.flow_run_id}) within {timeout} s"
        ) from None


def _answer(
    session_id: str, request_id: str, question: str, stored: dict[str, Any], *, replayed: bool
) -> HumanAnswer:
    return HumanAnswer(
        session_id=session_id,
        request_id=request_id,
        question=question,
        answered_by=stored.get("answered_by"),
        answered_at=stored.get("answered_at"),
        replayed=replayed,
        **(stored.get("answer") or {}),
    )


def _resumed_at(flow_run_id: Any, request_id: str) -> datetime | None:
    """When the run left the pause of this request: the state after its Paused state."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            states = sorted(client.read_flow_run_states(flow_run_id), key=lambda s: s.timestamp)
    except Exception as exc:  # a view of the answer, not the answer itself
        logger.debug("could not read the states of flow run %s: %s", flow_run_id, exc)
        return None
    for before, after in itertools.pairwise(states):
        if before.is_paused() and before.state_details.pause_key == request_id:
            return after.timestamp
    return None


def _review_description(turn: SessionTurn) -> str:
    pending = turn.pending_tool
    assert pending is not None
    shown = json.dumps(pending.input, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(shown) > MAX_SHOWN_INPUT_CHARS:
        shown = shown[:MAX_SHOWN_INPUT_CHARS] + f"\n... ({len(shown)} characters, cut)"
    return (
        f"**Tool:** `{pending.name}` (call `{pending.id}`, session `{turn.session_id}`)\n\n"
        f"**Input:**\n\n```json\n{scrub(shown)}\n```\n\n"
        "Approve to let the tool run; deny to stop it (the comment is passed to the agent)."
    )


def review_pending_tool(
    turn: SessionTurn,
    *,
    timeout_s: float = 3600,
    idempotency_key: str | None = None,
    poll_interval_s: float = 5,
    database: str | None = None,
) -> SessionTurn:
    """Ask a person to approve ``turn.pending_tool`` and continue the session with the answer:
    approved, the tool runs and the model goes on; denied, the tool does not run and the model
    is told, with the comment. Returns the continuation's turn (which may itself stop on a
    further approval tool). Call it in a flow body; the wait is `ask_human`'s (a deployment run
    suspends and, re-run on any worker, replays its completed turns and this answer from the
    store). Raises `InvalidInput` for a turn with no pending tool call or one already reviewed,
    `HumanTimeout` when nobody answers."""
    from .session_tasks import get_service

    if not isinstance(turn, SessionTurn):
        raise InvalidInput(f"turn must be a SessionTurn, got {type(turn).__name__}")
    pending = turn.pending_tool
    if pending is None:
        raise InvalidInput(
            f"turn {turn.turn_key} of session {turn.session_id} has no pending tool call "
            "(its agent's approval_tools were not called)"
        )
    form = ToolReviewForm.with_initial_data(description=_review_description(turn))
    answer = ask_human(
        turn,
        f"Approve the {pending.name} call {pending.id} of session {turn.session_id}?",
        form=form,
        timeout_s=timeout_s,
        idempotency_key=idempotency_key,
        poll_interval_s=poll_interval_s,
        database=database,
    )
    return get_service(database).continue_tool(
        turn,
        approved=bool(answer.fields.get("approved")),
        comment=str(answer.fields.get("comment") or ""),
        ctx=current_run(),
        idempotency_key=idempotency_key,
    )
