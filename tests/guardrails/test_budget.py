"""Session budgets on the stand-in's real costs (the CLI prices the stand-in's token counts):
a lineage shares one budget, each turn gets what is left as ``max_budget_usd``, and a turn with
nothing left is refused before anything is sent."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect import flow
from prefect_claude_sessions.flows.cli import app, session_details
from prefect_claude_sessions.storage import TurnStatus, open_db, sessions, turns
from prefect_claude_sessions.tasks import (
    AgentProfile,
    BudgetExceeded,
    init_session,
    resume_session,
)
from prefect_claude_sessions.tasks.artifacts import flow_run_report
from prefect_claude_sessions.tasks.budget import lineage_spend
from prefect_claude_sessions.tasks.client_pool import default_pool
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.errors import should_retry
from prefect_claude_sessions.tasks.session_tasks import get_service
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.sessions.conftest import main_requests

pytestmark = [pytest.mark.cli]

CTX = RunContext(flow_run_id="budget-tests", task_run_id=None)


def profile(budget: float | None, name: str = "budgeted") -> AgentProfile:
    return AgentProfile(
        name=name, system_prompt="You are a careful assistant.", session_budget_usd=budget
    )


def turn_cost(service) -> float:
    """What one short first turn costs on the stand-in (the CLI prices its token counts)."""
    return service.init("Remember PELICAN.", profile(None, "probe"), ctx=CTX).cost_usd


def all_turns(service, session_ids) -> list:
    with open_db(service.store.engine) as db:
        return [t for sid in session_ids for t in turns.list_turns(db, sid)]


def test_a_session_is_capped_and_then_refused_before_anything_is_sent(recorded, standin):
    service, events = recorded
    cost = turn_cost(service)
    assert cost > 0
    budget = cost * 2.4
    first = service.init("Remember HERON.", profile(budget), ctx=CTX)
    assert events.named("budget.warning") == []  # ~42 %
    warm = default_pool().pid_of(first.session_id)
    second = service.resume(first.session_id, "Which word?", ctx=CTX, anchor=first.turn_key)
    # the new max_budget_usd does not cost a new CLI: the warm one keeps its cumulative cap
    assert warm is not None and default_pool().pid_of(first.session_id) == warm
    warnings = events.named("budget.warning")
    assert len(warnings) == 1 and warnings[0]["session_id"] == first.session_id
    assert warnings[0]["payload"]["budget_usd"] == pytest.approx(budget)
    assert 0.8 <= warnings[0]["payload"]["share"] < 1

    # ~0.4 turns are left: the CLI gets that as max_budget_usd and stops the turn itself
    with pytest.raises(BudgetExceeded, match="stopped the turn") as stopped:
        service.resume(first.session_id, "Third?", ctx=CTX, anchor=second.turn_key)
    assert not should_retry(stopped.value)
    exceeded = events.named("budget.exceeded")
    assert len(exceeded) == 1 and exceeded[0]["payload"]["share"] >= 1
    rows = all_turns(service, [first.session_id])
    assert [r.status for r in rows] == [TurnStatus.completed] * 2 + [TurnStatus.failed]
    assert rows[-1].cost_usd > 0  # the stopped turn's cost counts against the budget
    with open_db(service.store.engine) as db:
        spent = lineage_spend(db, first.session_id)
    assert spent == pytest.approx(sum(r.cost_usd for r in rows)) and spent >= budget

    # Nothing is left: refused at once, nothing sent, nothing recorded.
    before = len(standin.requests())
    with pytest.raises(BudgetExceeded, match="is used up") as refused:
        service.resume(first.session_id, "Fourth?", ctx=CTX, anchor=second.turn_key)
    assert refused.value.kind == "budget_exceeded" and not refused.value.transient
    assert first.session_id in str(refused.value)
    assert len(standin.requests()) == before
    assert len(all_turns(service, [first.session_id])) == 3
    assert len(events.named("budget.exceeded")) == 2

    # The budget shows in `claude-sessions show` (its JSON).
    with open_db(service.store.engine) as db:
        shown = session_details(db, first.session_id)["budgets"]
    assert shown == [
        {
            "owner_id": first.session_id,
            "budget_usd": pytest.approx(budget),
            "spent_usd": pytest.approx(spent),
            "remaining_usd": 0.0,
        }
    ]


def test_parallel_forks_share_the_parents_budget(recorded, standin, database_url):
    service, events = recorded
    cost = turn_cost(service)
    budget = cost * 3.6
    root = service.init("Remember HERON.", profile(budget), ctx=CTX)

    def fork(i: int):
        return service.fork(root.session_id, f"Approach {i}", ctx=CTX, anchor=root.turn_key)

    with ThreadPoolExecutor(2) as pool:
        forks = list(pool.map(fork, [1, 2]))
    ids = [root.session_id, *(f.session_id for f in forks)]
    with open_db(service.store.engine) as db:
        spent = lineage_spend(db, root.session_id)
        assert lineage_spend(db, forks[0].session_id) == pytest.approx(forks[0].cost_usd)
    assert spent == pytest.approx(root.cost_usd + sum(f.cost_usd for f in forks))
    assert spent / budget > 0.8
    assert len(events.named("budget.warning")) >= 1

    # A fork of a fork is governed by the root's budget too (and by its own, inherited one).
    with pytest.raises(BudgetExceeded):
        service.fork(forks[0].session_id, "Deeper", ctx=CTX, anchor=forks[0].turn_key)
    before = len(standin.requests())
    for sid, anchor in [(root.session_id, root.turn_key), (forks[1].session_id, None)]:
        with pytest.raises(BudgetExceeded, match=root.session_id):
            service.resume(sid, "More?", ctx=CTX, anchor=anchor)
    assert len(standin.requests()) == before
    # a handoff to a specialist with no budget of its own is still inside the root's
    with pytest.raises(BudgetExceeded):
        service.handoff(root.session_id, "Take over", to=profile(None, "billing"), ctx=CTX)
    assert len(standin.requests()) == before
    with open_db(service.store.engine) as db:
        tree = [r.id for _, r in sessions.lineage_tree(db, root.session_id)]
    statuses = sorted(t.status.value for t in all_turns(service, tree))
    assert statuses == ["completed"] * 3 + ["failed"]  # root, two forks, the stopped deeper fork
    assert set(ids) < set(tree)

    # `claude-sessions show` on a fork names the root's budget and what is left of it
    shown = CliRunner().invoke(app, ["show", forks[0].session_id, "--database", database_url])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert f"Budget ${budget:.4f} (set on session {root.session_id}" in text
    assert "left $0.0000" in text


def test_a_session_without_budget_is_unaffected_and_children_inherit_none(recorded, standin):
    service, events = recorded
    root = service.init("Remember HERON.", profile(None), ctx=CTX)
    child = service.fork(root.session_id, "Branch", ctx=CTX, anchor=root.turn_key)
    assert child.cost_usd > 0
    assert [e for e in events.events if e["action"].startswith("budget.")] == []
    with open_db(service.store.engine) as db:
        assert session_details(db, child.session_id)["budgets"] == []


@pytest.mark.parametrize("bad", [-1.0, 0, math.nan, math.inf, "lots"])
def test_bad_budgets_are_refused_naming_the_field(bad):
    with pytest.raises(ValidationError, match="session_budget_usd"):
        AgentProfile(name="a", system_prompt="x", session_budget_usd=bad)


def test_budget_exceeded_through_the_prefect_task_is_not_retried(workspace, standin):
    """Through the Prefect tasks: refused once (no retry), the lineage artifact shows it."""
    tiny = profile(1e-6)  # the first turn is allowed (nothing spent yet) and stopped by the CLI

    @flow
    def spend_it():
        return init_session("Remember HERON.", agent=tiny)

    state = spend_it(return_state=True)
    assert state.is_failed()
    with pytest.raises(BudgetExceeded):
        state.result()
    assert len(main_requests(standin)) == 1  # sent once: a permanent error is not retried
    flow_run_id = str(state.state_details.flow_run_id)
    report = flow_run_report(get_service().store.engine, flow_run_id)
    assert "## Budgets" in report and "of $0.0000 spent" in report

    @flow
    def go_on(session_id: str):
        return resume_session(session_id, "More?")

    with open_db(get_service().store.engine) as db:
        (row,) = turns.list_turns_for_flow_run(db, flow_run_id)
        sid = row.session_id
    before = len(standin.requests())
    state = go_on(sid, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="failed before its first turn completed"):
        state.result()
    assert len(standin.requests()) == before
