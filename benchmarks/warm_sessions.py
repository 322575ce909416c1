"""Warm sessions: N consecutive turns on one session through the Prefect tasks (inside a flow,
warm pooled client, store writes included) vs. the naive pattern of a fresh
``query(resume=...)`` per turn. Context: the same turns on a bare ``ClaudeSDKClient`` kept open.

Blocks run in A-B-B-A order (full mode) so drift in the machine's load hits both alike; the
session is started before the clock (init is not one of the N turns).

    .venv/bin/python benchmarks/warm_sessions.py            # 20 turns, 2 repetitions
    .venv/bin/python benchmarks/warm_sessions.py --quick    # 10 turns, 1 repetition
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
    prefect_server,
    store_database,
    tempdir,
    worker_env,
    write_result,
)

SYSTEM_PROMPT = "You are a benchmark agent."


def run(turns: int, reps: int, store_kind: str) -> dict:
    from prefect import flow
    from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session

    with tempdir("bench-warm-") as tmp_name:
        tmp = Path(tmp_name)
        with (
            store_database(store_kind, tmp) as url,
            worker_env(tmp, url) as model,
            prefect_server(tmp),
        ):
            config, cwd = os.environ["CLAUDE_CONFIG_DIR"], os.getcwd()
            bare = BareSDK()
            profile = AgentProfile(name="bench", system_prompt=SYSTEM_PROMPT)

            def tasks_block(rep: int) -> float:
                turn = init_session(f"start tasks {rep}", agent=profile)
                started = time.perf_counter()
                for i in range(turns):
                    turn = resume_session(turn, f"tasks rep {rep} turn {i}")
                return time.perf_counter() - started

            def naive_block(rep: int) -> float:
                base = bare_options(model.env(), config, cwd, SYSTEM_PROMPT)
                sid, _ = bare.query(f"start naive {rep}", base)
                started = time.perf_counter()
                for i in range(turns):
                    sid, _ = bare.query(
                        f"naive rep {rep} turn {i}",
                        bare_options(model.env(), config, cwd, SYSTEM_PROMPT, resume=sid),
                    )
                return time.perf_counter() - started

            def client_block(rep: int) -> float:
                name = f"client-{rep}"
                bare.open(name, bare_options(model.env(), config, cwd, SYSTEM_PROMPT))
                bare.turn(name, f"start client {rep}")
                started = time.perf_counter()
                for i in range(turns):
                    bare.turn(name, f"client rep {rep} turn {i}")
                return time.perf_counter() - started

            @flow(name="bench-warm-sessions")
            def warm_flow() -> dict:
                out: dict[str, list[float]] = {"tasks": [], "naive_query": [], "bare_client": []}
                for rep in range(reps):
                    order = ("tasks", "naive_query") if rep % 2 == 0 else ("naive_query", "tasks")
                    for what in order:
                        fn = tasks_block if what == "tasks" else naive_block
                        out[what].append(fn(rep))
                    out["bare_client"].append(client_block(rep))
                return out

            try:
                raw = warm_flow()
            finally:
                bare.close()
                close_default_pool()
    return raw


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    turns = args.turns or (10 if args.quick else 20)
    reps = 1 if args.quick else 2
    started, load = time.time(), loadavg()
    raw = run(turns, reps, args.store)
    mean = {k: sum(v) / len(v) for k, v in raw.items()}
    speedup = mean["naive_query"] / mean["tasks"]
    figures = [
        figure(
            f"{turns} turns through the tasks",
            mean["tasks"],
            "s",
            baseline=f"{turns} fresh query(resume=) turns",
            baseline_value=mean["naive_query"],
            target=">= 4x faster (ratio <= 0.25)",
            met=speedup >= 4,
        ),
        figure(
            f"{turns} turns through the tasks vs a kept-open bare client",
            mean["tasks"],
            "s",
            baseline=f"{turns} turns on a bare ClaudeSDKClient",
            baseline_value=mean["bare_client"],
        ),
    ]
    details = {
        "seconds": raw,
        "per_turn_ms": {k: round(v * 1000 / turns, 1) for k, v in mean.items()},
        "speedup_tasks_vs_naive": round(speedup, 2),
    }
    write_result(
        "warm_sessions",
        quick=args.quick,
        params={"turns": turns, "repetitions": reps, "store": args.store},
        figures=figures,
        details=details,
        load_before=load,
        started=started,
        out=args.out,
    )


if __name__ == "__main__":
    main()
