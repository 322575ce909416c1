"""Fork fan-out: N = 1, 2, 4, 8 forks of one session in parallel, with 1 s of model latency
injected into every conversation call, vs. the same N forks one after another.

Parallel = ``fork_session.map(...)`` in a flow (Prefect's thread-pool task runner); for the
Prefect share, also plain threads calling ``fork_session.fn`` (the service, no task engine).
Every fork starts its own CLI (a fork never reuses the parent's warm client); the forks' clients
are discarded between measurements so each starts from the same pool state.

    .venv/bin/python benchmarks/fork_fanout.py            # N = 1, 2, 4, 8; 2 repetitions
    .venv/bin/python benchmarks/fork_fanout.py --quick    # N = 1, 2, 4; 1 repetition
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    RssSampler,
    base_parser,
    close_default_pool,
    figure,
    loadavg,
    prefect_server,
    store_database,
    tempdir,
    worker_env,
    write_result,
)

LATENCY_S = 1.0


def unlock_forks() -> None:
    """What-if for the fix proposal: the pool serialises turns by ``options.resume``, so every
    fork of one parent waits for the previous fork's whole turn. Give each turn its own lock
    (valid here only: this benchmark never runs two turns on one session at once)."""
    import asyncio as _asyncio

    from prefect_claude_sessions.tasks.client_pool import ClientPool

    ClientPool._lock = lambda self, session_id: _asyncio.Lock()  # type: ignore[method-assign]


def run(ns: list[int], reps: int, store_kind: str) -> dict:
    os.environ.setdefault("CLAUDE_SESSIONS_POOL_SIZE", str(max(ns) + 2))
    from prefect import flow, unmapped
    from prefect_claude_sessions.tasks import AgentProfile, fork_session, init_session
    from prefect_claude_sessions.tasks.client_pool import default_pool

    with tempdir("bench-fork-") as tmp_name:
        tmp = Path(tmp_name)
        with (
            store_database(store_kind, tmp) as url,
            worker_env(tmp, url) as model,
            prefect_server(tmp),
        ):
            profile = AgentProfile(name="explorer", system_prompt="You explore approaches.")
            pool = default_pool()

            def drop(turns: list) -> None:
                for t in turns:
                    asyncio.run(pool.discard(t.session_id))

            @flow(name="bench-fork-fanout")
            def fanout_flow() -> dict:
                parent = init_session("Plan the migration.", agent=profile)
                model.inject(latency_s=LATENCY_S, count=None)
                out: dict[str, dict[int, list[float]]] = {
                    "parallel_map": {},
                    "parallel_threads_fn": {},
                    "sequential": {},
                }
                for rep in range(reps):
                    for n in ns:
                        modes = ["parallel_map", "sequential", "parallel_threads_fn"]
                        if rep % 2:
                            modes.reverse()
                        for mode in modes:
                            prompts = [f"{mode} rep {rep} n {n} approach {i}" for i in range(n)]
                            started = time.perf_counter()
                            if mode == "parallel_map":
                                futures = fork_session.map(unmapped(parent), prompts)
                                turns = [f.result() for f in futures]
                            elif mode == "parallel_threads_fn":
                                # each thread runs in a copy of the flow's context (Prefect
                                # settings and client): a bare thread set up its own event
                                # client on first use (~30 s seen), which is not a fork's cost
                                ctx = contextvars.copy_context()
                                with ThreadPoolExecutor(max_workers=n) as ex:
                                    turns = list(
                                        ex.map(
                                            lambda p, c=ctx: c.copy().run(
                                                fork_session.fn, parent, p
                                            ),
                                            prompts,
                                        )
                                    )
                            else:
                                turns = [fork_session(parent, p) for p in prompts]
                            out[mode].setdefault(n, []).append(time.perf_counter() - started)
                            assert all(t.parent_id == parent.session_id for t in turns)
                            drop(turns)
                model.clear_faults()
                return out

            try:
                with RssSampler() as rss:
                    raw = fanout_flow()
            finally:
                close_default_pool()
    return {"seconds": raw, "rss": rss.result_mb()}


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--what-if-unlocked-forks",
        action="store_true",
        help="patch the pool in-process so forks of one parent do not share a lock "
        "(quantifies the proposed fix; writes fork_fanout_whatif.json)",
    )
    args = parser.parse_args()
    if args.what_if_unlocked_forks:
        unlock_forks()
    ns = [1, 2, 4] if args.quick else [1, 2, 4, 8]
    reps = 1 if args.quick else 2
    started, load = time.time(), loadavg()
    raw = run(ns, reps, args.store)
    mean = {
        mode: {n: sum(v) / len(v) for n, v in by_n.items()} for mode, by_n in raw["seconds"].items()
    }
    par, seq, thr = mean["parallel_map"], mean["sequential"], mean["parallel_threads_fn"]
    figures = [
        figure(
            "4 forks in parallel (Prefect .map)",
            par[4],
            "s",
            baseline="1 fork (.map of one)",
            baseline_value=par[1],
            target="< 1.5x",
            met=par[4] < 1.5 * par[1],
        ),
        figure(
            "4 forks in parallel (threads over the service)",
            thr[4],
            "s",
            baseline="1 fork (threads over the service)",
            baseline_value=thr[1],
            target="< 1.5x",
            met=thr[4] < 1.5 * thr[1],
        ),
        figure(
            "4 forks in parallel (Prefect .map) vs sequential",
            par[4],
            "s",
            baseline="4 forks one after another",
            baseline_value=seq[4],
        ),
    ]
    if 8 in par:
        figures.append(
            figure(
                "8 forks in parallel (Prefect .map)",
                par[8],
                "s",
                baseline="1 fork (.map of one)",
                baseline_value=par[1],
            )
        )
    details = {
        "mean_seconds": {m: {str(n): round(s, 3) for n, s in v.items()} for m, v in mean.items()},
        "speedup_parallel_vs_sequential": {str(n): round(seq[n] / par[n], 2) for n in ns},
        "raw_seconds": raw["seconds"],
        "rss": raw["rss"],
    }
    write_result(
        "fork_fanout_whatif" if args.what_if_unlocked_forks else "fork_fanout",
        quick=args.quick,
        params={
            "n": ns,
            "repetitions": reps,
            "latency_s": LATENCY_S,
            "store": args.store,
            "what_if_unlocked_forks": args.what_if_unlocked_forks,
        },
        figures=figures,
        details=details,
        notes=[
            "tasks.client_pool.ClientPool._turn locks on options.resume or options.session_id: "
            "a fork's options.resume is the PARENT, so all forks of one parent run one at a time "
            "(each holding the lock for its whole turn).",
            "Each fork starts a CLI (~0.5 s of CPU on this machine); on 2 cores parallel CLI "
            "starts are CPU-bound, so fan-out beyond the core count is limited by CLI start-up.",
        ],
        load_before=load,
        started=started,
        out=args.out,
    )


if __name__ == "__main__":
    main()
