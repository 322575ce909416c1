"""Bad input, each refused with a clear error, never retried by Prefect, and no stored change:
malformed and unknown session ids, a checkpoint of another session, empty and oversized prompts,
an unknown agent profile, wrong parameter types from the dashboard form, a corrupted transcript
entry. Property tests (hypothesis) for ids and decision payloads.

The service-level versions of the first four are in tests/sessions/test_durability.py; here they
go through Prefect tasks and flows, where the question is also "is it retried?"."""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect import flow
from prefect.exceptions import ParameterTypeError
from prefect_claude_sessions.flows import manual
from prefect_claude_sessions.flows.profiles import UnknownProfile, get_profile
from prefect_claude_sessions.storage import (
    CorruptEntry,
    InvalidSessionId,
    SessionNotFound,
    SQLModelSessionStore,
    decisions,
    dispose_engines,
    generate_key,
    open_db,
    sessions,
)
from prefect_claude_sessions.tasks import (
    AgentProfile,
    checkpoint_session,
    fork_session,
    init_session,
    resume_session,
)
from prefect_claude_sessions.tasks.client_pool import default_pool
from prefect_claude_sessions.tasks.context import RunContext
from prefect_claude_sessions.tasks.errors import InvalidInput
from prefect_claude_sessions.tasks.session_tasks import get_service

from .conftest import main_requests, store_state, task_runs_of

pytestmark = [pytest.mark.cli]

ECHO = AgentProfile(name="echo", system_prompt="You are a careful assistant.")
CTX = RunContext(flow_run_id=None, task_run_id=None)


@flow
def two_sessions():
    first = init_session("Hello.", agent=ECHO)
    other = init_session("Another session.", agent=ECHO)
    return first, other, checkpoint_session(other, label="elsewhere")


def session_count() -> int:
    with open_db(get_service().store.engine) as db:
        return len(sessions.list_sessions(db, limit=None))


def test_bad_calls_fail_once_with_a_clear_error_and_change_nothing(workspace, standin):
    first, _, foreign = two_sessions()
    before, sessions_before, sent_before = (
        store_state(first.session_id),
        session_count(),
        len(main_requests(standin)),
    )
    unknown = str(uuid.uuid4())

    @flow
    def bad_calls():
        return [
            resume_session("../../etc/passwd", "Hi", return_state=True),
            resume_session(unknown, "Hi", return_state=True),
            fork_session(first, "Branch", at=foreign, return_state=True),
            resume_session(first, "   ", return_state=True),
            resume_session(first, "x" * 300_000, return_state=True),
        ]

    states = bad_calls(return_state=True).result(raise_on_failure=False)
    expected = [
        (InvalidSessionId, "invalid session id '../../etc/passwd': not a UUID"),
        (SessionNotFound, f"session '{unknown}' not found"),
        (InvalidInput, f"belongs to session {foreign.session_id}, not to {first.session_id}"),
        (InvalidInput, "prompt must not be empty"),
        (InvalidInput, "prompt is 300000 characters; the limit is"),
    ]
    for state, (kind, message) in zip(states, expected, strict=True):
        assert state.is_failed()
        with pytest.raises(kind) as info:
            state.result()
        assert message in str(info.value)
    runs = task_runs_of(states[0].state_details.flow_run_id)
    assert len(runs) == 5 and all(r.run_count == 1 for r in runs)  # none retried

    assert store_state(first.session_id) == before
    assert session_count() == sessions_before
    assert len(main_requests(standin)) == sent_before


def test_an_unknown_profile_name_lists_the_known_ones(workspace, standin):
    first, _, _ = two_sessions()
    before, sent = session_count(), len(main_requests(standin))

    state = manual.handoff(first.session_id, "Take over.", to_agent="astrologer", return_state=True)

    assert state.is_failed()
    # to_agent is a choice of the known profiles: the run form offers them, and a run given
    # another name fails its parameter validation, naming the parameter and the choices.
    with pytest.raises(ParameterTypeError, match=r"(?s)to_agent.*'billing-specialist'"):
        state.result()
    with pytest.raises(
        UnknownProfile,
        match=r"unknown agent profile 'astrologer'; known profiles: .*billing-specialist",
    ):
        get_profile("astrologer")
    assert session_count() == before and len(main_requests(standin)) == sent


def test_wrong_parameter_types_from_the_dashboard_form_name_the_parameter(workspace, standin):
    # What a deployment run does with the form's values: validate them against the signature.
    with pytest.raises(ParameterTypeError, match="label"):
        manual.checkpoint.validate_parameters({"session_id": str(uuid.uuid4()), "label": {"a": 1}})
    with pytest.raises(ParameterTypeError, match="restore_files"):
        manual.rewind.validate_parameters({"checkpoint_id": "c", "restore_files": "perhaps"})

    state = manual.rewind(checkpoint_id="c", restore_files="perhaps", return_state=True)
    assert state.is_failed() and "restore_files" in state.message
    assert main_requests(standin) == []


