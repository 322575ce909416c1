"""The e-mail triage digital employee: one long-lived session per team, resumed run after run.

Each e-mail is one turn keyed by its message id, so a scheduled run that sees an e-mail again
(or a re-run after a crash) neither asks the model twice nor records the decision twice. Billing
and technical cases are handed to a specialist who gets the whole conversation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect_claude_sessions.storage import (
    SessionOrigin,
    SessionStatus,
)
from prefect_claude_sessions.tasks import (
    SessionTurn,
    ask_human,
    handoff_session,
    init_session,
    record_decision,
    resume_session,
)
from prefect_claude_sessions.tasks.artifacts import ReportNotes, answer_excerpt
from prefect_claude_sessions.tasks.idempotency import digest
from prefect_claude_sessions.tasks.run_report import session_report
from prefect_claude_sessions.tasks.session_tasks import get_service
from pydantic import BaseModel, Field

from .profiles import SPECIALIST_FOR_CATEGORY, get_profile, team_profile

SAMPLE_INBOX = Path(__file__).parent / "data" / "sample_inbox.json"
CATEGORIES = ("technical", "billing", "account", "sales", "general")


class Email(BaseModel):
    """One e-mail of an inbox; ``id`` is its stable message id (the idempotency key)."""

    id: str = Field(min_length=1, max_length=200)
    sender: str = ""
    subject: str = ""
    body: str = Field(min_length=1)

    def as_prompt(self) -> str:
        return f"From: {self.sender}\nSubject: {self.subject}\n\n{self.body}"


class TriageResult(BaseModel):
    """What the triage agent decided for one e-mail."""

    email_id: str
    category: str
    priority: str
    summary: str
    reply: str
    session_id: str
    specialist_session_id: str | None = None
    specialist_answer: str | None = None
    already_triaged: bool = False
    reply_status: str | None = Field(
        default=None,
        description="for reviewed priorities: approved, edited or rejected by a person; "
        "None when the reply needed no review",
    )


class ReplyReview(RunInput):
    """A person's review of a draft reply (the dashboard's form) before it counts as sent."""

    approved: bool
    comment: str = ""
    reply: str = Field(
        default="",
        description="the reply that is sent: the draft, pre-filled; edit it to send your version "
        "(empty also sends the draft)",
    )


def load_inbox(path: str | Path | None = None) -> list[Email]:
    """The e-mails in a JSON file (a list of objects with id, sender, subject, body)."""
    source = Path(path) if path else SAMPLE_INBOX
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"inbox file {source} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"inbox file {source} is not valid JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ValueError(f"inbox file {source} must hold a JSON list of e-mails")
    return [Email.model_validate(item) for item in raw]


def parse_triage(text: str) -> dict[str, str]:
    """The triage agent's JSON answer; an answer that is not JSON is kept as the summary."""
    try:
        start, end = text.index("{"), text.rindex("}") + 1
        data = json.loads(text[start:end])
    except ValueError:
        data = {}
    category = str(data.get("category", "general")).lower()
    return {
        "category": category if category in CATEGORIES else "general",
        "priority": str(data.get("priority", "P3")),
        "summary": str(data.get("summary", text[:200])),
        "reply": str(data.get("reply", "")),
    }


@task(
    name="find-team-session",
    task_run_name="find session of team {team}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
)
def team_session_id(team: str) -> str | None:
    """The team's long-lived triage session: the newest active one of its profile that began
    the conversation or continues it after a compaction (an operator's fork of it is not it)."""
    found = get_service().reads.sessions(
        agent_name=team_profile(team).name, status=SessionStatus.active, limit=50
    )
    main = [s for s in found if s.origin in (SessionOrigin.init, SessionOrigin.compaction)]
    return main[0].id if main else None


@task(
    name="read-triaged-emails",
    task_run_name="read triaged e-mails",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
)
def triaged_emails(session_id: str | None) -> dict[str, dict[str, Any]]:
    """E-mails already triaged in this session or the sessions it was compacted from:
    ``{email_id: {"triage": payload, "session_id": ..., "handoff": payload | None}}``."""
    if session_id is None:
        return {}
    reads = get_service().reads
    done: dict[str, dict[str, Any]] = {}
    chain = [session_id, *(r.id for r in reads.ancestors(session_id))]
    for sid in chain:
        for row in reads.decisions(sid):
            email_id = (row.payload or {}).get("email_id")
            if not email_id:
                continue
            entry = done.setdefault(email_id, {"handoff": None})
            if row.key == "triage":
                entry.update(triage=row.payload, session_id=row.session_id)
            elif row.key == "handoff":
                entry["handoff"] = row.payload
    return {k: v for k, v in done.items() if "triage" in v}


