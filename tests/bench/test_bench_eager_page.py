"""W8, issue 25's eager page, loads the same page in every system of ours: 50 posts,
each with its author and its 3 comments (the peers: test_bench_peers.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, json
from bench.instructions import build
from bench.schema import create_schema, drop_schema

async def main():
    schema = create_schema()
    out = {}
    try:
        for name in ("raw", "data_bridge", "traced", "sqlalchemy"):
            system = build(name)
            await system.setup(schema)
            system.activate()
            try:
                out[name] = [await system.w8(), await system.w8()]
            finally:
                system.deactivate()
                await system.teardown()
    finally:
        drop_schema(schema)
    print(json.dumps(out))

asyncio.run(main())
"""


def test_every_system_loads_the_eager_page_with_its_150_comments() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {
        "raw": [150, 150],
        "data_bridge": [150, 150],
        "traced": [150, 150],
        "sqlalchemy": [150, 150],
    }
