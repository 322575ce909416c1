"""Maintenance: watch session sizes, compact sessions that grew too large, purge old transcripts.

Scheduled nightly (see prefect.yaml). Three steps, each visible in the dashboard:

1. **monitor**: transcript bytes and tokens of every stored session; a table artifact of the
   largest ones;
2. **compact**: every active session past a threshold (bytes or tokens) continues in a fresh
   session whose first prompt is a summary of the old conversation (lineage: origin
   ``compaction``, parent = the old session); the old session is archived. Idempotent per
   (session, conversation point): a re-run finds the same child instead of making a second one;
3. **retention**: the stored transcripts of archived (and failed) sessions not touched for
   ``retention_days`` are deleted and those sessions marked purged. Session, turn, checkpoint
   and decision records are kept: cost and audit history outlive the transcript.

``dry_run`` reports what would be done and changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect_claude_sessions.storage import SessionRecord, SessionStatus
from prefect_claude_sessions.tasks import resume_session, retention
from prefect_claude_sessions.tasks.compaction import SUMMARY_REQUEST, compact, compaction_key
from prefect_claude_sessions.tasks.context import current_run
from prefect_claude_sessions.tasks.errors import should_retry
from prefect_claude_sessions.tasks.session_tasks import get_service
from pydantic import BaseModel, Field

SIZES_KEY = "session-sizes"
REPORT_KEY = "session-maintenance"


class SessionSize(BaseModel):
    """One session as the monitor sees it."""

    session_id: str
    agent: str
    status: str
    origin: str
    turns: int
    transcript_bytes: int
    tokens: int
    cost_usd: float
    updated_at: datetime


class Compaction(BaseModel):
    """One compacted (or, in a dry run, to-be-compacted) session."""

    session_id: str
    reason: str
    new_session_id: str | None = None
    replayed: bool = False
    error: str | None = None


class MaintenanceReport(BaseModel):
    """What a maintenance run found and did."""

    dry_run: bool
    sessions: int
    total_bytes: int
    largest: list[SessionSize]
    compacted: list[Compaction]
    purged: list[str]


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:
        return should_retry(exc)
    return False


def _size(record: SessionRecord) -> SessionSize:
    return SessionSize(
        session_id=record.id,
        agent=record.agent_name,
        status=record.status.value,
        origin=record.origin.value,
        turns=record.turn_count,
        transcript_bytes=record.transcript_bytes,
        tokens=(record.input_tokens or 0) + (record.output_tokens or 0),
        cost_usd=record.cost_usd,
        updated_at=record.updated_at,
    )


@task(name="measure-sessions", cache_policy=NO_CACHE)
def measure_sessions(agent: str | None = None) -> list[SessionSize]:
    """Every session that still has a transcript (not purged), largest transcript first."""
    return [_size(r) for r in get_service().reads.by_transcript_size(agent_name=agent)]


@task(
    name="compact-session",
    task_run_name="compact {session_id:.8}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_transient,
)
def compact_session(session_id: str, summarize_with_agent: bool = False) -> Compaction:
    """Carry session ``session_id`` into a fresh session (summary as first prompt); archive it."""
    service = get_service()
    ctx = current_run()
    key = compaction_key(service, session_id)
    summary = None
    if summarize_with_agent:
        # The agent summarises its own conversation: a normal (idempotent) turn on the session,
        # keyed by the same conversation point as the compaction itself.
        summary = resume_session.fn(session_id, SUMMARY_REQUEST, idempotency_key=key).text
    turn = compact(service, session_id, summary, ctx=ctx, idempotency_key=key)
    return Compaction(
        session_id=session_id,
        reason="",
        new_session_id=turn.session_id,
        replayed=turn.replayed,
    )


@task(name="purge-transcript", task_run_name="purge {session_id:.8}", cache_policy=NO_CACHE)
def purge_transcript(session_id: str) -> str:
    """Purge a session (the same purge as ``claude-sessions purge``: a busy session is refused,
    its transcript size reset, any warm CLI holding it closed)."""
    retention.purge_session(get_service().store, session_id)
    return session_id


def _over(size: SessionSize, max_bytes: int, max_tokens: int) -> str | None:
    reasons = []
    if max_bytes and size.transcript_bytes > max_bytes:
        reasons.append(f"transcript {size.transcript_bytes} B > {max_bytes} B")
    if max_tokens and size.tokens > max_tokens:
        reasons.append(f"tokens {size.tokens} > {max_tokens}")
    return "; ".join(reasons) or None


@flow(name="session-maintenance", log_prints=True)
def session_maintenance(
    compact_over_bytes: Annotated[int, Field(ge=0)] = 5_000_000,
    compact_over_tokens: Annotated[int, Field(ge=0)] = 400_000,
    min_turns: Annotated[int, Field(ge=1)] = 2,
    retention_days: Annotated[int, Field(ge=0)] = 30,
    purge_failed: bool = True,
    summarize_with_agent: bool = False,
    agent: str | None = None,
    report_top: Annotated[int, Field(ge=1, le=500)] = 20,
    max_parallel: Annotated[int, Field(ge=1, le=16)] = 2,
    dry_run: bool = False,
) -> MaintenanceReport:
    """Monitor session sizes, compact active sessions past ``compact_over_bytes`` (transcript)
    or ``compact_over_tokens`` (input + output tokens so far; 0 turns a threshold off) that
    have at least ``min_turns`` turns, and delete the transcripts of archived sessions (and
    failed ones with ``purge_failed``) untouched for ``retention_days``.

    ``summarize_with_agent`` asks each session's own agent for the summary (one more turn);
    otherwise the summary is built from the stored conversation. ``agent`` limits everything to
    one agent profile name. At most ``max_parallel`` compactions (each a CLI process) run at
    once. ``dry_run`` only reports.
    """
    logger = get_run_logger()
    sizes = measure_sessions(agent)
    total = sum(s.transcript_bytes for s in sizes)
    largest = sizes[:report_top]
    create_table_artifact(
        key=SIZES_KEY,
        table=[
            {
                "session": s.session_id,
                "agent": s.agent,
                "status": s.status,
                "origin": s.origin,
                "turns": s.turns,
                "transcript (KB)": round(s.transcript_bytes / 1024, 1),
                "tokens": s.tokens,
                "cost (USD)": round(s.cost_usd, 6),
                "updated": s.updated_at.isoformat(timespec="seconds"),
            }
            for s in largest
        ],
        description=f"The {len(largest)} largest of {len(sizes)} sessions ({total} bytes stored)",
    )

    plans: list[Compaction] = []
    for size in sizes:
        reason = _over(size, compact_over_bytes, compact_over_tokens)
        if size.status == SessionStatus.active.value and size.turns >= min_turns and reason:
            plans.append(Compaction(session_id=size.session_id, reason=reason))

    cutoff = datetime.now(timezone.utc) - timedelta(days=retention_days)
    expired = {SessionStatus.archived.value} | (
        {SessionStatus.failed.value} if purge_failed else set()
    )
    compacting = {p.session_id for p in plans}
    doomed = [
        s.session_id
        for s in sizes
        if s.status in expired and s.updated_at <= cutoff and s.session_id not in compacting
    ]
    logger.info(
        "%d sessions (%d bytes); %d to compact, %d transcripts past retention%s",
        len(sizes),
        total,
        len(plans),
        len(doomed),
        " (dry run: nothing changes)" if dry_run else "",
    )

    compacted: list[Compaction] = []
    purged: list[str] = []
    if not dry_run:
        for start in range(0, len(plans), max_parallel):
            batch = plans[start : start + max_parallel]
            futures = [
                (plan, compact_session.submit(plan.session_id, summarize_with_agent))
                for plan in batch
            ]
            for plan, future in futures:
                try:
                    done = future.result()
                except Exception as exc:  # one session's failure must not stop the others
                    logger.error("could not compact session %s: %s", plan.session_id, exc)
                    compacted.append(plan.model_copy(update={"error": str(exc)[:500]}))
                else:
                    compacted.append(done.model_copy(update={"reason": plan.reason}))
        purged = [f.result() for f in purge_transcript.map(doomed)] if doomed else []
    else:
        compacted = plans
    report = MaintenanceReport(
        dry_run=dry_run,
        sessions=len(sizes),
        total_bytes=total,
        largest=largest,
        compacted=compacted,
        purged=doomed if dry_run else purged,
    )
    create_markdown_artifact(key=REPORT_KEY, markdown=_markdown(report), description="Maintenance")
    failed = [c for c in compacted if c.error]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(compacted)} compactions failed: "
            + "; ".join(f"{c.session_id}: {c.error}" for c in failed)
        )
    return report


def _markdown(report: MaintenanceReport) -> str:
    verb = "would be" if report.dry_run else "were"
    lines = [
        f"# Session maintenance{' (dry run)' if report.dry_run else ''}",
        "",
        f"{report.sessions} sessions, {report.total_bytes} transcript bytes stored.",
        "",
        f"## Compaction: {len(report.compacted)} sessions {verb} compacted",
    ]
    for c in report.compacted:
        outcome = (
            f"failed: {c.error}"
            if c.error
            else (f"-> `{c.new_session_id}`" if c.new_session_id else "")
        )
        lines.append(f"- `{c.session_id}` ({c.reason}) {outcome}")
    lines += ["", f"## Retention: {len(report.purged)} transcripts {verb} deleted"]
    lines += [f"- `{sid}`" for sid in report.purged]
    return "\n".join(lines)