@task(
    name="read-opening-prompt",
    task_run_name="read opening prompt",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
)
def opening_prompt_digest(session_id: str | None) -> str | None:
    """The digest of the prompt that started the session (its init turn), if any.

    The e-mail that opened the team session was sent by an init turn; a run that crashed before
    recording its decision must replay that init on re-run, not resume with the e-mail again.
    """
    if session_id is None:
        return None
    first = next(iter(get_service().reads.turns(session_id)), None)
    return first.prompt_digest if first is not None and first.operation == "init" else None


def _run_name() -> str:
    """``triage support (8 e-mails)``: the team and the inbox size, from the run's parameters."""
    params = flow_run.parameters
    team = params.get("team") or "support"
    try:
        emails = params.get("emails")
        count = len(emails) if emails is not None else len(load_inbox(params.get("inbox_path")))
    except Exception:  # a bad inbox fails the run itself, with the reason
        return f"triage {team}"
    return f"triage {team} ({count} e-mail{'' if count == 1 else 's'})"


@flow(name="email-triage", flow_run_name=_run_name, log_prints=True)
def email_triage(
    team: str = "support",
    inbox_path: str | None = None,
    emails: list[Email] | None = None,
    hand_off: bool = True,
    review_priorities: list[str] | None = None,
    review_timeout_s: int = 86400,
) -> list[TriageResult]:
    """Triage an inbox in the team's long-lived session: categorise, prioritise, draft a reply,
    record each decision and hand technical or billing cases to a specialist.

    Args:
        team: The team whose inbox this is (lower-case letters, digits, dashes). Each team keeps
            one long-lived triage session, resumed run after run.
        inbox_path: A JSON file with a list of e-mails (id, sender, subject, body). Empty: the
            bundled sample inbox.
        emails: The e-mails themselves, instead of a file (takes precedence over inbox_path).
        hand_off: Hand technical and billing cases to the specialist agent.
        review_priorities: Priorities whose draft reply waits for a person's approval or edit
            in the dashboard before it counts as sent (default ["P1"]; [] for none). The team's
            session is told the outcome, so it learns from it.
        review_timeout_s: How long a review may wait for a person, in seconds.
    """
    if review_priorities is None:
        review_priorities = list(DEFAULT_REVIEW_PRIORITIES)
    with session_report() as notes:
        results, sent = _triage(
            team, inbox_path, emails, hand_off, notes, review_priorities, review_timeout_s
        )
        replayed = len(results) - sent
        line = (
            f"{replayed} of {len(results)} e-mails already triaged, "
            f"{sent} prompt{'' if sent == 1 else 's'} sent to the triage agent"
        )
        get_run_logger().info(line)
        notes.summary.append(f"**Team {team}:** {line}.")
    return results


def _triage(
    team: str,
    inbox_path: str | None,
    emails: list[Email] | None,
    hand_off: bool,
    notes: ReportNotes,
    review_priorities: list[str] | None = None,
    review_timeout_s: int = 86400,
) -> tuple[list[TriageResult], int]:
    """The triage itself: (one result per e-mail, how many e-mails were sent to the model)."""
    logger = get_run_logger()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", team or ""):
        raise ValueError(f"team must be lower-case letters, digits and dashes, got {team!r}")
    inbox = emails if emails is not None else load_inbox(inbox_path)
    profile = team_profile(team)
    progress = cast(  # a sync flow: the sync implementation, which returns the id
        UUID,
        create_progress_artifact(
            progress=0.0,
            key=f"triage-progress-{team}",
            description=f"Triage of {len(inbox)} e-mails",
        ),
    )
    session_id = team_session_id(team)
    logger.info(
        "team %s: %s", team, f"resuming session {session_id}" if session_id else "new session"
    )
    # An e-mail seen in an earlier run (a scheduled run that sees it again, or a re-run after a
    # crash) is reported from its recorded decision: no model call, no second decision.
    done = triaged_emails(session_id)
    opening = opening_prompt_digest(session_id)
    last: SessionTurn | None = None
    results: list[TriageResult] = []
    sent = 0
    for index, email in enumerate(inbox, start=1):
        key = f"triage:{team}:{email.id}"
        if email.id in done:
            logger.info("e-mail %s already triaged: reported from its recorded decision", email.id)
            results.append(_from_record(email.id, done[email.id]))
            update_progress_artifact(progress, progress=100.0 * index / len(inbox))
            continue
        sent += 1
        # Task names and events carry the e-mail id; the report (a view for operators) the
        # subject too.
        label = email.id
        if session_id is None or digest(email.as_prompt()) == opening:
            # Opens the team session, or replays the opening turn of a crashed earlier run.
            turn = init_session(email.as_prompt(), agent=profile, idempotency_key=key, label=label)
        else:
            # By id, not by the previous turn: the turn key then depends only on the session
            # and the e-mail, so a re-run in a later flow run finds it (wait_for keeps the edge
            # in the run graph).
            turn = resume_session(
                session_id,
                email.as_prompt(),
                idempotency_key=key,
                label=label,
                wait_for=[last] if last else None,
            )
        last, session_id = turn, turn.session_id
        if email.subject:
            notes.labels[turn.turn_key] = f"{email.id}: {email.subject}"
        verdict: dict[str, Any] = dict(parse_triage(turn.text))
        if verdict["priority"] in (review_priorities or ()):
            # Before the decision is recorded: a suspended run re-runs from the start, replays
            # this turn from the store and finds the answer ask_human stored.
            verdict.update(_review_reply(turn, email, verdict, key, review_timeout_s))
            last = turn = _tell_the_outcome(turn, email, verdict, key)
        record_decision(turn, "triage", {"email_id": email.id, **verdict}, idempotency_key=key)
        result = TriageResult(email_id=email.id, session_id=turn.session_id, **verdict)
        specialist = SPECIALIST_FOR_CATEGORY.get(verdict["category"])
        handoff_record = None
        if hand_off and specialist:
            handed = handoff_session(
                turn,
                f"Please take over e-mail {email.id} ({verdict['summary']}) and answer the customer.",
                to=get_profile(specialist),
                idempotency_key=key,
                label=email.id,
            )
            handoff_record = {
                "email_id": email.id,
                "specialist": specialist,
                "session_id": handed.session_id,
            }
            record_decision(turn, "handoff", handoff_record, idempotency_key=key)
            result.specialist_session_id = handed.session_id
            result.specialist_answer = handed.text
        done[email.id] = {
            "triage": verdict,
            "session_id": turn.session_id,
            "handoff": handoff_record,
        }
        results.append(result)
        update_progress_artifact(progress, progress=100.0 * index / len(inbox))
    create_table_artifact(
        key=f"triage-results-{team}",
        table=[_row(r) for r in results],
        description=f"Triage of {len(results)} e-mails for team {team}",
    )
    return results, sent


