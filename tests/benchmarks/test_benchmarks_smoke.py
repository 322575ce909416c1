"""Smoke test of the benchmarks: the store benchmark runs at a tiny size and writes a
well-formed result file (no timing assertions: this machine is shared and noisy)."""

from __future__ import annotations

import json

from benchmarks import store_throughput


def test_store_benchmark_writes_well_formed_json(tmp_path):
    out = tmp_path / "store.json"
    store_throughput.main(
        ["--quick", "--entries", "200", "--sessions", "20", "--no-postgres", "--out", str(out)]
    )
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "store_throughput"
    assert doc["quick"] is True
    for key in ("date", "machine", "versions", "params", "figures", "details", "loadavg_after"):
        assert key in doc
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu_model"]
    assert {"claude_agent_sdk", "claude_cli", "prefect"} <= set(doc["versions"])
    assert doc["params"]["entries"] == 200 and doc["params"]["sessions"] == 20
    assert {"in_memory", "raw_sqlite3", "sqlite"} <= set(doc["details"]["append_load"])
    assert {"in_memory", "sqlite"} <= set(doc["details"]["listing"])
    assert doc["figures"]
    for fig in doc["figures"]:
        assert {"name", "value", "unit", "baseline", "baseline_value", "ratio"} <= set(fig)
        assert fig["value"] > 0 and fig["baseline_value"] > 0 and fig["ratio"] > 0


def test_warm_service_benchmark_runs_warm_and_writes_its_ratio(tmp_path):
    """The warm-vs-fresh benchmark at 3 turns: every timed service turn ran on a warm CLI (the
    ratio itself is not asserted here: the machine is shared)."""
    from benchmarks import warm_service

    out = tmp_path / "warm.json"
    speedup = warm_service.main(["--quick", "--turns", "3", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "warm_service" and doc["params"]["turns"] == 3
    assert doc["details"]["warm_turns_per_block"] == [3]
    assert speedup > 0 and doc["figures"][0]["baseline_value"] > 0
