"""The only place that reaches into the Claude Agent SDK's private parts.

Everything else imports the SDK's public names (``claude_agent_sdk.__all__``: e.g.
``fold_session_summary``, ``ResultError``, ``project_key_for_directory``). A few things the plugin
needs have no public form in claude-agent-sdk 0.2.x, so they are read here, defensively, and
tests/runtime/test_sdk_private.py fails as soon as an SDK release moves them:

- the CLI subprocess behind a connected ``ClaudeSDKClient`` (``client._transport._process``,
  an ``anyio`` ``Process``), for the warm pool's pid reporting and liveness check;
- whether the client is connected at all (``client._query``, set by ``connect`` and cleared by
  ``disconnect``);
- the version of the CLI bundled with the SDK (``claude_agent_sdk._cli_version``), recorded by
  the benchmarks next to their numbers;
- ending a CLI at once (`end_cli`): the SDK's ``disconnect`` first waits up to 5 s for the CLI
  to exit on its own, which after a timed-out or failed turn is 5 s of a CLI still working on
  a turn nobody waits for. `end_cli` signals the process itself, then lets ``disconnect``
  tidy up a client whose process has already exited.

If the SDK changes them, the functions degrade (no pid, "not alive": the pool reconnects, which
costs a CLI start but loses nothing) rather than crash; the test is what notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from claude_agent_sdk import ClaudeSDKClient

logger = logging.getLogger(__name__)

#: Seconds the CLI gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_S = 2.0
#: Seconds `end_cli` and `close_cli` give ``disconnect`` (it flushes the transcript mirror).
DISCONNECT_BOUND_S = 15.0


def cli_process(client: ClaudeSDKClient) -> Any | None:
    """The CLI subprocess of a connected client (an ``anyio`` Process), or None if there is none."""
    transport = getattr(client, "_transport", None)
    return getattr(transport, "_process", None)


def cli_pid(client: ClaudeSDKClient) -> int | None:
    """The operating-system process id of the client's CLI, or None when it has no process."""
    pid = getattr(cli_process(client), "pid", None)
    return pid if isinstance(pid, int) else None


def is_connected(client: ClaudeSDKClient) -> bool:
    """Whether ``connect`` succeeded and ``disconnect`` has not run since."""
    return getattr(client, "_query", None) is not None


def cli_alive(client: ClaudeSDKClient) -> bool:
    """Whether the client is connected and its CLI process has not exited."""
    proc = cli_process(client)
    if proc is None or not is_connected(client):
        return False
    return getattr(proc, "returncode", 0) is None


async def _wait_exit(proc: Any, seconds: float) -> bool:
    try:
        await asyncio.wait_for(proc.wait(), seconds)
    except (TimeoutError, asyncio.TimeoutError):
        return False
    except Exception:  # already reaped elsewhere
        return getattr(proc, "returncode", None) is not None
    return True


async def _disconnect(client: ClaudeSDKClient, why: str) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), DISCONNECT_BOUND_S)
    except (TimeoutError, asyncio.TimeoutError):
        logger.warning("disconnect of a CLI client (%s) took over %g s", why, DISCONNECT_BOUND_S)
    except Exception as exc:  # the CLI may be gone already
        logger.debug("disconnect of a CLI client (%s) failed: %r", why, exc)


async def end_cli(client: ClaudeSDKClient, *, grace_s: float = TERM_GRACE_S) -> None:
    """End the client's CLI process now (SIGTERM, SIGKILL after ``grace_s``) and disconnect.

    For a turn that failed, timed out or was cancelled: its CLI may still be calling the model
    or running tools, and nothing will read what it does. Never raises; returns once the process
    has exited (or could not be signalled) and the client is disconnected.
    """
    proc = cli_process(client)
    if proc is not None and getattr(proc, "returncode", 0) is None:
        with contextlib.suppress(ProcessLookupError, OSError):
            proc.send_signal(signal.SIGTERM)
        if not await _wait_exit(proc, grace_s):
            with contextlib.suppress(ProcessLookupError, OSError):
                proc.kill()
            if not await _wait_exit(proc, 5.0):
                logger.warning("CLI process %s survived SIGKILL for 5 s", cli_pid(client))
    await _disconnect(client, "ended")


async def close_cli(client: ClaudeSDKClient) -> None:
    """Disconnect a healthy idle client the SDK's way (stdin EOF, the CLI flushes its
    transcript and exits), bounded; never raises."""
    await _disconnect(client, "closed")


def bundled_cli_version() -> str:
    """The version of the Claude Code CLI shipped inside the installed SDK wheel."""
    from claude_agent_sdk._cli_version import __cli_version__

    return str(__cli_version__)


__all__ = [
    "bundled_cli_version",
    "cli_alive",
    "cli_pid",
    "cli_process",
    "close_cli",
    "end_cli",
    "is_connected",
]
