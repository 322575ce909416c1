"""The warm client pool against the real CLI and the stand-in model."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from prefect_claude_sessions.tasks.client_pool import ClientPool
from prefect_claude_sessions.tasks.errors import TransientAgentError
from prefect_claude_sessions.tasks.runtime import run_turn, run_turn_sync

pytestmark = pytest.mark.cli


async def test_consecutive_turns_reuse_one_cli(standin, make_options, pool: ClientPool) -> None:
    first = await run_turn("alpha", make_options(), pool=pool)
    sid = first.session_id
    pid = pool.pid_of(sid)
    second = await run_turn("beta", make_options(resume=sid), pool=pool)
    third = await run_turn("gamma", make_options(resume=sid), pool=pool)

    stats = pool.stats()
    assert stats["starts"] == 1 and stats["reuses"] == 2, stats
    assert pool.pid_of(sid) == pid
    assert (first.warm, second.warm, third.warm) == (False, True, True)
    assert {second.session_id, third.session_id} == {sid}
    # the model saw the earlier turns of the conversation
    assert third.text == "echo: gamma | earlier user turns: 2 | first: alpha"
    last = standin.requests(kind="main")[-1]
    assert last["session_id"] == sid and last["user_turns"] == ["alpha", "beta", "gamma"]
    # cost is per turn, not the CLI's running total
    assert 0 < third.cost_usd < first.cost_usd * 1.5


def _gone(pid: int | None, timeout_s: float = 10.0) -> bool:
    """True once process ``pid`` has exited (reaping it if it is our zombie child)."""
    assert pid is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return True
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


async def _wait_for_requests(standin, n: int, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if len(standin.requests(kind="main")) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the stand-in never got {n} main requests")


async def test_cli_dying_mid_turn_is_transient_and_drops_the_client(
    standin, make_options, pool: ClientPool
) -> None:
    first = await run_turn("one", make_options(), pool=pool)
    sid = first.session_id
    pid = pool.pid_of(sid)
    assert pid is not None
    standin.inject(latency_s=5.0)
    seen = len(standin.requests(kind="main"))
    turn = asyncio.create_task(run_turn("two", make_options(resume=sid), pool=pool))
    await _wait_for_requests(standin, seen + 1)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(TransientAgentError) as info:
        await turn
    assert info.value.kind in {"process_crashed", "connection_lost"}
    assert sid not in pool and pool.stats()["size"] == 0

    # The next turn starts a new CLI and resumes at the last completed answer: the killed
    # prompt may already be in the transcript, and resuming at the head leaves it out (the
    # session service does this with the head it stores).
    standin.clear_faults()
    third = await run_turn(
        "three", make_options(resume=sid, resume_session_at=first.assistant_uuid), pool=pool
    )
    assert third.session_id == sid and not third.warm
    assert pool.stats()["starts"] == 2
    assert third.text.startswith("echo: three | earlier user turns: 1 | first: one")


async def test_cli_found_dead_between_turns_is_replaced_silently(make_options, pool) -> None:
    first = await run_turn("one", make_options(), pool=pool)
    pid = pool.pid_of(first.session_id)
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.3)
    second = await run_turn("two", make_options(resume=first.session_id), pool=pool)
    assert second.text == "echo: two | earlier user turns: 1 | first: one"
    stats = pool.stats()
    assert stats["starts"] == 2 and stats["drops"].get("died_idle") == 1, stats


async def test_concurrent_turns_on_one_session_never_share_the_client(
    standin, make_options, pool
) -> None:
    first = await run_turn("base", make_options(), pool=pool)
    sid = first.session_id
    standin.inject(latency_s=0.5, count=2)
    a, b = await asyncio.gather(
        run_turn("left", make_options(resume=sid), pool=pool),
        run_turn("right", make_options(resume=sid), pool=pool),
    )
    # serialised: one of them saw the other's prompt as an earlier turn, both on the one CLI
    counts = sorted(int(o.text.split("earlier user turns: ")[1].split(" ")[0]) for o in (a, b))
    assert counts == [1, 2]
    assert pool.stats()["starts"] == 1


async def test_parallel_sessions_get_their_own_clients_and_lru_eviction(make_options) -> None:
    small = ClientPool(max_size=2, idle_timeout_s=300, name="small")
    try:
        outs = await asyncio.gather(
            *(run_turn(f"s{i}", make_options(), pool=small) for i in range(2))
        )
        assert len({o.session_id for o in outs}) == 2 and small.stats()["starts"] == 2
        await run_turn(
            "again", make_options(resume=outs[1].session_id), pool=small
        )  # outs[0] is LRU
        third = await run_turn("new one", make_options(), pool=small)
        stats = small.stats()
        assert stats["evictions"] == 1 and stats["size"] == 2
        assert set(stats["sessions"]) == {outs[1].session_id, third.session_id}
    finally:
        small.close()


async def test_idle_clients_are_closed(make_options) -> None:
    quick = ClientPool(max_size=2, idle_timeout_s=0.3, name="quick")
    try:
        out = await run_turn("hello", make_options(), pool=quick)
        pid = quick.pid_of(out.session_id)
        for _ in range(60):
            if len(quick) == 0:
                break
            await asyncio.sleep(0.1)
        assert quick.stats()["idle_closed"] == 1 and len(quick) == 0
        assert _gone(pid), "the idle CLI process is still running"
    finally:
        quick.close()


async def test_changed_options_fork_and_stale_head_start_new_clients(
    standin, make_options, pool
) -> None:
    first = await run_turn("root", make_options(), pool=pool)
    sid = first.session_id

    fork = await run_turn("branch", make_options(resume=sid, fork_session=True), pool=pool)
    assert fork.session_id != sid and sid in pool and fork.session_id in pool
    assert fork.text == "echo: branch | earlier user turns: 1 | first: root"

    # a different system prompt is another configuration: the session's client is replaced
    again = await run_turn("next", make_options("You are a changed agent.", resume=sid), pool=pool)
    assert not again.warm and pool.stats()["drops"].get("options_changed") == 1

    # the caller knows a newer head than the warm client has: the client is stale
    stale = await run_turn(
        "later",
        make_options("You are a changed agent.", resume=sid),
        pool=pool,
        head_uuid="not-the-head",
    )
    assert not stale.warm and pool.stats()["drops"].get("stale") == 1
    ok = await run_turn(
        "latest",
        make_options("You are a changed agent.", resume=sid),
        pool=pool,
        head_uuid=stale.assistant_uuid,
    )
    assert ok.warm


def test_sync_callers_in_fresh_event_loops_share_the_warm_client(make_options, pool) -> None:
    """Prefect sync tasks may run each call in a new loop/thread; the pool's own loop thread
    keeps the client usable across them."""
    first = run_turn_sync("one", make_options(), pool=pool)
    second = asyncio.run(run_turn("two", make_options(resume=first.session_id), pool=pool))
    third = asyncio.run(run_turn("three", make_options(resume=first.session_id), pool=pool))
    fourth = run_turn_sync("four", make_options(resume=first.session_id), pool=pool)
    assert fourth.text == "echo: four | earlier user turns: 3 | first: one"
    assert pool.stats()["starts"] == 1 and (second.warm, third.warm, fourth.warm) == (
        True,
        True,
        True,
    )


async def test_timeout_is_transient_and_drops_the_client(standin, make_options, pool) -> None:
    first = await run_turn("one", make_options(), pool=pool)
    standin.inject(latency_s=3.0)
    with pytest.raises(TransientAgentError) as info:
        await run_turn("slow", make_options(resume=first.session_id), pool=pool, timeout_s=1.0)
    assert info.value.kind == "timeout"
    assert first.session_id not in pool


def test_close_disconnects_every_client(make_options) -> None:
    p = ClientPool(name="closing")
    out = run_turn_sync("x", make_options(), pool=p)
    pid = p.pid_of(out.session_id)
    p.close()
    assert len(p) == 0
    with pytest.raises(RuntimeError):
        run_turn_sync("y", make_options(resume=out.session_id), pool=p)
    assert _gone(pid), "the CLI process survived close()"


async def test_forks_of_one_parent_run_in_parallel(standin, make_options, pool) -> None:
    """A fork locks its own new session, not the parent: two forks overlap at the model."""
    import uuid

    first = await run_turn("trunk", make_options(), pool=pool)
    standin.clear_requests()
    standin.inject(latency_s=2.0, count=2)
    forks = await asyncio.gather(
        *(
            run_turn(
                f"branch {n}",
                make_options(
                    resume=first.session_id, fork_session=True, session_id=str(uuid.uuid4())
                ),
                pool=pool,
            )
            for n in (1, 2)
        )
    )
    arrivals = sorted(r["ts"] for r in standin.requests(kind="main"))
    assert len(arrivals) == 2
    # the second fork reached the model while the first was still waiting on its answer
    assert arrivals[1] - arrivals[0] < 2.0, arrivals
    assert len({f.session_id for f in forks}) == 2
