"""The error taxonomy: classification, retry predicates, pickling, scrubbing."""

from __future__ import annotations

import pickle

import pytest
from claude_agent_sdk import (
    CLIConnectionError,
    CLINotFoundError,
    ProcessError,
    ResultError,
    ResultMessage,
    rename_session,
)
from prefect.states import Completed, Failed
from prefect_claude_sessions.tasks.errors import (
    AgentError,
    InvalidInput,
    MissingCredentials,
    PermanentAgentError,
    TransientAgentError,
    classify_error,
    classify_known,
    is_transient,
    register_secret,
    scrub,
    should_retry,
)
from prefect_claude_sessions.tasks.runtime import TurnOutcome


@pytest.mark.parametrize(
    ("text", "cls", "kind"),
    [
        (
            "API Error: 529 Overloaded. This is a server-side issue",
            TransientAgentError,
            "overloaded",
        ),
        ("API Error: Request rejected (429) · rate limit", TransientAgentError, "rate_limited"),
        ("API Error: 500 Internal server error.", TransientAgentError, "server_error"),
        ("API Error: 503 Service Unavailable", TransientAgentError, "server_error"),
        (
            "API Error: Connection to the API was lost (ECONNRESET).",
            TransientAgentError,
            "connection_lost",
        ),
        ("Request timed out", TransientAgentError, "timeout"),
        ("API Error: 400 messages: field required", PermanentAgentError, "invalid_request"),
        ("Invalid API key · Fix external API key", PermanentAgentError, "authentication"),
        ("Failed to authenticate. API Error: 403 forbidden", PermanentAgentError, "authentication"),
        ("Reached maximum budget ($0.01)", PermanentAgentError, "budget_exceeded"),
        ("Reached maximum number of turns (1)", PermanentAgentError, "max_turns"),
        ("something nobody has seen before", PermanentAgentError, "unknown"),
    ],
)
def test_result_texts(text, cls, kind) -> None:
    err = classify_error(text)
    assert type(err) is cls and err.kind == kind and err.message == text


@pytest.mark.parametrize(
    ("status", "transient"),
    [(529, True), (429, True), (500, True), (502, True), (400, False), (401, False), (403, False)],
)
def test_statuses_win_over_text(status, transient) -> None:
    assert classify_error("whatever", status=status).transient is transient
    assert classify_error(status).status == status


def _result(**kw) -> ResultMessage:
    base = dict(
        subtype="success",
        duration_ms=1,
        duration_api_ms=1,
        is_error=True,
        num_turns=1,
        session_id="s1",
    )
    return ResultMessage(**{**base, **kw})


def test_result_messages_and_result_errors() -> None:
    assert classify_error(_result(subtype="error_max_turns", result=None)).kind == "max_turns"
    assert classify_error(_result(subtype="error_max_budget_usd")).kind == "budget_exceeded"
    err = classify_error(_result(result="API Error: 529 Overloaded", api_error_status=529))
    assert err.transient and err.session_id == "s1" and err.status == 529
    re_err = ResultError(
        "failed",
        data={
            "subtype": "success",
            "result": "API Error: 401",
            "api_error_status": 401,
            "session_id": "s2",
        },
    )
    perm = classify_error(re_err)
    assert not perm.transient and perm.kind == "authentication" and perm.session_id == "s2"


def test_sdk_and_python_exceptions() -> None:
    assert classify_error(ProcessError("boom", exit_code=-9)).kind == "process_crashed"
    assert classify_error(CLIConnectionError("pipe")).kind == "connection_lost"
    assert classify_error(CLINotFoundError()).transient is False
    assert classify_error(TimeoutError()).kind == "timeout"
    assert classify_error(ConnectionResetError("reset")).transient
    # A ValueError from our own code is a bug: classify_known leaves it alone (re-raised as is,
    # never retried); only one the SDK raised about its options is the caller's bad input.
    assert classify_known(ValueError("bad")) is None
    assert not isinstance(classify_error(ValueError("bad")), InvalidInput)
    assert should_retry(ValueError("bad")) is False
    with pytest.raises(ValueError) as raised:
        rename_session("not-a-uuid", "title")  # the SDK's own check
    assert isinstance(classify_known(raised.value), InvalidInput)
    assert classify_error(RuntimeError("weird")).transient  # unknown process-level: transient
    same = TransientAgentError("x")
    assert classify_error(same) is same


def test_hierarchy_and_predicates() -> None:
    assert issubclass(MissingCredentials, PermanentAgentError) and issubclass(
        InvalidInput, AgentError
    )
    assert should_retry(TransientAgentError("x")) and not should_retry(PermanentAgentError("x"))
    assert not should_retry(MissingCredentials("x")) and not should_retry(None)
    assert should_retry(ProcessError("died")) and not should_retry(KeyboardInterrupt())
    assert is_transient(None, None, Failed(data=TransientAgentError("x")))
    assert not is_transient(None, None, Failed(data=PermanentAgentError("x")))
    assert not is_transient(None, None, Completed(data=1))


def test_errors_pickle_with_their_outcome() -> None:
    outcome = TurnOutcome(session_id="s", is_error=True, error="API Error: 529")
    err = TransientAgentError(
        "API Error: 529", kind="overloaded", status=529, session_id="s", outcome=outcome
    )
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is TransientAgentError and back.kind == "overloaded" and back.status == 529
    assert back.outcome == outcome and str(back) == "API Error: 529"
    assert pickle.loads(pickle.dumps(InvalidInput("bad"))).kind == "bad_input"


def test_messages_are_scrubbed(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plain-env-secret-123")
    register_secret("registered-secret-456")
    text = (
        "key sk-ant-api03-abcdefghijklmnop and plain-env-secret-123 and registered-secret-456 "
        "x-api-key: hunter2hunter2 Authorization: Bearer tok123456"
    )
    err = PermanentAgentError(text)
    for leaked in (
        "abcdefghijklmnop",
        "plain-env-secret-123",
        "registered-secret-456",
        "hunter2hunter2",
        "tok123456",
    ):
        assert leaked not in str(err) and leaked not in repr(err) and leaked not in scrub(text)
    assert "***" in str(err)
