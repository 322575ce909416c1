"""Proof that the e2e harness drives real Prefect: deploy, run, two workers, clean-up.

A throwaway project (a flow package under ``src/`` and a ``prefect.yaml``) is written to
``tmp_path`` and deployed with the real CLI; real workers run it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import (
    VENV_BIN,
    PrefectServer,
    create_flow_run,
    deploy_all,
    read_artifacts,
    read_events,
    read_flow_run,
    read_flow_run_graph,
    read_logs,
    read_task_runs,
    record_timing,
    run_deployment,
    unique_name,
    wait_for_flow_run,
    wait_for_flow_runs,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

FLOW_NAME = "harness-hello"
ARTIFACT_KEY = "harness-hello"

FLOW_SOURCE = '''\
"""Throwaway flow for the e2e harness tests: echoes its parameter and where it ran."""

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact


@task
def shout(text: str) -> str:
    return text.upper()


@flow(name="harness-hello")
def hello(name: str = "nobody", marker_dir: str = "", sleep_seconds: float = 0.0) -> str:
    info = {
        "name": name,
        "loud": shout(name),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "machine": os.environ.get("HARNESS_MACHINE", ""),
        "claude_config_dir": os.environ.get("CLAUDE_CONFIG_DIR", ""),
        "python": sys.executable,
    }
    create_markdown_artifact(
        key="harness-hello",
        markdown="# hello\\n\\n```json\\n" + json.dumps(info) + "\\n```\\n",
    )
    if marker_dir:
        Path(marker_dir, f"{os.getpid()}.json").write_text(json.dumps(info))
    time.sleep(sleep_seconds)
    return "hello " + info["loud"]
'''


@dataclass(frozen=True)
class Project:
    """The throwaway project on disk and the full names of its deployments."""

    root: Path
    src: Path  # put on PYTHONPATH where the flow is imported as a module
    by_directory: str
    by_module: str
    in_worker_cwd: str


def write_project(root: Path, pool: str) -> Project:
    """Write the throwaway project: a flow package under ``src/`` and a ``prefect.yaml``.

    Three deployments of one flow show the ways to ship code to a process worker:
    - by directory: a file entrypoint and a ``set_working_directory`` pull step to the project
      (what ``prefect init`` writes; the absolute path is baked into the deployment);
    - by module: a module entrypoint and ``pull: []``; the worker imports the flow from its
      Python environment (here ``PYTHONPATH``, in the real project the installed package) and
      runs it in a fresh temp dir;
    - in worker cwd: like by module, plus ``job_variables: {working_dir: "."}`` so each run
      executes in the directory its worker was started in (a stable per-machine cwd).
    """
    src = root / "src" / "harness_pkg"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "hello.py").write_text(FLOW_SOURCE)
    names = [unique_name(n) for n in ("by-directory", "by-module", "in-worker-cwd")]
    module_entrypoint = "harness_pkg.hello:hello"
    spec = {
        "name": "harness-project",
        "prefect-version": "3.9.1",
        "pull": [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(root)}},
        ],
        "deployments": [
            {
                "name": names[0],
                "entrypoint": "src/harness_pkg/hello.py:hello",
                "work_pool": {"name": pool},
                "parameters": {"name": "from-prefect-yaml"},
                "tags": ["e2e-harness"],
            },
            {
                "name": names[1],
                "entrypoint": module_entrypoint,
                "pull": [],
                "work_pool": {"name": pool},
            },
            {
                "name": names[2],
                "entrypoint": module_entrypoint,
                "pull": [],
                "work_pool": {"name": pool, "job_variables": {"working_dir": "."}},
            },
        ],
    }
    (root / "prefect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return Project(root, root / "src", *(f"{FLOW_NAME}/{n}" for n in names))


def deploy_project(server: PrefectServer, root: Path, pool: str) -> tuple[Project, dict]:
    project = write_project(root, pool)
    deployments = deploy_all(server, root, env=server.env(PYTHONPATH=str(project.src)))
    return project, deployments


def artifact_info(server: PrefectServer, flow_run_id: str) -> dict:
    """The JSON the flow embedded in its markdown artifact."""
    artifacts = read_artifacts(server, flow_run_id, key=ARTIFACT_KEY)
    assert len(artifacts) == 1, artifacts
    match = re.search(r"```json\n(.*?)\n```", artifacts[0]["data"], re.S)
    assert match, artifacts[0]["data"]
    return json.loads(match.group(1))


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_deploy_and_run_with_parameter(prefect_server, process_pool, start_worker, tmp_path):
    server = prefect_server
    project, deployments = deploy_project(server, tmp_path / "project", process_pool)

    assert set(deployments) == {project.by_directory, project.by_module, project.in_worker_cwd}
    deployed = deployments[project.by_directory]
    assert deployed["work_pool_name"] == process_pool
    assert deployed["entrypoint"] == "src/harness_pkg/hello.py:hello"
    assert deployed["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(project.root)}}
    ]
    assert deployed["parameters"] == {"name": "from-prefect-yaml"}
    assert not deployments[project.by_module]["pull_steps"]
    assert deployments[project.in_worker_cwd]["job_variables"] == {"working_dir": "."}

    # No PYTHONPATH for this worker: the file entrypoint is found through the pull step.
    worker = start_worker(process_pool, env={"HARNESS_MACHINE": "alpha"})

    started = time.monotonic()
    run_id = run_deployment(server, project.by_directory, {"name": "alice"})
    run = wait_for_flow_run(server, run_id, timeout=120, expect="COMPLETED")
    record_timing("deployment run -> Completed, CLI (s)", time.monotonic() - started)

    assert run["parameters"]["name"] == "alice"
    assert run["labels"]["prefect.worker.name"] == worker.name
    assert run["work_pool_name"] == process_pool

    info = artifact_info(server, run_id)
    assert info["name"] == "alice"
    assert info["loud"] == "ALICE"  # went through the task
    assert info["machine"] == "alpha"  # the worker's env reached the flow-run process
    assert info["cwd"] == str(project.root)  # the pull step ran
    assert Path(info["python"]).parent == VENV_BIN  # the flow ran on this venv
    assert run["infrastructure_pid"] == str(info["pid"])

    # Task runs and events are recorded from events: wait for them.
    task_runs = wait_until(
        lambda: [t for t in read_task_runs(server, run_id) if t["state_type"] == "COMPLETED"],
        timeout=30,
        message=lambda: f"no completed task run\n{server.diagnostics(run_id)}",
    )
    assert [t["task_key"].split("-")[0] for t in task_runs] == ["shout"]

    wanted = {"prefect.flow-run.Completed", "prefect.artifact.created"}

    def run_events() -> list[dict] | None:
        events = read_events(server, flow_run_id=run_id)
        return events if wanted <= {e["event"] for e in events} else None

    events = wait_until(
        run_events,
        timeout=30,
        message=lambda: f"events {wanted} missing\n{server.diagnostics(run_id)}",
    )
    names = [e["event"] for e in events]
    assert names.index("prefect.flow-run.Running") < names.index("prefect.flow-run.Completed")
    assert read_events(server, flow_run_id=run_id, prefix="prefect.flow-run.Completed")

    # The last logs are flushed when the flow-run process exits, after the state is final.
    wait_until(
        lambda: any(
            "Finished in state Completed" in lg["message"] for lg in read_logs(server, run_id)
        ),
        timeout=30,
        message=lambda: f"no final log line\n{server.diagnostics(run_id)}",
    )

    graph = read_flow_run_graph(server, run_id)
    assert any(node["label"].startswith("shout") for _, node in graph["nodes"]), graph

    # A parameter from prefect.yaml is the default when a run gives none.
    default_run = run_deployment(server, project.by_directory)
    wait_for_flow_run(server, default_run, timeout=120, expect="COMPLETED")
    assert artifact_info(server, default_run)["name"] == "from-prefect-yaml"


def test_two_workers_share_a_pool(prefect_server, process_pool, start_worker, tmp_path):
    """Two "machines" (own env, CLAUDE_CONFIG_DIR, PREFECT_HOME, cwd, TMPDIR) on one pool both
    take runs of the module-entrypoint deployments, which have no pull steps."""
    server = prefect_server
    project, _ = deploy_project(server, tmp_path / "project", process_pool)

    workers = {}
    for machine in ("machine-a", "machine-b"):
        workers[machine] = start_worker(
            process_pool,
            name=unique_name(machine),
            limit=1,
            cwd=tmp_path / machine / "workspace",
            env={
                "HARNESS_MACHINE": machine,
                "CLAUDE_CONFIG_DIR": str(tmp_path / machine / "claude"),
                "PYTHONPATH": str(project.src),
            },
        )
    markers = tmp_path / "markers"
    markers.mkdir()

    started = time.monotonic()
    deployment_of = {}
    for i in range(4):
        name = project.by_module if i % 2 else project.in_worker_cwd
        params = {"name": f"run-{i}", "marker_dir": str(markers), "sleep_seconds": 1}
        deployment_of[create_flow_run(server, name, params)] = name
    runs = wait_for_flow_runs(server, deployment_of, timeout=240, expect="COMPLETED")
    record_timing("4 runs on 2 workers -> all Completed (s)", time.monotonic() - started)

    by_worker = {w.name: machine for machine, w in workers.items()}
    seen = set()
    for i, run in enumerate(runs):
        info = artifact_info(server, run["id"])
        machine = by_worker[run["labels"]["prefect.worker.name"]]
        seen.add(machine)
        assert info["name"] == f"run-{i}"
        assert info["machine"] == machine
        assert info["claude_config_dir"] == str(tmp_path / machine / "claude")
        if deployment_of[run["id"]] == project.in_worker_cwd:
            # working_dir "." resolves against the worker's cwd: a stable per-machine folder.
            assert info["cwd"] == str(tmp_path / machine / "workspace")
        else:
            # Without pull steps each run gets a fresh temp dir, under the worker's TMPDIR.
            assert Path(info["cwd"]).is_relative_to(tmp_path / workers[machine].name / "tmp")
    assert seen == {"machine-a", "machine-b"}, [r["labels"] for r in runs]
    assert len(list(markers.glob("*.json"))) == 4


def test_killed_worker_leaves_no_process_and_a_running_run(
    prefect_server, process_pool, start_worker, tmp_path
):
    """``Worker.kill()`` (a machine losing power) takes its flow-run process with it; the
    server is not told, so the run stays RUNNING: fault tests must recover such runs."""
    server = prefect_server
    project, _ = deploy_project(server, tmp_path / "project", process_pool)
    worker = start_worker(process_pool, env={"PYTHONPATH": str(project.src)})

    run_id = create_flow_run(server, project.by_module, {"sleep_seconds": 120})
    wait_until(
        lambda: read_artifacts(server, run_id, key=ARTIFACT_KEY),
        timeout=90,
        message=lambda: f"flow never reached its sleep\n{server.diagnostics(run_id)}",
    )
    pid = artifact_info(server, run_id)["pid"]
    assert pid in worker.flow_run_pids()
    worker_pid = worker.process.pid

    worker.kill()

    wait_until(lambda: not pid_alive(pid) and not pid_alive(worker_pid), timeout=15)
    assert read_flow_run(server, run_id)["state_type"] == "RUNNING"
