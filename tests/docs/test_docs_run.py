"""Every ```python block of README.md and docs/*.md runs, against a scratch schema.

How a document's blocks run: tests/docs/run_document.py. How to mark a block that must
not run (``<!-- docs: skip REASON -->``) or give one hidden set-up code
(``<!-- docs: setup ... -->``): tests/docs/doc_blocks.py. Each document gets a schema of
its own, dropped afterwards, so the suite runs twice and side by side.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from database_server import dsn
from psycopg.conninfo import make_conninfo

from scratch_schema import fresh_schema

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DOCUMENTS = sorted(
    str(path.relative_to(ROOT))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    if "```python" in path.read_text()
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_every_python_block_of_the_document_runs(document: str) -> None:
    async with fresh_schema("dbdocs") as schema:
        scratch = make_conninfo(dsn(), options=f"-c search_path={schema}")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT / "src")])}
        env["DATA_BRIDGE_DSN"] = scratch  # what the examples read
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
        run = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(HERE / "run_document.py"), document, scratch],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FAILED" not in run.stdout
