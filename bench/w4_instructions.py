"""W4 (build 1,000 users, add, flush, roll back) for callgrind instruction counts.

Wall time on the shared machine moves with its load; instructions do not::

    valgrind --tool=callgrind python -m bench.w4_instructions 6
    valgrind --tool=callgrind python -m bench.w4_instructions 1

The difference over 5,000 objects is W4's instructions per object (imports,
schema setup and the first round cancel out). Run it with
``PYTHONPATH=<other tree>/src`` to count another version of the core.
"""

from __future__ import annotations

import asyncio
import sys

from bench.schema import create_schema, drop_schema
from bench.systems import DataBridge


async def _rounds(schema: str, rounds: int) -> None:
    system = DataBridge("data_bridge")
    await system.setup(schema)
    try:
        for _ in range(rounds):
            await system.w4(1000)
    finally:
        await system.teardown()


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 1
    schema = create_schema()
    try:
        asyncio.run(_rounds(schema, rounds))
    finally:
        drop_schema(schema)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
