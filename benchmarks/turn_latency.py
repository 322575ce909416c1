"""Per-turn latency: a cold ``query()`` per turn vs. a cold client per turn vs. a warm pooled
client, all in one run against the local stand-in model (so the model costs ~nothing and the
numbers are the CLI/SDK overhead).

    .venv/bin/python benchmarks/turn_latency.py            # 10 turns per mode
    .venv/bin/python benchmarks/turn_latency.py --quick    # 3 turns per mode

Recorded (claude-agent-sdk 0.2.189, CLI 2.1.332, 2 shared cores, 10 turns per mode, one run):
cold ``query()`` median 564 ms (mean 606), cold client per turn median 584 ms (mean 622),
warm pooled client median 86 ms (mean 85, min 53); the pool's first turn 576 ms; 1 CLI start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, query
from claude_agent_sdk import __version__ as sdk_version
from prefect_claude_sessions.tasks.client_pool import ClientPool
from prefect_claude_sessions.tasks.runtime import run_turn, user_message
from prefect_claude_sessions.tasks.sdk_private import bundled_cli_version
from prefect_claude_sessions.tasks.standin import StandinModel


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "mean_ms": round(statistics.mean(samples), 1),
        "median_ms": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
    }


async def _cold_query(options: ClaudeAgentOptions, turns: int) -> list[float]:
    """The tutorial's way: ``query()`` per turn, resuming the session by id."""
    times, sid = [], None
    for i in range(turns):
        opts = ClaudeAgentOptions(**{**options.__dict__, "resume": sid})
        msg = user_message(f"cold query turn {i}", str(uuid.uuid4()))

        async def one(m=msg):
            yield m

        t = time.perf_counter()
        async for m in query(prompt=one(), options=opts):
            if isinstance(m, ResultMessage):
                sid = m.session_id
        times.append((time.perf_counter() - t) * 1000)
    return times


async def _cold_client(options: ClaudeAgentOptions, turns: int) -> list[float]:
    """``run_turn`` without a pool: one ClaudeSDKClient (one CLI) per turn."""
    times, sid = [], None
    for i in range(turns):
        opts = ClaudeAgentOptions(**{**options.__dict__, "resume": sid})
        t = time.perf_counter()
        out = await run_turn(f"cold client turn {i}", opts)
        times.append((time.perf_counter() - t) * 1000)
        sid = out.session_id
    return times


async def _warm(options: ClaudeAgentOptions, turns: int) -> tuple[list[float], float, dict]:
    """``run_turn`` with a pool: the first turn connects, the rest reuse the live CLI."""
    pool = ClientPool(name="bench")
    try:
        t = time.perf_counter()
        first = await run_turn("warm turn 0", options, pool=pool)
        first_ms = (time.perf_counter() - t) * 1000
        opts = ClaudeAgentOptions(**{**options.__dict__, "resume": first.session_id})
        times = []
        for i in range(1, turns + 1):
            t = time.perf_counter()
            out = await run_turn(f"warm turn {i}", opts, pool=pool)
            times.append((time.perf_counter() - t) * 1000)
            assert out.warm
        return times, first_ms, pool.stats()
    finally:
        await pool.aclose()


async def main(turns: int) -> dict:
    with StandinModel() as model, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        results: dict = {}
        for mode in ("cold_query", "cold_client", "warm_pool"):
            config = Path(tmp) / f"config-{mode}"
            config.mkdir()
            options = ClaudeAgentOptions(
                system_prompt="You are a benchmark agent.",
                permission_mode="acceptEdits",
                cwd=str(work),
                env={**model.env(), "CLAUDE_CONFIG_DIR": str(config)},
            )
            if mode == "cold_query":
                results[mode] = _summary(await _cold_query(options, turns))
            elif mode == "cold_client":
                results[mode] = _summary(await _cold_client(options, turns))
            else:
                times, first_ms, stats = await _warm(options, turns)
                results[mode] = {
                    **_summary(times),
                    "first_turn_ms": round(first_ms, 1),
                    "cli_starts": stats["starts"],
                }
        results["model_requests"] = len(model.requests(kind="main"))
    return results


if __name__ == "__main__":
    from benchmarks.common import figure, loadavg, write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 turns per mode instead of 10")
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--out", default=None, help="result JSON path")
    args = parser.parse_args()
    n = args.turns or (3 if args.quick else 10)
    started, load = time.time(), loadavg()
    out = asyncio.run(main(n))
    out["env"] = {
        "claude_agent_sdk": sdk_version,
        "cli": bundled_cli_version(),
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
    }
    print(json.dumps(out, indent=2))
    cq, cc, w = out["cold_query"], out["cold_client"], out["warm_pool"]
    print(
        f"\nper turn (median): cold query() {cq['median_ms']:.0f} ms | cold client "
        f"{cc['median_ms']:.0f} ms | warm pooled client {w['median_ms']:.0f} ms "
        f"(first pooled turn {w['first_turn_ms']:.0f} ms, CLI starts: {w['cli_starts']})",
        file=sys.stderr,
    )
    write_result(
        "turn_latency",
        quick=args.quick,
        params={"turns": n},
        figures=[
            figure(
                "warm pooled run_turn",
                w["median_ms"],
                "ms/turn",
                baseline="cold query() per turn",
                baseline_value=cq["median_ms"],
            ),
            figure(
                "cold run_turn (a client per turn)",
                cc["median_ms"],
                "ms/turn",
                baseline="cold query() per turn",
                baseline_value=cq["median_ms"],
            ),
        ],
        details=out,
        load_before=load,
        started=started,
        out=args.out,
    )
