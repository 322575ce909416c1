"""Local copy cleanup: what deleting the plaintext transcript after each cold turn costs.

With encryption at rest on, a worker deletes a session's local transcript once the store holds
it and no warm CLI needs it (`tasks.local_copies`). This measures cold turns (no pool: a CLI
start per turn; an init, which writes a local file, and a resume, which materialises from the
store) with encryption on (sealing + cleanup) against encryption off, in one process, in
alternating rounds, and times the cleanup hook itself.

    .venv/bin/python benchmarks/local_copy_cleanup.py            # 8 rounds
    .venv/bin/python benchmarks/local_copy_cleanup.py --quick    # 3 rounds
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    base_parser,
    figure,
    loadavg,
    store_database,
    summary_ms,
    tempdir,
    worker_env,
    write_result,
)

KEY_ENV = "CLAUDE_SESSIONS_ENCRYPTION_KEY"


def main(argv: list[str] | None = None) -> None:
    args = base_parser(__doc__ or "").parse_args(argv)
    rounds = 3 if args.quick else 8
    started, load_before = time.time(), loadavg()

    from prefect_claude_sessions.storage import SQLModelSessionStore, generate_key
    from prefect_claude_sessions.tasks import AgentProfile, local_copies
    from prefect_claude_sessions.tasks.context import RunContext
    from prefect_claude_sessions.tasks.service import SessionService

    hook_s: list[float] = []
    real_after_turn = local_copies.after_turn

    def timed_after_turn(*a: object, **kw: object) -> None:
        t0 = time.perf_counter()
        real_after_turn(*a, **kw)  # type: ignore[arg-type]
        hook_s.append(time.perf_counter() - t0)

    local_copies.after_turn = timed_after_turn  # type: ignore[assignment]
    profile = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
    ctx = RunContext(None, None)
    samples: dict[str, dict[str, list[float]]] = {
        v: {"init": [], "resume": []} for v in ("off", "on")
    }
    leftovers = {"off": 0, "on": 0}
    key = generate_key()
    with (
        tempdir("cleanup-bench") as tmp,
        store_database("sqlite", Path(tmp)) as url,
        worker_env(Path(tmp), url),
    ):
        service = SessionService(
            SQLModelSessionStore(url), pool=lambda: None, credentials=lambda _b: {}
        )
        config = Path(os.environ["CLAUDE_CONFIG_DIR"])
        service.init("warm-up", profile, ctx=ctx)  # first CLI start pays for caches
        for n in range(rounds):
            order = ("off", "on") if n % 2 == 0 else ("on", "off")
            for variant in order:
                if variant == "on":
                    os.environ[KEY_ENV] = key
                else:
                    os.environ.pop(KEY_ENV, None)
                t0 = time.perf_counter()
                turn = service.init(f"Customer {uuid.uuid4().hex} writes.", profile, ctx=ctx)
                samples[variant]["init"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                service.resume(turn.session_id, "And again.", ctx=ctx)
                samples[variant]["resume"].append(time.perf_counter() - t0)
                leftovers[variant] += len(
                    list((config / "projects").glob(f"*/{turn.session_id}.jsonl"))
                )
        os.environ.pop(KEY_ENV, None)

    def per_turn(variant: str) -> float:
        values = samples[variant]["init"] + samples[variant]["resume"]
        return statistics.median(values) * 1000

    hook_ms = statistics.median(hook_s) * 1000
    figures = [
        figure(
            "cold turn, encryption on (sealing + local copy cleanup)",
            per_turn("on"),
            "ms",
            baseline="cold turn, encryption off",
            baseline_value=per_turn("off"),
        ),
        figure(
            "local copy cleanup hook per cold turn",
            hook_ms,
            "ms",
            baseline="cold turn, encryption on",
            baseline_value=per_turn("on"),
        ),
    ]
    details = {
        variant: {kind: summary_ms(values) for kind, values in kinds.items()}
        for variant, kinds in samples.items()
    }
    details["hook"] = summary_ms(hook_s)
    details["local_files_left"] = leftovers
    write_result(
        "local_copy_cleanup",
        quick=args.quick,
        params={"rounds": rounds, "store": "sqlite", "pool": "none (cold turns)"},
        figures=figures,
        details=details,
        notes=[
            "hook = tasks.local_copies.after_turn (scrub secrets from the local copy, delete "
            "it when encryption is on and no warm CLI holds the session), timed in-process",
            "local_files_left counts local transcripts left after each round's two turns",
        ],
        load_before=load_before,
        started=started,
        out=args.out,
    )


if __name__ == "__main__":
    main()
