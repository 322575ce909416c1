"""The baselines: the bare Claude Agent SDK, with none of this project's code in the path.

`BareSDK` owns one event loop in a daemon thread so sync code (a Prefect flow, a script) can run
``query()`` turns and keep a ``ClaudeSDKClient`` open across calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage, query


def bare_options(
    model_env: dict[str, str], config_dir: str, cwd: str, system_prompt: str, **extra: Any
) -> ClaudeAgentOptions:
    """What a user of the bare SDK would pass: same prompt, permission mode and endpoint as
    the tasks, no session store."""
    return ClaudeAgentOptions(
        system_prompt=system_prompt,
        permission_mode="acceptEdits",
        cwd=cwd,
        env={**model_env, "CLAUDE_CONFIG_DIR": config_dir},
        **extra,
    )


def _message(prompt: str) -> dict[str, Any]:
    return {
        "type": "user",
        "message": {"role": "user", "content": prompt},
        "parent_tool_use_id": None,
        "session_id": "default",
        "uuid": str(uuid.uuid4()),
    }


class BareSDK:
    """Bare SDK calls from sync code: ``query()`` per turn, or a kept-open client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bare-sdk", daemon=True)
        self._thread.start()
        self._clients: dict[str, ClaudeSDKClient] = {}

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def query(self, prompt: str, options: ClaudeAgentOptions) -> tuple[str, float]:
        """One ``query()`` turn (a fresh CLI); returns (session id, seconds)."""

        async def go() -> str:
            async def one():
                yield _message(prompt)

            sid = ""
            async for m in query(prompt=one(), options=options):
                if isinstance(m, ResultMessage):
                    sid = m.session_id
            return sid

        started = time.perf_counter()
        sid = self._run(go())
        return sid, time.perf_counter() - started

    def open(self, name: str, options: ClaudeAgentOptions) -> float:
        """Connect a ``ClaudeSDKClient`` kept open under ``name``; returns seconds."""

        async def go() -> None:
            client = ClaudeSDKClient(options)
            await client.connect()
            self._clients[name] = client

        started = time.perf_counter()
        self._run(go())
        return time.perf_counter() - started

    def turn(self, name: str, prompt: str) -> tuple[str, float]:
        """One turn on the kept-open client ``name``; returns (session id, seconds)."""
        client = self._clients[name]

        async def go() -> str:
            await client.query(prompt)
            sid = ""
            async for m in client.receive_response():
                if isinstance(m, ResultMessage):
                    sid = m.session_id
            return sid

        started = time.perf_counter()
        sid = self._run(go())
        return sid, time.perf_counter() - started

    def close(self) -> None:
        async def go() -> None:
            for client in self._clients.values():
                with contextlib.suppress(Exception):  # best effort at shutdown
                    await client.disconnect()
            self._clients.clear()

        try:
            self._run(go())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
