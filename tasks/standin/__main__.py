"""``python -m prefect_claude_sessions.tasks.standin --port 8765 --log requests.jsonl``: run the stand-in model."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from prefect_claude_sessions.tasks.standin.server import StandinModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prefect_claude_sessions.tasks.standin",
        description="Local stand-in for the Anthropic Messages API (tests and offline demo only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--log", default=None, help="append the request log to this JSON-lines file"
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with StandinModel(host=args.host, port=args.port, log_path=args.log) as model:
        print(model.base_url, flush=True)
        print(
            f"export ANTHROPIC_BASE_URL={model.base_url} ANTHROPIC_API_KEY=<any> "
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
