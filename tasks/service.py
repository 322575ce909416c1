"""The durable session operations, independent of Prefect: init, resume, fork, handoff,
checkpoint, rewind and record decision over the runtime and the store.

Every prompt-sending operation follows one protocol (`SessionService._turn`):

1. derive the turn's idempotency key; if the store has it completed, return it (no model call);
2. claim the target session (one writer per session; a crashed holder's claim expires);
3. record the session and a pending turn;
4. if an earlier attempt's answer already reached the stored transcript (the worker died between
   the answer and the record), recover it from there instead of asking again;
5. otherwise run the turn, mirroring the transcript into the store, and record the result.

The Prefect tasks in `prefect_claude_sessions.tasks.session_tasks` are thin wrappers over this class.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, project_key_for_directory
from prefect_claude_sessions.storage import (
    SessionBusy,
    SessionNotFound,
    SessionOrigin,
    SessionRecord,
    SessionStatus,
    SQLModelSessionStore,
    TurnRecord,
    TurnStatus,
    checkpoints,
    claims,
    decisions,
    open_db,
    sessions,
    turns,
)

from . import events, transcript
from .client_pool import default_pool
from .compaction import compaction_key, compaction_prompt, stored_brief
from .context import RunContext
from .credentials import resolve_credentials
from .errors import AgentError, InvalidInput, PermanentAgentError, agent_settings
from .idempotency import digest, prompt_uuid_for, session_id_for, turn_key
from .profile import AgentProfile
from .redaction import redact_payload
from .results import Checkpoint, Decision, Operation, SessionTurn
from .runtime import TurnOutcome, run_turn_sync

logger = logging.getLogger("claude_sessions")


@dataclass
class _Plan:
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


def agent_fingerprint(profile: AgentProfile) -> dict[str, Any]:
    """What makes two profiles "the same agent" for idempotency (the working directory is not:
    the same turn retried on another worker is still the same turn)."""
    return profile.model_dump(mode="json", exclude={"cwd"})


def validate_prompt(prompt: object) -> str:
    """A prompt must be non-empty text of bounded size; say which rule it broke."""
    if not isinstance(prompt, str):
        raise InvalidInput(f"prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidInput("prompt must not be empty")
    limit = agent_settings().max_prompt_chars
    if len(prompt) > limit:
        raise InvalidInput(
            f"prompt is {len(prompt)} characters; the limit is {limit} "
            "(CLAUDE_SESSIONS_MAX_PROMPT_CHARS)"
        )
    return prompt


class SessionService:
    """Durable session operations over one store (one database)."""

    def __init__(
        self,
        store: SQLModelSessionStore | None = None,
        *,
        credentials_block: str | None = None,
        claim_ttl_s: float | None = None,
        busy_timeout_s: float | None = None,
    ) -> None:
        self.store = store or SQLModelSessionStore()
        self.credentials_block = credentials_block
        # None: CLAUDE_SESSIONS_CLAIM_TTL / _BUSY_TIMEOUT from the settings, read at each use
        self._claim_ttl_s = claim_ttl_s or None
        self._busy_timeout_s = busy_timeout_s

    @property
    def claim_ttl_s(self) -> float:
        """Seconds a claim on a session lasts without renewal."""
        return self._claim_ttl_s or agent_settings().claim_ttl

    @property
    def busy_timeout_s(self) -> float:
        """Seconds to wait for a session another worker is writing."""
        if self._busy_timeout_s is not None:
            return self._busy_timeout_s
        return agent_settings().busy_timeout

    # ------------------------------------------------------------------ public operations

    def init(
        self,
        prompt: str,
        agent: AgentProfile,
        *,
        ctx: RunContext,
        idempotency_key: str | None = None,
    ) -> SessionTurn:
        """Start a new session. Its id is derived from the turn key, so a retry finds it."""
        prompt = validate_prompt(prompt)
        key = turn_key(
            "init",
            scope=self._scope(ctx, idempotency_key),
            source=None,
            prompt=prompt,
            agent=agent_fingerprint(agent),
        )
        target = session_id_for(key)
        return self._turn(
            _Plan("init", key, target, prompt, agent, {"session_id": target}, new_session=True),
            ctx,
        )

    def resume(
        self,
        session_id: str,
        prompt: str,
        *,
        ctx: RunContext,
        anchor: str | None = None,
        idempotency_key: str | None = None,
    ) -> SessionTurn:
        """Send the next prompt to an existing session; the model sees every earlier turn."""
        prompt = validate_prompt(prompt)
        record = self._session(session_id)
        profile = self._profile_of(record)
        key = turn_key(
            "resume",
            scope=self._scope(ctx, idempotency_key),
            source=f"{session_id}@{anchor or ''}",
            prompt=prompt,
        )
        return self._turn(
            _Plan(
                "resume",
                key,
                session_id,
                prompt,
                profile,
                {"resume": session_id},
                prepare=lambda: self._localise(session_id, profile),
            ),
            ctx,
        )

    def fork(
        self,
        session_id: str,
        prompt: str,
        *,
        ctx: RunContext,
        at: Checkpoint | None = None,
        anchor: str | None = None,
        idempotency_key: str | None = None,
        operation: Operation = "fork",
    ) -> SessionTurn:
        """Branch a session (optionally at a checkpoint) into a new one; the parent is untouched."""
        prompt = validate_prompt(prompt)
        record = self._session(session_id)
        profile = self._profile_of(record)
        if at is not None:
            self._check_checkpoint_belongs(at, session_id)
        key = turn_key(
            operation,
            scope=self._scope(ctx, idempotency_key),
            source=f"{session_id}@{anchor or ''}",
            prompt=prompt,
            extra=at.id if at else None,
        )
        target = session_id_for(key)
        options: dict[str, Any] = {"resume": session_id, "fork_session": True, "session_id": target}
        if at is not None:
            options["resume_session_at"] = at.transcript_uuid
        return self._turn(
            _Plan(
                operation,
                key,
                target,
                prompt,
                profile,
                options,
                parent_id=session_id,
                fork_point=at.transcript_uuid if at else self._last_point(session_id),
                new_session=True,
                prepare=lambda: self._localise(session_id, profile),
            ),
            ctx,
        )

    def handoff(
        self,
        session_id: str,
        prompt: str,
        *,
        to: AgentProfile,
        ctx: RunContext,
        anchor: str | None = None,
        idempotency_key: str | None = None,
    ) -> SessionTurn:
        """Pass a session to a specialist: a new session that has the whole conversation and the
        specialist's system prompt.

        The CLI freezes a session's system prompt on resume, so the specialist's session is a copy
        of the transcript with its frozen prompt replaced. When the transcript has no prompt
        snapshot to replace (a CLI that changed its format), the specialist starts fresh with a
        brief of the conversation in its first prompt instead.
        """
        prompt = validate_prompt(prompt)
        record = self._session(session_id)
        source_profile = self._profile_of(record)
        key = turn_key(
            "handoff",
            scope=self._scope(ctx, idempotency_key),
            source=f"{session_id}@{anchor or ''}",
            prompt=prompt,
            agent=agent_fingerprint(to),
        )
        target = session_id_for(key)
        self._localise(session_id, source_profile)
        entries = self._stored_entries(session_id)
        if transcript.has_prompt_snapshot(entries):
            copied = transcript.copy_for_session(entries, target, system_prompt=to.system_prompt)

            def copy_transcript() -> None:
                # Entry uuids make this append idempotent: a retry re-appends nothing.
                self.store.append_sync(self._project_key(to), target, copied)

            plan = _Plan(
                "handoff",
                key,
                target,
                prompt,
                to,
                {"resume": target},
                parent_id=session_id,
                fork_point=transcript.last_assistant_uuid(entries),
                new_session=True,
                prepare=copy_transcript,
            )
        else:
            logger.warning(
                "session %s has no prompt snapshot; handing off with a conversation brief",
                session_id,
            )
            brief = transcript.conversation_brief(entries)
            plan = _Plan(
                "handoff",
                key,
                target,
                f"You are taking over this conversation.\n\n{brief}\n\n---\n\n{prompt}",
                to,
                {"session_id": target},
                parent_id=session_id,
                fork_point=transcript.last_assistant_uuid(entries),
                new_session=True,
            )
        return self._turn(plan, ctx)

    def checkpoint(
        self,
        session_id: str,
        label: str,
        *,
        ctx: RunContext,
        anchor: str | None = None,
        idempotency_key: str | None = None,
    ) -> Checkpoint:
        """Name the session's current conversation point, to fork from or roll back to later."""
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise InvalidInput("label must be non-empty text of at most 200 characters")
        self._session(session_id)
        point = self._last_point(session_id)
        if point is None:
            raise InvalidInput(
                f"session {session_id} has no answered turn yet; nothing to checkpoint"
            )
        key = turn_key(
            "checkpoint",
            scope=self._scope(ctx, idempotency_key),
            source=f"{session_id}@{anchor or ''}",
            prompt=label,
        )
        with open_db(self.store.engine) as db:
            row = checkpoints.create_checkpoint(
                db,
                session_id=session_id,
                transcript_uuid=point,
                label=label,
                user_message_uuid=self._last_prompt_uuid(db, session_id),
                idempotency_key=key,
            )
            result = _checkpoint_result(row)
        events.emit("checkpointed", session_id, payload={"label": label, "checkpoint": result.id})
        return result

    def rewind(
        self,
        checkpoint: Checkpoint | str,
        *,
        ctx: RunContext,
        prompt: str | None = None,
        restore_files: bool = True,
        idempotency_key: str | None = None,
    ) -> SessionTurn:
        """Roll a session back to a checkpoint: a new branch that continues from that point
        (the original session is kept), and, for sessions with file checkpointing, the files
        restored to their state at that point."""
        stored = self.get_checkpoint(checkpoint)
        record = self._session(stored.session_id)
        profile = self._profile_of(record)
        if restore_files and profile.file_checkpointing:
            self._restore_files(record, profile, stored)
        if prompt is not None:
            return self.fork(
                stored.session_id,
                prompt,
                ctx=ctx,
                at=stored,
                idempotency_key=idempotency_key,
                operation="rewind",
            )
        return self._branch_without_turn(stored, record, profile, ctx, idempotency_key)

    def record_decision(
        self,
        session_id: str,
        key: str,
        payload: dict[str, Any],
        *,
        ctx: RunContext,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Log a decision beside the session; a retry of the same decision is recorded once."""
        if not isinstance(key, str) or not key.strip() or len(key) > 200:
            raise InvalidInput("decision key must be non-empty text of at most 200 characters")
        if not isinstance(payload, dict):
            raise InvalidInput(f"decision payload must be a dict, got {type(payload).__name__}")
        self._session(session_id)
        clean = redact_payload(payload)
        record_key = turn_key(
            "decision",
            scope=self._scope(ctx, idempotency_key),
            source=session_id,
            prompt=key,
            extra=_stable_json(clean),
        )
        with open_db(self.store.engine) as db:
            row, created = decisions.record_decision(
                db,
                session_id=session_id,
                key=key,
                payload=clean,
                flow_run_id=ctx.flow_run_id,
                idempotency_key=record_key,
            )
            result = Decision(
                id=row.id,
                session_id=row.session_id,
                key=row.key,
                payload=row.payload,
                flow_run_id=row.flow_run_id,
                created_at=row.created_at,
                created=created,
            )
        if created:
            events.emit("decision-recorded", session_id, payload={"key": key, "decision": row.id})
        return result

    def compact(
        self,
        session_id: str,
        summary: str | None = None,
        *,
        ctx: RunContext,
        idempotency_key: str | None = None,
        archive: bool = True,
    ) -> SessionTurn:
        """Start a fresh session carrying a summary of ``session_id``; archive the old one.

        The new session has the old one's agent profile, origin ``compaction`` and the old session
        as parent; the summary is its first prompt (one model turn). ``summary`` defaults to
        `stored_brief` (no model call), read while the old session is claimed so no turn can slip
        in between the summary and the archiving. ``idempotency_key`` defaults to the old session
        and its current conversation point (see `compaction_key`). Compacting a session that is no
        longer active (and was not compacted under this key) raises `InvalidInput`.
        """
        if summary is not None and (not isinstance(summary, str) or not summary.strip()):
            raise InvalidInput(f"the summary of session {session_id} is empty; not compacting it")
        record = self._session(session_id)
        profile = self._profile_of(record)
        with self._claimed(session_id, ctx):
            key = turn_key(
                "compaction",
                scope=self._scope(ctx, idempotency_key or compaction_key(self, session_id)),
                source=session_id,
                prompt="compaction",
                agent=agent_fingerprint(profile),
            )
            if self._completed(key) is None:
                status = self._session(session_id).status
                if status != SessionStatus.active:
                    raise InvalidInput(
                        f"session {session_id} is {status.value}; only active sessions are compacted"
                    )
                if summary is None:
                    summary = stored_brief(self, session_id)
                if not summary.strip():
                    raise InvalidInput(f"session {session_id} has no conversation to summarise")
            target = session_id_for(key)
            result = self._turn(
                _Plan(
                    "compaction",
                    key,
                    target,
                    validate_prompt(compaction_prompt(summary or "(replayed)", session_id)),
                    profile,
                    {"session_id": target},
                    parent_id=session_id,
                    fork_point=self._last_point(session_id),
                    new_session=True,
                ),
                ctx,
            )
            if archive:
                with open_db(self.store.engine) as db:
                    if sessions.get_session(db, session_id).status == SessionStatus.active:
                        sessions.set_status(db, session_id, SessionStatus.archived)
        return result

    # ------------------------------------------------------------------ the turn protocol

    def _turn(self, plan: _Plan, ctx: RunContext) -> SessionTurn:
        done = self._completed(plan.key)
        if done is not None:
            return self._result(done, plan, replayed=True)
        with self._claimed(plan.target_id, ctx):
            done = self._completed(plan.key)  # finished by another worker while we waited
            if done is not None:
                return self._result(done, plan, replayed=True)
            with open_db(self.store.engine) as db:
                retrying = turns.find_turn(db, plan.key) is not None
                if plan.new_session:
                    sessions.create_session(
                        db,
                        id=plan.target_id,
                        project_key=self._project_key(plan.profile),
                        agent_name=plan.profile.name,
                        origin=SessionOrigin(plan.operation),
                        parent_id=plan.parent_id,
                        fork_point=plan.fork_point,
                        cwd=self._cwd(plan.profile),
                        agent_profile=plan.profile.model_dump(mode="json"),
                    )
                turns.begin_turn(
                    db,
                    idempotency_key=plan.key,
                    session_id=plan.target_id,
                    operation=plan.operation,
                    prompt_digest=digest(plan.prompt),
                    flow_run_id=ctx.flow_run_id,
                    task_run_id=ctx.task_run_id,
                )
            outcome, prompt_uuid = None, prompt_uuid_for(plan.key)
            if retrying:
                outcome, prompt_uuid = self._recover(plan)
                if outcome is None:
                    self._continue_after_failed_attempts(plan)
            if outcome is None:
                if plan.prepare is not None:
                    plan.prepare()
                outcome = self._send(plan, prompt_uuid)
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
                    user_message_uuid=prompt_uuid,
                )
                result = self._result(row, plan, replayed=False)
        events.emit(
            _EVENT_OF[plan.operation],
            plan.target_id,
            parent_id=plan.parent_id,
            agent=plan.profile.name,
            payload={
                "turn_key": plan.key,
                "cost_usd": result.cost_usd,
                "duration_ms": result.duration_ms,
            },
        )
        return result

    def _send(self, plan: _Plan, prompt_uuid: str) -> TurnOutcome:
        options = self._options(plan.profile, plan.options)
        try:
            outcome = run_turn_sync(
                plan.prompt,
                options,
                pool=default_pool(),
                prompt_uuid=prompt_uuid,
                head_uuid=self._head(plan),
            )
        except AgentError as exc:
            with open_db(self.store.engine) as db:
                turns.fail_turn(db, plan.key, error=str(exc))
            raise
        if outcome.session_id and outcome.session_id != plan.target_id:
            # The CLI did not honour the session id we asked for: recording the turn under either id
            # would break idempotency or lineage, so stop loudly.
            error = (
                f"the CLI answered in session {outcome.session_id}, "
                f"expected {plan.target_id} ({plan.operation})"
            )
            with open_db(self.store.engine) as db:
                turns.fail_turn(db, plan.key, error=error)
            raise PermanentAgentError(error)
        if plan.profile.file_checkpointing:
            self.store.import_local_session(plan.target_id, directory=self._cwd(plan.profile))
        return outcome

    def _recover(self, plan: _Plan) -> tuple[TurnOutcome | None, str]:
        """For a turn tried before: the answer an interrupted attempt already stored, if any, and
        the prompt uuid for the next attempt.

        Attempt n sends its prompt with uuid5(key, n). The CLI silently ignores a prompt whose uuid
        the session already holds, so a prompt that reached the transcript unanswered is sent again
        under the next attempt's uuid; one that was answered is not sent at all.
        """
        entries = self._stored_entries(plan.target_id)
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
        return TurnOutcome(
            session_id=plan.target_id,
            text=text,
            cost_usd=0.0,
            usage={},
            duration_ms=0,
            num_turns=0,
            is_error=False,
            error=None,
            assistant_uuid=assistant_uuid,
            user_message_uuid=prompt_uuid,
        ), prompt_uuid

    def _continue_after_failed_attempts(self, plan: _Plan) -> None:
        """Set up the next attempt of a turn whose earlier attempts got no answer.

        An attempt that failed with an API error (429/5xx/529) or a cut stream still leaves its
        prompt, and the CLI's synthetic "API Error" reply, in the stored transcript. Resuming
        plainly would put the prompt before the model once per failed attempt (the CLI merges the
        consecutive prompts into one message), so the session is resumed at the last entry before
        the first failed attempt: the failed attempts become a dead branch the model never sees.
        """
        entries = self._stored_entries(plan.target_id)
        if not entries:
            return
        options: dict[str, Any] = {"resume": plan.target_id}
        first = transcript.find_index(entries, prompt_uuid_for(plan.key, 0))
        if first is not None:
            kept = [e for e in entries[:first] if e.get("uuid") and not e.get("isSidechain")]
            if kept:
                options["resume_session_at"] = str(kept[-1]["uuid"])
        if plan.new_session:
            # An earlier attempt already created the session (the CLI honoured our id):
            # continue it rather than creating it a second time.
            plan.options, plan.prepare = options, None
        elif "resume_session_at" in options:
            plan.options = {**plan.options, **options}

    def _stored_entries(self, session_id: str) -> list[dict[str, Any]]:
        try:
            return self.store.entries(session_id)
        except SessionNotFound:
            return []

    def _completed(self, key: str) -> TurnRecord | None:
        with open_db(self.store.engine) as db:
            row = turns.find_turn(db, key)
            if row is not None and row.status == TurnStatus.completed:
                db.expunge(row)
                return row
        return None

    def _result(self, row: TurnRecord, plan: _Plan, *, replayed: bool) -> SessionTurn:
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
        )

    # ------------------------------------------------------------------ one writer per session

    @contextmanager
    def _claimed(self, session_id: str, ctx: RunContext) -> Iterator[None]:
        """Hold the session's claim for the duration of a turn, renewing it while the turn runs.

        A second writer waits up to ``busy_timeout_s`` and then fails with `SessionBusy`; a claim
        left by a killed worker expires after ``claim_ttl_s``.
        """
        holder = ctx.holder()
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.1
        while True:
            with open_db(self.store.engine) as db:
                if claims.claim_session(
                    db, session_id, holder=holder, ttl_seconds=self.claim_ttl_s
                ):
                    break
            if time.monotonic() >= deadline:
                raise SessionBusy(
                    f"session {session_id} is busy: another run holds it "
                    f"(waited {self.busy_timeout_s:.0f} s; a crashed holder's claim expires "
                    f"after {self.claim_ttl_s:.0f} s)"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.claim_ttl_s / 3):
                try:
                    with open_db(self.store.engine) as db:
                        claims.claim_session(
                            db, session_id, holder=holder, ttl_seconds=self.claim_ttl_s
                        )
                except Exception:  # a missed renewal only shortens the lease
                    logger.warning("could not renew the claim on session %s", session_id)

        renewer = threading.Thread(target=renew, name=f"claim-{session_id[:8]}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=5)
            with open_db(self.store.engine) as db:
                claims.release_session(db, session_id, holder=holder)

    # ------------------------------------------------------------------ helpers

    def _scope(self, ctx: RunContext, idempotency_key: str | None) -> str:
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not idempotency_key.strip():
                raise InvalidInput("idempotency_key must be non-empty text when given")
            return f"key:{idempotency_key}"
        return ctx.scope

    def _session(self, session_id: str) -> SessionRecord:
        with open_db(self.store.engine) as db:
            record = sessions.get_session(db, session_id)
            db.expunge(record)
            return record

    def _profile_of(self, record: SessionRecord) -> AgentProfile:
        if not record.agent_profile:
            raise PermanentAgentError(f"session {record.id} has no stored agent profile")
        return AgentProfile.model_validate(record.agent_profile)

    def get_checkpoint(self, checkpoint: Checkpoint | str) -> Checkpoint:
        """The stored checkpoint (by id or by a `Checkpoint` result); `CheckpointNotFound` if absent."""
        checkpoint_id = checkpoint if isinstance(checkpoint, str) else checkpoint.id
        with open_db(self.store.engine) as db:
            return _checkpoint_result(checkpoints.get_checkpoint(db, checkpoint_id))

    def _check_checkpoint_belongs(self, at: Checkpoint, session_id: str) -> None:
        stored = self.get_checkpoint(at)
        if stored.session_id != session_id:
            raise InvalidInput(
                f"checkpoint {stored.id} ({stored.label!r}) belongs to session "
                f"{stored.session_id}, not to {session_id}"
            )

    def _cwd(self, profile: AgentProfile) -> str:
        return str(profile.cwd) if profile.cwd else os.getcwd()

    def _project_key(self, profile: AgentProfile) -> str:
        return project_key_for_directory(self._cwd(profile))

    def _localise(self, session_id: str, profile: AgentProfile) -> None:
        """Make the session's transcript visible under this worker's project key.

        The SDK looks a session up by (project key of the cwd, session id); a worker on another
        machine may run in another directory. The store moves the transcript in one transaction,
        so the session keeps one home and any worker can resume it by id alone.
        """
        here = self._project_key(profile)
        self.store.relocate(session_id, to_project_key=here)

    def _head(self, plan: _Plan) -> str | None:
        """The session's latest answer as the store knows it: a warm client that saw another
        head is stale (another worker moved the session on) and the pool replaces it."""
        if plan.new_session:
            return None
        return self._last_point(plan.target_id)

    def head(self, session_id: str) -> str | None:
        """The session's conversation point: the transcript uuid of its latest answer."""
        return self._last_point(session_id)

    def _last_point(self, session_id: str) -> str | None:
        with open_db(self.store.engine) as db:
            latest = turns.latest_completed_turn(db, session_id)
            if latest is not None and latest.assistant_uuid:
                return latest.assistant_uuid
        return transcript.last_assistant_uuid(self._stored_entries(session_id))

    def _last_prompt_uuid(self, db: Any, session_id: str) -> str | None:
        latest = turns.latest_completed_turn(db, session_id)
        return latest.user_message_uuid if latest is not None else None

    def _options(self, profile: AgentProfile, overrides: dict[str, Any]) -> ClaudeAgentOptions:
        env = resolve_credentials(self.credentials_block)
        common: dict[str, Any] = {"env": env, "cwd": self._cwd(profile)}
        if profile.file_checkpointing:
            # The SDK refuses a session store together with file checkpointing; such sessions
            # are copied into the store after each turn instead (see `_send`).
            common.update(enable_file_checkpointing=True, extra_args={"replay-user-messages": None})
        else:
            common["session_store"] = self.store
        return profile.to_options(**common, **overrides)

    def _restore_files(
        self, record: SessionRecord, profile: AgentProfile, stored: Checkpoint
    ) -> None:
        from .file_rewind import rewind_files_sync

        entries = self.store.entries(record.id)
        point = transcript.first_prompt_after(entries, stored.transcript_uuid)
        if point is None:
            return  # nothing happened after the checkpoint: the files are as they were
        rewind_files_sync(record.id, point, self._options(profile, {"resume": record.id}))

    def _branch_without_turn(
        self,
        stored: Checkpoint,
        record: SessionRecord,
        profile: AgentProfile,
        ctx: RunContext,
        idempotency_key: str | None,
    ) -> SessionTurn:
        """A new session holding the conversation up to the checkpoint, made in the store
        without sending anything to the model (``query("")`` would send a real turn)."""
        key = turn_key(
            "rewind",
            scope=self._scope(ctx, idempotency_key),
            source=stored.session_id,
            prompt=stored.id,
        )
        target = session_id_for(key)
        self._localise(record.id, profile)
        entries = self.store.entries(record.id)
        if transcript.find_index(entries, stored.transcript_uuid) is None:
            raise InvalidInput(
                f"checkpoint {stored.id} points at {stored.transcript_uuid}, which is not in the "
                f"stored transcript of session {record.id}"
            )
        copied = transcript.copy_for_session(entries, target, up_to_uuid=stored.transcript_uuid)
        with open_db(self.store.engine) as db:
            sessions.create_session(
                db,
                id=target,
                project_key=self._project_key(profile),
                agent_name=profile.name,
                origin=SessionOrigin.rewind,
                parent_id=record.id,
                fork_point=stored.transcript_uuid,
                cwd=self._cwd(profile),
                agent_profile=profile.model_dump(mode="json"),
            )
        self.store.append_sync(self._project_key(profile), target, copied)
        events.emit(
            "rewound",
            target,
            parent_id=record.id,
            agent=profile.name,
            payload={"checkpoint": stored.id, "label": stored.label},
        )
        return SessionTurn(
            session_id=target,
            parent_id=record.id,
            operation="rewind",
            agent=profile.name,
            text="",
            turn_key=key,
            assistant_uuid=stored.transcript_uuid,
        )


_EVENT_OF: dict[str, str] = {
    "init": "created",
    "resume": "resumed",
    "fork": "forked",
    "handoff": "handed-off",
    "rewind": "rewound",
    "compaction": "compacted",
}


def _checkpoint_result(row: Any) -> Checkpoint:
    return Checkpoint(
        id=row.id,
        session_id=row.session_id,
        label=row.label,
        transcript_uuid=row.transcript_uuid,
        user_message_uuid=row.user_message_uuid,
        created_at=row.created_at,
    )


def _stable_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
