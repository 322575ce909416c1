"""The warm pool is a real bound, a turn timeout a real deadline, and a failed turn leaves no CLI
behind: the real CLI against the stand-in model, its processes counted from /proc."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect_claude_sessions.tasks import client_pool as client_pool_module
from prefect_claude_sessions.tasks import runtime as runtime_module
from prefect_claude_sessions.tasks.client_pool import ClientPool
from prefect_claude_sessions.tasks.errors import TransientAgentError
from prefect_claude_sessions.tasks.runtime import run_turn, run_turn_sync

from .cli_processes import Sampler, cli_children, no_cli_children_left, settle


@pytest.fixture(autouse=True)
def _count_from_zero() -> None:
    """Earlier tests' warm CLIs (the default pool keeps them) would be counted as ours."""
    no_cli_children_left()


pytestmark = pytest.mark.cli


def _user_turns_of(standin, prompt: str) -> list[list[str]]:
    """``user_turns`` of every conversation request whose newest prompt is ``prompt``."""
    return [
        r["user_turns"]
        for r in standin.requests(kind="main")
        if r["user_turns"] and r["user_turns"][-1] == prompt
    ]


def test_a_burst_of_forks_leaves_at_most_pool_size_clis(standin, make_options, monkeypatch):
    monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "4")  # read by the pool at use time
    pool = ClientPool(idle_timeout_s=300, name="bound")
    try:
        base = run_turn_sync("trunk", make_options(), pool=pool)
        standin.clear_requests()
        standin.inject(latency_s=1.5, count=8)  # the forks overlap at the model

        def fork(n: int):
            options = make_options(
                resume=base.session_id, fork_session=True, session_id=str(uuid.uuid4())
            )
            return run_turn_sync(f"branch {n}", options, pool=pool)

        def probe() -> dict[str, int]:
            return {"slots": pool.stats()["slots"], "warm": len(pool.warm_pids())}

        with Sampler(probe) as sampled, ThreadPoolExecutor(8) as threads:
            forks = list(threads.map(fork, range(8)))

        stats = pool.stats()
        print(f"burst of 8 forks at pool size 4: peaks {sampled.max}, pool {stats}")
        # during: never more than 4 pooled CLI processes (a slot is held from before the CLI
        # starts until after it exited), while the burst itself ran beyond them, one-off
        assert sampled.max["slots"] <= 4 and sampled.max["warm"] <= 4, (sampled.max, stats)
        assert sampled.max["children"] >= 5, sampled.max
        assert stats["one_off"] >= 1 and stats["starts"] == 9, stats
        # after: the only CLIs left are the pool's warm ones, at most 4
        live = settle(pool.warm_pids)
        assert live == pool.warm_pids() and len(live) <= 4, (live, stats)
        assert stats["slots"] == len(live)

        # the model saw each fork once, on top of the trunk; every fork, warm or one-off,
        # continues with exactly its own history
        assert len({f.session_id for f in forks}) == 8
        for n, f in enumerate(forks):
            assert _user_turns_of(standin, f"branch {n}") == [["trunk", f"branch {n}"]]
            nxt = run_turn_sync(f"more {n}", make_options(resume=f.session_id), pool=pool)
            assert nxt.session_id == f.session_id
            assert _user_turns_of(standin, f"more {n}") == [["trunk", f"branch {n}", f"more {n}"]]
            assert len(cli_children()) <= 4
        assert len(settle(pool.warm_pids)) <= 4
    finally:
        pool.close()
    assert settle(set) == set(), "CLI processes outlived close()"


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold-start"])
async def test_a_timeout_is_one_deadline_and_ends_the_cli(
    standin, make_options, pool, monkeypatch, warm
) -> None:
    timeout_s = 3.0
    monkeypatch.setenv("CLAUDE_SESSIONS_TURN_TIMEOUT_S", str(timeout_s))  # read at use time
    standin.clear_requests()
    first = await run_turn("one", make_options(), pool=pool)
    sid = first.session_id
    if not warm:  # the CLI start is inside the deadline too
        await pool.discard(sid)
    before = cli_children()
    standin.inject(latency_s=10.0)
    started = time.monotonic()
    with pytest.raises(TransientAgentError) as info:
        await run_turn("slow", make_options(resume=sid), pool=pool)
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout" and f"{timeout_s:g} s" in str(info.value)
    assert timeout_s <= elapsed < 1.5 * timeout_s + 3, elapsed
    assert elapsed < timeout_s + 2.0, f"ending the CLI took {elapsed - timeout_s:.1f} s"
    # the CLI working on it is gone at once, and the pool forgot it
    assert cli_children() == set(), cli_children()
    if warm:
        assert before and not before & cli_children()
    stats = pool.stats()
    assert sid not in pool and stats["slots"] == 0 and stats["drops"].get("timeout") == 1, stats

    # the next turn, from the last completed answer, carries nothing of the timed-out one
    standin.clear_faults()
    after = await run_turn(
        "after", make_options(resume=sid, resume_session_at=first.assistant_uuid), pool=pool
    )
    assert after.session_id == sid
    assert _user_turns_of(standin, "after") == [["one", "after"]]


