"""Arize Phoenix as a real OTLP trace backend for tests, on loopback ports.

`PhoenixServer` starts ``phoenix serve`` in a subprocess with its own
working directory and free ports, waits until it answers, and reads spans
back through its REST API (``GET /v1/projects/{project}/spans``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PhoenixServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.grpc_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="phoenix-test-"))
        self.log_path = self.workdir / "phoenix.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http_endpoint(self) -> str:
        return f"{self.base_url}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self, attempts: int = 240) -> None:
        env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_WORKING_DIR": str(self.workdir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        executable = Path(sys.executable).parent / "phoenix"
        command = (
            [str(executable), "serve"]
            if executable.exists()
            else [sys.executable, "-m", "phoenix.server.main", "serve"]
        )
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(attempts):  # bounded: about two minutes
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"phoenix serve did not become ready; log tail:\n{tail}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=10) as response:
            return json.loads(response.read())

    def fetch_spans(
        self, project: str = "default", min_count: int = 1, attempts: int = 120
    ) -> list[dict[str, Any]]:
        """Spans of a project as flat dicts, once ingestion has settled (bounded polling).

        Phoenix stores OTLP batches asynchronously, so a read can see part of a
        trace: a child whose root span has not landed yet. A result is returned
        only when it holds at least ``min_count`` spans, every parent it names is
        among them, and two reads in a row agree on the count.
        """
        spans: list[dict[str, Any]] = []
        previous = -1
        for _ in range(attempts):
            spans = self._read_project_spans(project)
            ids = {s["span_id"] for s in spans}
            complete = all(s["parent_id"] in ids for s in spans if s["parent_id"])
            if len(spans) >= min_count and complete and len(spans) == previous:
                return spans
            previous = len(spans)
            time.sleep(0.5)
        return spans

    def _read_project_spans(self, project: str) -> list[dict[str, Any]]:
        spans: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = f"/v1/projects/{project}/spans?limit=1000"
            if cursor:
                query += f"&cursor={cursor}"
            try:
                page = self._get(query)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # 404: the project does not exist yet
                    raise
                return []
            spans.extend(_flatten(s) for s in page.get("data", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return spans


def _dotted(value: Any, prefix: str = "") -> dict[str, Any]:
    """Attributes may come back nested ({"db": {"system": ...}}): flatten to dotted keys."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat.update(_dotted(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _flatten(span: dict[str, Any]) -> dict[str, Any]:
    context = span.get("context") or {}
    return {
        "name": span.get("name"),
        "span_id": context.get("span_id"),
        "trace_id": context.get("trace_id"),
        "parent_id": span.get("parent_id"),
        "attributes": _dotted(span.get("attributes") or {}),
    }
