"""Manual operations show their outcome where operators look, and take the short ids the
dashboard shows; the run forms describe every parameter and offer the known agent profiles."""

from __future__ import annotations

import typing

import pytest
from prefect import flow
from prefect.utilities.callables import parameter_schema
from prefect_claude_sessions.flows import explore, manual, triage
from prefect_claude_sessions.flows.forms import ProfileName
from prefect_claude_sessions.flows.profiles import PROFILES, get_profile
from prefect_claude_sessions.storage import SessionOrigin, open_db, sessions
from prefect_claude_sessions.storage.short_ids import AmbiguousId, InvalidShortId, resolve_id
from prefect_claude_sessions.tasks import init_session

from .conftest import artifacts, engine, run_flow
from .dashboard import lineage_reports, log_lines, wait_for

pytestmark = [pytest.mark.cli, pytest.mark.slow]


@flow
def start_session(prompt: str) -> str:
    return init_session(prompt, agent=get_profile("explorer")).session_id


def test_manual_runs_publish_their_answer_and_new_ids_and_take_short_ids(workspace, standin):
    base, _ = run_flow(start_session, prompt="The code word is PELICAN.")

    ck, ck_run = run_flow(manual.checkpoint, session_id=base[:8], label="after-code-word")
    assert ck.session_id == base
    (outcome,) = artifacts(ck_run, "session-checkpoint-outcome")
    assert f"**checkpoint id:** `{ck.id}`" in outcome["data"]
    lines = wait_for(lambda: log_lines(ck_run), lambda ls: any(ck.id in m for m in ls))
    assert any(f"checkpoint id {ck.id}" in m for m in lines), lines

    handed, handoff_run = run_flow(
        manual.handoff,
        session_id=base[:12],
        prompt="Settle the invoice.",
        to_agent="billing-specialist",
    )
    (outcome,) = artifacts(handoff_run, "session-handoff-outcome")
    assert f"**new session:** `{handed.session_id}` (billing-specialist)" in outcome["data"]
    assert handed.text.strip()[:40] in outcome["data"]  # the answer itself
    (report,) = lineage_reports(handoff_run)
    assert report.key == "claude-sessions-session-handoff"

    forked, fork_run = run_flow(
        manual.fork, session_id=base[:8], prompt="Side quest", checkpoint_id=ck.id[:8]
    )
    assert forked.parent_id == base
    assert f"`{forked.session_id}`" in artifacts(fork_run, "session-fork-outcome")[0]["data"]

    view, _ = run_flow(manual.show, session_id=base[:8])
    assert view.id == base


def test_short_ids_name_one_record_or_fail_clearly(workspace, standin):
    twins = ["abcdef12-0000-4000-8000-000000000001", "abcdef12-0000-4000-8000-000000000002"]
    with open_db(engine()) as db:
        for sid in twins:
            sessions.create_session(
                db, id=sid, project_key="p", agent_name="explorer", origin=SessionOrigin.init
            )
        db.commit()
    with open_db(engine()) as db:
        assert resolve_id(db, "session", twins[1][:36].upper()) == twins[1]
        assert resolve_id(db, "session", "ABCDEF12-0000-4000-8000-000000000002") == twins[1]
        with pytest.raises(AmbiguousId) as ambiguous:
            resolve_id(db, "session", "abcdef12")
        assert all(t in str(ambiguous.value) for t in twins)
        with pytest.raises(InvalidShortId, match="at least 8"):
            resolve_id(db, "session", "abcdef")
        with pytest.raises(InvalidShortId, match="expected a UUID"):
            resolve_id(db, "session", "not-an-id%")
        with pytest.raises(LookupError, match="'ffffffff' not found"):
            resolve_id(db, "session", "ffffffff")
        with pytest.raises(LookupError, match="checkpoint"):
            resolve_id(db, "checkpoint", "ffffffff")

    state = manual.resume(session_id="abcdef12", prompt="hello", return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "ambiguous" in message and twins[0] in message and twins[1] in message
    with open_db(engine()) as db:  # nothing was sent or recorded
        assert all(sessions.get_session(db, t).turn_count == 0 for t in twins)


def test_run_forms_describe_every_parameter_and_offer_known_profiles():
    assert set(typing.get_args(ProfileName)) == set(PROFILES)
    bundled = [
        triage.email_triage,
        explore.explore_approaches,
        manual.resume,
        manual.fork,
        manual.handoff,
        manual.checkpoint,
        manual.rewind,
        manual.show,
    ]
    for deployed in bundled:
        schema = parameter_schema(deployed.fn).model_dump()
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{deployed.name}: {name} has no description"
    handoff = parameter_schema(manual.handoff.fn).model_dump()
    to_agent = handoff["properties"]["to_agent"]
    assert set(to_agent["enum"]) == set(PROFILES)
    assert to_agent["default"] == "billing-specialist"
