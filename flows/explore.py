"""Explore approaches: fork a session N ways in parallel, compare the outcomes, record the choice."""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run
from prefect_claude_sessions.tasks import (
    Checkpoint,
    SessionTurn,
    fork_session,
    init_session,
    record_decision,
)
from prefect_claude_sessions.tasks.artifacts import answer_excerpt, money
from prefect_claude_sessions.tasks.run_report import session_report
from prefect_claude_sessions.tasks.session_tasks import get_service
from pydantic import BaseModel

from .forms import ProfileName, resolve_checkpoint_id, resolve_session_id
from .profiles import get_profile


class ApproachOutcome(BaseModel):
    """One explored approach: its fork and what it cost."""

    approach: str
    session_id: str
    result: str
    cost_usd: float
    turns: int
    duration_ms: int


class Exploration(BaseModel):
    """The comparison and the approach chosen."""

    base_session_id: str
    outcomes: list[ApproachOutcome]
    chosen: str


def choose(outcomes: list[ApproachOutcome]) -> ApproachOutcome:
    """The cheapest approach that produced an answer (ties: the fastest); a plain, auditable rule."""
    answered = [o for o in outcomes if o.result.strip()] or outcomes
    return min(answered, key=lambda o: (o.cost_usd, o.duration_ms))


def _run_name() -> str:
    """``explore 3 approaches``, from the run's parameters."""
    approaches = flow_run.parameters.get("approaches") or []
    count = len(approaches) if isinstance(approaches, list) else 0
    return f"explore {count} approach{'' if count == 1 else 'es'}"


@flow(name="explore-approaches", flow_run_name=_run_name, log_prints=True)
def explore_approaches(
    approaches: list[str],
    problem: str | None = None,
    session_id: str | None = None,
    checkpoint_id: str | None = None,
    agent: ProfileName = "explorer",
) -> Exploration:
    """Fork one session into one branch per approach, run them in parallel, compare them in a table
    artifact and record the chosen approach as a decision on the base session.

    Args:
        approaches: One short description per approach to explore (at most 16); each becomes
            a fork of the base session.
        problem: The problem to explore, in a new session. Give this or session_id.
        session_id: An existing session to fork (its id, or a unique prefix of 8+ characters).
        checkpoint_id: Fork at this checkpoint of the session instead of its latest turn (its
            id, or a unique prefix of 8+ characters).
        agent: The agent profile of a new session (with problem).
    """
    if not approaches or any(not a.strip() for a in approaches):
        raise ValueError("approaches must be a non-empty list of non-empty descriptions")
    if len(approaches) > 16:
        raise ValueError(f"at most 16 approaches per exploration, got {len(approaches)}")
    if (session_id is None) == (problem is None):
        raise ValueError(
            "give exactly one of session_id (an existing session) or problem (a new one)"
        )
    with session_report() as notes:
        base: SessionTurn | str
        if session_id is None:
            base = init_session(problem, agent=get_profile(agent), label="the problem")
        else:
            base = resolve_session_id(session_id)
        at: Checkpoint | None = None
        if checkpoint_id:
            at = get_service().get_checkpoint(resolve_checkpoint_id(checkpoint_id))
        futures = fork_session.map(
            unmapped(base),
            [f"Explore this approach: {a}" for a in approaches],
            at=unmapped(at),
            label=approaches,
        )
        forks: list[SessionTurn] = [f.result() for f in futures]
        outcomes = [
            ApproachOutcome(
                approach=approach,
                session_id=turn.session_id,
                result=turn.text,
                cost_usd=turn.cost_usd,
                turns=turn.num_turns,
                duration_ms=turn.duration_ms,
            )
            for approach, turn in zip(approaches, forks, strict=True)
        ]
        best = choose(outcomes)
        base_id = base.session_id if isinstance(base, SessionTurn) else base
        create_table_artifact(
            key="explore-approaches",
            table=[_row(o, best) for o in outcomes],
            description=f"{len(outcomes)} approaches forked from session {base_id[:8]}",
        )
        record_decision(
            base,
            "approach-chosen",
            {
                "approach": best.approach,
                "session_id": best.session_id,
                "cost_usd": round(best.cost_usd, 6),
            },
        )
        notes.chosen = best.session_id
        notes.summary.append(
            f"**Chosen:** {best.approach} (fork `{best.session_id[:8]}`, "
            f"{money(best.cost_usd)}, {best.duration_ms} ms) of {len(outcomes)} approaches "
            f"forked from `{base_id[:8]}`: the cheapest that answered."
        )
    return Exploration(base_session_id=base_id, outcomes=outcomes, chosen=best.approach)


def _row(outcome: ApproachOutcome, best: ApproachOutcome) -> dict[str, Any]:
    return {
        "approach": outcome.approach,
        "session": outcome.session_id[:8],
        "result": answer_excerpt(outcome.result, 160),
        "cost (USD)": round(outcome.cost_usd, 6),
        "turns": outcome.turns,
        "duration (ms)": outcome.duration_ms,
        "chosen": "yes" if outcome is best else "",
    }
