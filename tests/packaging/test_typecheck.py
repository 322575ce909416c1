"""The public API stays mypy-clean: `make typecheck` checks the three packages through their
namespaced names (the same command a contributor runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_is_clean_on_the_namespaced_packages() -> None:
    make = shutil.which("make")
    assert make is not None, "make is needed for the typecheck target"
    done = subprocess.run(
        [make, "--no-print-directory", "typecheck"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout
    # All three packages were read: a broken symlink tree would check nothing and still succeed.
    checked = int(done.stdout.rsplit(" in ", 1)[1].split()[0])
    assert checked >= 60, done.stdout