def test_a_timeout_without_a_pool_is_one_deadline_too(standin, make_options) -> None:
    first = run_turn_sync("one", make_options())
    standin.inject(latency_s=10.0)
    started = time.monotonic()
    with pytest.raises(TransientAgentError) as info:
        run_turn_sync("slow", make_options(resume=first.session_id), timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout"
    assert 2.0 <= elapsed < 3.0, elapsed
    assert cli_children() == set()


async def test_a_cancelled_turn_ends_its_cli(standin, make_options, pool) -> None:
    """A caller that gives up (a cancelled task, a killed flow run's thread) leaves no CLI
    working on the turn, pooled or one-off."""
    import asyncio

    first = await run_turn("one", make_options(), pool=pool)
    standin.inject(latency_s=10.0)
    seen = len(standin.requests(kind="main"))
    turn = asyncio.create_task(run_turn("two", make_options(resume=first.session_id), pool=pool))
    for _ in range(400):  # until the CLI is calling the model
        if len(standin.requests(kind="main")) > seen:
            break
        await asyncio.sleep(0.05)
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn
    assert settle(set) == set()
    stats = pool.stats()
    assert stats["drops"].get("cancelled") == 1 and stats["slots"] == 0, stats


async def test_a_bug_in_our_code_is_re_raised_unchanged_and_ends_the_cli(
    make_options, pool, monkeypatch
) -> None:
    """A KeyError from our own code is not an agent error (not retried, not bad input); the
    client it happened on is ended all the same. (A fake beside the real tests: no real bug to
    trigger on purpose.)"""
    first = await run_turn("one", make_options(), pool=pool)
    bug = KeyError("our bug")

    async def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(client_pool_module, "drive_turn", broken)
    with pytest.raises(KeyError) as info:
        await run_turn("two", make_options(resume=first.session_id), pool=pool)
    assert info.value is bug
    assert first.session_id not in pool and pool.stats()["slots"] == 0
    assert settle(set) == set()

    monkeypatch.setattr(runtime_module, "drive_turn", broken)
    with pytest.raises(KeyError) as info:
        await run_turn("three", make_options(resume=first.session_id))
    assert info.value is bug
    assert settle(set) == set()


@pytest.mark.postgres
def test_eight_forks_through_the_service_on_postgres_stay_within_the_pool(
    tmp_path, standin, postgres_url, monkeypatch, prefect_harness
) -> None:
    """The same burst through `fork_session` on a PostgreSQL store and the process-wide pool
    (the issue's report: pools grew to 9 with "all 5 clients are busy")."""
    from prefect_claude_sessions.storage import dispose_engines
    from prefect_claude_sessions.tasks import (
        AgentProfile,
        fork_session,
        init_session,
        resume_session,
    )
    from prefect_claude_sessions.tasks.client_pool import default_pool

    from tests.conftest import enter_worker_world

    enter_worker_world(tmp_path, standin, postgres_url, monkeypatch)
    monkeypatch.setenv("CLAUDE_SESSIONS_POOL_SIZE", "4")
    default_pool().close()  # start from an empty process-wide pool
    pool = default_pool()
    agent = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
    try:
        base = init_session.fn("Trunk.", agent=agent)
        standin.inject(latency_s=1.5, count=8)

        def probe() -> dict[str, int]:
            return {"slots": pool.stats()["slots"], "warm": len(pool.warm_pids())}

        with Sampler(probe) as sampled, ThreadPoolExecutor(8) as threads:
            forks = list(threads.map(lambda n: fork_session.fn(base, f"Branch {n}."), range(8)))

        assert sampled.max["slots"] <= 4 and sampled.max["warm"] <= 4, sampled.max
        live = settle(pool.warm_pids)
        assert live == pool.warm_pids() and len(live) <= 4, (live, pool.stats())
        assert len({f.session_id for f in forks}) == 8
        for n, f in enumerate(forks):
            assert f.parent_id == base.session_id
            assert _user_turns_of(standin, f"Branch {n}.") == [["Trunk.", f"Branch {n}."]]
        # a fork served by a one-off CLI resumes like any other, from the store
        last = resume_session.fn(forks[-1], "And then?")
        assert _user_turns_of(standin, "And then?") == [["Trunk.", "Branch 7.", "And then?"]]
        assert last.session_id == forks[-1].session_id
    finally:
        pool.close()
        dispose_engines()
    assert settle(set) == set()
