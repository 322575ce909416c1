"""Repository functions: sessions and lineage, turns, checkpoints, decisions, claims."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prefect_claude_sessions.storage import (
    CheckpointNotFound,
    SessionNotFound,
    SessionOrigin,
    SessionStatus,
    TurnStatus,
    checkpoints,
    claims,
    decisions,
    open_db,
    sessions,
    turns,
)


def new_id() -> str:
    return str(uuid.uuid4())


def make_session(
    url: str, *, parent: str | None = None, agent: str = "triage", origin: str = "init"
) -> str:
    sid = new_id()
    with open_db(url) as db:
        sessions.create_session(
            db,
            id=sid,
            project_key="-w",
            agent_name=agent,
            origin=origin,
            parent_id=parent,
            agent_profile={"name": agent, "system_prompt": "be brief"},
            cwd="/w",
        )
    return sid


def test_create_session_is_idempotent_and_reads_back_typed(database_url) -> None:
    sid = new_id()
    with open_db(database_url) as db:
        first = sessions.create_session(
            db, id=sid, project_key="-w", agent_name="a", origin="init", agent_profile={"k": [1]}
        )
    with open_db(database_url) as db:
        again = sessions.create_session(
            db, id=sid, project_key="-other", agent_name="b", origin=SessionOrigin.fork
        )
        got = sessions.get_session(db, sid)
    assert again.project_key == first.project_key == got.project_key == "-w"
    assert got.origin is SessionOrigin.init and got.status is SessionStatus.active
    assert got.agent_profile == {"k": [1]}
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)


def test_unknown_parent_is_refused(database_url) -> None:
    missing = new_id()
    with pytest.raises(SessionNotFound, match=missing), open_db(database_url) as db:
        sessions.create_session(
            db, id=new_id(), project_key="-w", agent_name="a", origin="fork", parent_id=missing
        )


def test_lineage_ancestors_children_and_tree(database_url) -> None:
    root = make_session(database_url)
    a = make_session(database_url, parent=root, origin="fork")
    b = make_session(database_url, parent=root, origin="handoff", agent="billing")
    a1 = make_session(database_url, parent=a, origin="fork")
    with open_db(database_url) as db:
        assert [s.id for s in sessions.ancestors(db, a1)] == [a, root]
        assert sessions.ancestors(db, root) == []
        assert [s.id for s in sessions.children(db, root)] == [a, b]
        tree = [(d, s.id) for d, s in sessions.lineage_tree(db, root)]
        assert tree == [(0, root), (1, a), (2, a1), (1, b)]
        assert [s.id for s in sessions.list_sessions(db, agent_name="billing")] == [b]
        assert [s.id for s in sessions.list_sessions(db)][:1] == [a1]  # newest first
        sessions.set_status(db, b, SessionStatus.archived)
        assert [s.id for s in sessions.list_sessions(db, status="archived")] == [b]
        sessions.set_transcript_bytes(db, b, 1234)
    with open_db(database_url) as db:
        assert sessions.get_session(db, b).transcript_bytes == 1234
        assert sessions.get_session(db, b).status is SessionStatus.archived


def test_turn_lifecycle_counts_totals_once(database_url) -> None:
    sid = make_session(database_url)
    usage = {"input_tokens": 10, "output_tokens": 5}
    with open_db(database_url) as db:
        t = turns.begin_turn(
            db,
            idempotency_key="k1",
            session_id=sid,
            operation="init",
            prompt_digest="d" * 64,
            flow_run_id="f",
        )
        assert t.status is TurnStatus.pending
        assert (
            turns.begin_turn(
                db, idempotency_key="k1", session_id=sid, operation="init", prompt_digest="d" * 64
            ).id
            == t.id
        )
    for _ in range(2):  # a retried completion is a no-op
        with open_db(database_url) as db:
            turns.complete_turn(
                db,
                "k1",
                session_id=sid,
                result_text="hi",
                cost_usd=0.25,
                usage=usage,
                duration_ms=10,
                num_turns=1,
                assistant_uuid="as1",
            )
    with open_db(database_url) as db:
        s = sessions.get_session(db, sid)
        assert (s.turn_count, s.cost_usd, s.input_tokens, s.output_tokens) == (1, 0.25, 10, 5)
        done = turns.find_turn(db, "k1")
        assert (
            done.status is TurnStatus.completed
            and done.assistant_uuid == "as1"
            and done.usage == usage
        )
        assert turns.fail_turn(db, "k1", error="late").status is TurnStatus.completed
        assert turns.find_turn(db, "nope") is None
        assert [x.idempotency_key for x in turns.list_turns(db, sid)] == ["k1"]


def test_failed_turn_is_restarted_by_begin_and_can_complete(database_url) -> None:
    sid = make_session(database_url)
    with open_db(database_url) as db:
        turns.begin_turn(
            db, idempotency_key="k2", session_id=sid, operation="resume", prompt_digest="x"
        )
        failed = turns.fail_turn(db, "k2", error="API Error: 529")
        assert failed.status is TurnStatus.failed and failed.error == "API Error: 529"
    with open_db(database_url) as db:
        again = turns.begin_turn(
            db,
            idempotency_key="k2",
            session_id=sid,
            operation="resume",
            prompt_digest="x",
            task_run_id="t2",
        )
        assert (
            again.status is TurnStatus.pending and again.error is None and again.task_run_id == "t2"
        )
        turns.complete_turn(
            db,
            "k2",
            session_id=sid,
            result_text="ok",
            cost_usd=None,
            usage=None,
            duration_ms=1,
            num_turns=1,
        )
    with open_db(database_url) as db:
        assert sessions.get_session(db, sid).turn_count == 1


def test_completing_into_an_unrecorded_session_fails_and_rolls_back(database_url) -> None:
    sid = make_session(database_url)
    with open_db(database_url) as db:
        turns.begin_turn(
            db, idempotency_key="k3", session_id=sid, operation="fork", prompt_digest="x"
        )
    ghost = new_id()
    with pytest.raises(SessionNotFound, match=ghost), open_db(database_url) as db:
        turns.complete_turn(
            db,
            "k3",
            session_id=ghost,
            result_text="r",
            cost_usd=1,
            usage={},
            duration_ms=1,
            num_turns=1,
        )
    with open_db(database_url) as db:
        assert turns.find_turn(db, "k3").status is TurnStatus.pending


def test_checkpoints(database_url) -> None:
    sid = make_session(database_url)
    with open_db(database_url) as db:
        c1 = checkpoints.create_checkpoint(
            db,
            session_id=sid,
            transcript_uuid="t-1",
            label="before",
            user_message_uuid="u-1",
            idempotency_key="ck",
        )
        c1b = checkpoints.create_checkpoint(
            db, session_id=sid, transcript_uuid="t-9", label="dup", idempotency_key="ck"
        )
        c2 = checkpoints.create_checkpoint(db, session_id=sid, transcript_uuid="t-2", label="after")
        assert c1b.id == c1.id and c1b.transcript_uuid == "t-1"
        assert checkpoints.get_checkpoint(db, c2.id).label == "after"
        assert [c.id for c in checkpoints.list_checkpoints(db, sid)] == [c1.id, c2.id]
        with pytest.raises(CheckpointNotFound, match="no-such"):
            checkpoints.get_checkpoint(db, "no-such")
        with pytest.raises(SessionNotFound):
            checkpoints.create_checkpoint(db, session_id=new_id(), transcript_uuid="t", label="x")


def test_decisions_are_idempotent_and_queryable(database_url) -> None:
    s1, s2 = make_session(database_url), make_session(database_url)
    with open_db(database_url) as db:
        d1, created = decisions.record_decision(
            db,
            session_id=s1,
            key="route",
            payload={"to": "billing", "score": 0.9},
            idempotency_key="i1",
            flow_run_id="f",
        )
        again, created_again = decisions.record_decision(
            db, session_id=s1, key="route", payload={"to": "other"}, idempotency_key="i1"
        )
        assert (
            created
            and not created_again
            and again.id == d1.id
            and again.payload == {"to": "billing", "score": 0.9}
        )
        decisions.record_decision(db, session_id=s2, key="route", payload=["b"])
        decisions.record_decision(db, session_id=s1, key="priority", payload="high")
    with open_db(database_url) as db:
        assert [d.payload for d in decisions.list_decisions(db, session_id=s1)] == [
            {"to": "billing", "score": 0.9},
            "high",
        ]
        assert len(decisions.list_decisions(db, key="route")) == 2
        assert (
            decisions.list_decisions(db, since=datetime.now(timezone.utc) + timedelta(minutes=1))
            == []
        )
        assert (
            len(
                decisions.list_decisions(
                    db, until=datetime.now(timezone.utc) + timedelta(minutes=1)
                )
            )
            == 3
        )
        assert len(decisions.list_decisions(db, limit=1)) == 1
        with pytest.raises(ValueError, match="not JSON-serialisable"):
            decisions.record_decision(db, session_id=s1, key="bad", payload={"x": object()})
        with pytest.raises(SessionNotFound):
            decisions.record_decision(db, session_id=new_id(), key="k", payload=1)


def test_claims_allow_one_holder_at_a_time(database_url) -> None:
    sid = new_id()
    with open_db(database_url) as db:
        assert claims.claim_session(db, sid, holder="w1", ttl_seconds=60)
        assert not claims.claim_session(db, sid, holder="w2", ttl_seconds=60)
        assert claims.claim_session(db, sid, holder="w1", ttl_seconds=60)  # renewal
        assert claims.current_holder(db, sid) == "w1"
        claims.release_session(db, sid, holder="w2")  # not theirs: no effect
        assert claims.current_holder(db, sid) == "w1"
        claims.release_session(db, sid, holder="w1")
        assert claims.claim_session(db, sid, holder="w2", ttl_seconds=0.001)
    time.sleep(0.02)
    with open_db(database_url) as db:  # w2's lease has expired by now
        assert claims.claim_session(db, sid, holder="w3", ttl_seconds=60)
        assert claims.current_holder(db, sid) == "w3"


def test_racing_claims_have_exactly_one_winner(database_url) -> None:
    sid = new_id()
    results: list[int | None] = []
    barrier = threading.Barrier(6)

    def contender(i: int) -> None:
        barrier.wait()
        with open_db(database_url) as db:
            results.append(claims.claim_session(db, sid, holder=f"w{i}", ttl_seconds=60))

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 5 and 1 in results  # one winner, with the first token


def test_list_sessions_updated_before_and_unlimited(database_url) -> None:
    idle = make_session(database_url)
    busy = make_session(database_url)
    past = datetime.now(timezone.utc) - timedelta(days=40)
    with open_db(database_url) as db:
        record = sessions.get_session(db, idle)
        record.updated_at = past
        db.add(record)
    cutoff = datetime.now(timezone.utc) - timedelta(days=30)
    with open_db(database_url) as db:
        assert [s.id for s in sessions.list_sessions(db, updated_before=cutoff)] == [idle]
        everything = {s.id for s in sessions.list_sessions(db, limit=None)}
        assert {idle, busy} <= everything
        assert len(sessions.list_sessions(db, limit=1)) == 1


def test_latest_completed_turn_skips_pending_and_failed(database_url) -> None:
    sid = make_session(database_url)
    with open_db(database_url) as db:
        assert turns.latest_completed_turn(db, sid) is None
        for key in ("a", "b", "c", "d"):
            turns.begin_turn(
                db, idempotency_key=key, session_id=sid, operation="resume", prompt_digest=key
            )
        for key in ("a", "b"):
            turns.complete_turn(
                db,
                key,
                session_id=sid,
                result_text=key,
                cost_usd=0.0,
                usage={},
                duration_ms=1,
                num_turns=1,
                assistant_uuid=f"as-{key}",
            )
        turns.fail_turn(db, "c", error="boom")
    with open_db(database_url) as db:
        latest = turns.latest_completed_turn(db, sid)
        assert latest is not None and latest.assistant_uuid == "as-b"
