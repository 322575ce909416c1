"""The turn protocol: every prompt-sending operation is a transaction over the session.

A turn either completes (its prompt and answer become the session's history and its new head)
or leaves the session's head where it was, with the failed attempt recorded for the audit but
absent from everything the model is sent later. The steps (`TurnProtocol.run`):

1. derive the turn's idempotency key (the caller); if the store has it completed, return it;
2. claim the target session (one writer per session; a crashed holder's claim expires);
3. record the session (new ones) and a pending turn;
4. on a retry, recover an answer an earlier attempt already produced: from the store, from the
   in-process spool of appends that failed while the database was down, or from an outcome this
   worker still holds; then nothing is sent again;
5. otherwise cut the stored transcript back to the head (the last completed turn's answer: a
   stored fact, never the transcript's tail), send the prompt, and record the result;
6. on any failure, record the turn as failed (kind, message) and emit ``claude-sessions.turn.failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from claude_agent_sdk import ClaudeAgentOptions
from prefect_claude_sessions.storage import (
    ClaimLost,
    SessionOrigin,
    SessionRecord,
    SessionStatus,
    SQLModelSessionStore,
    TurnRecord,
    TurnStatus,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.storage.claims import Fence

from . import budget, local_copies, placement, transcript
from .context import RunContext
from .errors import AgentError, PermanentAgentError, classify_known
from .idempotency import digest, prompt_uuid_for
from .lease import LeaseTerms, hold_session
from .profile import AgentProfile
from .results import Operation, PendingTool, SessionTurn
from .runtime import TurnOutcome, run_turn_sync

logger = logging.getLogger("claude_sessions")


class Emit(Protocol):
    """Event emission, injected (the Prefect tasks pass `tasks.events.emit`)."""

    def __call__(
        self,
        action: str,
        session_id: str,
        *,
        parent_id: str | None = None,
        agent: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None: ...


def emit_nothing(action: str, session_id: str, **_: Any) -> None:
    """The default emitter of a service used outside Prefect."""


@dataclass
class TurnPlan:
    """What one prompt-sending operation needs beyond the common protocol."""

    operation: Operation
    key: str
    target_id: str
    prompt: str
    profile: AgentProfile
    options: dict[str, Any]
    parent_id: str | None = None
    fork_point: str | None = None
    new_session: bool = False
    prepare: Callable[[], None] | None = None
    extra_payload: dict[str, Any] = field(default_factory=dict)
    # Sends the turn instead of a prompt (e.g. the continuation of a reviewed tool call, which
    # sends none); its outcome's user_message_uuid is the turn's prompt uuid.
    send: Callable[[ClaudeAgentOptions], TurnOutcome] | None = None


EVENT_OF: dict[str, str] = {
    "init": "created",
    "resume": "resumed",
    "fork": "forked",
    "handoff": "handed-off",
    "rewind": "rewound",
    "compaction": "compacted",
}

#: Outcomes this worker received but could not record (the database went down after the model
#: answered), by prompt uuid: a retry in this process records them instead of asking again.
_unrecorded: dict[str, TurnOutcome] = {}


def head_of(db: Any, record: SessionRecord) -> str | None:
    """The session's head: the transcript uuid of its last completed turn's answer.

    A branch made in the store without a turn (a rewind) starts at its fork point. A session
    that has no turn at all was not made by this product (e.g. imported); only then is the
    transcript's last answer taken, by the caller, as its head.
    """
    latest = turns.latest_completed_turn(db, record.id)
    if latest is not None and latest.assistant_uuid:
        return latest.assistant_uuid
    if record.origin == SessionOrigin.rewind and record.fork_point:
        return record.fork_point
    return None


class TurnProtocol:
    """Runs `TurnPlan`s against one store; see the module docstring."""

    def __init__(
        self,
        store: SQLModelSessionStore,
        *,
        lease: Callable[[], LeaseTerms],
        options_for: Callable[[AgentProfile, dict[str, Any]], ClaudeAgentOptions],
        emit: Emit,
        pool: Callable[[], Any],
    ) -> None:
        self.store = store
        self.lease = lease
        self.options_for = options_for
        self.emit = emit
        self.pool = pool

    # ------------------------------------------------------------------ reads

    def completed(self, key: str) -> TurnRecord | None:
        """The completed turn with this idempotency key, if any."""
        with open_db(self.store.engine) as db:
            row = turns.find_turn(db, key)
            if row is not None and row.status == TurnStatus.completed:
                db.expunge(row)
                return row
        return None

    def head(self, session_id: str) -> str | None:
        """The session's head (see `head_of`); for a session with no turn at all, the last
        answer in its stored transcript."""
        with open_db(self.store.engine) as db:
            record = sessions.get_session(db, session_id)
            head = head_of(db, record)
            if head is not None or turns.latest_turn(db, session_id) is not None:
                return head
        return transcript.last_assistant_uuid(placement.stored_entries(self.store, session_id))

    def result(self, row: TurnRecord, plan: TurnPlan, *, replayed: bool) -> SessionTurn:
        return SessionTurn(
            session_id=row.session_id,
            parent_id=plan.parent_id,
            operation=plan.operation,
            agent=plan.profile.name,
            text=row.result_text or "",
            cost_usd=row.cost_usd or 0.0,
            usage=row.usage or {},
            duration_ms=row.duration_ms or 0,
            num_turns=row.num_turns or 0,
            turn_key=row.idempotency_key,
            prompt_uuid=row.user_message_uuid,
            assistant_uuid=row.assistant_uuid,
            replayed=replayed,
            pending_tool=PendingTool.model_validate(row.pending_tool) if row.pending_tool else None,
        )

    # ------------------------------------------------------------------ the protocol

    def run(self, plan: TurnPlan, ctx: RunContext) -> SessionTurn:
        """Run one turn exactly once (see the module docstring)."""
        done = self.completed(plan.key)
        if done is not None:
            return self.result(done, plan, replayed=True)
        with hold_session(self.store, plan.target_id, ctx.holder(), self.lease()) as fence:
            done = self.completed(plan.key)  # finished by another worker while we waited
            if done is not None:
                return self.result(done, plan, replayed=True)
            spend = budget.check_before(self.store, plan, self.emit)  # may refuse: nothing sent
            retrying, head, dirty = self._begin(plan, ctx, fence)
            try:
                outcome, prompt_uuid = None, prompt_uuid_for(plan.key)
                if retrying:
                    outcome, prompt_uuid = self._recover(plan)
                if outcome is None:
                    if dirty or plan.new_session:
                        self._roll_back(plan, head)
                    if plan.prepare is not None:
                        plan.prepare()
                    outcome = self._send(plan, prompt_uuid, head)
                result = self._complete(plan, outcome, prompt_uuid, fence)
                local_copies.after_turn(self.store, plan.target_id, plan.profile, self.pool())
            except BaseException as exc:
                lost = self.store.lost_claim(plan.target_id)
                self._fail(plan, lost or exc, head, fence)
                if lost is not None and lost is not exc:
                    raise lost from exc  # the cause, not the SDK's "mirror failed" symptom
                failure = spend.charge_failure(self.store, plan.key, exc)
                if failure is exc:
                    raise
                raise failure from exc  # the CLI stopped the turn at what was left of a budget
            spend.settle(self.store, result.cost_usd)
        self.emit(
            EVENT_OF[plan.operation],
            plan.target_id,
            parent_id=plan.parent_id,
            agent=plan.profile.name,
            payload={
                "turn_key": plan.key,
                "cost_usd": result.cost_usd,
                "duration_ms": result.duration_ms,
                **plan.extra_payload,
            },
        )
        return result

    def _begin(
        self, plan: TurnPlan, ctx: RunContext, fence: Fence
    ) -> tuple[bool, str | None, bool]:
        """Record the session (new ones) and the pending turn. Returns whether this is a retry,
        the target's head before this turn, and whether an uncompleted turn may have left a tail
        in its transcript (the latest turn did not complete): only then is it read and cut, so a
        clean session pays one indexed query for this, not a transcript load."""
        with open_db(self.store.engine) as db:
            retrying = turns.find_turn(db, plan.key) is not None
            latest = None if plan.new_session else turns.latest_turn(db, plan.target_id)
            dirty = latest is not None and latest.status != TurnStatus.completed
            if plan.new_session:
                sessions.create_session(
                    db,
                    id=plan.target_id,
                    project_key=placement.project_key_of(plan.profile),
                    agent_name=plan.profile.name,
                    origin=SessionOrigin(plan.operation),
                    parent_id=plan.parent_id,
                    fork_point=plan.fork_point,
                    cwd=placement.cwd_of(plan.profile),
                    agent_profile=plan.profile.model_dump(mode="json"),
                )
                head = None
            else:
                head = head_of(db, sessions.get_session(db, plan.target_id))
            turns.begin_turn(
                db,
                idempotency_key=plan.key,
                session_id=plan.target_id,
                operation=plan.operation,
                prompt_digest=digest(plan.prompt),
                flow_run_id=ctx.flow_run_id,
                task_run_id=ctx.task_run_id,
                fence=fence,
            )
        if head is None and not plan.new_session:
            head = self.head(plan.target_id)  # a session this product did not make
        return retrying, head, dirty

    def _roll_back(self, plan: TurnPlan, head: str | None) -> None:
        """Cut what failed attempts left in the target's transcript (nothing on a clean one)."""
        if plan.new_session:
            # The session is (re)created from scratch: no attempt of it ever completed.
            placement.cut_to_head(
                self.store,
                plan.target_id,
                None,
                local_dir=placement.cwd_of(plan.profile),
            )
            return
        local = placement.cwd_of(plan.profile) if plan.profile.file_checkpointing else None
        placement.cut_to_head(self.store, plan.target_id, head, local_dir=local)

    def _send(self, plan: TurnPlan, prompt_uuid: str, head: str | None) -> TurnOutcome:
        options = self.options_for(plan.profile, plan.options)
        if plan.send is not None:
            outcome = plan.send(options)
            return self._check_sent(plan, outcome)
        try:
            outcome = run_turn_sync(
                plan.prompt,
                options,
                pool=self.pool(),
                prompt_uuid=prompt_uuid,
                head_uuid=None if plan.new_session else head,
            )
        except AgentError as exc:
            if exc.kind == "store_unavailable" and exc.outcome is not None:
                _unrecorded[prompt_uuid] = exc.outcome
            raise
        return self._check_sent(plan, outcome)

    def _check_sent(self, plan: TurnPlan, outcome: TurnOutcome) -> TurnOutcome:
        if outcome.session_id and outcome.session_id != plan.target_id:
            # The CLI did not honour the session id we asked for: recording the turn under either
            # id would break idempotency or lineage, so stop loudly.
            raise PermanentAgentError(
                f"the CLI answered in session {outcome.session_id}, "
                f"expected {plan.target_id} ({plan.operation})",
                kind="wrong_session",
            )
        if plan.profile.file_checkpointing:
            self.store.import_local_session(
                plan.target_id, directory=placement.cwd_of(plan.profile)
            )
        return outcome

    def _recover(self, plan: TurnPlan) -> tuple[TurnOutcome | None, str]:
        """For a turn tried before: the answer an interrupted attempt already produced, if any,
        and the prompt uuid for the next attempt.

        Attempt n sends its prompt with uuid5(key, n). The CLI silently ignores a prompt whose
        uuid the session already holds; failed attempts are cut from the transcript before the
        next one is sent, so their uuids may be used again.
        """
        flush = getattr(self.store, "flush_spool", None)
        if flush is not None:
            flush(plan.target_id)  # answers stored while the database was down
        entries = placement.stored_entries(self.store, plan.target_id)
        attempt = 0
        while True:
            prompt_uuid = prompt_uuid_for(plan.key, attempt)
            if transcript.find_index(entries, prompt_uuid) is None:
                return None, prompt_uuid
            answer = transcript.completed_answer(entries, prompt_uuid)
            if answer is not None:
                break
            attempt += 1
        text, assistant_uuid = answer
        logger.info("recovered the answer to %s from the stored transcript", prompt_uuid)
        known = _unrecorded.pop(prompt_uuid, None)
        if known is not None and known.assistant_uuid == assistant_uuid:
            return known.model_copy(update={"user_message_uuid": prompt_uuid}), prompt_uuid
        return TurnOutcome(
            session_id=plan.target_id,
            text=text,
            assistant_uuid=assistant_uuid,
            user_message_uuid=prompt_uuid,
        ), prompt_uuid

    def _complete(
        self, plan: TurnPlan, outcome: TurnOutcome, prompt_uuid: str, fence: Fence
    ) -> SessionTurn:
        lost = self.store.lost_claim(plan.target_id)
        if lost is not None:  # the answer never reached the store: it must not become the head
            raise lost
        with open_db(self.store.engine) as db:
            row = turns.complete_turn(
                db,
                plan.key,
                session_id=plan.target_id,
                result_text=outcome.text,
                cost_usd=outcome.cost_usd,
                usage=outcome.usage,
                duration_ms=outcome.duration_ms,
                num_turns=outcome.num_turns,
                assistant_uuid=outcome.assistant_uuid,
                user_message_uuid=(outcome.user_message_uuid if plan.send else None) or prompt_uuid,
                fence=fence,
                pending_tool=outcome.pending_tool,
            )
            if plan.new_session:
                record = sessions.get_session(db, plan.target_id)
                if record.status == SessionStatus.failed:
                    sessions.set_status(db, plan.target_id, SessionStatus.active)
            return self.result(row, plan, replayed=False)

    def _fail(self, plan: TurnPlan, exc: BaseException, head: str | None, fence: Fence) -> None:
        """Record the failed attempt and cut what it left in the transcript, still under the
        claim; never mask ``exc`` (a database that is down just misses the record and the cut:
        the turn stays pending, and the next attempt recovers or cuts before it sends)."""
        error = exc if isinstance(exc, AgentError) else _as_agent_error(exc)
        kind = error.kind if error is not None else type(exc).__name__
        if isinstance(exc, ClaimLost):
            kind = "claim_lost"
        message = str(error if error is not None else exc) or type(exc).__name__
        # A stale holder's failure says nothing about the session, which another worker now drives.
        permanent = error is not None and not error.transient and kind != "claim_lost"
        try:
            with open_db(self.store.engine) as db:
                turns.fail_turn(
                    db, plan.key, error=f"[{kind}] {message}", error_kind=kind, fence=fence
                )
                if plan.new_session and permanent:
                    record = sessions.get_session(db, plan.target_id)
                    if record.status == SessionStatus.active:
                        sessions.set_status(db, plan.target_id, SessionStatus.failed)
        except Exception as record_error:
            logger.warning(
                "could not record the failure of turn %s (%s): %s", plan.key, kind, record_error
            )
        if kind not in _KEEP_TAIL_KINDS:
            try:
                self._roll_back(plan, head)
            except Exception as cut_error:
                logger.warning(
                    "could not cut the failed turn %s from session %s yet: %s",
                    plan.key,
                    plan.target_id,
                    cut_error,
                )
        self.emit(
            "turn.failed",
            plan.target_id,
            parent_id=plan.parent_id,
            agent=plan.profile.name,
            payload={
                "turn_key": plan.key,
                "operation": plan.operation,
                "error_kind": kind,
                "retryable": error.transient if error is not None else False,
            },
        )


#: Failures after which the stored tail may hold an answer to recover, or cannot be cut now.
_KEEP_TAIL_KINDS = frozenset({"store_unavailable", "database_unavailable", "storage", "claim_lost"})


def _as_agent_error(exc: BaseException) -> AgentError | None:
    """What the SDK, the CLI or the store raised, classified; None for a bug in our own code
    and for interruptions, which are recorded by their type."""
    if not isinstance(exc, Exception):
        return None  # KeyboardInterrupt, cancellation
    try:
        return classify_known(exc)
    except Exception:
        return None
