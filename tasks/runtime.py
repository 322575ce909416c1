"""One agent turn over the Claude Agent SDK: `run_turn` sends one prompt and returns a typed
`TurnOutcome`, or raises a classified `AgentError`.

Without a pool each turn starts its own CLI process (connect, one turn, disconnect). With a
`ClientPool` consecutive turns on a session reuse a live CLI (see `tasks.client_pool`).

Either way a turn has one deadline (``CLAUDE_SESSIONS_TURN_TIMEOUT_S``) covering the CLI start
and the turn, and a turn that fails, times out or is cancelled ends its CLI process at once
(`sdk_private.end_cli`) instead of waiting on the SDK's graceful close. Before a CLI is handed
a turn, the model endpoint is probed (`tasks.endpoint_check`), so a refused
``ANTHROPIC_BASE_URL`` fails in milliseconds rather than after the CLI's own retries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    MirrorErrorMessage,
    ResultMessage,
    SystemMessage,
    TextBlock,
    UserMessage,
)
from prefect_claude_sessions.tasks.auth_env import credentials_present
from prefect_claude_sessions.tasks.errors import (
    AgentError,
    InvalidInput,
    MissingCredentials,
    PermanentAgentError,
    TransientAgentError,
    agent_settings,
    classify_known,
    classify_result,
    scrub,
)
from pydantic import BaseModel, Field


class TurnPool(Protocol):
    """What `run_turn` needs of a pool of live CLIs (`tasks.client_pool.ClientPool` is one).

    A structural type, so this module does not import the pool, which is built on it."""

    async def run(
        self,
        message: dict[str, Any],
        options: ClaudeAgentOptions,
        *,
        timeout_s: float | None = None,
        head_uuid: str | None = None,
    ) -> TurnOutcome: ...

    def run_sync(
        self,
        message: dict[str, Any],
        options: ClaudeAgentOptions,
        *,
        timeout_s: float | None = None,
        head_uuid: str | None = None,
    ) -> TurnOutcome: ...


__all__ = [
    "TurnOutcome",
    "continue_deferred_sync",
    "drive_turn",
    "run_turn",
    "run_turn_sync",
    "user_message",
]


class TurnOutcome(BaseModel):
    """What one turn produced. JSON-serialisable."""

    session_id: str
    text: str = ""
    cost_usd: float = 0.0
    usage: dict[str, Any] = Field(default_factory=dict)
    duration_ms: int = 0
    num_turns: int = 0
    is_error: bool = False
    error: str | None = None
    assistant_uuid: str | None = None  # last top-level assistant transcript entry of this turn
    user_message_uuid: str | None = None  # transcript uuid of this turn's prompt
    # additions beyond CONTRACTS.md's minimum
    model: str | None = None
    stop_reason: str | None = None
    subtype: str | None = None  # the ResultMessage subtype ("success", "error_max_turns", ...)
    api_error_status: int | None = None
    warm: bool = False  # True if a live pooled CLI served the turn (no process start)
    # A PreToolUse hook deferred this tool call (``id``, ``name``, ``input``): the turn stopped
    # before the tool ran (see `tasks.tool_approval`).
    pending_tool: dict[str, Any] | None = None


def user_message(prompt: str, prompt_uuid: str) -> dict[str, Any]:
    """The stream-json user message for ``prompt``; its ``uuid`` becomes the transcript uuid
    (and ``ResultMessage.user_message_uuid``)."""
    return {
        "type": "user",
        "message": {"role": "user", "content": prompt},
        "parent_tool_use_id": None,
        "session_id": "default",
        "uuid": prompt_uuid,
    }


async def _one(message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield message


def first_message_timeout_s() -> float:
    """How long the CLI may take to acknowledge a prompt (``CLAUDE_SESSIONS_FIRST_MESSAGE_TIMEOUT_S``,
    default 60 s). The CLI answers every prompt it accepts with a ``system/init`` message
    before it calls the model, so this bounds a silently dropped prompt, not the model."""
    return agent_settings().first_message_timeout_s


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    if first is None:
        return
    yield first
    async for item in rest:
        yield item


async def drive_turn(
    client: ClaudeSDKClient, message: dict[str, Any] | None, *, cost_baseline: float = 0.0
) -> tuple[TurnOutcome, float]:
    """Send ``message`` on a connected client and read until its result.

    ``message`` None sends nothing: a client resumed on a session that stopped on a deferred
    tool call continues that call by itself (the CLI re-runs the PreToolUse hook at once).

    Returns the outcome and the CLI's cumulative cost after the turn (the CLI reports
    ``total_cost_usd`` per process, so a warm client's per-turn cost is the difference).
    Raises a classified `AgentError` if the CLI fails before a result arrives.
    """
    started = time.monotonic()
    init_session: str | None = None
    replayed_uuid: str | None = None
    last_uuid: str | None = None
    last_texts: list[str] = []
    model: str | None = None
    result: ResultMessage | None = None
    mirror_errors: list[str] = []
    first_wait = first_message_timeout_s()
    try:
        message = message or {}
        if message:
            await client.query(_one(message))
        stream = client.receive_response().__aiter__()
        try:
            first = await asyncio.wait_for(stream.__anext__(), first_wait)
        except asyncio.TimeoutError:
            raise PermanentAgentError(
                f"the CLI did not start a turn for prompt {message.get('uuid')} within "
                f"{first_wait:g} s; it silently drops a prompt whose uuid the session already "
                "holds, so send a new prompt_uuid",
                kind="prompt_ignored",
            ) from None
        except StopAsyncIteration:
            first = None
        messages = _chain(first, stream)
        async for msg in messages:
            if isinstance(msg, MirrorErrorMessage):
                mirror_errors.append(msg.error or "append failed")
            elif isinstance(msg, SystemMessage) and msg.subtype == "init":
                init_session = msg.data.get("session_id") or init_session
            elif isinstance(msg, UserMessage):
                if msg.uuid and msg.uuid == message.get("uuid"):
                    replayed_uuid = msg.uuid
            elif isinstance(msg, AssistantMessage) and msg.parent_tool_use_id is None:
                last_uuid = msg.uuid or last_uuid
                model = msg.model or model
                texts = [b.text for b in msg.content if isinstance(b, TextBlock)]
                if texts:
                    last_texts = texts
            elif isinstance(msg, ResultMessage):
                result = msg
    except AgentError:
        raise
    except Exception as exc:
        known = classify_known(exc)
        if known is None:
            raise  # a bug in our code: neither retried nor blamed on the input
        if known.session_id is None:
            known.session_id = init_session
        raise known from None
    if result is None:
        raise TransientAgentError(
            "the Claude Code CLI ended the turn without a result (process exited or connection lost)",
            kind="connection_lost",
            session_id=init_session,
        )
    cumulative = float(result.total_cost_usd or 0.0)
    text = result.result if isinstance(result.result, str) else "\n".join(last_texts)
    outcome = TurnOutcome(
        session_id=result.session_id or init_session or "",
        text=text or "",
        cost_usd=max(0.0, cumulative - cost_baseline),
        usage=dict(result.usage or {}),
        duration_ms=int(result.duration_ms or (time.monotonic() - started) * 1000),
        num_turns=int(result.num_turns or 0),
        is_error=bool(result.is_error),
        error=scrub(text or "; ".join(result.errors or []) or result.subtype)
        if result.is_error
        else None,
        assistant_uuid=last_uuid,
        user_message_uuid=result.user_message_uuid or replayed_uuid,
        model=model,
        stop_reason=result.stop_reason,
        subtype=result.subtype,
        api_error_status=result.api_error_status,
        pending_tool=_deferred(result),
    )
    if mirror_errors and not outcome.is_error:
        # The answer exists only in this worker's local transcript: recording the turn now would
        # leave a completed turn whose conversation the store (and every other worker) lacks.
        raise TransientAgentError(
            "the session store did not take this turn's transcript "
            f"({len(mirror_errors)} failed append(s)): {mirror_errors[-1]}",
            kind="store_unavailable",
            session_id=outcome.session_id,
            outcome=outcome,
        )
    return outcome, cumulative


def _deferred(result: ResultMessage) -> dict[str, Any] | None:
    call = result.deferred_tool_use
    if call is None:
        return None
    return {"id": call.id, "name": call.name, "input": dict(call.input or {})}


def error_for(outcome: TurnOutcome) -> AgentError:
    """The classified error of an error outcome, carrying the outcome."""
    return classify_result(
        outcome.subtype or "",
        outcome.error or "",
        outcome.api_error_status,
        None,
        {"session_id": outcome.session_id, "outcome": outcome},
    )


def _timeout(timeout_s: float | None) -> float | None:
    if timeout_s is not None:
        return timeout_s if timeout_s > 0 else None
    value = agent_settings().turn_timeout_s
    return value if value > 0 else None


def prepare_turn(
    prompt: str, options: ClaudeAgentOptions, prompt_uuid: str | None
) -> dict[str, Any]:
    """Validate the inputs of a turn; the user message to send."""
    if not isinstance(prompt, str):
        raise InvalidInput(f"prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidInput("prompt must not be empty")
    if not isinstance(options, ClaudeAgentOptions):
        raise InvalidInput(f"options must be ClaudeAgentOptions, got {type(options).__name__}")
    if prompt_uuid is None:
        prompt_uuid = str(uuid.uuid4())
    else:
        try:
            prompt_uuid = str(uuid.UUID(str(prompt_uuid)))
        except ValueError:
            raise InvalidInput(f"prompt_uuid must be a UUID, got {prompt_uuid!r}") from None
    if not credentials_present(options.env):
        raise MissingCredentials(
            "no Claude credentials in the options' env or the environment: pass "
            "env=resolve_credentials() (ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, "
            "ANTHROPIC_AUTH_TOKEN or a 'Claude Credentials' block)"
        )
    return user_message(prompt, prompt_uuid)


def as_agent_error(exc: Exception) -> AgentError:
    """``exc`` as the `AgentError` it stands for; re-raises ``exc`` itself when it is a bug in
    our code (`errors.classify_known` knows it not), so it is neither retried nor classified."""
    known = classify_known(exc)
    if known is None:
        raise exc
    return known


def timeout_error(timeout_s: float | None, stage: str) -> TransientAgentError:
    """The error of a turn that ran out of its deadline while ``stage`` ("connect", "turn")."""
    return TransientAgentError(
        f"the turn did not finish within {timeout_s:g} s (CLI start and turn together; "
        f"timed out during the {stage}; CLAUDE_SESSIONS_TURN_TIMEOUT_S)",
        kind="timeout",
    )


async def run_cold(
    message: dict[str, Any] | None, options: ClaudeAgentOptions, timeout_s: float | None
) -> TurnOutcome:
    """One turn on a CLI process of its own: connect, send, read, disconnect.

    ``timeout_s`` bounds connect and turn together; on timeout, failure or cancellation the CLI
    is ended at once. A CLI that finished its turn is closed gracefully (it flushes its
    transcript on stdin EOF).
    """
    from prefect_claude_sessions.tasks.endpoint_check import check_endpoint, cli_environment
    from prefect_claude_sessions.tasks.sdk_private import close_cli, end_cli

    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    client = ClaudeSDKClient(options)
    stage = "endpoint check"
    finished = False
    try:
        async with asyncio.timeout_at(deadline):
            await check_endpoint(cli_environment(options.env))
            stage = "connect"
            await client.connect()
            stage = "turn"
            outcome, _ = await drive_turn(client, message)
            finished = True
    except TimeoutError:
        if deadline is None or loop.time() < deadline:
            raise as_agent_error(TimeoutError("timed out")) from None  # not our deadline
        raise timeout_error(timeout_s, stage) from None
    except AgentError:
        raise
    except Exception as exc:
        raise as_agent_error(exc) from None
    finally:
        # shielded: a caller cancelling us must not leave the CLI running
        await asyncio.shield(close_cli(client) if finished else end_cli(client))
    return outcome


async def run_turn(
    prompt: str,
    options: ClaudeAgentOptions,
    *,
    pool: TurnPool | None = None,
    timeout_s: float | None = None,
    prompt_uuid: str | None = None,
    head_uuid: str | None = None,
) -> TurnOutcome:
    """Run one turn and return its outcome.

    - ``pool``: a `ClientPool` to reuse a live CLI for consecutive turns on a session (the pool
      runs the turn on its own event loop, so any caller loop is fine); None: a CLI of its own.
    - ``timeout_s``: upper bound of the turn (default ``CLAUDE_SESSIONS_TURN_TIMEOUT_S`` or
      1800 s; 0 = none); exceeding it raises `TransientAgentError` (kind ``timeout``).
    - ``prompt_uuid``: transcript uuid of the prompt (default: a new uuid4). Use a new one for
      every prompt: the CLI ignores a message whose uuid it has seen.
    - ``head_uuid``: the session's latest assistant uuid as the caller knows it; a pooled client
      whose conversation ends elsewhere is stale (another worker moved on) and is replaced.

    Raises `InvalidInput` (also for a bad ``CLAUDE_SESSIONS_*`` variable)/`MissingCredentials`
    before starting anything, a `TransientAgentError`
    or `PermanentAgentError` when the turn fails; an error result's partial outcome is on the
    exception's ``.outcome``.
    """
    message = prepare_turn(prompt, options, prompt_uuid)
    limit = _timeout(timeout_s)
    if pool is not None:
        outcome = await pool.run(message, options, timeout_s=limit, head_uuid=head_uuid)
    else:
        outcome = await run_cold(message, options, limit)
    if outcome.is_error:
        raise error_for(outcome)
    return outcome


def run_turn_sync(
    prompt: str,
    options: ClaudeAgentOptions,
    *,
    pool: TurnPool | None = None,
    timeout_s: float | None = None,
    prompt_uuid: str | None = None,
    head_uuid: str | None = None,
) -> TurnOutcome:
    """`run_turn` for synchronous code (Prefect sync tasks), safe in any thread.

    With a pool the turn runs on the pool's loop thread. Without one it runs in a fresh event
    loop (in a helper thread if this thread already runs a loop).
    """
    message = prepare_turn(prompt, options, prompt_uuid)
    limit = _timeout(timeout_s)
    if pool is not None:
        outcome = pool.run_sync(message, options, timeout_s=limit, head_uuid=head_uuid)
    else:
        outcome = _run_in_fresh_loop(run_cold(message, options, limit))
    if outcome.is_error:
        raise error_for(outcome)
    return outcome


def continue_deferred_sync(
    options: ClaudeAgentOptions, *, timeout_s: float | None = None
) -> TurnOutcome:
    """Continue a session that stopped on a deferred tool call, without a new prompt.

    ``options`` resume the session and carry the PreToolUse hook that decides the call. On
    connect the CLI re-runs that hook for the deferred call, then (allowed) runs the tool or
    (denied) hands the model the reason, and answers once: one result for one recorded turn.
    Sending a prompt as well would make the CLI answer twice (a synthetic "Continue from where
    you left off." first). Always a CLI of its own: the review's hook is not a pooled client's.
    """
    if not isinstance(options, ClaudeAgentOptions) or not options.resume:
        raise InvalidInput("continuing a deferred tool call needs options that resume a session")
    if not credentials_present(options.env):
        raise MissingCredentials(
            "no Claude credentials in the options' env or the environment: pass "
            "env=resolve_credentials()"
        )
    outcome = _run_in_fresh_loop(run_cold(None, options, _timeout(timeout_s)))
    if outcome.is_error:
        raise error_for(outcome)
    return outcome


def _run_in_fresh_loop(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="claude-turn") as ex:
        return ex.submit(asyncio.run, coro).result()
