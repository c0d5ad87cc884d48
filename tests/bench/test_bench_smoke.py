"""A seconds-long run of the benchmark suite, so it cannot rot (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_fills_every_cell(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--rounds", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    systems = set(data["results"])
    assert systems == {
        "raw psycopg",
        "data_bridge",
        "data_bridge instrumented",
        "data_bridge sampled out",
        "data_bridge instr+uninstr",
        "sqlalchemy",
        "sqlalchemy instrumented",
    }
    for system, cells in data["results"].items():
        assert set(cells) == set(data["workloads"]), system
        for workload, cell in cells.items():
            assert cell["median_us"] > 0, (system, workload)
    for system in systems:
        assert data["results"][system]["W5 N+1 page"]["queries"] == 101
        assert data["results"][system]["W5 selectinload page"]["queries"] == 2
    assert data["span_floor_us"] > 0
    assert set(data["memory_peak_bytes"]) == {"raw psycopg", "data_bridge"}
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert "targets:" in run.stdout
