"""Session budgets: the most a session and all its descendants (forks, handoffs, rewinds,
compactions) may spend, set by ``AgentProfile(session_budget_usd=...)``.

Before a turn is sent, `check_before` finds every budget that governs the turn's session (its
own profile's and each ancestor's), sums what each budget's subtree has spent (the turns table:
completed turns and the partial cost of failed ones), and either refuses the turn with
`BudgetExceeded` (nothing is sent, nothing recorded) or passes what is left to the CLI as
``max_budget_usd``, so the CLI stops the turn itself if it overspends mid-way. After the turn,
`BudgetGuard.settle` emits ``claude-sessions.budget.warning`` when a budget crosses 80 % and
``claude-sessions.budget.exceeded`` when it is used up.

Parallel turns of one lineage (forks) each see the spend recorded before they started: they
can overspend together by at most what each was allowed, after which every further turn is
refused. There is no reservation; the budget is a cap on what is recorded, checked per turn.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prefect_claude_sessions.storage import (
    SessionRecord,
    TurnRecord,
    open_db,
    sessions,
    turns,
)
from pydantic import BaseModel

from .errors import AgentError, PermanentAgentError

if TYPE_CHECKING:
    from sqlmodel import Session

# ``plan`` below is a `tasks.turn_protocol.TurnPlan` and ``emit`` its `Emit`; not imported, as
# the turn protocol imports this module.
TurnPlan = Any
Emit = Any

logger = logging.getLogger("claude_sessions")

__all__ = [
    "WARNING_SHARE",
    "BudgetExceeded",
    "BudgetGuard",
    "BudgetStatus",
    "budget_statuses",
    "check_before",
    "lineage_spend",
]

#: The share of a budget at which ``claude-sessions.budget.warning`` is emitted.
WARNING_SHARE = 0.8
#: Less than this is "nothing left" (float sums of per-turn costs are not exact).
_EPSILON = 1e-9


class BudgetExceeded(PermanentAgentError):
    """A session's budget (or an ancestor's) is used up: the turn was not sent. Permanent:
    Prefect does not retry it. Raise the budget in the profile of a new session, or compact."""

    default_kind = "budget_exceeded"


class BudgetStatus(BaseModel):
    """One budget as it stands: set on ``owner_id``'s profile, covering it and its descendants."""

    owner_id: str
    budget_usd: float
    spent_usd: float

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.budget_usd - self.spent_usd)

    @property
    def share(self) -> float:
        return self.spent_usd / self.budget_usd


def _budget_of(profile: dict[str, Any] | None) -> float | None:
    value = (profile or {}).get("session_budget_usd")
    return float(value) if value is not None else None


def lineage_spend(db: Session, session_id: str) -> float:
    """What ``session_id`` and all its descendants have spent: the sum of their turns' costs."""
    ids = [record.id for _, record in sessions.lineage_tree(db, session_id)]
    total = db.execute(
        sa.select(sa.func.coalesce(sa.func.sum(TurnRecord.cost_usd), 0.0)).where(
            TurnRecord.session_id.in_(ids)  # type: ignore[attr-defined]
        )
    ).scalar_one()
    return float(total or 0.0)


def budget_statuses(db: Session, session_id: str) -> list[BudgetStatus]:
    """Every budget that governs ``session_id``: its own and its ancestors', nearest first."""
    record = sessions.get_session(db, session_id)
    return _statuses(db, [record, *sessions.ancestors(db, record.id)])


def _statuses(db: Session, chain: list[SessionRecord]) -> list[BudgetStatus]:
    out = []
    for record in chain:
        budget = _budget_of(record.agent_profile)
        if budget is not None:
            out.append(
                BudgetStatus(
                    owner_id=record.id, budget_usd=budget, spent_usd=lineage_spend(db, record.id)
                )
            )
    return out


def _plan_statuses(db: Session, plan: TurnPlan) -> list[BudgetStatus]:
    """The budgets of a planned turn; a session the turn creates is not recorded yet."""
    target = sessions.find_session(db, plan.target_id)
    if target is not None:
        return budget_statuses(db, target.id)
    out: list[BudgetStatus] = []
    own = plan.profile.session_budget_usd
    if own is not None:
        out.append(BudgetStatus(owner_id=plan.target_id, budget_usd=own, spent_usd=0.0))
    if plan.parent_id is not None:
        out.extend(budget_statuses(db, plan.parent_id))
    return out


