"""The turn-cost breakdown (benchmarks/breakdown.py) wraps functions by name: each must exist, or
the benchmark silently stops measuring that component."""

from __future__ import annotations

import pytest

from benchmarks.breakdown import TARGETS, Breakdown, resolve


@pytest.mark.parametrize(("label", "module", "attr", "nested"), TARGETS, ids=lambda v: str(v))
def test_every_breakdown_target_exists(label, module, attr, nested) -> None:
    _, _, original = resolve(module, attr)
    assert callable(original), f"{label}: {module}.{attr} is not callable"


def test_installing_wraps_and_restores_every_target() -> None:
    before = [resolve(m, a)[2] for _, m, a, _ in TARGETS]
    with Breakdown().installed() as bd:
        assert bd.missing == []
        assert all(
            resolve(m, a)[2] is not b for (_, m, a, _), b in zip(TARGETS, before, strict=True)
        )
    assert [resolve(m, a)[2] for _, m, a, _ in TARGETS] == before
