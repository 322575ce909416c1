"""Model credentials for the Claude Code CLI: from the environment or a ``ClaudeCredentials``
Prefect block. Keys never appear in logs, reprs or error messages.

This module is the ``prefect.collections`` entry point of the distribution, so Prefect
registers the block type (``prefect block register -m prefect_claude_sessions.tasks.credentials``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import cast

from prefect.blocks.core import Block
from prefect_claude_sessions.tasks.auth_env import (
    BLOCK_ENV_VAR,
    PASSTHROUGH_AUTH,
    SECRET_KEYS,
    credentials_present,
)
from prefect_claude_sessions.tasks.errors import REDACTED, MissingCredentials, register_secret
from pydantic import Field, HttpUrl, SecretStr

__all__ = [
    "BLOCK_ENV_VAR",
    "ClaudeCredentials",
    "MissingCredentials",
    "SecretEnv",
    "credentials_present",
    "resolve_credentials",
]


class SecretEnv(dict):
    """A ``dict`` of environment variables whose repr/str hide secret values, so an options
    object holding it (``ClaudeAgentOptions(env=...)``) can be printed or logged safely."""

    def __repr__(self) -> str:
        shown = {k: (REDACTED if k in SECRET_KEYS else v) for k, v in self.items()}
        return f"SecretEnv({shown!r})"

    __str__ = __repr__

    def copy(self) -> SecretEnv:
        return SecretEnv(self)


class ClaudeCredentials(Block):
    """Credentials for the Anthropic API used by the Claude Code CLI.

    Example:
        ```python
        from prefect_claude_sessions.tasks.credentials import ClaudeCredentials
        ClaudeCredentials(api_key="sk-ant-...").save("claude")
        creds = ClaudeCredentials.load("claude")
        ```
    """

    _block_type_name = "Claude Credentials"
    _block_type_slug = "claude-credentials"
    _logo_url = HttpUrl("https://www.anthropic.com/images/icons/apple-touch-icon.png")
    _documentation_url = HttpUrl("https://docs.anthropic.com/en/docs/claude-code/sdk/sdk-overview")
    _description = "API key (and optional base URL) for the Claude Agent SDK / Claude Code CLI."

    api_key: SecretStr = Field(
        default=..., description="Anthropic API key, passed to the CLI as ANTHROPIC_API_KEY."
    )
    base_url: str | None = Field(
        default=None,
        description="Messages API endpoint (ANTHROPIC_BASE_URL), e.g. a gateway. Empty: Anthropic.",
    )

    def env(self) -> SecretEnv:
        """Environment variables for the CLI."""
        key = self.api_key.get_secret_value()
        if not key.strip():
            raise MissingCredentials(
                "the Claude Credentials block has an empty api_key; set ANTHROPIC_API_KEY or "
                "save the block with a key"
            )
        register_secret(key)
        env = SecretEnv(ANTHROPIC_API_KEY=key)
        if self.base_url:
            env["ANTHROPIC_BASE_URL"] = self.base_url
        return env


def _load_block(name: str) -> ClaudeCredentials:
    try:
        # _sync=True: the synchronous load even inside an event loop (async_dispatch accepts it
        # at run time, its typed signature does not show it)
        load_sync = cast("Callable[..., ClaudeCredentials]", ClaudeCredentials.load)
        block = load_sync(name, _sync=True)
    except ValueError as exc:
        raise MissingCredentials(
            f"no Claude Credentials block named {name!r} could be loaded "
            f"({type(exc).__name__}); create it with ClaudeCredentials(api_key=...).save({name!r}) "
            "or set ANTHROPIC_API_KEY"
        ) from None
    return block


def resolve_credentials(
    block_name: str | None = None, *, environ: Mapping[str, str] | None = None
) -> SecretEnv:
    """Environment variables that let the CLI reach the model.

    Order: the named ``ClaudeCredentials`` block; else ``ANTHROPIC_API_KEY`` /
    ``ANTHROPIC_AUTH_TOKEN`` (with ``ANTHROPIC_BASE_URL``) from the environment; else the block
    named in ``CLAUDE_SESSIONS_CREDENTIALS_BLOCK``; else another CLI auth method that is set
    (``CLAUDE_CODE_OAUTH_TOKEN``, ``CLAUDE_CODE_USE_BEDROCK``/``_VERTEX``/``_FOUNDRY``).
    Raises `MissingCredentials` when none is configured. Never falls back to a stand-in model.

    ``environ`` replaces this process's environment (the ``ANTHROPIC_*``/``CLAUDE_CODE_*``
    variables are read from it as they are, our own through `ClaudeSessionsSettings`).
    """
    # imported here: Prefect imports this module (the collection entry point) in every process
    from prefect_claude_sessions.storage.settings import ClaudeSessionsSettings, get_settings

    env_in = os.environ if environ is None else environ
    if block_name:
        return _load_block(block_name).env()
    out = SecretEnv()
    for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        value = env_in.get(key, "")
        if value.strip():
            register_secret(value)
            out[key] = value
    if out:
        if env_in.get("ANTHROPIC_BASE_URL"):
            out["ANTHROPIC_BASE_URL"] = env_in["ANTHROPIC_BASE_URL"]
        return out
    settings = get_settings() if environ is None else ClaudeSessionsSettings.from_environ(environ)
    if settings.credentials_block:
        return _load_block(settings.credentials_block).env()
    for key in PASSTHROUGH_AUTH:
        if env_in.get(key):
            if key in SECRET_KEYS:
                register_secret(env_in[key])
            out[key] = env_in[key]
    if out:
        return out
    raise MissingCredentials(
        "no Claude credentials configured: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a "
        "gateway) or ANTHROPIC_AUTH_TOKEN in the worker's environment, or save a "
        "'Claude Credentials' Prefect block and pass its name (or set "
        f"{BLOCK_ENV_VAR}=<block name>)"
    )
