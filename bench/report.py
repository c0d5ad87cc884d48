"""The benchmark's table, target checks and chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RAW = "raw psycopg"
ORM = "data_bridge"
# data_bridge with one bare SDK span (six attributes) around each W1 get: the span
# floor measured inside the same flow, caches as cold as the instrumentation's.
FLOOR_SYSTEM = "data_bridge + bare span"


def _cell(data: dict[str, Any], system: str, workload: str, key: str = "median_us") -> float | None:
    cell = data["results"].get(system, {}).get(workload)
    return None if cell is None or key not in cell else float(cell[key])


def table(data: dict[str, Any]) -> str:
    lines = [
        f"{'system':28} {'workload':22} {'median':>11} {'min-max':>21} {'x raw':>7} {'x orm':>7}"
        f" {'cpu':>11} {'cpu x raw':>9}"
    ]
    for system, cells in data["results"].items():
        for workload in data["workloads"]:
            cell = cells[workload]
            raw = _cell(data, RAW, workload)
            orm = _cell(data, ORM, workload)
            median = cell["median_us"]
            spread = f"{cell['min_us']:.0f}-{cell['max_us']:.0f}"
            x_raw = f"{median / raw:.2f}" if raw else "-"
            x_orm = f"{median / orm:.2f}" if orm else "-"
            queries = f"  ({cell['queries']} queries)" if "queries" in cell else ""
            cpu = cell.get("cpu_median_us")
            raw_cpu = _cell(data, RAW, workload, "cpu_median_us")
            cpu_shown = "-" if cpu is None else f"{cpu:9.1f}us"
            cpu_x = f"{cpu / raw_cpu:.2f}" if cpu is not None and raw_cpu else "-"
            lines.append(
                f"{system:28} {workload:22} {median:9.1f}us {spread:>19}us "
                f"{x_raw:>7} {x_orm:>7} {cpu_shown:>11} {cpu_x:>9}{queries}"
            )
    return "\n".join(lines)


def targets(data: dict[str, Any]) -> str:
    w1, w3, w4 = data["workloads"][0], data["workloads"][2], data["workloads"][3]
    checks: list[tuple[str, bool | None, str]] = []

    def ratio(system: str, base: str, workload: str) -> float | None:
        a, b = _cell(data, system, workload), _cell(data, base, workload)
        return None if a is None or b is None else a / b

    for system in ("data_bridge instr+uninstr",):
        r = ratio(system, ORM, w1)
        checks.append(
            (
                f"{system} vs never instrumented (W1)",
                None if r is None else r < 1.10,
                f"{r:.2f}" if r else "n/a",
            )
        )
    paired = data.get("w1_extra_cpu_us", {})
    probe = data.get("seam_overhead_us", {})

    def extra_check(label: str, value: float | None, limit: float, note: str = "") -> None:
        shown = "n/a" if value is None else f"{value:.1f}us{note}"
        checks.append((label, None if value is None else value <= limit, shown))

    rec, bare = paired.get("recording"), paired.get("bare_span")
    sqla = paired.get("sqlalchemy_instrumentation")
    if bare is not None:
        extra_check(
            "recording extra per get (W1, CPU) <= 1.3 x a bare span in the same flow",
            rec,
            1.3 * bare,
            f" vs bare span {bare:.1f}us",
        )
    if probe:
        extra_check(
            "recording extra of the seam alone <= 1.3 x span floor (tight loop)",
            probe["recording"],
            1.3 * probe["floor"],
            f" vs floor {probe['floor']:.1f}us",
        )
    if sqla is not None:
        extra_check(
            "recording extra <= 1/4 of SQLAlchemy-instrumentation's (W1, CPU)",
            rec,
            sqla / 4,
            f" vs {sqla:.1f}us",
        )
    extra_check("sampled-out extra per get (W1, CPU) <= 10us", paired.get("sampled_out"), 10)
    if probe:
        extra_check("sampled-out extra of the seam alone <= 10us", probe["sampled_out"], 10)
    if "n1_detection_us" in data:
        extra_check("N+1 detection per lazy load <= 2us (tight loop)", data["n1_detection_us"], 2)
    flow = data.get("n1_request_flow")
    if flow:
        extra_check(
            "N+1 detection per lazy load <= 2us (request flow)",
            flow["detection_us"],
            2,
            f", {flow['ratio'] * 100:.2f}% of the lazy load ({flow['lazy_load_us']:.0f}us)",
        )
    for workload, limit in ((w1, 1.3), (w3, 2.0), (w4, 1.5)):
        r = ratio(ORM, RAW, workload)
        checks.append(
            (
                f"{workload} <= {limit} x raw psycopg",
                None if r is None else r <= limit,
                f"{r:.2f}" if r else "n/a",
            )
        )
    for workload in data["workloads"][:4]:
        r = ratio("sqlalchemy", ORM, workload)
        checks.append(
            (
                f"{workload} >= 2 x faster than SQLAlchemy",
                None if r is None else r >= 2,
                f"{r:.2f}x" if r else "n/a",
            )
        )
    memory = data.get("memory_peak_bytes", {})
    if memory.get(RAW):
        r = memory[ORM] / memory[RAW]
        checks.append(("W3 hydration memory <= 1.5 x raw tuples", r <= 1.5, f"{r:.2f}"))
    lines = ["", "targets:"]
    for label, ok, value in checks:
        verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"  {verdict}  {label}: {value}")
    return "\n".join(lines)


# Issue 25's table: (row, its words, the bench workload, the target on process CPU / raw psycopg).
ISSUE_ROWS = (
    ("a", "get by primary key", "W1 get by pk", 1.25),
    ("b", "filter + order + limit page", "W2 page of 100", 1.4),
    ("c", "5,000 rows to objects", "W3 5000 posts", 1.5),
    ("d", "1,000 objects inserted in one transaction", "W4 insert 1000", 2.0),
    ("e", "50 posts with authors and comments, eager", "W8 eager page", 1.5),
)
ISSUE_SPAN_RATIO = 1.2  # recording a query span in the request flow / one bare SDK span
ISSUE_MEMORY_RATIO = 1.3  # c's memory / raw psycopg's
# The peers' table: each system a user would pick instead, and the drivers.
PEER_ROWS = (
    RAW,
    "raw asyncpg",
    ORM,
    "data_bridge instrumented",
    "sqlalchemy",
    "sqlalchemy instrumented",
    "tortoise",
    "tortoise instrumented",
    "piccolo",
    "piccolo instrumented",
)
ORM_PEERS = ("sqlalchemy", "tortoise", "piccolo")


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms" if abs(us) >= 1000 else f"{us:.0f} µs"


def issue_table(data: dict[str, Any]) -> list[str]:
    """Issue 25's table in its own terms, from this run: data_bridge's process CPU
    and wall time per operation over raw psycopg's for a-e, the traced eager page's
    extra CPU against SQLAlchemy-instrumented's, the span in the request flow
    against a bare SDK span, c's memory; each beside the issue's target."""
    lines = [
        "| issue 25 | bench workload | data_bridge process CPU x raw psycopg | wall x raw psycopg "
        "| target | |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row, words, workload, target in ISSUE_ROWS:
        cpu, raw_cpu = (
            _cell(data, ORM, workload, "cpu_median_us"),
            _cell(data, RAW, workload, "cpu_median_us"),
        )
        wall, raw_wall = _cell(data, ORM, workload), _cell(data, RAW, workload)
        r_cpu = cpu / raw_cpu if cpu is not None and raw_cpu else None
        r_wall = wall / raw_wall if wall is not None and raw_wall else None
        lines.append(
            f"| {row} {words} | {workload} | "
            + ("-" if r_cpu is None else f"{r_cpu:.2f}x ({_ms(cpu or 0)} vs {_ms(raw_cpu or 0)})")
            + f" | {'-' if r_wall is None else f'{r_wall:.2f}x'} | <= {target}x | "
            + f"{_verdict(None if r_cpu is None else r_cpu <= target)} |"
        )
    eager = data.get("w8_extra_cpu", {})
    ours, theirs = eager.get("data_bridge"), eager.get("sqlalchemy")
    ours_shown = (
        "-"
        if ours is None
        else f"+{_ms(ours['extra_cpu_us'])} per page ({ours['spans_per_page']:g} spans)"
    )
    theirs_shown = (
        "SQLAlchemy-instrumented's (not run)"
        if theirs is None
        else f"<= SQLAlchemy-instrumented's: +{_ms(theirs['extra_cpu_us'])} "
        f"({theirs['spans_per_page']:g} spans)"
    )
    ok = None if ours is None or theirs is None else ours["extra_cpu_us"] <= theirs["extra_cpu_us"]
    lines.append(
        f"| traced eager page (e), extra process CPU | W8 eager page, instrumented minus plain "
        f"| {ours_shown} | | {theirs_shown} | {_verdict(ok)} |"
    )
    paired = data.get("w1_extra_cpu_us", {})
    rec, bare = paired.get("recording"), paired.get("bare_span")
    span_ratio = rec / bare if rec is not None and bare else None
    lines.append(
        "| recording a query span, in the request flow | W1, extra CPU per get over a bare "
        "SDK span's in the same flow | "
        + (
            "-"
            if span_ratio is None or rec is None or bare is None
            else f"{span_ratio:.2f}x ({rec:.1f} µs vs {bare:.1f} µs)"
        )
        + f" | | <= {ISSUE_SPAN_RATIO}x | "
        + f"{_verdict(None if span_ratio is None else span_ratio <= ISSUE_SPAN_RATIO)} |"
    )
    memory = data.get("memory_peak_bytes", {})
    mem = memory[ORM] / memory[RAW] if memory.get(RAW) and memory.get(ORM) else None
    lines.append(
        "| memory of c | W3, tracemalloc peak | "
        + ("-" if mem is None else f"{mem:.2f}x ({memory[ORM] / 1e6:.1f} MB)")
        + f" | | <= {ISSUE_MEMORY_RATIO}x | "
        + f"{_verdict(None if mem is None else mem <= ISSUE_MEMORY_RATIO)} |"
    )
    return lines


def peers_table(data: dict[str, Any]) -> list[str]:
    """Issue 25's workloads for every system of the run that a user would pick
    instead (and the two drivers): process CPU per operation x raw psycopg, wall in
    parentheses; c's memory; and whether data_bridge is ahead of every ORM peer."""
    rows = [s for s in PEER_ROWS if s in data["results"]]
    memory = data.get("memory_peak_bytes", {})
    head = " | ".join(f"{row} {workload}" for row, _, workload, _ in ISSUE_ROWS)
    lines = [
        f"| system | {head} | memory of c |",
        "| --- |" + " ---: |" * (len(ISSUE_ROWS) + 1),
    ]
    for system in rows:
        cells = []
        for _, _, workload, _ in ISSUE_ROWS:
            cpu, raw_cpu = (
                _cell(data, system, workload, "cpu_median_us"),
                _cell(data, RAW, workload, "cpu_median_us"),
            )
            wall, raw_wall = _cell(data, system, workload), _cell(data, RAW, workload)
            if cpu is None or not raw_cpu or wall is None or not raw_wall:
                cells.append("-")
            else:
                cells.append(f"{cpu / raw_cpu:.2f}x ({wall / raw_wall:.2f}x)")
        peak = memory.get(system)
        cells.append(f"{peak / memory[RAW]:.2f}x" if peak and memory.get(RAW) else "-")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    behind = []
    for _, _, workload, _ in ISSUE_ROWS:
        ours = _cell(data, ORM, workload, "cpu_median_us")
        for peer in ORM_PEERS:
            theirs = _cell(data, peer, workload, "cpu_median_us")
            if ours is not None and theirs is not None and ours >= theirs:
                behind.append(f"{peer} on {workload}")
    present = [p for p in ORM_PEERS if p in data["results"]]
    if ORM in data["results"] and present:
        lines += [
            "",
            f"data_bridge ahead of every ORM peer of this run ({', '.join(present)}) in process "
            "CPU on a-e: " + ("yes" if not behind else "no, behind " + ", ".join(behind)),
        ]
    return lines


