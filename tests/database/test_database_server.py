"""Which PostgreSQL the suite uses (tests/database_server.py), checked in pytest subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import STDOUT, Popen

import psycopg
import pytest
from database_server import DEFAULT_DSN_VARIABLE, DSN_VARIABLE, dsn

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
RUN_DSN = dsn()  # read before a fixture takes the variable away from the subprocesses

PROBE = """
import os
import psycopg

def test_probe():
    with psycopg.connect(os.environ["DATA_BRIDGE_TEST_DSN"]) as conn:
        directory = conn.execute("SHOW data_directory").fetchone()[0]
    print(f"\\nDATA_DIRECTORY={directory}")
"""


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv(DSN_VARIABLE, raising=False)
    monkeypatch.delenv(DEFAULT_DSN_VARIABLE, raising=False)
    # The subprocess imports database_server from tests/, as the suite's root conftest does.
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    pytester.makeconftest('pytest_plugins = ["database_server"]\n')
    pytester.makepyfile(test_probe=PROBE)
    return pytester


def data_directory(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("DATA_DIRECTORY=")]
    assert len(lines) == 1, result.stdout.str()
    return lines[0].removeprefix("DATA_DIRECTORY=")


@pytest.mark.slow
def test_without_a_server_at_the_default_address_the_tests_start_an_embedded_postgresql(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv(DEFAULT_DSN_VARIABLE, f"postgresql://postgres@127.0.0.1:{port}/test")
    result = suite.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"PostgreSQL: embedded, */data-bridge-tests-* (none at 127.0.0.1:{port})"]
    )
    header = next(line for line in result.outlines if line.startswith("PostgreSQL: "))
    assert len(header) <= 80, header  # one terminal line
    assert "data-bridge-tests-" in data_directory(result)


@pytest.mark.slow
def test_a_server_answering_at_the_default_address_is_used_without_an_embedded_one(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's own server stands for the default address, embedded or not: the subprocess
    # must use that very server (same data directory) and start none of its own.
    with psycopg.connect(RUN_DSN, connect_timeout=10) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    monkeypatch.setenv(DEFAULT_DSN_VARIABLE, RUN_DSN)
    result = suite.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"PostgreSQL: {RUN_DSN} (default address)"])
    assert data_directory(result) == row[0]


@pytest.mark.slow
def test_a_configured_dsn_that_does_not_answer_stops_the_run_with_an_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    monkeypatch.setenv(DSN_VARIABLE, configured)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {DSN_VARIABLE}={configured} does not answer: *"])
    assert "embedded" not in result.stdout.str() + result.stderr.str()


# -- an embedded server outlives no run (issue 24, item 3) ---------------------------------

BLOCKING = """
import os
import sys
import time
import psycopg

def test_block():
    with psycopg.connect(os.environ["DATA_BRIDGE_TEST_DSN"]) as conn:
        directory = conn.execute("SHOW data_directory").fetchone()[0]
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    print(f"DATA_DIRECTORY={directory}", flush=True)
    time.sleep(600)
"""


def _blocking_run(suite: pytest.Pytester, tmpdir: Path, port: int) -> tuple[Popen[str], Path]:
    """A pytest run on an embedded server, stopped inside its test; returns it and its pgdata."""
    suite.makepyfile(test_block=BLOCKING)
    env = {
        **os.environ,
        DEFAULT_DSN_VARIABLE: f"postgresql://postgres@127.0.0.1:{port}/test",
        "TMPDIR": str(tmpdir),
    }
    log = tmpdir / "run.log"  # a file, not a pipe: an orphaned server would hold a pipe open
    with log.open("w") as out:
        run = Popen(
            [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "test_block.py"],
            cwd=suite.path,
            env=env,
            stdout=out,
            stderr=STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "DATA_DIRECTORY=" in line:  # after the test's name, with -s
                return run, Path(line.split("DATA_DIRECTORY=", 1)[1])
        if run.poll() is not None:
            raise AssertionError(f"the run ended before its test:\n{log.read_text()}")
        time.sleep(0.1)
    run.kill()
    raise AssertionError(f"the run never reached its test:\n{log.read_text()}")


def _postmaster(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    )


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def short_tmpdir() -> Iterator[Path]:
    """A TMPDIR of the test's own, short enough for a Unix socket path inside it."""
    path = Path(tempfile.mkdtemp(prefix="dbt-"))
    yield path
    for pid_file in path.glob("*/pgdata/postmaster.pid"):  # a server the test failed to see go
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_run_terminated_or_interrupted_stops_its_embedded_server_and_deletes_it(
    suite: pytest.Pytester, short_tmpdir: Path, signum: signal.Signals
) -> None:
    run, pgdata = _blocking_run(suite, short_tmpdir, closed_port())
    postmaster = _postmaster(pgdata)
    run.send_signal(signum)
    run.wait(60)
    assert _gone_within(postmaster, 30)
    assert not pgdata.parent.exists()
    assert list(short_tmpdir.glob("data-bridge-tests-*")) == []


@pytest.mark.slow
def test_the_next_run_stops_and_deletes_the_embedded_server_a_killed_run_left(
    suite: pytest.Pytester, short_tmpdir: Path
) -> None:
    port = closed_port()
    killed, pgdata = _blocking_run(suite, short_tmpdir, port)
    postmaster = _postmaster(pgdata)
    killed.kill()  # SIGKILL: no handler runs, the server is orphaned
    killed.wait(60)
    assert _running(postmaster)
    assert pgdata.exists()
    suite.makepyfile(test_block="def test_nothing():\n    pass\n")
    env = {
        **os.environ,
        DEFAULT_DSN_VARIABLE: f"postgresql://postgres@127.0.0.1:{port}/test",
        "TMPDIR": str(short_tmpdir),
    }
    next_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_block.py"],
        cwd=suite.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert next_run.returncode == 0, next_run.stdout + next_run.stderr
    assert _gone_within(postmaster, 30)
    assert not pgdata.parent.exists()
    assert list(short_tmpdir.glob("data-bridge-tests-*")) == []


LOAD_EMBEDDED = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("embedded_pg", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module._import_get_server()
"""


def test_loading_the_embedded_server_package_without_xdg_runtime_dir_warns_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", LOAD_EMBEDDED, str(ROOT / "demo" / "embedded_pg.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "RuntimeDirWarning" not in run.stderr
