"""The product end to end: the repository's prefect.yaml deployed to a real Prefect server (on
PostgreSQL) with `prefect deploy --all`, real process workers, runs started with
`prefect deployment run`, the real Claude Code CLI talking to a stand-in model process, and the
session store on a fresh PostgreSQL database.

The "two machines" test runs two workers with their own CLAUDE_CONFIG_DIR, working directory,
PREFECT_HOME and TMPDIR on one pool, and shows a session begun on one continued on the other,
from what the model received.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from claude_agent_sdk import project_key_for_directory
from prefect_claude_sessions.flows.triage import load_inbox
from prefect_claude_sessions.storage import (
    SessionOrigin,
    SessionStatus,
    decisions,
    dispose_engines,
    open_db,
    sessions,
)
from prefect_claude_sessions.storage import get_engine as store_engine
from prefect_claude_sessions.tasks.standin import StandinModel

from tests.conftest import drop_postgres_database, make_postgres_database
from tests.e2e.harness import (
    REPO_ROOT,
    PrefectServer,
    StandinProcess,
    create_process_pool,
    delete_pool,
    deploy_all,
    machine_env,
    read_artifacts,
    read_events,
    record_timing,
    run_deployment,
    unique_name,
    wait_for_flow_run,
    wait_for_flow_runs,
    wait_until,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.cli,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

POOL = "claude-sessions"
TRIAGE = "email-triage/support-triage"
EXPLORE = "explore-approaches/explore-approaches"
EXPECTED_DEPLOYMENTS = {
    TRIAGE,
    EXPLORE,
    "session-maintenance/nightly-maintenance",
    "session-resume/session-resume",
    "session-fork/session-fork",
    "session-handoff/session-handoff",
    "session-checkpoint/session-checkpoint",
    "session-rewind/session-rewind",
    "session-show/session-show",
}


@dataclass(frozen=True)
class Deployed:
    """The module's world: the server with the repo's deployments, the model, the store."""

    server: PrefectServer
    deployments: dict[str, dict]
    standin_url: str
    store_url: str

    def worker_env(self, machine: Path) -> dict[str, str]:
        """What a machine's worker (and so its flow-run processes) gets: model credentials,
        the shared store, and its own local transcript folder."""
        return machine_env(self.standin_url, self.store_url, machine)

    def model(self):
        return StandinModel.attach(self.standin_url)


@pytest.fixture(scope="module")
def deployed(
    prefect_server_session: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    server = prefect_server_session
    assert server.alive(), server.diagnostics()
    root = tmp_path_factory.mktemp("deployments")

    model = StandinProcess(root, request_log=root / "model.jsonl").start()
    url = model.url
    db_name, store_url = make_postgres_database("cs_e2e_store")
    try:
        create_process_pool(server, POOL)
        spec = REPO_ROOT / "prefect.yaml"
        before = spec.read_bytes()
        deployments = deploy_all(server, REPO_ROOT)
        assert spec.read_bytes() == before, "prefect deploy --all rewrote prefect.yaml"
        yield Deployed(server, deployments, url, store_url)
    finally:
        delete_pool(server, POOL)
        model.stop()
        dispose_engines()
        drop_postgres_database(db_name)


def table(server: PrefectServer, run_id: str, key: str) -> list[dict]:
    found = read_artifacts(server, run_id, key=key)
    assert found, f"no {key!r} artifact for flow run {run_id}\n{server.diagnostics(run_id)}"
    data = found[-1]["data"]
    return json.loads(data) if isinstance(data, str) else data


def test_prefect_yaml_deploys_every_flow(deployed: Deployed):
    spec = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    assert set(deployed.deployments) == EXPECTED_DEPLOYMENTS
    for name, deployment in deployed.deployments.items():
        assert deployment["work_pool_name"] == POOL, name
        assert deployment["job_variables"] == {"working_dir": "."}, name
        assert not deployment["pull_steps"], name
        assert ":" in deployment["entrypoint"] and "/" not in deployment["entrypoint"], name
        assert "claude-sessions" in deployment["tags"], name
        assert deployment["description"], name
    triage = deployed.deployments[TRIAGE]
    assert triage["entrypoint"] == "prefect_claude_sessions.flows.triage:email_triage"
    assert triage["parameters"]["team"] == "support"
    assert [s["schedule"]["cron"] for s in triage["schedules"]] == ["*/15 * * * 1-5"]
    maintenance = deployed.deployments["session-maintenance/nightly-maintenance"]
    assert [s["schedule"]["cron"] for s in maintenance["schedules"]] == ["30 2 * * *"]
    # The dashboard's Run form is typed from the flow signature.
    form = maintenance["parameter_openapi_schema"]["properties"]
    assert form["retention_days"]["type"] == "integer" and form["dry_run"]["type"] == "boolean"
    assert maintenance["parameters"]["dry_run"] is False
    assert len(spec["deployments"]) == len(EXPECTED_DEPLOYMENTS)


def test_triage_and_exploration_runs(deployed: Deployed, start_worker, tmp_path: Path):
    server = deployed.server
    machine = tmp_path / "machine"
    worker = start_worker(POOL, name=unique_name("worker"), env=deployed.worker_env(machine))

    started = time.monotonic()
    triage_run = run_deployment(server, TRIAGE, {"team": "e2e-one", "review_priorities": []})
    explore_run = run_deployment(
        server,
        EXPLORE,
        {"problem": "The monthly report takes 40 s.", "approaches": ["an index", "a cache"]},
    )
    runs = wait_for_flow_runs(server, [triage_run, explore_run], timeout=600, expect="COMPLETED")
    record_timing("triage + explore deployment runs -> Completed (s)", time.monotonic() - started)
    assert {r["labels"]["prefect.worker.name"] for r in runs} == {worker.name}
    assert runs[0]["parameters"]["team"] == "e2e-one"

    inbox = load_inbox()
    engine = store_engine(deployed.store_url)
    with open_db(engine) as db:
        (team,) = sessions.list_sessions(db, agent_name="triage-e2e-one")
        assert team.origin == SessionOrigin.init and team.status == SessionStatus.active
        assert team.turn_count == len(inbox) and team.transcript_bytes > 0
        triaged = decisions.list_decisions(db, session_id=team.id, key="triage")
        assert sorted(d.payload["email_id"] for d in triaged) == sorted(e.id for e in inbox)
        assert {d.flow_run_id for d in triaged} == {triage_run}
        specialists = sessions.children(db, team.id)
        assert specialists and {s.origin for s in specialists} == {SessionOrigin.handoff}
        assert {s.agent_name for s in specialists} == {"technical-specialist", "billing-specialist"}

        (chosen,) = decisions.list_decisions(db, key="approach-chosen")
        assert chosen.flow_run_id == explore_run
        forks = sessions.children(db, chosen.session_id)
        assert len(forks) == 2 and {f.origin for f in forks} == {SessionOrigin.fork}
        assert chosen.payload["session_id"] in {f.id for f in forks}

    # The dashboard's view: the result table, progress, the lineage report, the comparison.
    rows = table(server, triage_run, "triage-results-e2e-one")
    assert [r["e-mail"] for r in rows] == [e.id for e in inbox]
    assert {r["session"] for r in rows} == {team.id[:8]}
    progress = read_artifacts(server, triage_run, key="triage-progress-e2e-one")
    assert progress and float(progress[-1]["data"]) == pytest.approx(100.0)
    lineage = read_artifacts(server, triage_run, key="claude-sessions-email-triage")
    assert len(lineage) == 1 and team.id[:8] in lineage[0]["data"]
    comparison = table(server, explore_run, "explore-approaches")
    assert [r["approach"] for r in comparison] == ["an index", "a cache"]
    assert sum(r["chosen"] == "yes" for r in comparison) == 1

    # Session events reach the server (automations can react to a handoff).
    handed = wait_until(
        lambda: read_events(server, prefix="claude-sessions.handed-off"),
        timeout=30,
        message=lambda: "no handed-off event\n" + server.diagnostics(triage_run),
    )
    assert any(
        e["resource"]["prefect.resource.id"].endswith(s.id) for e in handed for s in specialists
    )

    # The nightly maintenance deployment, as a dry run: sizes reported, nothing changed.
    maintenance = run_deployment(
        server,
        "session-maintenance/nightly-maintenance",
        {"dry_run": True, "compact_over_bytes": 1},
    )
    wait_for_flow_run(server, maintenance, timeout=300, expect="COMPLETED")
    sizes = table(server, maintenance, "session-sizes")
    assert team.id in {r["session"] for r in sizes}
    report = read_artifacts(server, maintenance, key="session-maintenance")
    assert team.id in report[-1]["data"] and "would be compacted" in report[-1]["data"]
    with open_db(engine) as db:
        assert sessions.get_session(db, team.id).status == SessionStatus.active
        assert not [c for c in sessions.children(db, team.id) if c.origin == "compaction"]

    # The model saw the whole inbox in one conversation.
    triage_calls = [
        r for r in deployed.model().requests(kind="main") if r.get("session_id") == team.id
    ]
    assert len(triage_calls) == len(inbox)
    assert len(triage_calls[-1]["user_turns"]) == len(inbox)


def test_two_machines_continue_one_session(deployed: Deployed, start_worker, tmp_path: Path):
    """Machine A begins the team's session; machine B (other CLAUDE_CONFIG_DIR, other working
    directory, nothing local) continues it, and the model sees A's e-mails in B's turns."""
    server = deployed.server
    machines = {m: tmp_path / m for m in ("machine-a", "machine-b")}
    workers = {
        m: start_worker(
            POOL,
            name=unique_name(m),
            limit=1,
            cwd=path / "workspace",
            env=deployed.worker_env(path),
        )
        for m, path in machines.items()
    }
    by_name = {w.name: m for m, w in workers.items()}
    inbox = load_inbox()
    team = "e2e-two"

    first = run_deployment(
        server,
        TRIAGE,
        {
            "team": team,
            "hand_off": False,
            "review_priorities": [],
            "emails": [e.model_dump() for e in inbox[:3]],
        },
    )
    run = wait_for_flow_run(server, first, timeout=300, expect="COMPLETED")
    here = by_name[run["labels"]["prefect.worker.name"]]
    there = "machine-b" if here == "machine-a" else "machine-a"
    engine = store_engine(deployed.store_url)
    with open_db(engine) as db:
        (session,) = sessions.list_sessions(db, agent_name=f"triage-{team}")
        session_id, key_a = session.id, session.project_key
    assert key_a == project_key_for_directory(str(machines[here] / "workspace"))
    assert list((machines[here] / "claude").rglob(f"{session_id}.jsonl"))
    assert not list((machines[there] / "claude").rglob("*.jsonl"))

    # Machine "here" goes away; the next scheduled-style run lands on the other machine.
    workers[here].stop()
    second = run_deployment(
        server,
        TRIAGE,
        {
            "team": team,
            "hand_off": False,
            "review_priorities": [],
            "emails": [e.model_dump() for e in inbox[:5]],
        },
    )
    run = wait_for_flow_run(server, second, timeout=300, expect="COMPLETED")
    assert by_name[run["labels"]["prefect.worker.name"]] == there
    pids = {r: wait_for_flow_run(server, r)["infrastructure_pid"] for r in (first, second)}
    assert pids[first] and pids[second] and pids[first] != pids[second]

    with open_db(engine) as db:
        record = sessions.get_session(db, session_id)
        assert record.turn_count == 5  # e-mails 1-3 on A, 4-5 on B: none sent twice
        assert record.project_key == project_key_for_directory(str(machines[there] / "workspace"))
        assert sessions.list_sessions(db, agent_name=f"triage-{team}") == [record]
        runs_of = [d.flow_run_id for d in decisions.list_decisions(db, session_id=session_id)]
        assert runs_of == [first] * 3 + [second] * 2
    rows = table(server, second, f"triage-results-{team}")
    assert [r["new"] for r in rows] == ["", "", "", "yes", "yes"]

    # What the model received on machine B: the same session, with A's three e-mails before.
    calls = [r for r in deployed.model().requests(kind="main") if r.get("session_id") == session_id]
    assert len(calls) == 5
    last = calls[-1]
    assert last["user_turns"] == [e.as_prompt() for e in inbox[:5]]
    # B's CLI ran in B's working directory (the history still names A's, where it began).
    seen = json.dumps([last["messages"], last["system"]])
    assert str(machines[there] / "workspace") in seen, (last["cwd"], seen[-3000:])
