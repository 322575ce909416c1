"""Warm turns through the session service vs. a fresh ``query(resume=...)`` per turn, in one
process, without Prefect in the way.

``SessionService.resume`` is the whole product path of a turn (claim, idempotency lookup, head
bookkeeping, the warm pooled CLI, the store's transcript mirror, turn rows); the baseline is what
a user of the bare SDK writes: ``claude_agent_sdk.query(prompt, options=ClaudeAgentOptions(
resume=sid))``, which starts a CLI per turn. Both against the stand-in model, blocks in A-B-B-A
order so drift in the machine's load hits both alike; each session is started before the clock.
``benchmarks/warm_sessions.py`` measures the same through the Prefect tasks inside a flow.

    .venv/bin/python benchmarks/warm_service.py            # 10 turns, 2 repetitions
    .venv/bin/python benchmarks/warm_service.py --quick    # 10 turns, 1 repetition
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bare import BareSDK, bare_options
from benchmarks.common import (
    base_parser,
    close_default_pool,
    figure,
    loadavg,
    store_database,
    tempdir,
    worker_env,
    write_result,
)

SYSTEM_PROMPT = "You are a benchmark agent."
TARGET = 4.0  # the bar: warm turns at least 4x faster than a fresh query(resume=)


def run(turns: int, reps: int, store_kind: str) -> dict:
    from prefect_claude_sessions.storage import SQLModelSessionStore
    from prefect_claude_sessions.tasks import AgentProfile
    from prefect_claude_sessions.tasks.client_pool import default_pool
    from prefect_claude_sessions.tasks.context import RunContext
    from prefect_claude_sessions.tasks.service import SessionService

    with tempdir("bench-warm-service-") as tmp_name:
        tmp = Path(tmp_name)
        with store_database(store_kind, tmp) as url, worker_env(tmp, url) as model:
            config, cwd = os.environ["CLAUDE_CONFIG_DIR"], os.getcwd()
            service = SessionService(SQLModelSessionStore(url))
            ctx = RunContext(flow_run_id=None, task_run_id=None)
            profile = AgentProfile(name="bench", system_prompt=SYSTEM_PROMPT)
            bare = BareSDK()
            out: dict[str, list[float]] = {"service": [], "fresh_query": []}
            warm_turns: list[int] = []

            def service_block(rep: int) -> float:
                turn = service.init(f"start service {rep}", profile, ctx=ctx)
                before = default_pool().stats()["reuses"]
                started = time.perf_counter()
                for i in range(turns):
                    turn = service.resume(turn.session_id, f"service rep {rep} turn {i}", ctx=ctx)
                elapsed = time.perf_counter() - started
                warm_turns.append(default_pool().stats()["reuses"] - before)
                # the warm turns carried the whole conversation
                last = model.requests(kind="main")[-1]["user_turns"]
                assert len(last) == turns + 1, last
                return elapsed

            def fresh_block(rep: int) -> float:
                base = bare_options(model.env(), config, cwd, SYSTEM_PROMPT)
                sid, _ = bare.query(f"start fresh {rep}", base)
                started = time.perf_counter()
                for i in range(turns):
                    sid, _ = bare.query(
                        f"fresh rep {rep} turn {i}",
                        bare_options(model.env(), config, cwd, SYSTEM_PROMPT, resume=sid),
                    )
                return time.perf_counter() - started

            try:
                for rep in range(reps):
                    order = (
                        ("service", "fresh_query") if rep % 2 == 0 else ("fresh_query", "service")
                    )
                    for what in order:
                        block = service_block if what == "service" else fresh_block
                        out[what].append(block(rep))
            finally:
                bare.close()
                close_default_pool()
    return {"seconds": out, "warm_turns": warm_turns}


def main(argv: list[str] | None = None) -> float:
    parser = base_parser(__doc__)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else 2
    started, load = time.time(), loadavg()
    raw = run(args.turns, reps, args.store)
    mean = {k: sum(v) / len(v) for k, v in raw["seconds"].items()}
    speedup = mean["fresh_query"] / mean["service"]
    per_turn = {k: round(v * 1000 / args.turns, 1) for k, v in mean.items()}
    print(
        f"{args.turns} turns: service (warm pool) {mean['service']:.2f} s "
        f"({per_turn['service']} ms/turn), fresh query(resume=) {mean['fresh_query']:.2f} s "
        f"({per_turn['fresh_query']} ms/turn): {speedup:.1f}x faster warm "
        f"(target >= {TARGET:g}x: {'met' if speedup >= TARGET else 'MISSED'})"
    )
    write_result(
        "warm_service",
        quick=args.quick,
        params={"turns": args.turns, "repetitions": reps, "store": args.store},
        figures=[
            figure(
                f"{args.turns} turns through SessionService.resume",
                mean["service"],
                "s",
                baseline=f"{args.turns} fresh query(resume=) turns",
                baseline_value=mean["fresh_query"],
                target=f">= {TARGET:g}x faster (ratio <= {1 / TARGET:g})",
                met=speedup >= TARGET,
            )
        ],
        details={
            "seconds": raw["seconds"],
            "per_turn_ms": per_turn,
            "speedup_service_vs_fresh": round(speedup, 2),
            "warm_turns_per_block": raw["warm_turns"],
        },
        load_before=load,
        started=started,
        out=args.out,
    )
    return speedup


if __name__ == "__main__":
    main()
