"""Error taxonomy of the agent runtime: what Prefect may retry and what it must not.

- `TransientAgentError`: the same turn may well succeed later: the model is overloaded (529),
  rate limited (429), a 5xx, the connection was lost or the stream cut, the CLI process crashed
  or exited unexpectedly, the turn timed out.
- `PermanentAgentError`: retrying sends the same failing request again: invalid request (400),
  authentication (401/403), budget exceeded, max turns reached, bad input, missing credentials.

`classify_error` maps SDK exceptions, ``ResultMessage`` error texts and HTTP statuses onto
these. Every message is scrubbed of secrets (`scrub`) before it is stored on an exception.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any

from prefect_claude_sessions.storage import secrets as storage_secrets

if TYPE_CHECKING:
    from prefect_claude_sessions.storage.settings import ClaudeSessionsSettings

__all__ = [
    "AgentError",
    "InvalidInput",
    "MissingCredentials",
    "PermanentAgentError",
    "TransientAgentError",
    "agent_settings",
    "classify_error",
    "classify_known",
    "classify_result",
    "is_transient",
    "register_secret",
    "scrub",
    "should_retry",
]

# --- secrets ---------------------------------------------------------------------------------

SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
)
_secrets_lock = threading.Lock()
_registered: set[str] = set()
_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',}]+"),
    re.compile(
        r"(?i)((?:ANTHROPIC_API_KEY|ANTHROPIC_AUTH_TOKEN|api_key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
    ),
]
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so `scrub` removes it wherever it shows up."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _registered.add(value)
    storage_secrets.register_secret(value)  # the store scrubs it from what it writes, too


def scrub(text: Any) -> str:
    """``text`` as a string with API keys, tokens and registered secrets replaced by ``***``."""
    s = str(text)
    with _secrets_lock:
        secrets = set(_registered)
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            secrets.add(value)
    secrets.update(storage_secrets.known_secrets())  # database passwords, encryption keys
    for secret in sorted(secrets, key=len, reverse=True):
        s = s.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        s = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, s)
    return s


# --- exceptions ------------------------------------------------------------------------------


class AgentError(Exception):
    """A failed agent turn. ``kind`` names the cause; ``outcome`` keeps the partial
    `TurnOutcome` when the CLI reported one; ``status`` is the HTTP status when known."""

    transient: bool = False
    default_kind = "unknown"

    def __init__(
        self,
        message: str = "",
        *,
        kind: str | None = None,
        status: int | None = None,
        session_id: str | None = None,
        outcome: Any = None,
    ) -> None:
        self.message = scrub(message)
        self.kind = kind or self.default_kind
        self.status = status
        self.session_id = session_id
        self.outcome = outcome
        super().__init__(self.message)

    def __reduce__(self) -> Any:  # picklable (Prefect persists and ships exceptions)
        return (
            _rebuild,
            (type(self), self.message, self.kind, self.status, self.session_id, self.outcome),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"


def _rebuild(
    cls: type[AgentError], message: str, kind: str, status: Any, sid: Any, outcome: Any
) -> AgentError:
    return cls(message, kind=kind, status=status, session_id=sid, outcome=outcome)


class TransientAgentError(AgentError):
    """Retry may help: overloaded, rate limited, 5xx, connection lost, stream cut, CLI crashed,
    timeout."""

    transient = True
    default_kind = "transient"


class PermanentAgentError(AgentError):
    """Retrying cannot help: invalid request, authentication, budget, max turns, bad input."""

    transient = False
    default_kind = "permanent"


class InvalidInput(PermanentAgentError):
    """The caller passed something unusable (empty prompt, unknown session, bad option)."""

    default_kind = "bad_input"


class MissingCredentials(PermanentAgentError):
    """No model credentials are configured (environment or ``ClaudeCredentials`` block)."""

    default_kind = "missing_credentials"


def agent_settings() -> ClaudeSessionsSettings:
    """`storage.settings.get_settings` for the agent runtime and the session service.

    A bad ``CLAUDE_SESSIONS_*`` variable raises `InvalidInput` here (same message, naming the
    variable and what it expects) instead of the store's `InvalidSetting`: the runtime's callers
    handle `AgentError` (the service marks the turn failed, Prefect does not retry a permanent
    error), and `run_turn` promises `InvalidInput` for unusable input before anything starts.
    """
    # imported here: this module stays importable without loading the store
    from prefect_claude_sessions.storage.errors import InvalidSetting
    from prefect_claude_sessions.storage.settings import get_settings

    try:
        return get_settings()
    except InvalidSetting as exc:
        raise InvalidInput(str(exc)) from None


# --- classification --------------------------------------------------------------------------

TRANSIENT_STATUSES = {408, 409, 429, 500, 502, 503, 504, 529}
PERMANENT_STATUSES = {400, 401, 402, 403, 404, 413, 422}
STATUS_KINDS = {
    400: "invalid_request",
    401: "authentication",
    402: "billing",
    403: "authentication",
    404: "not_found",
    408: "timeout",
    409: "conflict",
    413: "request_too_large",
    422: "invalid_request",
    429: "rate_limited",
    529: "overloaded",
}

# (regex over lower-cased text, kind, transient?) — first match wins, more specific first.
_TEXT_RULES: list[tuple[re.Pattern[str], str, bool]] = [
    (re.compile(r"overloaded|\b529\b"), "overloaded", True),
    (re.compile(r"rate.?limit|too many requests|\b429\b"), "rate_limited", True),
    (re.compile(r"budget|max_budget|spend cap|credit balance"), "budget_exceeded", False),
    (re.compile(r"max.?turns|maximum number of turns"), "max_turns", False),
    (
        re.compile(
            r"invalid api key|authentication|unauthori[sz]ed|\b401\b|\b403\b|forbidden|/login|permission_error"
        ),
        "authentication",
        False,
    ),
    (
        re.compile(r"invalid.?request|\b400\b|\b413\b|\b422\b|prompt is too long"),
        "invalid_request",
        False,
    ),
    (re.compile(r"timed? ?out|timeout|\b408\b|\b504\b"), "timeout", True),
    (
        re.compile(
            r"connection (?:error|refused|reset|lost|closed)|econnrefused|econnreset|socket hang up"
            r"|network|fetch failed|unable to connect"
        ),
        "connection_lost",
        True,
    ),
    (
        re.compile(
            r"stream (?:ended|cut|closed|interrupted)|premature|incomplete|terminated|unexpected end"
        ),
        "stream_cut",
        True,
    ),
    (
        re.compile(
            r"internal server error|api_error|\b5\d\d\b|server error|bad gateway|unavailable"
        ),
        "server_error",
        True,
    ),
]


def _status_error(status: int, message: str, **kw: Any) -> AgentError:
    kind = STATUS_KINDS.get(status, "server_error" if status >= 500 else "invalid_request")
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientAgentError(message, kind=kind, status=status, **kw)
    return PermanentAgentError(message, kind=kind, status=status, **kw)


def _from_text(
    text: str, *, status: int | None = None, default_transient: bool = False, **kw: Any
) -> AgentError:
    if status is not None and (status in TRANSIENT_STATUSES | PERMANENT_STATUSES or status >= 500):
        return _status_error(status, text, **kw)
    low = text.lower()
    for pattern, kind, transient in _TEXT_RULES:
        if pattern.search(low):
            cls = TransientAgentError if transient else PermanentAgentError
            return cls(text, kind=kind, status=status, **kw)
    if default_transient:
        return TransientAgentError(text, kind="unknown", status=status, **kw)
    return PermanentAgentError(text, kind="unknown", status=status, **kw)


def classify_error(
    exc_or_text: BaseException | str | Any,
    *,
    status: int | None = None,
    session_id: str | None = None,
    outcome: Any = None,
) -> AgentError:
    """An `AgentError` instance for an SDK exception, a ``ResultMessage`` (or its error text),
    or an HTTP status. An `AgentError` passes through unchanged.

    Unrecognised result texts are permanent (the CLI finished and said no); unrecognised
    process-level failures (the CLI died, the pipe broke) are transient.
    """
    from claude_agent_sdk import (
        CLIConnectionError,
        CLIJSONDecodeError,
        CLINotFoundError,
        ProcessError,
        ResultError,
        ResultMessage,
    )

    kw: dict[str, Any] = {"session_id": session_id, "outcome": outcome}
    obj = exc_or_text
    if isinstance(obj, AgentError):
        return obj
    if isinstance(obj, BaseException):
        stored = _storage_cause(obj)
        if stored is not None:
            return _storage_error(stored, **kw)
    if isinstance(obj, ResultMessage):
        text = obj.result or "; ".join(obj.errors or []) or obj.subtype
        kw["session_id"] = kw["session_id"] or obj.session_id
        return classify_result(
            obj.subtype, text, obj.api_error_status or status, obj.terminal_reason, kw
        )
    if isinstance(obj, ResultError):
        text = obj.result or "; ".join(obj.errors) or str(obj)
        kw["session_id"] = kw["session_id"] or obj.session_id
        return classify_result(
            obj.subtype or "", text, obj.api_error_status or status, obj.terminal_reason, kw
        )
    if isinstance(obj, CLINotFoundError):
        return PermanentAgentError(f"Claude Code CLI not found: {obj}", kind="cli_not_found", **kw)
    if isinstance(obj, ProcessError):
        return TransientAgentError(
            f"Claude Code CLI exited unexpectedly: {obj}",
            kind="process_crashed",
            status=status,
            **kw,
        )
    if isinstance(obj, CLIJSONDecodeError):
        return TransientAgentError(
            f"garbled output from the CLI: {obj}", kind="process_crashed", **kw
        )
    if isinstance(obj, CLIConnectionError):
        return TransientAgentError(
            f"lost the connection to the CLI: {obj}", kind="connection_lost", **kw
        )
    if isinstance(obj, TimeoutError):
        return TransientAgentError(str(obj) or "the turn timed out", kind="timeout", **kw)
    if isinstance(obj, (ConnectionError, BrokenPipeError, EOFError)):
        return TransientAgentError(str(obj) or type(obj).__name__, kind="connection_lost", **kw)
    if isinstance(obj, (ValueError, TypeError)) and _raised_by_sdk(obj):
        return InvalidInput(str(obj), **kw)  # the SDK refused the options it was given
    if isinstance(obj, BaseException):
        return _from_text(
            f"{type(obj).__name__}: {obj}", status=status, default_transient=True, **kw
        )
    if isinstance(obj, int):
        return _status_error(obj, f"HTTP {obj}", **kw)
    return _from_text(str(obj), status=status, **kw)


def classify_known(exc: BaseException) -> AgentError | None:
    """The `AgentError` for what the SDK, the CLI or the store raised; None for anything else.

    A ``ValueError``/``TypeError``/``KeyError`` raised by this project's own code is a bug, not
    bad input: callers re-raise it as it is, so it is neither retried nor reported as the
    user's mistake.
    """
    from claude_agent_sdk import ClaudeSDKError

    if isinstance(exc, AgentError):
        return exc
    if _storage_cause(exc) is not None:
        return classify_error(exc)
    if isinstance(exc, ClaudeSDKError) or _raised_by_sdk(exc):
        return classify_error(exc)
    if isinstance(exc, (TimeoutError, ConnectionError, EOFError, OSError)):
        return classify_error(exc)
    return None


def _raised_by_sdk(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc``'s traceback is in the SDK's package."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "claude_agent_sdk" in tb.tb_frame.f_code.co_filename.replace("\\", "/")


def _storage_cause(exc: BaseException) -> BaseException | None:
    """The store's own error in ``exc``'s cause chain (the SDK wraps SessionStore failures in
    ``RuntimeError``), or None."""
    from prefect_claude_sessions.storage import StorageError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StorageError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _storage_error(exc: BaseException, **kw: Any) -> AgentError:
    """A store failure as an agent error: a database that is down or a busy session may
    recover; a missing session, bad id, damaged entry or missing key will not."""
    from prefect_claude_sessions.storage import (
        DatabaseUnavailable,
        InvalidSetting,
        SessionBusy,
        StorageError,
    )

    if isinstance(exc, InvalidSetting):  # a bad CLAUDE_SESSIONS_* variable: fix it, not retry
        return InvalidInput(str(exc), **kw)
    if isinstance(exc, DatabaseUnavailable):
        return TransientAgentError(str(exc), kind="database_unavailable", **kw)
    if isinstance(exc, SessionBusy):
        return TransientAgentError(str(exc), kind="busy", **kw)
    if type(exc) is StorageError:  # a driver error (e.g. locked past the timeout)
        return TransientAgentError(str(exc), kind="storage", **kw)
    return PermanentAgentError(str(exc), kind="storage", **kw)


def classify_result(
    subtype: str, text: str, status: int | None, terminal_reason: str | None, kw: dict[str, Any]
) -> AgentError:
    """Classify an error result by its subtype, text and HTTP status; ``kw`` goes to the error."""
    if subtype == "error_max_turns" or terminal_reason == "max_turns":
        return PermanentAgentError(
            text or "maximum number of turns reached", kind="max_turns", **kw
        )
    if subtype == "error_max_budget_usd" or "budget" in (terminal_reason or ""):
        return PermanentAgentError(text or "budget exceeded", kind="budget_exceeded", **kw)
    if subtype == "error_max_structured_output_retries":
        return PermanentAgentError(text, kind="structured_output", **kw)
    return _from_text(text or subtype, status=status, **kw)


# --- retry predicates ------------------------------------------------------------------------


def should_retry(exc: BaseException | None) -> bool:
    """True if ``exc`` is (or classifies as) a transient agent error."""
    if exc is None:
        return False
    if isinstance(exc, AgentError):
        return exc.transient
    if not isinstance(exc, Exception):  # KeyboardInterrupt, CancelledError, ...
        return False
    known = classify_known(exc)
    return known is not None and known.transient  # a bug in our code is never retried


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect ``retry_condition_fn``: retry only transient agent errors.

    ``@task(retries=3, retry_condition_fn=is_transient)``
    """
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return should_retry(data)
    try:
        state.result(raise_on_failure=True)
    except Exception as exc:
        return should_retry(exc)
    return False
