"""Fixtures for the runtime tests: one stand-in model per test session, a private CLI config
directory and working directory per test, and a pool that is closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeAgentOptions
from prefect_claude_sessions.tasks.client_pool import ClientPool
from prefect_claude_sessions.tasks.profile import AgentProfile
from prefect_claude_sessions.tasks.standin import StandinModel


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinModel]:
    log = tmp_path_factory.mktemp("standin") / "requests.jsonl"
    with StandinModel(log_path=log) as model:
        yield model


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "standin" in request.fixturenames:
        request.getfixturevalue("standin").clear_faults()


@pytest.fixture
def cli_env(standin: StandinModel, tmp_path: Path) -> dict[str, str]:
    """Env for the CLI: the stand-in, a private config dir, one quick retry at most."""
    config = tmp_path / "claude-config"
    config.mkdir()
    return {
        **standin.env(),
        "CLAUDE_CONFIG_DIR": str(config),
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def make_options(cli_env: dict[str, str], workdir: Path) -> Callable[..., ClaudeAgentOptions]:
    def make(
        system_prompt: str = "You are a helpful test agent.", **overrides: Any
    ) -> ClaudeAgentOptions:
        profile = AgentProfile(name="tester", system_prompt=system_prompt, cwd=str(workdir))
        env = {**cli_env, **overrides.pop("env", {})}
        return profile.to_options(env=env, **overrides)

    return make


@pytest.fixture
def pool() -> Iterator[ClientPool]:
    p = ClientPool(max_size=4, idle_timeout_s=300, name="test-pool")
    yield p
    p.close()