@dataclass
class BudgetGuard:
    """The budgets of one turn as they stood before it was sent."""

    session_id: str
    agent: str
    statuses: list[BudgetStatus] = field(default_factory=list)
    emit: Any = None

    def settle(self, store: Any, cost_usd: float) -> None:
        """Emit the warning and exceeded events for budgets this turn's cost pushed across.

        The spend is read again after the turn: parallel turns of one lineage (forks) see
        each other's costs, so the turn that crosses a threshold in the store emits the event."""
        cost = float(cost_usd or 0.0)
        if not self.statuses or cost <= 0:
            return
        try:
            with open_db(store.engine) as db:
                spent = {s.owner_id: lineage_spend(db, s.owner_id) for s in self.statuses}
        except Exception as read_error:  # events are telemetry; the turn is recorded
            logger.warning(
                "could not read the spend after turn on %s: %s", self.session_id, read_error
            )
            return
        for status in self.statuses:
            after = spent[status.owner_id]
            before = after - cost
            if after + _EPSILON >= status.budget_usd > before + _EPSILON:
                self._event("budget.exceeded", status, after)
            elif after >= WARNING_SHARE * status.budget_usd > before:
                self._event("budget.warning", status, after)

    def charge_failure(self, store: Any, key: str, exc: BaseException) -> BaseException:
        """A failed turn may still have cost money (the CLI stopped it at ``max_budget_usd``, or
        the API failed after some calls): keep that cost on the failed turn row, so it counts.
        Returns the exception to raise: the CLI's own budget stop becomes `BudgetExceeded`."""
        if not self.statuses:
            return exc
        outcome = getattr(exc, "outcome", None) if isinstance(exc, AgentError) else None
        cost = float(getattr(outcome, "cost_usd", 0.0) or 0.0)
        if cost > 0:
            try:
                with open_db(store.engine) as db:
                    row = turns.find_turn(db, key)
                    if row is not None:
                        row.cost_usd = cost
                        db.add(row)
            except Exception as record_error:  # never mask the turn's own error
                logger.warning("could not record the cost of failed turn %s: %s", key, record_error)
            else:
                self.settle(store, cost)
        if isinstance(exc, AgentError) and exc.kind == "budget_exceeded":
            tightest = min(self.statuses, key=lambda s: s.remaining_usd)
            return BudgetExceeded(
                f"session {self.session_id}: the CLI stopped the turn at its max_budget_usd "
                f"(${tightest.remaining_usd:.4f} was left of the ${tightest.budget_usd:.4f} "
                f"budget set on session {tightest.owner_id} before it; this turn cost "
                f"${cost:.4f}); its answer was discarded",
                session_id=self.session_id,
                outcome=outcome,
            )
        return exc

    def _event(self, action: str, status: BudgetStatus, spent: float) -> None:
        if self.emit is None:
            return
        self.emit(
            action,
            status.owner_id,
            agent=self.agent,
            payload={
                "budget_usd": status.budget_usd,
                "spent_usd": round(spent, 6),
                "share": round(spent / status.budget_usd, 4),
                "turn_session_id": self.session_id,
            },
        )


def check_before(store: Any, plan: TurnPlan, emit: Emit) -> BudgetGuard:
    """Refuse the planned turn if a budget that governs it is used up (`BudgetExceeded`, with
    a ``claude-sessions.budget.exceeded`` event); otherwise cap the turn at what is left
    (``max_budget_usd`` in ``plan.options``, at most the profile's own per-turn cap)."""
    with open_db(store.engine) as db:
        statuses = _plan_statuses(db, plan)
    guard = BudgetGuard(plan.target_id, plan.profile.name, statuses, emit)
    if not statuses:
        return guard
    tightest = min(statuses, key=lambda s: s.remaining_usd)
    if tightest.budget_usd - tightest.spent_usd <= _EPSILON:
        guard._event("budget.exceeded", tightest, tightest.spent_usd)
        raise BudgetExceeded(
            f"session {plan.target_id} ({plan.operation}): the budget of "
            f"${tightest.budget_usd:.4f} set on session {tightest.owner_id} for it and its "
            f"descendants is used up (spent ${tightest.spent_usd:.4f}); nothing was sent",
            session_id=plan.target_id,
        )
    cap = plan.profile.max_budget_usd if plan.profile.max_budget_usd is not None else math.inf
    plan.options["max_budget_usd"] = min(cap, tightest.remaining_usd)
    return guard
