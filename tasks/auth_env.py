"""Which environment variables authenticate the Claude Code CLI (no Prefect import, so the
runtime and the service can check for credentials without loading Prefect)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: Environment variables whose values are secrets.
SECRET_KEYS = frozenset(
    {
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
    }
)
#: Names a block can be given in the environment instead of in code.
BLOCK_ENV_VAR = "CLAUDE_SESSIONS_CREDENTIALS_BLOCK"
#: Other ways the CLI can authenticate, passed through untouched when set.
PASSTHROUGH_AUTH = (
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)


def credentials_present(env: Mapping[str, Any] | None) -> bool:
    """True if ``env`` (merged over ``os.environ``) gives the CLI a way to authenticate."""
    merged = {**os.environ, **(env or {})}
    return any(
        str(merged.get(k) or "").strip()
        for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", *PASSTHROUGH_AUTH)
    )