DEFAULT_REVIEW_PRIORITIES = ("P1",)


def _review_reply(
    turn: SessionTurn, email: Email, verdict: dict[str, Any], key: str, timeout_s: int
) -> dict[str, Any]:
    """Ask a person to approve or edit the draft reply; returns the reply that counts and its
    status (approved, edited, rejected)."""
    question = (
        f"Send this reply to e-mail {email.id} ({verdict['priority']}: {email.subject or '-'})?"
        f"\n\n{verdict['reply'] or '(no draft reply)'}"
    )
    # the draft pre-filled in the form's reply field: the person edits it in place
    form = ReplyReview.with_initial_data(reply=verdict["reply"] or "")
    answer = ask_human(
        turn, question, form=form, timeout_s=timeout_s, idempotency_key=f"{key}:review"
    )
    edited = str(getattr(answer, "reply", "") or "").strip()
    if not getattr(answer, "approved", False):
        status = "rejected"
    else:
        status = "edited" if edited and edited != verdict["reply"] else "approved"
    return {
        "reply": edited if status == "edited" else verdict["reply"],
        "reply_status": status,
        "review_comment": str(getattr(answer, "comment", "") or ""),
    }


def _tell_the_outcome(
    turn: SessionTurn, email: Email, verdict: dict[str, Any], key: str
) -> SessionTurn:
    """Tell the team's session what the person decided, so later drafts learn from it."""
    said = {
        "approved": "approved your draft reply as it was and it was sent",
        "edited": f"edited your draft reply before sending it. The reply sent: {verdict['reply']}",
        "rejected": "rejected your draft reply; it was not sent",
    }[verdict["reply_status"]]
    comment = verdict.get("review_comment")
    return resume_session(
        turn.session_id,
        f"Review of your reply to e-mail {email.id}: a person {said}."
        + (f" Their comment: {comment}" if comment else "")
        + " Take this into account for similar e-mails; no need to answer at length.",
        idempotency_key=f"{key}:review-outcome",
        label=f"{email.id} review",
        wait_for=[turn],
    )


def _from_record(email_id: str, record: dict[str, Any]) -> TriageResult:
    verdict = record["triage"]
    handoff = record.get("handoff") or {}
    return TriageResult(
        email_id=email_id,
        category=str(verdict.get("category", "general")),
        priority=str(verdict.get("priority", "")),
        summary=str(verdict.get("summary", "")),
        reply=str(verdict.get("reply", "")),
        reply_status=verdict.get("reply_status"),
        session_id=record["session_id"],
        specialist_session_id=handoff.get("session_id"),
        already_triaged=True,
    )


def _row(result: TriageResult) -> dict[str, Any]:
    return {
        "e-mail": result.email_id,
        "category": result.category,
        "priority": result.priority,
        "review": result.reply_status or "",
        "summary": answer_excerpt(result.summary, 200),
        "session": result.session_id[:8],
        "specialist session": (result.specialist_session_id or "")[:8],
        "new": "" if result.already_triaged else "yes",
    }
