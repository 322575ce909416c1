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
  the benchmarks next to their numbers.

If the SDK changes them, the functions degrade (no pid, "not alive": the pool reconnects, which
costs a CLI start but loses nothing) rather than crash; the test is what notices.
"""

from __future__ import annotations

from typing import Any

from claude_agent_sdk import ClaudeSDKClient


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


def bundled_cli_version() -> str:
    """The version of the Claude Code CLI shipped inside the installed SDK wheel."""
    from claude_agent_sdk._cli_version import __cli_version__

    return str(__cli_version__)


__all__ = ["bundled_cli_version", "cli_alive", "cli_pid", "cli_process", "is_connected"]
