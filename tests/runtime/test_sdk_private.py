"""The SDK's private parts the plugin reads (tasks/sdk_private.py) are still where it looks.

Against a real ``ClaudeSDKClient`` connected to the bundled CLI and the stand-in model: if an SDK
release renames ``_transport``, ``_process`` or ``_query``, these fail (the wrapper itself would
quietly report "no pid / not alive" and the pool would just reconnect every turn).
"""

from __future__ import annotations

import inspect
import os
import re

import claude_agent_sdk
import pytest
from claude_agent_sdk import ClaudeSDKClient, ResultMessage
from prefect_claude_sessions.tasks import sdk_private

pytestmark = pytest.mark.cli


async def test_a_connected_client_exposes_its_cli_process(make_options) -> None:
    client = ClaudeSDKClient(make_options())
    assert not sdk_private.is_connected(client) and sdk_private.cli_pid(client) is None
    await client.connect()
    try:
        transport = client._transport
        assert transport is not None and hasattr(transport, "_process"), "SDK moved _process"
        proc = sdk_private.cli_process(client)
        assert proc is transport._process and proc.returncode is None
        pid = sdk_private.cli_pid(client)
        assert isinstance(pid, int) and pid > 0
        os.kill(pid, 0)  # a real, running process
        assert sdk_private.is_connected(client) and sdk_private.cli_alive(client)

        await client.query("hello")
        results = [m async for m in client.receive_response() if isinstance(m, ResultMessage)]
        assert len(results) == 1 and not results[0].is_error
        assert sdk_private.cli_pid(client) == pid  # same CLI for the next turn
    finally:
        await client.disconnect()
    assert not sdk_private.is_connected(client)
    assert not sdk_private.cli_alive(client) and sdk_private.cli_pid(client) is None


async def test_a_dead_cli_is_reported_not_alive(make_options) -> None:
    client = ClaudeSDKClient(make_options())
    await client.connect()
    try:
        proc = sdk_private.cli_process(client)
        proc.kill()
        await proc.wait()
        assert sdk_private.is_connected(client)  # the client has not noticed yet...
        assert not sdk_private.cli_alive(client)  # ...but the wrapper has
    finally:
        await client.disconnect()


def test_the_bundled_cli_version_is_readable() -> None:
    version = sdk_private.bundled_cli_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version), version


def test_the_public_names_used_instead_of_private_ones_exist() -> None:
    for name in ("fold_session_summary", "ResultError", "project_key_for_directory"):
        assert name in claude_agent_sdk.__all__, name
    params = list(inspect.signature(claude_agent_sdk.fold_session_summary).parameters)
    assert params[:3] == ["prev", "key", "entries"], params
    assert issubclass(claude_agent_sdk.ResultError, claude_agent_sdk.ClaudeSDKError)


async def test_end_cli_stops_a_cli_mid_turn_at_once(standin, make_options) -> None:
    """The SDK's disconnect waits up to 5 s for a busy CLI; end_cli signals it and returns as
    soon as it has exited, leaving the client disconnected."""
    import asyncio
    import time

    client = ClaudeSDKClient(make_options())
    await client.connect()
    pid = sdk_private.cli_pid(client)
    standin.inject(latency_s=10.0)
    seen = len(standin.requests(kind="main"))
    await client.query("take your time")
    for _ in range(200):  # until the CLI is waiting on the model
        if len(standin.requests(kind="main")) > seen:
            break
        await asyncio.sleep(0.05)
    started = time.monotonic()
    await sdk_private.end_cli(client)
    assert time.monotonic() - started < 2.0
    assert not sdk_private.is_connected(client)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await sdk_private.end_cli(ClaudeSDKClient(make_options()))  # never connected: a no-op
