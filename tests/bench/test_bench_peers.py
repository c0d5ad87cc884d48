"""Each peer of the benchmark that is installed (the `bench` extra) runs every
workload once with the expected result sizes, and its instrumented variant records
spans on its own turn only. Without the extra, the peers are named in skip lines
(CI installs `test`, not `bench`)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = {
    "raw asyncpg": (("asyncpg",), "opentelemetry.instrumentation.asyncpg"),
    "tortoise": (("tortoise", "asyncpg"), "opentelemetry.instrumentation.tortoiseorm"),
    "piccolo": (("piccolo", "asyncpg"), "opentelemetry.instrumentation.asyncpg"),
}


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.fixture(scope="module")
def smoke() -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "bench.peers"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout.splitlines()[-1]))


@pytest.mark.parametrize("name", sorted(PEERS))
def test_an_installed_peer_runs_every_workload_once(name: str, smoke: dict[str, Any]) -> None:
    modules, instrumentation = PEERS[name]
    if not _installed(*modules):
        assert any(
            line.startswith(f"skipped: {name} and {name} instrumented") for line in smoke["skipped"]
        )
        pytest.skip(f"{name} is not installed (the bench extra)")
    variants = [name] + ([f"{name} instrumented"] if _installed(instrumentation) else [])
    for variant in variants:
        assert smoke["systems"][variant]["results"] == {
            "w2": 100,
            "w3": 5000,
            "w4": None,
            "w5_lazy": 101,
            "w5_eager": 2,
            "w6": None,
            "w7": 100,
            "w7_columns": 100,
            "w7_group": 20,
            "w8": 150,
        }, variant
    assert smoke["systems"][name]["spans"] == 0
    if len(variants) == 2:
        # W5's N+1 page alone sends 101 queries, each one span.
        assert smoke["systems"][f"{name} instrumented"]["spans"] > 101


def test_a_peer_that_is_not_installed_is_named_with_the_extra_to_install(
    smoke: dict[str, Any],
) -> None:
    for line in smoke["skipped"]:
        assert line.startswith("skipped: ")
        assert "packaging/instrumentation[bench]" in line