def issue_summary(data: dict[str, Any]) -> str:
    """Both issue 25 tables, as printed after a run and written into results.md."""
    return "\n".join(
        [
            "",
            "Issue 25 (process CPU per operation, medians of one interleaved run):",
            "",
            *issue_table(data),
            "",
            "Against the peers (process CPU x raw psycopg, wall x raw psycopg in parentheses):",
            "",
            *peers_table(data),
        ]
    )


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = data["workloads"]
    systems = list(data["results"])
    fig, axes = plt.subplots(1, len(workloads), figsize=(3 * len(workloads), 4))
    for ax, workload in zip(axes, workloads, strict=True):
        values = [data["results"][s][workload]["median_us"] for s in systems]
        ax.bar(range(len(systems)), values)
        ax.set_title(workload, fontsize=8)
        ax.set_xticks(range(len(systems)), systems, rotation=90, fontsize=6)
        ax.set_ylabel("µs per op", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


RATIO_SYSTEMS = (
    "data_bridge",
    "data_bridge instrumented",
    "data_bridge sampled out",
    "sqlalchemy",
    "sqlalchemy instrumented",
)


def ratio_chart(data: dict[str, Any], path: Path) -> None:
    """The README's chart: each system's median over raw psycopg's, per workload (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = data["workloads"]
    systems = [s for s in RATIO_SYSTEMS if s in data["results"]]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(systems), 1)
    for n, system in enumerate(systems):
        ratios = []
        for workload in workloads:
            value, base = _cell(data, system, workload), _cell(data, "raw psycopg", workload)
            ratios.append(value / base if value and base else 0.0)
        ax.bar([i + n * width for i in range(len(workloads))], ratios, width, label=system)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("median time / raw psycopg (log)")
    labels = [w.replace(" ", "\n", 1) for w in workloads]  # "W1\nget by pk": no overlap
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(workloads))], labels, fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def environment(server_version: str) -> dict[str, str]:
    """Date, machine and versions, printed with every run (the README's table carries them)."""
    import datetime as dt
    import os
    import platform
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    dists = (
        "psycopg",
        "sqlalchemy",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-sqlalchemy",
        # The peers (the `bench` extra); "-" when not installed.
        "asyncpg",
        "opentelemetry-instrumentation-asyncpg",
        "tortoise-orm",
        "opentelemetry-instrumentation-tortoiseorm",
        "piccolo",
    )
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "-"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": server_version,
        **versions,
    }


def _markdown_table(data: dict[str, Any], key: str) -> list[str]:
    systems = list(data["results"])
    lines = [
        "| workload | " + " | ".join(systems) + " |",
        "| --- |" + " ---: |" * len(systems),
    ]
    for workload in data["workloads"]:
        raw = _cell(data, RAW, workload, key)
        cells = []
        for system in systems:
            median = _cell(data, system, workload, key)
            if median is None:
                cells.append("-")
                continue
            shown = f"{median / 1000:.2f} ms" if median >= 1000 else f"{median:.0f} µs"
            cells.append(f"{shown} ({median / raw:.2f}x)" if raw else shown)
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    return lines


def markdown(data: dict[str, Any]) -> str:
    """The results as Markdown: wall time and process CPU per operation (medians,
    x raw psycopg) from the same interleaved run, and W3's memory peaks."""
    env = data.get("environment", {})
    lines = [
        " · ".join(f"{k} {v}" for k, v in env.items()),
        "",
        "Wall time per operation (median, x raw psycopg):",
        "",
        *_markdown_table(data, "median_us"),
        "",
        "Process CPU per operation (`time.process_time`, median, x raw psycopg):",
        "",
        *_markdown_table(data, "cpu_median_us"),
    ]
    memory = data.get("memory_peak_bytes", {})
    if memory.get(RAW):
        lines += [
            "",
            "W3 hydration memory (tracemalloc peak, x raw psycopg): "
            + ", ".join(
                f"{name} {peak / 1e6:.1f} MB ({peak / memory[RAW]:.2f}x)"
                for name, peak in memory.items()
            ),
        ]
    lines.append(issue_summary(data))
    for line in data.get("skipped", []):
        lines += ["", line]
    return "\n".join(lines)
