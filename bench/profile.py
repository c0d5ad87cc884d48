"""Profile one workload of one system with pyinstrument.

``python -m bench.profile "data_bridge instrumented" "W1 get by pk" [--repeat N]``
prints the call tree (time in our code vs the driver's) for the hot-path
work of issue 4; `bench/README.md` records what it showed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bench.run import WORKLOADS, _providers, build_systems
from bench.schema import USERS, create_schema, drop_schema


def _workload(system: Any, name: str) -> Any:
    ids = [1 + (i * 37) % USERS for i in range(200)]
    return {
        WORKLOADS[0]: lambda: system.w1(ids),
        WORKLOADS[1]: system.w2,
        WORKLOADS[2]: system.w3,
        WORKLOADS[3]: lambda: system.w4(1000),
        WORKLOADS[4]: system.w5_lazy,
        WORKLOADS[5]: system.w5_eager,
        WORKLOADS[6]: lambda: system.w6(ids[0]),
        WORKLOADS[7]: system.w7,
    }[name]


async def _profile(system_name: str, workload: str, repeat: int) -> str:
    from pyinstrument import Profiler

    providers = _providers()
    systems = {s.name: s for s in build_systems(providers)[0]}
    if system_name not in systems:
        raise SystemExit(f"unknown system {system_name!r}; one of: {', '.join(systems)}")
    if workload not in WORKLOADS:
        raise SystemExit(f"unknown workload {workload!r}; one of: {', '.join(WORKLOADS)}")
    system = systems[system_name]
    schema = create_schema()
    try:
        await system.setup(schema)
        system.activate()
        run = _workload(system, workload)
        await run()  # warm-up
        profiler = Profiler(interval=0.0001, async_mode="enabled")
        profiler.start()
        for _ in range(repeat):
            await run()
        profiler.stop()
        system.deactivate()
        await system.teardown()
    finally:
        drop_schema(schema)
        for provider in providers.values():
            provider.shutdown()
    return str(profiler.output_text(unicode=True, color=False, show_all=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("system")
    parser.add_argument("workload")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    print(asyncio.run(_profile(args.system, args.workload, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
