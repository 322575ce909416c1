"""Turns: one row per prompt sent, keyed by an idempotency key so a retry never sends it twice."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from .claims import Fence, check_fence
from .column_types import utcnow
from .dialect import insert_ignoring_conflicts
from .errors import ClaimLost, SessionNotFound, StorageError
from .ids import validate_session_id
from .models import SessionRecord, TurnRecord, TurnStatus, table_of
from .secrets import scrub_text


def begin_turn(
    db: Session,
    *,
    idempotency_key: str,
    session_id: str,
    operation: str,
    prompt_digest: str,
    flow_run_id: str | None = None,
    task_run_id: str | None = None,
    fence: Fence | None = None,
) -> TurnRecord:
    """Record that a turn is starting; if the key exists, return that turn instead.

    A completed turn comes back as it is (the caller reuses its result, sending nothing). An
    uncompleted one (failed, or left pending by a crashed worker) is being retried: its
    ``attempts`` grows by one, and a failed one is reset to pending with a fresh ``started_at``
    and the new run ids. ``fence`` (the caller's claim on the session) is checked and recorded
    as the attempt's ``claim_token``.
    """
    sid = validate_session_id(session_id)
    if fence is not None:
        check_fence(db, fence, action="start of a turn")
    token = fence.token if fence is not None else None
    inserted = db.execute(
        insert_ignoring_conflicts(table_of(TurnRecord), db.get_bind().dialect.name)
        .values(
            idempotency_key=idempotency_key,
            session_id=sid,
            flow_run_id=flow_run_id,
            task_run_id=task_run_id,
            operation=operation,
            prompt_digest=prompt_digest,
            status=TurnStatus.pending.value,
            started_at=utcnow(),
            attempts=1,
            claim_token=token,
        )
        .returning(table_of(TurnRecord).c.id)
    ).first()
    turn = _locked_turn(db, idempotency_key)
    if turn.status == TurnStatus.completed or inserted is not None:
        return turn
    turn.attempts = (turn.attempts or 0) + 1
    turn.claim_token = token
    if turn.status == TurnStatus.failed:
        turn.status = TurnStatus.pending
        turn.error = None
        turn.started_at = utcnow()
        turn.finished_at = None
        turn.flow_run_id = flow_run_id or turn.flow_run_id
        turn.task_run_id = task_run_id or turn.task_run_id
    db.add(turn)
    db.flush()
    return turn


def find_turn(db: Session, idempotency_key: str) -> TurnRecord | None:
    """The turn with this idempotency key, or None."""
    query = select(TurnRecord).where(TurnRecord.idempotency_key == idempotency_key)
    return db.exec(query.execution_options(populate_existing=True)).first()


def _locked_turn(db: Session, idempotency_key: str) -> TurnRecord:
    query = (
        select(TurnRecord)
        .where(TurnRecord.idempotency_key == idempotency_key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    turn = db.exec(query).first()
    if turn is None:
        raise StorageError(
            f"no turn with idempotency key {idempotency_key!r}; call begin_turn first"
        )
    return turn


def complete_turn(
    db: Session,
    idempotency_key: str,
    *,
    session_id: str,
    result_text: str | None,
    cost_usd: float | None,
    usage: dict[str, Any] | None,
    duration_ms: int | None,
    num_turns: int | None,
    assistant_uuid: str | None = None,
    user_message_uuid: str | None = None,
    fence: Fence | None = None,
    pending_tool: dict[str, Any] | None = None,
) -> TurnRecord:
    """Mark a turn completed and add its cost, tokens and one turn to the session's totals.

    Both happen in the caller's transaction. ``session_id`` is the session the turn ended in (for a
    fork, the new one); it must be recorded (SessionNotFound). Completing an already completed turn
    changes nothing, so totals are never counted twice. With ``fence`` (the caller's claim), a
    holder whose claim was taken over is refused with `ClaimLost`: its answer never becomes the
    session's head.
    """
    turn = _locked_turn(db, idempotency_key)
    if turn.status == TurnStatus.completed:
        return turn
    if fence is not None:
        check_fence(db, fence, action="completion of turn " + repr(idempotency_key))
    sid = validate_session_id(session_id)
    session = db.exec(
        select(SessionRecord).where(SessionRecord.id == sid).with_for_update()
    ).first()
    if session is None:
        raise SessionNotFound(sid)
    usage = dict(usage or {})
    turn.session_id = sid
    turn.status = TurnStatus.completed
    turn.result_text = None if result_text is None else scrub_text(result_text)  # no secrets
    turn.error = None
    turn.cost_usd = cost_usd
    turn.usage = usage
    turn.duration_ms = duration_ms
    turn.num_turns = num_turns
    turn.assistant_uuid = assistant_uuid
    turn.user_message_uuid = user_message_uuid
    turn.pending_tool = pending_tool
    turn.finished_at = utcnow()
    session.turn_count += 1
    session.cost_usd += float(cost_usd or 0.0)
    session.input_tokens += int(usage.get("input_tokens") or 0)
    session.output_tokens += int(usage.get("output_tokens") or 0)
    session.updated_at = utcnow()
    db.add(turn)
    db.add(session)
    db.flush()
    return turn


def fail_turn(
    db: Session,
    idempotency_key: str,
    *,
    error: str,
    error_kind: str | None = None,
    fence: Fence | None = None,
) -> TurnRecord:
    """Mark a turn failed with its error text and classified kind; a completed turn stays
    completed.

    With ``fence``, a holder whose claim was taken over may still mark *its own* attempt failed
    (the turn is pending under the token it holds: nobody began it since), which touches neither
    the transcript nor the session's head; a turn begun again by the new holder is left to it
    (`ClaimLost`).
    """
    turn = _locked_turn(db, idempotency_key)
    if turn.status == TurnStatus.completed:
        return turn
    if fence is not None:
        try:
            check_fence(db, fence, action="failure record of turn " + repr(idempotency_key))
        except ClaimLost:
            if not (turn.status == TurnStatus.pending and turn.claim_token == fence.token):
                raise
    turn.status = TurnStatus.failed
    turn.error = scrub_text(error)  # a gateway may echo the key in an error body
    turn.error_kind = error_kind[:64] if error_kind else None
    turn.finished_at = utcnow()
    db.add(turn)
    db.flush()
    return turn


def list_turns(db: Session, session_id: str) -> list[TurnRecord]:
    """A session's turns, oldest first."""
    sid = validate_session_id(session_id)
    query = (
        select(TurnRecord)
        .where(TurnRecord.session_id == sid)
        .order_by(TurnRecord.started_at, TurnRecord.id)  # type: ignore[arg-type]
    )
    return list(db.exec(query).all())


def list_turns_for_flow_run(db: Session, flow_run_id: str) -> list[TurnRecord]:
    """The turns one flow run sent (across all its sessions), oldest first."""
    query = (
        select(TurnRecord)
        .where(TurnRecord.flow_run_id == str(flow_run_id))
        .order_by(TurnRecord.started_at, TurnRecord.id)  # type: ignore[arg-type]
    )
    return list(db.exec(query).all())


def latest_completed_turn(db: Session, session_id: str) -> TurnRecord | None:
    """The session's newest completed turn: where its conversation stands (one indexed row,
    however long the session)."""
    sid = validate_session_id(session_id)
    query = (
        select(TurnRecord)
        .where(TurnRecord.session_id == sid, TurnRecord.status == TurnStatus.completed)
        .order_by(col(TurnRecord.started_at).desc(), col(TurnRecord.id).desc())
        .limit(1)
    )
    return db.exec(query).first()


def latest_turn(db: Session, session_id: str) -> TurnRecord | None:
    """The session's most recently started turn, whatever its status (None if it has none)."""
    sid = validate_session_id(session_id)
    query = (
        select(TurnRecord)
        .where(TurnRecord.session_id == sid)
        .order_by(col(TurnRecord.started_at).desc(), col(TurnRecord.id).desc())
        .limit(1)
    )
    return db.exec(query).first()
