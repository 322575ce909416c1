"""Restoring files to a checkpoint, for sessions that run with file checkpointing.

File rewind is a control request to a live CLI connected to the session; it sends no prompt
(the tutorial's ``query("")`` would send a real, empty turn to the model).
"""

from __future__ import annotations

import asyncio
import threading

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient


async def rewind_files(user_message_uuid: str, options: ClaudeAgentOptions) -> None:
    """Restore the files the session changed to their state before the prompt ``user_message_uuid``."""
    async with ClaudeSDKClient(options) as client:
        await client.rewind_files(user_message_uuid)


def rewind_files_sync(session_id: str, user_message_uuid: str, options: ClaudeAgentOptions) -> None:
    """`rewind_files` from synchronous code, in its own thread and event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(rewind_files(user_message_uuid, options))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"rewind-{session_id[:8]}")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
