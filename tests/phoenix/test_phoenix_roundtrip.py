"""The demo's trace over real OTLP (HTTP/protobuf and gRPC) into Phoenix, read back."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from database_server import dsn
from phoenix_server import PhoenixServer

ROOT = Path(__file__).resolve().parents[2]
DSN = dsn()


def run_demo_exporting(endpoint: str, protocol: str, project: str) -> None:
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
    }
    run = subprocess.run(
        [sys.executable, "-m", "demo", "--dsn", DSN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "exported over OTLP" in run.stdout


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_demo_trace_round_trips_through_phoenix(phoenix: PhoenixServer, protocol: str) -> None:
    project = f"data-bridge-{uuid.uuid4().hex[:8]}"
    endpoint = phoenix.base_url if protocol == "http/protobuf" else phoenix.grpc_endpoint
    run_demo_exporting(endpoint, protocol, project)
    spans = phoenix.fetch_spans(project=project, min_count=40)
    by_id: dict[Any, dict[str, Any]] = {s["span_id"]: s for s in spans}
    names = [s["name"] for s in spans]
    for expected in (
        "db.query.find",
        "db.query.aggregate",
        "db.session.commit",
        "db.session.flush",
        "db.relationship.select",
        "db.relationship.selectinload",
    ):
        assert expected in names, expected
    assert names.count("db.relationship.select") == 10

    levels = sorted(
        (s for s in spans if s["name"] == "db.relationship.selectinload"),
        key=lambda s: int(s["attributes"]["db.relationship.depth"]),
    )
    assert [s["attributes"]["db.relationship.name"] for s in levels] == ["posts", "comments"]
    assert int(levels[0]["attributes"]["db.relationship.batch_count"]) == 10
    for level in levels:
        parent = by_id[level["parent_id"]]
        assert parent["name"] == "db.query.find"
        assert by_id[parent["parent_id"]]["name"] == "GET /users/posts (selectinload)"

    flush = next(
        s for s in spans if s["name"] == "db.session.flush" and s["attributes"].get("error.type")
    )
    assert flush["attributes"]["error.type"] == "psycopg.errors.UniqueViolation"
    assert by_id[flush["parent_id"]]["name"] == "db.session.commit"
    for span in spans:
        if span["name"].startswith("db."):
            assert span["attributes"]["db.system"] == "postgresql"
