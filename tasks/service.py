"""The durable session operations: init, resume, fork, handoff, checkpoint, rewind, record
decision and compaction over the runtime and the store.

This is the facade; each job has its own module:

- `tasks.validation`: what callers pass, checked once at the edge;
- `tasks.turn_protocol`: every prompt-sending operation as a transaction over the session;
- `tasks.lease`: one writer per session (a claim renewed by a heartbeat);
- `tasks.placement`: where a transcript lives, and cutting it back to the session's head;
- `tasks.branching`: forks, handoffs, compactions and rewinds from a stored conversation point.

The service has no Prefect dependency of its own: credential lookup and event emission are
injected (the Prefect tasks in `tasks.session_tasks` pass the block-aware lookup and Prefect
events).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions
from prefect_claude_sessions.storage import (
    SessionOrigin,
    SessionRecord,
    SessionStatus,
    SQLModelSessionStore,
    checkpoints,
    decisions,
    open_db,
    sessions,
    turns,
)

from . import branching, placement, transcript
from .compaction import compaction_key, compaction_prompt, stored_brief
from .context import RunContext
from .errors import InvalidInput, PermanentAgentError, agent_settings
from .idempotency import session_id_for, turn_key
from .lease import LeaseTerms, hold_session
from .profile import AgentProfile
from .reads import SessionReads
from .redaction import redact_payload
from .results import Checkpoint, Decision, Operation, SessionTurn
from .turn_protocol import Emit, TurnPlan, TurnProtocol, emit_nothing
from .validation import (
    normalize_session_id,
    validate_idempotency_key,
    validate_label,
    validate_prompt,
)

logger = logging.getLogger("claude_sessions")

CredentialLookup = Callable[[str | None], Mapping[str, str]]

__all__ = ["SessionService", "agent_fingerprint", "validate_prompt"]


def _max_prompt_chars() -> int:
    return agent_settings().max_prompt_chars


def agent_fingerprint(profile: AgentProfile) -> dict[str, Any]:
    """What makes two profiles "the same agent" for idempotency (the working directory is not:
    the same turn retried on another worker is still the same turn)."""
    data = profile.model_dump(mode="json", exclude={"cwd"})
    for name in _FIELDS_ADDED_LATER:
        if data.get(name) == _DEFAULTS[name]:
            data.pop(name, None)  # keys of profiles made before the field stay the same
    return data


#: Profile fields added after sessions were first stored: left out of the fingerprint while
#: they hold their default, so an upgrade does not give existing turns new idempotency keys.
_FIELDS_ADDED_LATER = ("approval_tools", "session_budget_usd")
_DEFAULTS = {
    name: AgentProfile.model_fields[name].get_default(call_default_factory=True)
    for name in _FIELDS_ADDED_LATER
}


def _default_credentials(block_name: str | None) -> Mapping[str, str]:
    from .credentials import resolve_credentials  # a Prefect block type: imported when needed

    return resolve_credentials(block_name)


def _default_pool() -> Any:
    from .client_pool import default_pool

    return default_pool()


class SessionService:
    """Durable session operations over one store (one database)."""

    def __init__(
        self,
        store: SQLModelSessionStore | None = None,
        *,
        credentials_block: str | None = None,
        claim_ttl_s: float | None = None,
        busy_timeout_s: float | None = None,
        credentials: CredentialLookup | None = None,
        emit: Emit | None = None,
        pool: Callable[[], Any] | None = None,
    ) -> None:
        self.store = store or SQLModelSessionStore()
        self.credentials_block = credentials_block
        # None: CLAUDE_SESSIONS_CLAIM_TTL / _BUSY_TIMEOUT from the settings, read at each turn
        self._claim_ttl_s = claim_ttl_s or None
        self._busy_timeout_s = busy_timeout_s
        self._credentials = credentials or _default_credentials
        self.reads = SessionReads(self.store)
        self.emit: Emit = emit or emit_nothing
        self.protocol = TurnProtocol(
            self.store,
            lease=self._lease_terms,
            options_for=self._options,
            emit=self.emit,
            pool=pool or _default_pool,
        )

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

    def _lease_terms(self) -> LeaseTerms:
        return LeaseTerms(ttl_s=self.claim_ttl_s, busy_timeout_s=self.busy_timeout_s)

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
        prompt = self._prompt(prompt)
        if not isinstance(agent, AgentProfile):
            raise InvalidInput(f"agent must be an AgentProfile, got {type(agent).__name__}")
        key = turn_key(
            "init",
            scope=self._scope(ctx, idempotency_key),
            source=None,
            prompt=prompt,
            agent=agent_fingerprint(agent),
        )
        target = session_id_for(key)
        return self.protocol.run(
            TurnPlan("init", key, target, prompt, agent, {"session_id": target}, new_session=True),
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
        """Send the next prompt to an existing session; the model sees every completed turn."""
        session_id = normalize_session_id(session_id)
        prompt = self._prompt(prompt)
        record = self._session(session_id)
        profile = self._profile_of(record)
        self._require_continuable(record)
        key = turn_key(
            "resume",
            scope=self._scope(ctx, idempotency_key),
            source=f"{session_id}@{anchor or ''}",
            prompt=prompt,
        )
        if self.protocol.completed(key) is None:
            self._refuse_pending_tool(session_id)
        return self.protocol.run(
            TurnPlan(
                "resume",
                key,
                session_id,
                prompt,
                profile,
                {"resume": session_id},
                prepare=lambda: placement.localise(self.store, session_id, profile),
            ),
            ctx,
        )

    def continue_tool(
        self,
        turn: SessionTurn,
        *,
        approved: bool,
        comment: str = "",
        ctx: RunContext,
        idempotency_key: str | None = None,
    ) -> SessionTurn:
        """Continue a session whose turn stopped on ``turn.pending_tool`` with a person's
        decision: approved, the tool runs and the model goes on; denied, the tool does not run
        and the model is told why (``comment``). One recorded turn (operation ``resume``) that
        sends no prompt (see `runtime.continue_deferred_sync`); a replay returns it from the
        store and runs nothing."""
        from .runtime import continue_deferred_sync
        from .tool_approval import denial_reason, review_hooks

        if not isinstance(turn, SessionTurn):
            raise InvalidInput(f"turn must be a SessionTurn, got {type(turn).__name__}")
        pending = turn.pending_tool
        if pending is None:
            raise InvalidInput(
                f"turn {turn.turn_key} of session {turn.session_id} has no pending tool call"
            )
        if not isinstance(approved, bool) or not isinstance(comment, str):
            raise InvalidInput("approved must be a bool and comment a string")
        session_id = normalize_session_id(turn.session_id)
        record = self._session(session_id)
        profile = self._profile_of(record)
        key = turn_key(
            "resume",
            scope=self._scope(ctx, idempotency_key),
            source=f"{session_id}@{turn.turn_key}",
            prompt=f"review of tool call {pending.id}",
            extra=_stable_json({"approved": approved, "comment": comment}),
        )
        verdict = "approved" if approved else "denied"
        plan = TurnPlan(
            "resume",
            key,
            session_id,
            f"[review] {pending.name} call {pending.id} {verdict}",
            profile,
            {
                "resume": session_id,
                "hooks": review_hooks(
                    profile.approval_tools,
                    pending.id,
                    approved=approved,
                    reason=denial_reason(pending.name, comment),
                ),
            },
            prepare=lambda: placement.localise(self.store, session_id, profile),
            extra_payload={"reviewed_tool": pending.id, "tool": pending.name, "approved": approved},
            send=lambda options: continue_deferred_sync(options),
        )
        done = self.protocol.completed(key)
        if done is not None:
            return self.protocol.result(done, plan, replayed=True)
        with open_db(self.store.engine) as db:
            latest = turns.latest_completed_turn(db, session_id)
            waiting = latest.pending_tool if latest is not None else None
        if not waiting or waiting.get("id") != pending.id:
            raise InvalidInput(
                f"session {session_id} is not waiting on tool call {pending.id} "
                f"({pending.name}); it was reviewed already or the session moved on"
            )
        return self.protocol.run(plan, ctx)

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
        """Branch a session (at its head, or at a checkpoint) into a new one; the parent is
        untouched."""
        session_id = normalize_session_id(session_id)
        prompt = self._prompt(prompt)
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
        if self.protocol.completed(key) is None:
            if at is None:  # a branch from the head would carry the undecided call
                self._refuse_pending_tool(session_id)
            point = branching.require_point(
                session_id, at.transcript_uuid if at else self.head(session_id), "fork"
            )
        else:
            point = at.transcript_uuid if at else ""  # replayed: nothing is sent
        return self.protocol.run(
            branching.fork_plan(
                operation=operation,
                key=key,
                target=session_id_for(key),
                source_id=session_id,
                prompt=prompt,
                profile=profile,
                point=point,
                prepare=lambda: placement.localise(self.store, session_id, profile),
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
        """Pass a session to a specialist: a new session that has the whole completed
        conversation and the specialist's system prompt (see `branching.handoff_plan`)."""
        session_id = normalize_session_id(session_id)
        prompt = self._prompt(prompt)
        if not isinstance(to, AgentProfile):
            raise InvalidInput(f"to must be an AgentProfile, got {type(to).__name__}")
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
        done = self.protocol.completed(key)
        if done is not None:
            plan = TurnPlan("handoff", key, target, prompt, to, {}, parent_id=session_id)
            return self.protocol.result(done, plan, replayed=True)
        self._refuse_pending_tool(session_id)
        point = branching.require_point(session_id, self.head(session_id), "hand off")
        placement.localise(self.store, session_id, source_profile)
        plan = branching.handoff_plan(
            self.store,
            key=key,
            target=target,
            source_id=session_id,
            prompt=prompt,
            to=to,
            point=point,
        )
        return self.protocol.run(plan, ctx)

    def checkpoint(
        self,
        session_id: str,
        label: str,
        *,
        ctx: RunContext,
        anchor: str | None = None,
        idempotency_key: str | None = None,
    ) -> Checkpoint:
        """Name the session's head (its last completed turn), to fork from or roll back to."""
        session_id = normalize_session_id(session_id)
        label = validate_label(label)
        self._session(session_id)
        point = self.head(session_id)
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
            latest = turns.latest_completed_turn(db, session_id)
            row = checkpoints.create_checkpoint(
                db,
                session_id=session_id,
                transcript_uuid=point,
                label=label,
                user_message_uuid=latest.user_message_uuid if latest is not None else None,
                idempotency_key=key,
            )
            result = _checkpoint_result(row)
        self.emit("checkpointed", session_id, payload={"label": label, "checkpoint": result.id})
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
        if prompt is not None:
            prompt = self._prompt(prompt)
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
        session_id = normalize_session_id(session_id)
        key = validate_label(key, "decision key")
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
            self.emit("decision-recorded", session_id, payload={"key": key, "decision": row.id})
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
        `stored_brief` of the completed conversation (no model call), read while the old session
        is claimed so no turn can slip in between the summary and the archiving.
        ``idempotency_key`` defaults to the old session and its current conversation point (see
        `compaction_key`). Compacting a session that is no longer active (and was not compacted
        under this key) raises `InvalidInput`.
        """
        session_id = normalize_session_id(session_id)
        if summary is not None and (not isinstance(summary, str) or not summary.strip()):
            raise InvalidInput(f"the summary of session {session_id} is empty; not compacting it")
        record = self._session(session_id)
        profile = self._profile_of(record)
        lease = self._lease_terms()
        with hold_session(self.store, session_id, ctx.holder(), lease):
            key = turn_key(
                "compaction",
                scope=self._scope(ctx, idempotency_key or compaction_key(self, session_id)),
                source=session_id,
                prompt="compaction",
                agent=agent_fingerprint(profile),
            )
            if self.protocol.completed(key) is None:
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
            result = self.protocol.run(
                TurnPlan(
                    "compaction",
                    key,
                    target,
                    validate_prompt(
                        compaction_prompt(summary or "(replayed)", session_id),
                        max_chars=_max_prompt_chars(),
                    ),
                    profile,
                    {"session_id": target},
                    parent_id=session_id,
                    fork_point=self.head(session_id),
                    new_session=True,
                ),
                ctx,
            )
            if archive:
                with open_db(self.store.engine) as db:
                    if sessions.get_session(db, session_id).status == SessionStatus.active:
                        sessions.set_status(db, session_id, SessionStatus.archived)
        return result

    # ------------------------------------------------------------------ reads

    def head(self, session_id: str) -> str | None:
        """The session's head: the transcript uuid of its last completed turn's answer."""
        return self.protocol.head(normalize_session_id(session_id))

    def get_session(self, session_id: str) -> SessionRecord:
        """The stored session record (detached); `SessionNotFound` if absent."""
        return self._session(normalize_session_id(session_id))

    def get_checkpoint(self, checkpoint: Checkpoint | str) -> Checkpoint:
        """The stored checkpoint (by id or by a `Checkpoint` result); `CheckpointNotFound` if absent."""
        checkpoint_id = checkpoint if isinstance(checkpoint, str) else checkpoint.id
        with open_db(self.store.engine) as db:
            return _checkpoint_result(checkpoints.get_checkpoint(db, checkpoint_id))

    # ------------------------------------------------------------------ helpers

    def _prompt(self, prompt: object) -> str:
        return validate_prompt(prompt, max_chars=_max_prompt_chars())

    def _scope(self, ctx: RunContext, idempotency_key: str | None) -> str:
        key = validate_idempotency_key(idempotency_key)
        return f"key:{key}" if key is not None else ctx.scope

    def _session(self, session_id: str) -> SessionRecord:
        with open_db(self.store.engine) as db:
            record = sessions.get_session(db, session_id)
            db.expunge(record)
        self._require_usable(record)
        return record

    def _require_usable(self, record: SessionRecord) -> None:
        """Refuse every operation on a purged session before anything is read or sent."""
        placement.drop_if_purged(record.id, record.status)  # SessionPurged; no stale copy left

    def _refuse_pending_tool(self, session_id: str) -> None:
        """A session whose last turn stopped on a tool call waits for that call's review: a new
        prompt now would make the CLI decide the call first, without the person."""
        with open_db(self.store.engine) as db:
            latest = turns.latest_completed_turn(db, session_id)
            pending = latest.pending_tool if latest is not None else None
        if pending:
            raise InvalidInput(
                f"session {session_id} waits for a person to review its {pending.get('name')} "
                f"call {pending.get('id')}; call review_pending_tool on the turn that stopped "
                "before it"
            )

    def _require_continuable(self, record: SessionRecord) -> None:
        """A session whose first turn never completed has no conversation to continue."""
        if record.status == SessionStatus.failed:
            raise InvalidInput(
                f"session {record.id} failed before its first turn completed; retry the "
                "operation that created it instead of continuing it"
            )

    def _profile_of(self, record: SessionRecord) -> AgentProfile:
        if not record.agent_profile:
            raise PermanentAgentError(f"session {record.id} has no stored agent profile")
        return AgentProfile.model_validate(record.agent_profile)

    def _check_checkpoint_belongs(self, at: Checkpoint, session_id: str) -> None:
        stored = self.get_checkpoint(at)
        if stored.session_id != session_id:
            raise InvalidInput(
                f"checkpoint {stored.id} ({stored.label!r}) belongs to session "
                f"{stored.session_id}, not to {session_id}"
            )

    def _options(self, profile: AgentProfile, overrides: dict[str, Any]) -> ClaudeAgentOptions:
        cwd = placement.cwd_of(profile)
        if not os.path.isdir(cwd):
            raise InvalidInput(
                f"agent {profile.name!r}: working directory {cwd} does not exist on this worker"
            )
        env = self._credentials(self.credentials_block)
        common: dict[str, Any] = {"env": env, "cwd": cwd}
        if profile.file_checkpointing:
            # The SDK refuses a session store together with file checkpointing; such sessions
            # are copied into the store after each turn instead (see `TurnProtocol._send`).
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
        placement.localise(self.store, record.id, profile)
        copied = branching.copy_up_to(self.store, record.id, stored.transcript_uuid, target)
        with open_db(self.store.engine) as db:
            sessions.create_session(
                db,
                id=target,
                project_key=placement.project_key_of(profile),
                agent_name=profile.name,
                origin=SessionOrigin.rewind,
                parent_id=record.id,
                fork_point=stored.transcript_uuid,
                cwd=placement.cwd_of(profile),
                agent_profile=profile.model_dump(mode="json"),
            )
        self.store.append_sync(placement.project_key_of(profile), target, copied)
        self.emit(
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
