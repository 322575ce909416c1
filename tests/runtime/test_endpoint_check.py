"""A model endpoint that refuses connections fails in seconds, naming the URL (not after the
CLI's own ~3 minutes of retries, times Prefect's retries)."""

from __future__ import annotations

import socket
import time

import pytest
from prefect import flow
from prefect_claude_sessions.tasks import AgentProfile, endpoint_check, init_session
from prefect_claude_sessions.tasks.endpoint_check import endpoint_of, shown_url
from prefect_claude_sessions.tasks.errors import TransientAgentError
from prefect_claude_sessions.tasks.runtime import run_turn, run_turn_sync

from tests.conftest import enter_worker_world

from .cli_processes import cli_children, no_cli_children_left


@pytest.fixture(autouse=True)
def _count_from_zero() -> None:
    """Earlier tests' warm CLIs (the default pool keeps them) would be counted as ours."""
    no_cli_children_left()


pytestmark = pytest.mark.cli


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint_check.forget()
    return port


def test_shown_url_keeps_no_credentials() -> None:
    url = "https://user:hunter2@gw.example:8443/v1?api_key=sk-secret#frag"
    assert shown_url(url) == "https://gw.example:8443/v1"
    assert endpoint_of({"ANTHROPIC_BASE_URL": url}) == (
        "https://gw.example:8443/v1",
        "gw.example",
        8443,
    )
    assert endpoint_of({"ANTHROPIC_BASE_URL": "http://h"})[1:] == ("h", 80)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"ANTHROPIC_BASE_URL": "http://h:1", "HTTPS_PROXY": "http://proxy:3128"},
        {"ANTHROPIC_BASE_URL": "http://h:1", "CLAUDE_CODE_USE_BEDROCK": "1"},
        {"ANTHROPIC_BASE_URL": "unix:/tmp/socket"},
    ],
    ids=["no-base-url", "proxy", "bedrock", "not-http"],
)
def test_nothing_is_checked_when_the_cli_would_not_connect_directly(env) -> None:
    assert endpoint_of(env) is None


async def test_a_refused_endpoint_fails_at_once_naming_the_url(
    make_options, pool, closed_port
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    for via_pool in (pool, None):
        started = time.monotonic()
        with pytest.raises(TransientAgentError) as info:
            await run_turn(
                "hello?",
                make_options(env={"ANTHROPIC_BASE_URL": url + "/?key=hunter2"}),
                pool=via_pool,
            )
        assert time.monotonic() - started < 5
        error = info.value
        assert error.kind == "endpoint_unreachable" and error.transient
        assert f"{url}/ (ANTHROPIC_BASE_URL) refused the connection" in str(error)
        assert "hunter2" not in str(error)
    # no CLI was started for it
    assert pool.stats()["starts"] == 0 and cli_children() == set()


def test_a_reachable_endpoint_is_checked_once_then_remembered(standin, make_options, pool) -> None:
    endpoint_check.forget()
    first = run_turn_sync("one", make_options(), pool=pool)
    host_port = ("127.0.0.1", standin.port)
    assert endpoint_check._ok_until[host_port] > time.monotonic()
    second = run_turn_sync("two", make_options(resume=first.session_id), pool=pool)
    assert second.warm


def test_a_flow_against_a_refused_endpoint_fails_within_a_minute(
    tmp_path, standin, sqlite_url, monkeypatch, prefect_harness, closed_port
) -> None:
    """The user's view: Prefect's three retries included, the flow fails in seconds with the
    URL in its error; once the endpoint is right, the model receives the prompt once."""
    enter_worker_world(tmp_path, standin, sqlite_url, monkeypatch)
    url = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    agent = AgentProfile(name="echo", system_prompt="You are a careful assistant.")

    @flow
    def triage() -> str:
        return init_session("Customer: the database is down!", agent=agent).text

    started = time.monotonic()
    with pytest.raises(TransientAgentError) as info:
        triage()
    elapsed = time.monotonic() - started
    print(f"refused endpoint: the flow failed after {elapsed:.1f} s")
    assert elapsed < 60, elapsed
    assert info.value.kind == "endpoint_unreachable" and url in str(info.value)
    assert standin.requests(kind="main") == []

    monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.base_url)
    assert triage().startswith("echo: Customer: the database is down!")
    sent = [r["user_turns"] for r in standin.requests(kind="main")]
    assert sent == [["Customer: the database is down!"]]
