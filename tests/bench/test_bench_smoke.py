"""A seconds-long run of the benchmark suite, so it cannot rot (no timing assertions)."""

from __future__ import annotations

import importlib.util
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
    installed_peers = {
        name
        for name, modules in (
            ("raw asyncpg", ("asyncpg",)),
            ("tortoise", ("tortoise", "asyncpg")),
            ("piccolo", ("piccolo", "asyncpg")),
        )
        if all(importlib.util.find_spec(m) is not None for m in modules)
    }
    peer_systems = {
        s for s in systems if any(s in (p, f"{p} instrumented") for p in installed_peers)
    }
    # The peers (the bench extra) run when installed and are named in a skip line when not.
    assert {s.removesuffix(" instrumented") for s in peer_systems} == installed_peers
    for name in {"raw asyncpg", "tortoise", "piccolo"} - installed_peers:
        assert f"skipped: {name} and {name} instrumented" in run.stdout
    assert systems - peer_systems == {
        "raw psycopg",
        "data_bridge",
        "data_bridge instrumented",
        "data_bridge sampled out",
        "data_bridge instr+uninstr",
        "data_bridge + bare span",
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
    assert set(data["seam_overhead_us"]) == {"floor", "recording", "sampled_out"}
    assert data["n1_detection_us"] > 0
    assert data["environment"]["postgresql"]  # e.g. "15.19 (Debian 15.19-0+deb12u1)"
    markdown = (tmp_path / "results.md").read_text()
    assert "| W3 5000 posts |" in markdown
    assert "N+1 detection per lazy load" in run.stdout
    assert (
        set(data["memory_peak_bytes"])
        == {
            "raw psycopg",
            "data_bridge",
            "sqlalchemy",
        }
        | installed_peers
    )
    # W8, issue 25's eager page: 50 posts, their authors, their 150 comments.
    assert data["workloads"][-1] == "W8 eager page"
    eager = data["w8_extra_cpu"]
    assert set(eager) == {"data_bridge", "sqlalchemy"}
    # Spans per page, counted by the recording provider's exporter: data_bridge's session
    # open and close, the find and one per relationship loaded; SQLAlchemy's one per
    # query (3, selectinload for both) and, in 0.66b1/b2, a "connect" per checkout.
    assert eager["data_bridge"]["spans_per_page"] == 5
    assert eager["sqlalchemy"]["spans_per_page"] in (3, 4)
    assert eager["data_bridge"]["page_cpu_us"] > 0
    # Issue 25's table, in its terms, printed and written.
    for row in (
        "| a get by primary key | W1 get by pk |",
        "| e 50 posts with authors and comments, eager | W8 eager page |",
        "| traced eager page (e), extra process CPU |",
        "| recording a query span, in the request flow |",
        "| memory of c |",
    ):
        assert row in markdown and row in run.stdout, row
    assert "| data_bridge | " in markdown.split("Against the peers")[1]
    for system, cells in data["results"].items():
        for workload, cell in cells.items():
            assert cell["cpu_median_us"] > 0, (system, workload)
    assert "Process CPU per operation" in markdown
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert "targets:" in run.stdout


def test_short_soak_run_reports_ten_checkpoints() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--requests", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:11]] == [str(4 * i) for i in range(1, 11)]
    assert lines[-1].startswith("PASS  traced memory growth after warm-up")


def test_the_enhancements_probe_reports_every_figure() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.enhancements", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    assert set(figures) == {
        "plan_wall_us",
        "w2_read_wall_us",
        "hook_commenter_cpu_us",
        "hook_plans_cpu_us",
        "hook_both_cpu_us",
        "w1_commenter_off_wall_us",
        "w1_commenter_on_wall_us",
        "seam_sampler_drops_cpu_us",
        "seam_sampler_record_only_cpu_us",
        "seam_recording_cpu_us",
        "seam_recording_noop_processor_cpu_us",
        "seam_recording_slow_query_processor_cpu_us",
        "should_sample_attribute_based_us",
        "should_sample_trace_id_ratio_us",
    }
    assert figures["plan_wall_us"] > 0 and figures["w1_commenter_on_wall_us"] > 0
