"""`run_turn` against the real bundled CLI and the stand-in model."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from prefect_claude_sessions.tasks.client_pool import ClientPool
from prefect_claude_sessions.tasks.errors import (
    InvalidInput,
    MissingCredentials,
    PermanentAgentError,
    TransientAgentError,
    should_retry,
)
from prefect_claude_sessions.tasks.profile import AgentProfile
from prefect_claude_sessions.tasks.runtime import TurnOutcome, run_turn

pytestmark = pytest.mark.cli


async def test_one_turn_returns_a_typed_outcome(standin, make_options) -> None:
    prompt_uuid = str(uuid.uuid4())
    out = await run_turn("hello model", make_options(), prompt_uuid=prompt_uuid)
    assert isinstance(out, TurnOutcome)
    assert out.text == "echo: hello model | earlier user turns: 0 | first: hello model"
    uuid.UUID(out.session_id)
    assert out.user_message_uuid == prompt_uuid
    assert out.assistant_uuid and out.assistant_uuid != prompt_uuid
    assert out.cost_usd > 0 and out.usage["input_tokens"] > 0 and out.num_turns == 1
    assert out.duration_ms > 0 and not out.is_error and out.error is None and not out.warm
    assert TurnOutcome.model_validate_json(out.model_dump_json()) == out
    seen = standin.requests(kind="main")[-1]
    assert (
        seen["system"] == "You are a helpful test agent." and seen["session_id"] == out.session_id
    )


async def test_requested_session_id_is_honoured(make_options) -> None:
    sid = str(uuid.uuid4())
    out = await run_turn("hi", make_options(session_id=sid))
    assert out.session_id == sid


async def test_tool_call_writes_a_file(standin, make_options, workdir: Path) -> None:
    out = await run_turn("write file notes.txt with content: hello from the agent", make_options())
    assert (workdir / "notes.txt").read_text() == "hello from the agent"
    assert out.text == f"Wrote {workdir / 'notes.txt'}." and out.num_turns == 2


async def test_tool_call_edits_a_file_on_a_warm_client(make_options, workdir: Path, pool) -> None:
    first = await run_turn("write file a.txt with content: red apple", make_options(), pool=pool)
    second = await run_turn(
        "edit file a.txt replace: red with: green", make_options(resume=first.session_id), pool=pool
    )
    assert (workdir / "a.txt").read_text() == "green apple"
    assert second.text.startswith("Edited") and second.warm


async def test_triage_and_specialist_brains_through_profiles(standin, cli_env, workdir) -> None:
    triage = AgentProfile(
        name="triage", system_prompt="You triage support e-mail.", cwd=str(workdir)
    )
    out = await run_turn("Our production database is down! Urgent.", triage.to_options(env=cli_env))
    verdict = json.loads(out.text)
    assert verdict["category"] == "technical" and verdict["priority"] == "P1"

    billing = AgentProfile(
        name="billing", system_prompt="You are the billing specialist.\nBe kind.", cwd=str(workdir)
    )
    out = await run_turn("Refund please", billing.to_options(env=cli_env))
    assert out.text.startswith("[You are the billing specialist.] handling: Refund please")


RETRIED_AWAY = [(529, "overloaded"), (429, "rate_limited"), (500, "server_error")]


@pytest.mark.parametrize(("status", "kind"), RETRIED_AWAY)
async def test_persistent_transient_statuses_are_transient(
    standin, make_options, status, kind
) -> None:
    standin.inject(status=status, count=None)
    with pytest.raises(TransientAgentError) as info:
        await run_turn("hi", make_options())
    err = info.value
    assert err.kind == kind and err.status == status and should_retry(err)
    assert isinstance(err.outcome, TurnOutcome) and err.outcome.is_error and err.outcome.session_id
    # the CLI retried by itself first (CLAUDE_CODE_MAX_RETRIES=1: one retry)
    statuses = [r["status"] for r in standin.requests(kind="main")[-2:]]
    assert statuses == [status, status]


async def test_a_few_529s_are_absorbed_by_the_cli_retries(standin, make_options) -> None:
    standin.inject(status=529, count=1)
    out = await run_turn("still there?", make_options())
    assert out.text.startswith("echo: still there?")
    assert [r["status"] for r in standin.requests(kind="main")[-2:]] == [529, 200]


@pytest.mark.parametrize(
    ("status", "kind"), [(400, "invalid_request"), (401, "authentication"), (403, "authentication")]
)
async def test_client_errors_are_permanent(standin, make_options, status, kind) -> None:
    standin.inject(status=status, count=None)
    with pytest.raises(PermanentAgentError) as info:
        await run_turn("hi", make_options())
    assert info.value.kind == kind and info.value.status == status
    assert not should_retry(info.value)


async def test_cut_stream_is_transient(standin, make_options) -> None:
    standin.inject(cut_stream=True, count=None)
    with pytest.raises(TransientAgentError) as info:
        await run_turn("hi", make_options())
    assert info.value.kind in {"connection_lost", "stream_cut"}
    assert all(r["fault"]["cut_stream"] for r in standin.requests(kind="main")[-2:])


async def test_max_turns_is_permanent(make_options) -> None:
    with pytest.raises(PermanentAgentError) as info:
        await run_turn("write file x.txt with content: y", make_options(max_turns=1))
    assert info.value.kind == "max_turns"


async def test_bad_input_fails_before_starting_a_cli(standin, make_options) -> None:
    before = len(standin.requests())
    with pytest.raises(InvalidInput):
        await run_turn("   ", make_options())
    with pytest.raises(InvalidInput):
        await run_turn("hi", make_options(), prompt_uuid="not-a-uuid")
    assert len(standin.requests()) == before


async def test_no_credentials_fail_clearly(monkeypatch, make_options) -> None:
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    options = make_options()
    options.env = {k: v for k, v in options.env.items() if k != "ANTHROPIC_API_KEY"}
    with pytest.raises(MissingCredentials, match="ANTHROPIC_API_KEY"):
        await run_turn("hi", options)


async def test_the_api_key_never_leaks(standin, make_options, caplog, capfd) -> None:
    marker = "sk-ant-api03-MARKER" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    options = make_options(env={"ANTHROPIC_API_KEY": marker})
    pool = ClientPool(name="leak-check")
    try:
        ok = await run_turn("hi", options, pool=pool)
        standin.inject(status=401, count=None)
        with pytest.raises(PermanentAgentError) as info:
            await run_turn("again", options)
    finally:
        pool.close()
    err = info.value
    texts = [
        str(err),
        repr(err),
        err.outcome.model_dump_json(),
        ok.model_dump_json(),
        repr(pool),
        json.dumps(pool.stats()),
        caplog.text,
        json.dumps(standin.requests()[-3:], default=str),
    ]
    out, errout = capfd.readouterr()
    texts += [out, errout]
    for text in texts:
        assert marker not in text


async def test_a_reused_prompt_uuid_fails_fast_instead_of_hanging(
    monkeypatch, make_options, pool
) -> None:
    """The CLI silently drops a prompt whose uuid the session already holds (no init, no
    result); the runtime turns that into a permanent error within the acknowledgement bound."""
    monkeypatch.setenv("CLAUDE_SESSIONS_FIRST_MESSAGE_TIMEOUT_S", "4")
    prompt_uuid = str(uuid.uuid4())
    first = await run_turn("one", make_options(), prompt_uuid=prompt_uuid)
    for p in (None, pool):  # a fresh CLI resuming the session, and a warm one
        if p is not None:
            await run_turn("warm up", make_options(resume=first.session_id), pool=p)
        with pytest.raises(PermanentAgentError) as info:
            await run_turn(
                "one again", make_options(resume=first.session_id), pool=p, prompt_uuid=prompt_uuid
            )
        assert info.value.kind == "prompt_ignored"
    assert first.session_id not in pool