def test_a_corrupted_transcript_entry_is_named_and_refused(workspace, standin):
    first, _, _ = two_sessions()
    store = get_service().store
    entries = store.entries(first.session_id)
    with store.engine.begin() as conn:
        key_id = conn.execute(
            sa.text(
                "SELECT id FROM claude_sessions_transcript_keys WHERE session_id = :s AND subpath = ''"
            ),
            {"s": first.session_id},
        ).scalar_one()
        seq = conn.execute(
            sa.text(
                "SELECT seq FROM claude_sessions_transcript_entries WHERE key_id = :k ORDER BY seq LIMIT 1 OFFSET 3"
            ),
            {"k": key_id},
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE claude_sessions_transcript_entries SET body = :b WHERE seq = :q"),
            {"b": '{"type": "user", "message": {broken', "q": seq},
        )
    # A worker without this session's warm CLI (any other worker) must load it from the store.
    assert asyncio.run(default_pool().discard(first.session_id))
    sent = len(main_requests(standin))

    with pytest.raises(CorruptEntry) as info:
        store.entries(first.session_id)
    assert info.value.session_id == first.session_id and info.value.seq == seq
    assert f"session '{first.session_id}'" in str(info.value) and f"seq={seq}" in str(info.value)

    @flow
    def carry_on():
        return resume_session(first, "Carry on.", return_state=True)

    state = carry_on(return_state=True).result(raise_on_failure=False)
    assert state.is_failed()
    with pytest.raises(Exception) as failed:
        state.result()
    message = str(failed.value)
    assert first.session_id in message and f"seq={seq}" in message and "cannot be read" in message
    assert task_runs_of(state.state_details.flow_run_id)[0].run_count == 1  # not retried
    assert len(main_requests(standin)) == sent  # the model was never asked
    with open_db(store.engine) as db:
        assert sessions.get_session(db, first.session_id).turn_count == 1
    assert len(entries) > 3


# ------------------------------------------------------------------ property tests

ID_LIKE = st.one_of(
    st.text(max_size=80),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: f"{{{u}}}"),
    st.sampled_from(
        ["", "..", "../x", "a/b", "a\\b", "\x00", " " * 3, "urn:uuid:" + str(uuid.uuid4())]
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=ID_LIKE)
def test_any_string_as_a_session_id_is_refused_or_not_found(sqlite_url, value):
    store = SQLModelSessionStore(sqlite_url)
    from prefect_claude_sessions.tasks.service import SessionService

    service = SessionService(store)
    with open_db(store.engine) as db:
        rows_before = len(sessions.list_sessions(db, limit=None))
    for call in (
        lambda: service.resume(value, "Hi", ctx=CTX),
        lambda: service.record_decision(value, "k", {"a": 1}, ctx=CTX),
        lambda: store.entries(value),
        lambda: store.transcript_stats(value),
    ):
        with pytest.raises((InvalidSessionId, SessionNotFound)):
            call()
    with open_db(store.engine) as db:
        assert len(sessions.list_sessions(db, limit=None)) == rows_before
        assert decisions.list_decisions(db) == []


NO_NUL = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | NO_NUL,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(NO_NUL, inner, max_size=5),
    max_leaves=25,
)
PAYLOADS = st.dictionaries(NO_NUL, JSON, max_size=6)


@pytest.fixture(params=["sqlite", "postgres"])
def recorded_session(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'payloads.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = SQLModelSessionStore(url)
    sid = str(uuid.uuid4())
    with open_db(store.engine) as db:
        sessions.create_session(db, id=sid, project_key="p", agent_name="a", origin="init")
    yield store, sid, request.param
    dispose_engines()


@pytest.mark.parametrize("encrypted", [False, True], ids=["clear", "encrypted"])
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=PAYLOADS)
def test_json_payloads_round_trip_exactly(recorded_session, monkeypatch, encrypted, payload):
    store, sid, backend = recorded_session
    monkeypatch.setenv("CLAUDE_SESSIONS_ENCRYPTION_KEY", _KEY if encrypted else "")
    with open_db(store.engine) as db:
        row, created = decisions.record_decision(db, session_id=sid, key="k", payload=payload)
        row_id = row.id
    with open_db(store.engine) as db:
        stored = next(d for d in decisions.list_decisions(db, session_id=sid) if d.id == row_id)
    assert created
    # In clear on PostgreSQL, jsonb keeps numbers as decimals: 2.5e16 reads back as an int of
    # the same value and -0.0 as 0 (documented in decisions.record_decision).
    assert _same(stored.payload, payload, numbers_only=backend == "postgres" and not encrypted)


_KEY = generate_key()


def _same(a, b, numbers_only: bool = False) -> bool:
    """Equal as JSON values: a float stays a float and -0.0 keeps its sign (with
    ``numbers_only``, numbers need only be equal as floats)."""
    number = (int, float)
    if numbers_only and isinstance(a, number) and isinstance(b, number):
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return float(a) == float(b)
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], numbers_only) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            _same(x, y, numbers_only) for x, y in zip(a, b, strict=True)
        )
    return type(a) is type(b) and a == b


NOT_JSON = st.one_of(
    st.just({"n": float("nan")}),
    st.just({"i": float("inf")}),
    st.just({"s": {1, 2}}),
    st.just({"b": b"bytes"}),
    st.just({"o": object()}),
    st.just({(1, 2): "tuple key"}),
    st.builds(lambda x: {"nested": [x, {1}]}, st.integers()),
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=NOT_JSON)
def test_non_json_payloads_are_refused_clearly(recorded_session, payload):
    store, sid, _ = recorded_session
    refused = "decision payload for key 'k' is not JSON-serialisable"
    with pytest.raises(ValueError, match=refused), open_db(store.engine) as db:
        decisions.record_decision(db, session_id=sid, key="k", payload=payload)
    for unstorable in ({"a": ["b\x00"]}, {"\ud800": 1}):
        with pytest.raises(ValueError, match="NUL character"), open_db(store.engine) as db:
            decisions.record_decision(db, session_id=sid, key="k", payload=unstorable)
    with open_db(store.engine) as db:
        assert decisions.list_decisions(db, session_id=sid) == []
