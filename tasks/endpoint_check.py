"""Fail fast when the model endpoint refuses connections.

The Claude Code CLI retries a refused connection on its own for about three minutes (measured:
184 s with ``ANTHROPIC_BASE_URL`` pointing at a closed port) before it reports an error, and
Prefect then retries the task. `check_endpoint` opens one TCP connection to the host and port
of ``ANTHROPIC_BASE_URL`` before a turn is handed to the CLI, so a wrong or dead endpoint fails
in milliseconds with a `TransientAgentError` of kind ``endpoint_unreachable`` that names the URL
(without credentials). Transient: an endpoint that is restarting is back on a later retry.

Checked only when ``ANTHROPIC_BASE_URL`` is set and the CLI would connect to it directly: with
an HTTP(S) proxy, Bedrock, Vertex or Foundry the CLI talks to something else. A reachable
endpoint is remembered for `OK_TTL_S` seconds, so a warm turn pays a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from prefect_claude_sessions.tasks.errors import TransientAgentError

__all__ = ["OK_TTL_S", "check_endpoint", "cli_environment", "endpoint_of", "shown_url"]

#: Seconds a successful check is trusted.
OK_TTL_S = 15.0
#: Seconds one TCP connection attempt may take.
CONNECT_TIMEOUT_S = 5.0

_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_OTHER_PROVIDERS = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")

_ok_until: dict[tuple[str, int], float] = {}
_ok_lock = threading.Lock()


def cli_environment(options_env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment the CLI will see: this process's, overlaid by the options' ``env`` (as
    the SDK builds it)."""
    return {**os.environ, **(options_env or {})}


def shown_url(url: str) -> str:
    """``url`` as it may appear in a message: scheme, host, port and path; no user, password,
    query or fragment (any of them may hold a credential)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def endpoint_of(env: Mapping[str, str]) -> tuple[str, str, int] | None:
    """``(shown URL, host, port)`` the CLI will connect to directly, or None when there is
    nothing to check (no ``ANTHROPIC_BASE_URL``, a proxy, another provider)."""
    url = (env.get("ANTHROPIC_BASE_URL") or "").strip()
    if not url:
        return None
    if any(env.get(name) for name in _PROXY_VARS):
        return None
    if any(env.get(name, "").strip().lower() in {"1", "true", "yes"} for name in _OTHER_PROVIDERS):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # the CLI reports a malformed URL itself
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return shown_url(url), parts.hostname, port


async def check_endpoint(env: Mapping[str, str]) -> None:
    """Raise `TransientAgentError` (kind ``endpoint_unreachable``) if the model endpoint in
    ``env`` (the CLI's environment, see `cli_environment`) does not accept a TCP connection."""
    target = endpoint_of(env)
    if target is None:
        return
    shown, host, port = target
    key = (host, port)
    now = time.monotonic()
    with _ok_lock:
        if _ok_until.get(key, 0.0) > now:
            return
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        problem = f"did not accept a connection within {CONNECT_TIMEOUT_S:g} s"
    except OSError as exc:  # refused, unreachable, unknown host
        problem = _describe(exc)
    else:
        writer.close()
        with _ok_lock:
            _ok_until[key] = time.monotonic() + OK_TTL_S
        return
    with _ok_lock:
        _ok_until.pop(key, None)
    raise TransientAgentError(
        f"the model endpoint {shown} (ANTHROPIC_BASE_URL) {problem}; "
        "check the URL and that the server is running",
        kind="endpoint_unreachable",
    )


def _describe(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"could not be resolved ({exc.strerror or exc})"
    if exc.errno == errno.ECONNREFUSED or isinstance(exc, ConnectionRefusedError):
        return "refused the connection (ECONNREFUSED)"
    code = errno.errorcode.get(exc.errno or 0)
    return f"could not be reached ({code or exc.strerror or type(exc).__name__})"


def forget() -> None:
    """Drop every remembered result (tests; an operator who just fixed the endpoint)."""
    with _ok_lock:
        _ok_until.clear()
