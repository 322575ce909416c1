"""SQLModelSessionStore behaviour beyond the SDK kit: idempotency, order, sidecars, concurrency."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from typing import Any

import pytest
from claude_agent_sdk import fold_session_summary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect_claude_sessions.storage import SessionOrigin, SQLModelSessionStore, open_db, sessions
from prefect_claude_sessions.storage import transcripts as transcripts_module


def key(session_id: str | None = None, project: str = "-work-proj", sub: str | None = None) -> dict:
    k = {"project_key": project, "session_id": session_id or str(uuid.uuid4())}
    if sub:
        k["subpath"] = sub
    return k


def entry(n: int, *, with_uuid: bool = True, **extra: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "user", "n": n, **extra}
    if with_uuid:
        e["uuid"] = f"u-{n}"
    return e


async def test_same_batch_twice_is_stored_once(store: SQLModelSessionStore) -> None:
    k = key()
    batch = [entry(i) for i in range(5)]
    await store.append(k, batch)
    await store.append(k, batch)
    await store.append(k, [*batch[2:], entry(5)])  # overlap plus one new
    assert await store.load(k) == [*batch, entry(5)]
    count, size = store.transcript_stats(k["session_id"])
    assert count == 6
    assert size == sum(
        len(store.codec.encode(e, 0, 10**9).text.encode()) + 1 for e in [*batch, entry(5)]
    )


async def test_entries_without_uuid_are_appended_every_time_in_order(store) -> None:
    k = key()
    await store.append(k, [entry(1, with_uuid=False), entry(2)])
    await store.append(k, [entry(1, with_uuid=False), {"type": "tag", "tag": "x"}])
    assert await store.load(k) == [
        entry(1, with_uuid=False),
        entry(2),
        entry(1, with_uuid=False),
        {"type": "tag", "tag": "x"},
    ]


async def test_duplicate_uuid_within_one_batch_keeps_the_first(store) -> None:
    k = key()
    await store.append(k, [entry(1, v="first"), entry(2), entry(1, v="second")])
    assert await store.load(k) == [entry(1, v="first"), entry(2)]


async def test_order_is_append_order_not_uuid_order(store) -> None:
    k = key()
    ids = [str(uuid.uuid4()) for _ in range(50)]
    for i in range(0, 50, 7):
        await store.append(k, [{"type": "x", "uuid": u} for u in ids[i : i + 7]])
    assert [e["uuid"] for e in await store.load(k)] == ids


async def test_mtime_is_strictly_increasing_and_shared_with_the_sidecar(store) -> None:
    k = key()
    seen = []
    for i in range(20):
        await store.append(k, [entry(i)])
        (listed,) = await store.list_sessions(k["project_key"])
        (summary,) = await store.list_session_summaries(k["project_key"])
        assert summary["mtime"] == listed["mtime"]
        seen.append(listed["mtime"])
    assert all(b > a for a, b in itertools.pairwise(seen))
    assert abs(seen[-1] - time.time() * 1000) < 60_000  # a storage clock, epoch ms


async def test_duplicate_only_batch_changes_nothing(store) -> None:
    k = key()
    await store.append(k, [entry(1, customTitle="t")])
    (before,) = await store.list_session_summaries(k["project_key"])
    await store.append(k, [entry(1, customTitle="other")])
    (after,) = await store.list_session_summaries(k["project_key"])
    assert after == before


async def test_sidecar_equals_a_fold_of_the_whole_transcript(store) -> None:
    k = key()
    batches = [
        [entry(0, timestamp="2024-01-01T00:00:00Z", cwd="/w", message={"content": "hello there"})],
        [entry(1, customTitle="A", gitBranch="main"), entry(2, aiTitle="B")],
        [{"type": "tag", "tag": "urgent"}, entry(3, lastPrompt="do it")],
        [entry(4, summary="sum", customTitle="C")],
    ]
    for b in batches:
        await store.append(k, b)
    (summary,) = await store.list_session_summaries(k["project_key"])
    refolded = fold_session_summary(None, k, await store.load(k))
    assert summary["data"] == refolded["data"]
    assert summary["data"]["custom_title"] == "C"
    assert summary["data"]["first_prompt"] == "hello there"


async def test_concurrent_appends_never_lose_a_fold(database_url: str) -> None:
    """Five writers (separate stores, separate engines' threads) race on one session."""
    k = key()
    fields = ["customTitle", "aiTitle", "lastPrompt", "summary", "gitBranch"]
    stores = [SQLModelSessionStore(database_url) for _ in fields]
    await stores[0].append(k, [entry(-1, with_uuid=False)])

    async def writer(i: int, field: str) -> None:
        for r in range(12):
            await stores[i].append(
                k, [{"type": "x", "uuid": f"{field}-{r}", field: f"{field}-{r}"}]
            )

    await asyncio.gather(*(writer(i, f) for i, f in enumerate(fields)))
    loaded = await stores[0].load(k)
    assert len(loaded) == 1 + 12 * len(fields)
    (summary,) = await stores[0].list_session_summaries(k["project_key"])
    # A lost fold shows as a field missing or stale against a fold of the stored order.
    assert summary["data"] == fold_session_summary(None, k, loaded)["data"]
    for field, dst in zip(
        fields,
        ["custom_title", "ai_title", "last_prompt", "summary_hint", "git_branch"],
        strict=True,
    ):
        assert summary["data"][dst] == f"{field}-11"
    assert stores[0].transcript_stats(k["session_id"])[0] == len(loaded)


async def test_database_work_runs_off_the_event_loop_thread(store, monkeypatch) -> None:
    threads: list[str] = []
    loop_thread = threading.current_thread().name
    for name in (
        "append_entries",
        "load_entries",
        "list_main_keys",
        "list_summaries",
        "delete_key",
        "list_subpaths",
    ):
        original = getattr(transcripts_module, name)

        def spy(*args, _original=original, **kwargs):
            threads.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(transcripts_module, name, spy)
    k = key()
    await store.append(k, [entry(1)])
    await store.load(k)
    await store.list_sessions(k["project_key"])
    await store.list_session_summaries(k["project_key"])
    await store.list_subkeys(k)
    await store.delete(k)
    assert len(threads) == 6
    assert loop_thread not in threads


async def test_event_loop_stays_responsive_during_a_large_append(store) -> None:
    k = key()
    await store.load(k)  # engine and schema set up before timing
    big = [entry(i, text="x" * 2000) for i in range(10000)]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await store.append(k, big)
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    # Run on the loop thread, the append would show as one gap as long as the append itself.
    assert elapsed > 0.1, elapsed  # the append really took a while...
    assert len(gaps) > 10  # ...and the loop kept ticking through it
    assert max(gaps) < elapsed / 2, (max(gaps), elapsed)


async def test_subagent_transcripts_do_not_touch_the_main_summary_or_size(store) -> None:
    k = key()
    await store.append(k, [entry(1, customTitle="main")])
    before = store.transcript_stats(k["session_id"])
    await store.append({**k, "subpath": "subagents/agent-1"}, [entry(2, customTitle="sub")])
    assert store.transcript_stats(k["session_id"]) == before
    (summary,) = await store.list_session_summaries(k["project_key"])
    assert summary["data"]["custom_title"] == "main"
    assert await store.list_subkeys(k) == ["subagents/agent-1"]


async def test_sync_helpers_find_the_project_key_by_session_id(store) -> None:
    sid = str(uuid.uuid4())
    k = key(sid, project="-some-other-cwd")
    await store.append(k, [entry(1), entry(2)])
    assert store.project_key_of(sid) == "-some-other-cwd"
    assert store.entries(sid) == [entry(1), entry(2)]
    assert store.entries(sid, project_key="-some-other-cwd") == [entry(1), entry(2)]


async def test_recorded_session_gets_its_transcript_size_and_project_key(store) -> None:
    sid = str(uuid.uuid4())
    with open_db(store.engine) as db:
        sessions.create_session(
            db, id=sid, project_key="-recorded", agent_name="triage", origin=SessionOrigin.init
        )
    assert store.project_key_of(sid) == "-recorded"
    await store.append(key(sid, project="-recorded"), [entry(1, text="é" * 10)])
    with open_db(store.engine) as db:
        assert sessions.get_session(db, sid).transcript_bytes == store.transcript_stats(sid)[1] > 20


async def test_unicode_and_lone_surrogates_round_trip(store) -> None:
    k = key()
    weird = [
        {"type": "x", "s": "naïve ☃ 𝄞 中文", "nul": "a\x00b"},
        {"type": "x", "lone": "\ud800 alone"},
        {"type": "x", "nested": {"list": [1, 2.5, None, True, {"deep": []}]}},
    ]
    await store.append(k, weird)
    assert await store.load(k) == weird


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.dictionaries(st.text(max_size=8), json_value, max_size=4), max_size=5),
        max_size=4,
    )
)
def test_any_json_entries_round_trip_in_order(sqlite_url: str, batches) -> None:
    store = SQLModelSessionStore(sqlite_url)
    k = key()
    expected = []
    for batch in batches:
        entries = [{**e, "type": "t"} for e in batch]
        asyncio.run(store.append(k, entries))
        expected.extend(entries)
    loaded = asyncio.run(store.load(k))
    assert loaded == (expected if expected else None)


@pytest.mark.parametrize("sub", [None, "subagents/agent-9"])
async def test_delete_leaves_other_projects_and_sessions_alone(store, sub) -> None:
    sid = str(uuid.uuid4())
    mine, other_proj, other_sess = key(sid, sub=sub), key(sid, project="-other"), key()
    for k in (mine, other_proj, other_sess):
        await store.append(k, [entry(1)])
    await store.delete(mine)
    assert await store.load(mine) is None
    assert await store.load(other_proj) == [entry(1)]
    assert await store.load(other_sess) == [entry(1)]
