"""Turn overhead: one resume turn as a Prefect task (store writes included, inside a flow) vs.
the same turn through the bare SDK, measured back to back in one flow run.

Cold (a CLI start per turn):  bare ``query(resume=...)``  vs  ``resume_session.fn`` (service +
store, no task engine)  vs  ``resume_session(...)`` (the full Prefect task), each with the
session's warm client discarded first.
Warm (a live CLI):  a bare ``ClaudeSDKClient`` kept open  vs  ``run_turn_sync`` on the pool (no
store)  vs  ``resume_session.fn``  vs  ``resume_session(...)``. Warm is the fair comparison for
the 1.1x target: the tasks keep pooled clients, so a cold bare call is not what they replace.

Each round runs every variant once, in a rotating order, each on its own session (so all
transcripts grow alike). A final instrumented pass breaks a warm task turn into its parts.
The Prefect server is a real ``prefect server start`` on PostgreSQL; the store is SQLite by
default (``--store postgres`` to switch).

    .venv/bin/python benchmarks/turn_overhead.py            # 15 rounds
    .venv/bin/python benchmarks/turn_overhead.py --quick    # 4 rounds
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bare import BareSDK, bare_options
from benchmarks.breakdown import Breakdown
from benchmarks.common import (
    base_parser,
    close_default_pool,
    figure,
    loadavg,
    prefect_server,
    ratio,
    store_database,
    summary_ms,
    tempdir,
    worker_env,
    write_result,
)

SYSTEM_PROMPT = "You are a benchmark agent."

COLD = ("cold_bare_query", "cold_task_fn", "cold_task")
WARM = ("warm_bare_client", "warm_runtime_pool", "warm_task_fn", "warm_task")


def run(rounds: int, store_kind: str) -> dict:
    os.environ.setdefault("CLAUDE_SESSIONS_POOL_SIZE", "8")
    from prefect import flow
    from prefect_claude_sessions.tasks import AgentProfile, init_session, resume_session
    from prefect_claude_sessions.tasks.client_pool import default_pool
    from prefect_claude_sessions.tasks.runtime import run_turn_sync

    with tempdir("bench-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        with (
            store_database(store_kind, tmp) as url,
            worker_env(tmp, url) as model,
            prefect_server(tmp),
        ):
            config = os.environ["CLAUDE_CONFIG_DIR"]
            cwd = os.getcwd()
            profile = AgentProfile(name="bench", system_prompt=SYSTEM_PROMPT)
            bare = BareSDK()
            pool = default_pool()

            def discard(sid: str) -> None:
                asyncio.run(pool.discard(sid))

            @flow(name="bench-turn-overhead")
            def overhead_flow() -> dict:
                times: dict[str, list[float]] = {v: [] for v in COLD + WARM}
                cli_ms: dict[str, list[float]] = {"cold_task_fn": [], "warm_task_fn": []}
                # one session per variant, all started the same way
                base = bare_options(model.env(), config, cwd, SYSTEM_PROMPT)
                sid_q, _ = bare.query("start cold bare", base)
                bare.open("warm", base)
                bare.turn("warm", "start warm bare")
                heads = {
                    v: init_session(f"start {v}", agent=profile, idempotency_key=f"start-{v}")
                    for v in ("cold_task_fn", "cold_task", "warm_task_fn", "warm_task")
                }
                rt = run_turn_sync(
                    "start runtime", profile.to_options(env=model.env(), cwd=cwd), pool=pool
                )
                for v in ("cold_task_fn", "cold_task"):
                    discard(heads[v].session_id)
                variants = list(COLD + WARM)
                for r in range(rounds):
                    order = variants[r % len(variants) :] + variants[: r % len(variants)]
                    for v in order:
                        prompt = f"round {r} {v}: how is the weather?"
                        if v == "cold_bare_query":
                            _, s = bare.query(
                                prompt,
                                bare_options(model.env(), config, cwd, SYSTEM_PROMPT, resume=sid_q),
                            )
                        elif v == "warm_bare_client":
                            _, s = bare.turn("warm", prompt)
                        elif v == "warm_runtime_pool":
                            t0 = time.perf_counter()
                            run_turn_sync(
                                prompt,
                                profile.to_options(env=model.env(), cwd=cwd, resume=rt.session_id),
                                pool=pool,
                            )
                            s = time.perf_counter() - t0
                        else:
                            call = resume_session.fn if v.endswith("_fn") else resume_session
                            t0 = time.perf_counter()
                            heads[v] = call(heads[v], prompt)
                            s = time.perf_counter() - t0
                            if v in cli_ms:
                                cli_ms[v].append(heads[v].duration_ms / 1000)
                            if v.startswith("cold"):
                                discard(heads[v].session_id)
                        times[v].append(s)
                # instrumented passes: where a warm turn's time goes, with and without the
                # task engine around it
                n_bd = max(3, rounds // 2)
                breakdowns = {}
                for v in ("warm_task", "warm_task_fn"):
                    call = resume_session.fn if v.endswith("_fn") else resume_session
                    bd, total = Breakdown(), 0.0
                    with bd.installed():
                        for i in range(n_bd):
                            t0 = time.perf_counter()
                            heads[v] = call(heads[v], f"breakdown {i} {v}")
                            total += time.perf_counter() - t0
                    breakdowns[v] = {
                        "per_turn_ms": round(total * 1000 / n_bd, 1),
                        "components": bd.shares(total),
                    }
                # what-if: the same warm turns without the per-turn lineage artifact (the
                # report lists every turn of the flow run, so it grows with the run)
                from prefect_claude_sessions.tasks.artifacts import report_publisher

                publish = report_publisher.request
                report_publisher.request = lambda *a, **k: None  # type: ignore[method-assign]
                try:
                    for v in ("warm_task", "warm_task_fn", "warm_bare_client"):
                        call = resume_session.fn if v.endswith("_fn") else resume_session
                        samples = []
                        for i in range(n_bd):
                            t0 = time.perf_counter()
                            if v == "warm_bare_client":
                                bare.turn("warm", f"no artifact {i}")
                            else:
                                heads[v] = call(heads[v], f"no artifact {i} {v}")
                            samples.append(time.perf_counter() - t0)
                        breakdowns.setdefault("without_lineage_artifact", {})[v] = round(
                            statistics.median(samples) * 1000, 1
                        )
                finally:
                    report_publisher.request = publish  # type: ignore[method-assign]
                return {
                    "times": times,
                    "cli_duration": cli_ms,
                    "breakdown": breakdowns,
                    "breakdown_turns": n_bd,
                    "pool": pool.stats(),
                }

            try:
                raw = overhead_flow()
            finally:
                bare.close()
                close_default_pool()
            raw["model_requests"] = len(model.requests(kind="main"))
    return raw


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    rounds = args.rounds or (4 if args.quick else 15)
    started, load = time.time(), loadavg()
    raw = run(rounds, args.store)
    t = raw["times"]
    med = {v: statistics.median(s) * 1000 for v, s in t.items()}
    figures = [
        figure(
            "warm resume task vs kept-open ClaudeSDKClient",
            med["warm_task"],
            "ms/turn",
            baseline="bare ClaudeSDKClient turn",
            baseline_value=med["warm_bare_client"],
            target="<= 1.1x",
            met=med["warm_task"] <= 1.1 * med["warm_bare_client"],
        ),
        figure(
            "warm resume_session.fn (no task engine) vs kept-open client",
            med["warm_task_fn"],
            "ms/turn",
            baseline="bare ClaudeSDKClient turn",
            baseline_value=med["warm_bare_client"],
            target="<= 1.1x",
            met=med["warm_task_fn"] <= 1.1 * med["warm_bare_client"],
        ),
        figure(
            "warm pooled run_turn_sync (no store) vs kept-open client",
            med["warm_runtime_pool"],
            "ms/turn",
            baseline="bare ClaudeSDKClient turn",
            baseline_value=med["warm_bare_client"],
        ),
        figure(
            "cold resume task vs bare query(resume=)",
            med["cold_task"],
            "ms/turn",
            baseline="bare query() turn",
            baseline_value=med["cold_bare_query"],
            target="<= 1.1x",
            met=med["cold_task"] <= 1.1 * med["cold_bare_query"],
        ),
        figure(
            "cold resume_session.fn vs bare query(resume=)",
            med["cold_task_fn"],
            "ms/turn",
            baseline="bare query() turn",
            baseline_value=med["cold_bare_query"],
            target="<= 1.1x",
            met=med["cold_task_fn"] <= 1.1 * med["cold_bare_query"],
        ),
    ]
    what_if = raw["breakdown"].get("without_lineage_artifact")
    if what_if:
        figures.append(
            figure(
                "what-if: warm resume task without the per-turn lineage artifact",
                what_if["warm_task"],
                "ms/turn",
                baseline="bare ClaudeSDKClient turn (same pass)",
                baseline_value=what_if["warm_bare_client"],
                target="<= 1.1x",
                met=what_if["warm_task"] <= 1.1 * what_if["warm_bare_client"],
            )
        )
    cli = {k: statistics.median(v) * 1000 for k, v in raw["cli_duration"].items() if v}
    details = {
        "per_variant": {v: summary_ms(s) for v, s in t.items()},
        "cli_reported_turn_ms_median": cli,
        "prefect_task_engine_ms": {
            "warm": round(med["warm_task"] - med["warm_task_fn"], 1),
            "cold": round(med["cold_task"] - med["cold_task_fn"], 1),
        },
        "service_and_store_ms": {
            "warm (fn - pooled runtime)": round(med["warm_task_fn"] - med["warm_runtime_pool"], 1),
            "cold (fn - bare query)": round(med["cold_task_fn"] - med["cold_bare_query"], 1),
        },
        "pool_vs_bare_client_ms": round(med["warm_runtime_pool"] - med["warm_bare_client"], 1),
        "warm_task_breakdown": raw["breakdown"],
        "breakdown_turns": raw["breakdown_turns"],
        "pool_stats": raw["pool"],
        "model_requests": raw["model_requests"],
        "ratios": {
            "warm_task/warm_task_fn": ratio(med["warm_task"], med["warm_task_fn"]),
            "cold_task/cold_task_fn": ratio(med["cold_task"], med["cold_task_fn"]),
        },
    }
    write_result(
        "turn_overhead",
        quick=args.quick,
        params={"rounds": rounds, "store": args.store, "prefect_server": "postgres"},
        figures=figures,
        details=details,
        load_before=load,
        started=started,
        out=args.out,
    )


if __name__ == "__main__":
    main()
